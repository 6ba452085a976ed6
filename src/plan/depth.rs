//! Depth budgets: `drop-blocks=K` removes K whole blocks, `drop-sublayers=K` K sublayers (an
//! attention or an MLP; a block that loses both is removed). `shortgpt` removes the units of
//! lowest influence 1 − cos(input, output) on the search windows (ShortGPT's block influence;
//! the same for each sublayer, whose output is its input plus its residual branch); `evo`
//! (EvoPress) searches swaps of removed and kept units from there.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::evo::{evolve, Candidate, Genome};
use super::fitness::Probe;
use super::removal::Removal;
use super::{PlanError, PlanOptions, PlanOutcome, Progress, Result, Solver};
use crate::importance::block_signals::cosine_sum;
use crate::layout::Skeleton;
use crate::model::{BlockOpts, Model};
use crate::stats::Rng;

/// A set of removed units.
#[derive(Clone)]
pub struct DepthGenome<'a> {
    pub base: &'a Model,
    pub removal: Removal,
}

impl PartialEq for DepthGenome<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.removal == other.removal
    }
}

impl Genome for DepthGenome<'_> {
    /// k = min(U{1..3}, U{1..3}) swaps of a removed unit with a kept one: the count is kept.
    fn mutate(&self, rng: &mut Rng) -> Self {
        let n = self.base.blocks.len() * if self.removal.sublayers { 2 } else { 1 };
        let mut child = self.clone();
        let units = &mut child.removal.units;
        let k = (1 + rng.below(3)).min(1 + rng.below(3));
        for _ in 0..k {
            let removed: Vec<usize> = units.iter().copied().collect();
            let kept: Vec<usize> = (0..n).filter(|i| !units.contains(i)).collect();
            if removed.is_empty() || kept.is_empty() {
                break;
            }
            units.remove(&removed[rng.below(removed.len())]);
            units.insert(kept[rng.below(kept.len())]);
        }
        child
    }

    fn realize(&self) -> crate::model::Result<Candidate> {
        Ok(Candidate { model: self.base.clone(), removal: self.removal.clone() })
    }

    fn first_change(&self, other: &Self) -> usize {
        self.removal
            .units
            .symmetric_difference(&other.removal.units)
            .map(|&u| self.removal.block_of(u))
            .min()
            .unwrap_or(self.base.blocks.len())
    }

    fn genes(&self) -> Vec<usize> {
        self.removal.units.iter().copied().collect()
    }

    fn with_genes(&self, genes: &[usize]) -> Option<Self> {
        let n = self.base.blocks.len() * if self.removal.sublayers { 2 } else { 1 };
        let units: BTreeSet<usize> = genes.iter().copied().collect();
        let fits =
            units.len() == genes.len() && units.len() == self.removal.units.len() && units.iter().all(|&u| u < n);
        fits.then_some(DepthGenome { base: self.base, removal: Removal { sublayers: self.removal.sublayers, units } })
    }
}

/// 1 − mean cos(input, output) of every unit of the original model on windows `pool`: blocks,
/// or (with `sublayers`) each block's attention (input → input + attention) and MLP.
fn influence(base: &Model, probe: &Probe, pool: &[usize], sublayers: bool) -> Result<Vec<f64>> {
    let n = base.blocks.len();
    let units = if sublayers { 2 * n } else { n };
    let (mut sum, mut count) = (vec![0.0; units], vec![0usize; units]);
    for &w in pool {
        let s: Vec<candle_core::Tensor> = (0..=n).map(|i| probe.state(w, i)).collect::<crate::model::Result<_>>()?;
        for (i, block) in base.blocks.iter().enumerate() {
            let mut add = |u: usize, a: &candle_core::Tensor, b: &candle_core::Tensor| -> Result<()> {
                let (c, k) = cosine_sum(a, b)?;
                sum[u] += c;
                count[u] += k;
                Ok(())
            };
            if sublayers {
                let mid = block.forward(
                    &s[i],
                    &base.config,
                    &probe.positions,
                    BlockOpts { skip_attention: false, skip_mlp: true },
                    &mut (),
                )?;
                add(2 * i, &s[i], &mid)?;
                add(2 * i + 1, &mid, &s[i + 1])?;
            } else {
                add(i, &s[i], &s[i + 1])?;
            }
        }
    }
    Ok(sum.iter().zip(&count).map(|(s, &k)| 1.0 - s / k.max(1) as f64).collect())
}

