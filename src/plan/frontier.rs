//! The size–quality frontier a quantization plan is drawn against: single-type plans (every
//! planned tensor at one GGUF type, the layer database's GPTQ variants, rows that cannot take
//! the type falling back as llama-quantize's do) and the Lagrangian plans of the same sizes,
//! every plan's KL measured on the hold-out windows as the plan's own is. It shows what the
//! allocation buys at each size, beside the plan's own point.

use std::collections::BTreeMap;

use serde_json::{json, Value as Json};

use super::database::Database;
use super::fitness::{full_layout, Probe};
use super::lagrange::{self, Curve};
use super::planned;
use super::{Progress, Result};
use crate::ggml::types::{QuantType, QUANTIZED_TYPES};
use crate::layout::Skeleton;
use crate::model::Blocks;

/// The level of `db`'s tensor `name` that a single-type plan of `t` gives it: `t`, or
/// llama-quantize's fall-back where its rows do not fit `t` — if the database holds it (a
/// `--types` menu's database holds only the menu's types). A type with a stand-in in its row is
/// taken as that type, which costs the same, where the database holds the stand-in and not the
/// type (Q4_0 as IQ4_NL in the whole menu's database).
pub fn single_type_level(db: &Database, name: &str, t: QuantType) -> Option<usize> {
    let tv = &db.tensors[name];
    let want = t.for_row_width(tv.cols)?;
    let at = |t: QuantType| tv.variants.iter().position(|v| v.qtype == t);
    at(want).or_else(|| want.stand_in().and_then(at))
}

/// Every distinct single-type plan of `db`'s tensors `names`, in [`QUANTIZED_TYPES`]' order:
/// (the type asked for, a level per tensor). A type that some tensor cannot take (nor its
/// fall-back) is left out, and so is one that leaves every tensor where an earlier one did.
pub fn single_type_plans(db: &Database, names: &[String]) -> Vec<(QuantType, Vec<usize>)> {
    let mut plans: Vec<(QuantType, Vec<usize>)> = Vec::new();
    for &t in &QUANTIZED_TYPES {
        let levels: Option<Vec<usize>> = names.iter().map(|n| single_type_level(db, n, t)).collect();
        if let Some(l) = levels.filter(|l| !plans.iter().any(|(_, p)| p == l)) {
            plans.push((t, l));
        }
    }
    plans
}

/// Why a type `db` holds has no single-type plan: the first tensor of `names` that can take
/// neither it nor its fall-back among the database's types (a `--types` menu's), as "Q4_K:
/// blk.0.attn_k.weight has rows of 64, …". None when every held type makes a plan.
pub fn single_type_gap(db: &Database, names: &[String]) -> Option<String> {
    let held: Vec<QuantType> = QUANTIZED_TYPES
        .into_iter()
        .filter(|&t| db.tensors.values().any(|tv| tv.variants.iter().any(|v| v.qtype == t)))
        .collect();
    held.into_iter().find_map(|t| {
        let name = names.iter().find(|n| single_type_level(db, n, t).is_none())?;
        let cols = db.tensors[name].cols;
        let why = match t.for_row_width(cols) {
            Some(w) if w != t => format!("it takes {w} in place of {t}, which the layer database's types do not hold"),
            Some(_) => format!("the layer database's types do not hold {t} for it"),
            None => format!("neither {t} nor its fall-back {} fits them", t.row_fallback()),
        };
        Some(format!("{t}: {name} has rows of {cols} weights and {why}"))
    })
}

/// One measured plan of the frontier.
/// A frontier plan: its solver, its single type (if one), a level per tensor.
pub type FrontierPlan = (&'static str, Option<QuantType>, Vec<usize>);

pub struct Point {
    /// "single type" or "lagrange".
    pub solver: &'static str,
    /// The single type asked for (None for a Lagrangian plan).
    pub qtype: Option<QuantType>,
    pub bytes: u64,
    pub bits_per_weight: f64,
    pub kld: f64,
}

impl Point {
    pub fn to_json(&self) -> Json {
        json!({"solver": self.solver, "type": self.qtype.map(QuantType::name), "bytes": self.bytes, "bits_per_weight": self.bits_per_weight, "kld_mean": self.kld})
    }
}

/// What the frontier is measured with.
pub struct Frontier<'a> {
    /// The model the plans are measured on (its planned tensors' weights are not read).
    pub base: &'a dyn Blocks,
    pub db: &'a Database,
    pub names: &'a [String],
    pub curves: &'a [Curve],
    pub probe: &'a Probe,
    pub holdout: &'a [usize],
    /// What the GGUF of the source holds: the plans' sizes.
    pub gguf: &'a Skeleton,
}

