//! The size–quality frontier a quantization plan is drawn against: single-type plans (every
//! planned tensor at one GGUF type, the layer database's GPTQ variants, rows that cannot take
//! the type falling back as llama-quantize's do) and the Lagrangian plans of the same sizes,
//! every plan's KL measured on the hold-out windows as the plan's own is. It shows what the
//! allocation buys at each size, beside the plan's own point.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value as Json};

use super::database::Database;
use super::fitness::{full_layout, Probe};
use super::lagrange::{self, Curve};
use super::planned::Planned;
use super::{Progress, Result};
use crate::export::gguf::predicted_size;
use crate::ggml::types::{QuantType, QUANTIZED_TYPES};
use crate::model::Blocks;

/// Every distinct single-type plan of `db`'s tensors `names`, in [`QUANTIZED_TYPES`]' order:
/// (the type asked for, a level per tensor). A type that leaves every tensor where an earlier
/// one did is left out.
pub fn single_type_plans(db: &Database, names: &[String]) -> Vec<(QuantType, Vec<usize>)> {
    let mut plans: Vec<(QuantType, Vec<usize>)> = Vec::new();
    for &t in &QUANTIZED_TYPES {
        let levels: Option<Vec<usize>> = names
            .iter()
            .map(|n| {
                let tv = &db.tensors[n];
                // IQ4_NL stands in for Q4_0, which costs the same.
                let want = t.for_row_width(tv.cols).map(|w| if w == QuantType::Q4_0 { QuantType::IQ4NL } else { w })?;
                tv.variants.iter().position(|v| v.qtype == want)
            })
            .collect();
        if let Some(l) = levels.filter(|l| !plans.iter().any(|(_, p)| p == l)) {
            plans.push((t, l));
        }
    }
    plans
}

/// One measured plan of the frontier.
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
    pub model_path: &'a Path,
}

impl Frontier<'_> {
    /// The `n` single-type plans whose planned bytes (in the budget's units, `cost`) lie
    /// nearest `budget` (by ratio), and the Lagrangian plan at each of their costs, smallest
    /// first; a Lagrangian plan equal to its single-type one, or to one measured before, is measured
    /// once.
    pub fn measure(&self, n: usize, budget: u64, cost: &dyn Fn(u64) -> u64, progress: Progress) -> Result<Vec<Point>> {
        let planned = |levels: &[usize]| -> u64 { self.names.iter().zip(levels).map(|(name, &l)| cost(self.db.tensors[name].variants[l].size() as u64)).sum() };
        let mut singles: Vec<(QuantType, Vec<usize>, u64)> = single_type_plans(self.db, self.names).into_iter().map(|(t, l)| { let c = planned(&l); (t, l, c) }).collect();
        let distance = |c: u64| (c.max(1) as f64 / budget.max(1) as f64).ln().abs();
        singles.sort_by(|a, b| distance(a.2).total_cmp(&distance(b.2)));
        singles.truncate(n);
        singles.sort_by_key(|s| s.2);
        let mut points = Vec::with_capacity(2 * singles.len());
        let total = 2 * singles.len();
        // Two single types of one size (Q3_K and IQ3_S where rows allow both) share their
        // Lagrangian plan: it is measured once.
        let mut lagrange_plans: Vec<Vec<usize>> = Vec::new();
        for (i, (t, levels, c)) in singles.iter().enumerate() {
            progress("frontier", 2 * i, total, None);
            points.push(self.point("single type", Some(*t), levels)?);
            let l = lagrange::solve(self.curves, *c).expect("a single-type plan is above the floor");
            progress("frontier", 2 * i + 1, total, None);
            if &l != levels && !lagrange_plans.contains(&l) {
                points.push(self.point("lagrange", None, &l)?);
                lagrange_plans.push(l);
            }
        }
        progress("frontier", total, total, None);
        Ok(points)
    }

    /// `levels` measured: its file's size and its KL on the hold-out windows.
    pub fn point(&self, solver: &'static str, qtype: Option<QuantType>, levels: &[usize]) -> Result<Point> {
        let types: BTreeMap<String, QuantType> = self.names.iter().zip(levels).map(|(n, &l)| (n.clone(), self.db.tensors[n].variants[l].qtype)).collect();
        let all_blocks: Vec<usize> = (0..self.base.n_blocks()).collect();
        let size = predicted_size(self.model_path, &all_blocks, &types)?;
        let kld = self.probe.kl(&Planned::of_levels(self.base, self.db, levels), self.holdout, 0, &full_layout, None)?;
        Ok(Point { solver, qtype, bytes: size.bytes, bits_per_weight: size.bits_per_weight(), kld })
    }
}
