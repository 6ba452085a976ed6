//! What a depth plan removes, and how the model then runs: shared by the depth solvers and the
//! evolutionary search's candidates.

use std::collections::BTreeSet;

use crate::compress::plan::Plan;
use crate::model::BlockOpts;

/// What a depth plan removes: whole blocks (unit i: block i), or sublayers (unit 2i: block i's
/// attention, 2i + 1: its MLP).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Removal {
    pub sublayers: bool,
    pub units: BTreeSet<usize>,
}

impl Removal {
    /// How block `i` runs: None when it is removed.
    pub fn layout(&self, i: usize) -> Option<BlockOpts> {
        if !self.sublayers {
            return (!self.units.contains(&i)).then_some(BlockOpts::default());
        }
        let (a, m) = (self.units.contains(&(2 * i)), self.units.contains(&(2 * i + 1)));
        (!(a && m)).then_some(BlockOpts { skip_attention: a, skip_mlp: m })
    }

    /// The block unit `unit` belongs to.
    pub fn block_of(&self, unit: usize) -> usize {
        if self.sublayers {
            unit / 2
        } else {
            unit
        }
    }

    /// Blocks removed whole, and the blocks that lose only their attention or only their MLP.
    pub fn to_plan(&self, n_blocks: usize) -> Plan {
        let mut plan = Plan::default();
        for i in 0..n_blocks {
            match self.layout(i) {
                None => {
                    plan.drop_blocks.insert(i);
                }
                Some(o) => {
                    if o.skip_attention {
                        plan.drop_attention.insert(i);
                    }
                    if o.skip_mlp {
                        plan.drop_mlp.insert(i);
                    }
                }
            }
        }
        plan
    }
}