impl Frontier<'_> {
    /// The `n` single-type plans whose planned bytes (in the budget's units, `cost`) lie
    /// nearest `budget` (by ratio), and the Lagrangian plan at each of their costs, smallest
    /// first; a Lagrangian plan equal to its single-type one, or to one before, is left out.
    pub fn plans(&self, n: usize, budget: u64, cost: &dyn Fn(u64) -> u64) -> Vec<FrontierPlan> {
        let planned = |levels: &[usize]| -> u64 {
            self.names.iter().zip(levels).map(|(name, &l)| cost(self.db.tensors[name].cost(l) as u64)).sum()
        };
        let mut singles: Vec<(QuantType, Vec<usize>, u64)> = single_type_plans(self.db, self.names)
            .into_iter()
            .map(|(t, l)| {
                let c = planned(&l);
                (t, l, c)
            })
            .collect();
        let distance = |c: u64| (c.max(1) as f64 / budget.max(1) as f64).ln().abs();
        singles.sort_by(|a, b| distance(a.2).total_cmp(&distance(b.2)));
        singles.truncate(n);
        singles.sort_by_key(|s| s.2);
        let mut plans = Vec::with_capacity(2 * singles.len());
        // Two single types of one size (Q3_K and IQ3_S where rows allow both) share their
        // Lagrangian plan: it is measured once.
        let mut lagrange_plans: Vec<Vec<usize>> = Vec::new();
        for (t, levels, c) in singles {
            let l = lagrange::solve(self.curves, c).expect("a single-type plan is above the floor");
            let new = l != levels && !lagrange_plans.contains(&l);
            plans.push(("single type", Some(t), levels));
            if new {
                plans.push(("lagrange", None, l.clone()));
                lagrange_plans.push(l);
            }
        }
        plans
    }

    /// Every plan of `plans` measured (stage "frontier" of `progress`).
    pub fn measure(&self, plans: &[FrontierPlan], progress: &mut dyn Progress) -> Result<Vec<Point>> {
        progress.start("frontier", plans.len());
        let mut points = Vec::with_capacity(plans.len());
        for (i, (solver, t, levels)) in plans.iter().enumerate() {
            progress.step(i, None);
            points.push(self.point(solver, *t, levels)?);
        }
        progress.step(plans.len(), None);
        Ok(points)
    }

    /// `levels` measured: its file's size and its KL on the hold-out windows.
    pub fn point(&self, solver: &'static str, qtype: Option<QuantType>, levels: &[usize]) -> Result<Point> {
        let types: BTreeMap<String, QuantType> =
            self.names.iter().zip(levels).map(|(n, &l)| (n.clone(), self.db.tensors[n].variants[l].qtype)).collect();
        let all_blocks: Vec<usize> = (0..self.base.n_blocks()).collect();
        let size = self.gguf.predicted_size(&all_blocks, &types)?;
        let kld = self.probe.kl(
            &planned::Planned::of_levels(self.base, self.db, levels),
            self.holdout,
            0,
            &full_layout,
            None,
        )?;
        Ok(Point { solver, qtype, bytes: size.bytes, bits_per_weight: size.bits_per_weight(), kld })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::database::{TensorVariants, Variant};

    /// A database of tensors (name, columns) holding `types` wherever their rows fit them.
    fn db(tensors: &[(&str, usize)], types: &[QuantType]) -> Database {
        let tensors = tensors
            .iter()
            .map(|&(n, cols)| {
                let variants = types
                    .iter()
                    .filter(|t| t.fits(cols))
                    .map(|&qtype| Variant::in_memory(qtype, 0.0, vec![0; qtype.bytes(4 * cols)], 0.0))
                    .collect();
                (n.to_string(), TensorVariants { rows: 4, cols, variants, drawn: None })
            })
            .collect();
        Database::new("test".into(), tensors)
    }

    #[test]
    fn a_menus_single_type_plans_take_only_its_types() {
        use QuantType::*;
        let names: Vec<String> = ["a", "b"].map(String::from).to_vec();
        // Q4_0 in a menu is taken as itself, not as IQ4_NL, which the menu lacks.
        let d = db(&[("a", 64), ("b", 512)], &[Q4_0, Q8_0]);
        let plans = single_type_plans(&d, &names);
        let types =
            |l: &[usize]| l.iter().zip(&names).map(|(&l, n)| d.tensors[n].variants[l].qtype).collect::<Vec<_>>();
        assert!(
            plans.iter().any(|(_, l)| types(l) == [Q4_0, Q4_0]),
            "{:?}",
            plans.iter().map(|(t, l)| (t, types(l))).collect::<Vec<_>>()
        );
        assert!(plans.iter().all(|(_, l)| types(l).iter().all(|t| [Q4_0, Q8_0].contains(t))));
        assert_eq!(single_type_gap(&d, &names), None);
        // The whole menu (no Q4_0 level): IQ4_NL stands in for Q4_0.
        let d = db(&[("a", 64), ("b", 512)], &[IQ4NL, Q8_0]);
        assert_eq!(single_type_level(&d, "a", Q4_0), Some(0));
        // Q4_K's fall-back for 64-wide rows, Q5_0, is not held: no Q4_K plan, and the gap is named.
        let d = db(&[("a", 64), ("b", 512)], &[Q4K, Q8_0]);
        assert!(single_type_plans(&d, &names).iter().all(|(t, _)| *t != Q4K));
        assert_eq!(single_type_gap(&d, &names).unwrap(), "Q4_K: a has rows of 64 weights and it takes Q5_0 in place of Q4_K, which the layer database's types do not hold");
    }
}
