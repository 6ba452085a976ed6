//! Our imatrix against another (llama.cpp's `llama-imatrix`), column by column: the relative
//! difference of the per-column mean x² (sums divided by token counts).

use serde::Serialize;

use crate::calib::imatrix::Imatrix;
use crate::stats::quantile;

#[derive(Debug, Clone, Serialize)]
pub struct TensorComparison {
    pub name: String,
    pub median_rel_diff: f64,
    pub max_rel_diff: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImatrixComparison {
    pub tensors: Vec<TensorComparison>,
    /// Over all columns of all common tensors.
    pub median_rel_diff: f64,
    pub p99_rel_diff: f64,
    pub only_ours: Vec<String>,
    pub only_theirs: Vec<String>,
    pub width_mismatch: Vec<String>,
}

impl ImatrixComparison {
    pub fn summary(&self) -> String {
        format!(
            "imatrix vs reference: {} common tensors, per-column relative difference median {:.3}%, p99 {:.3}%; {} only ours, {} only theirs, {} width mismatches",
            self.tensors.len(),
            100.0 * self.median_rel_diff,
            100.0 * self.p99_rel_diff,
            self.only_ours.len(),
            self.only_theirs.len(),
            self.width_mismatch.len()
        )
    }
}

/// |ours − theirs| / theirs of the per-column means, for every tensor both files have.
pub fn compare(ours: &Imatrix, theirs: &Imatrix) -> ImatrixComparison {
    let mut tensors = Vec::new();
    let mut all = Vec::new();
    let mut width_mismatch = Vec::new();
    for (name, a) in &ours.entries {
        let Some(b) = theirs.entries.get(name) else { continue };
        if a.in_sum2.len() != b.in_sum2.len() {
            width_mismatch.push(name.clone());
            continue;
        }
        let mut d: Vec<f64> = a
            .means()
            .iter()
            .zip(b.means())
            .map(|(&x, y)| {
                if y > 0.0 {
                    ((x - y) as f64 / y as f64).abs()
                } else if x == 0.0 {
                    0.0
                } else {
                    1.0
                }
            })
            .collect();
        all.extend_from_slice(&d);
        d.sort_by(f64::total_cmp);
        tensors.push(TensorComparison {
            name: name.clone(),
            median_rel_diff: quantile(&d, 0.5),
            max_rel_diff: *d.last().unwrap_or(&0.0),
        });
    }
    all.sort_by(f64::total_cmp);
    let q = |p| if all.is_empty() { 0.0 } else { quantile(&all, p) };
    ImatrixComparison {
        median_rel_diff: q(0.5),
        p99_rel_diff: q(0.99),
        tensors,
        only_ours: ours.entries.keys().filter(|k| !theirs.entries.contains_key(*k)).cloned().collect(),
        only_theirs: theirs.entries.keys().filter(|k| !ours.entries.contains_key(*k)).cloned().collect(),
        width_mismatch,
    }
}