/// Plans the removal of `k` blocks (or sublayers).
#[allow(clippy::too_many_arguments)]
pub(super) fn plan_depth(
    base: &Model,
    gguf: &Skeleton,
    probe: &Probe,
    pool: &[usize],
    holdout: &[usize],
    k: usize,
    sublayers: bool,
    opts: &PlanOptions,
    progress: &mut dyn Progress,
) -> Result<PlanOutcome> {
    let n = base.blocks.len();
    let (units, what) = if sublayers { (2 * n, "sublayers") } else { (n, "blocks") };
    if k >= units {
        return Err(PlanError::Budget(format!("cannot remove {k} {what} of a model that has {units}")));
    }
    let infl = influence(base, probe, pool, sublayers)?;
    let mut order: Vec<usize> = (0..units).collect();
    order.sort_by(|&a, &b| infl[a].total_cmp(&infl[b]));
    let shortgpt = Removal { sublayers, units: order[..k].iter().copied().collect() };
    let mut extra = serde_json::Map::new();
    if sublayers {
        extra.insert("sublayer_influence".into(), json!({"attention": infl.iter().step_by(2).collect::<Vec<_>>(), "mlp": infl.iter().skip(1).step_by(2).collect::<Vec<_>>()}));
    } else {
        extra.insert("block_influence".into(), json!(infl));
    }
    let removal = match opts.solver {
        Solver::Evo => {
            let (best, fit) = evolve(
                probe,
                pool,
                DepthGenome { base, removal: shortgpt },
                &opts.evo,
                opts.checkpoint.as_ref(),
                progress,
            )?;
            extra.insert("search_fitness".into(), json!(fit));
            best.removal
        }
        _ => shortgpt,
    };
    let kld = probe.kl(base, holdout, 0, &|i| removal.layout(i), None)?;
    let plan = removal.to_plan(n);
    let kept: Vec<usize> = (0..n).filter(|i| !plan.drop_blocks.contains(i)).collect();
    // A removed sublayer's linears stay in the file as zeros, in the type compress writes them in.
    let mut types = BTreeMap::new();
    for &i in plan.drop_attention.iter().chain(&plan.drop_mlp) {
        for l in base.blocks[i].linears().into_iter().filter(|l| plan.removes_linear(i, &l.name)) {
            types.insert(l.name.clone(), plan.zeroed_type(&l.name, l.in_features()));
        }
    }
    let predicted = gguf.predicted_size(&kept, &types)?;
    let mut json = plan.to_json();
    json.as_object_mut().expect("an object").extend(extra);
    Ok(PlanOutcome { plan, predicted, kld: Some(kld), json, database: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sublayer_units_map_to_blocks_and_sublayers() {
        // Units 2 (block 1's attention), 3 (its MLP) and 4 (block 2's attention).
        let r = Removal { sublayers: true, units: [2, 3, 4].into_iter().collect() };
        assert_eq!(r.layout(0), Some(BlockOpts::default()));
        assert_eq!(r.layout(1), None);
        assert_eq!(r.layout(2), Some(BlockOpts { skip_attention: true, skip_mlp: false }));
        let p = r.to_plan(3);
        assert_eq!((p.drop_blocks, p.drop_attention, p.drop_mlp), ([1].into(), [2].into(), BTreeSet::new()));
        let b = Removal { sublayers: false, units: [0].into() };
        assert_eq!(b.layout(0), None);
        assert_eq!(b.to_plan(2).drop_blocks, [0].into());
    }
}
