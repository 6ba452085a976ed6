//! What a compression produced: the model with its new weights (or, from a streamed source,
//! only their encoded bytes), the configuration and source it came from, and what was done to
//! every tensor — what the GGUF and Hugging Face writers read.

use super::encoded::Encoded;
use crate::calib::token_weights::TokenWeights;
use crate::model::{Config, Model, Source};

/// What was done to one tensor and how far its outputs moved.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TensorReport {
    /// The name in the output model (blocks renumbered).
    pub name: String,
    #[serde(rename = "type")]
    pub qtype: String,
    /// [rows, cols].
    pub shape: [usize; 2],
    /// The share of its weights asked to be pruned (N/M for N:M); None when it is not pruned.
    pub sparsity: Option<f64>,
    /// Share of exact zeros in what was written (the values its bytes decode to).
    pub zeros: f64,
    /// ‖(W − Ŵ)X‖ / ‖WX‖ on the calibration inputs (None for the embedding).
    pub rel_error: Option<f64>,
    pub seconds: f64,
}

/// The sparsity asked for and the sparsity written, over the pruned linears, each weighted by
/// its count of weights.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SparsitySummary {
    /// The share of their weights asked to be pruned.
    pub requested: f64,
    /// The share of exact zeros in what was written (the values the bytes decode to).
    pub measured: f64,
    /// The pruned linears.
    pub linears: usize,
    /// Pruned linears written with fewer zeros than asked, beyond one weight per row (a pruner
    /// rounds the share it masks down to whole weights per row, or per block of columns for
    /// SparseGPT): their grid has no 0, so a pruned weight is written as its value nearest 0.
    pub short: usize,
    /// The types of those linears.
    pub short_types: Vec<String>,
}

/// [`SparsitySummary`] of the tensors of `report`; None when none was pruned.
pub fn sparsity_summary(report: &[TensorReport]) -> Option<SparsitySummary> {
    let pruned: Vec<(&TensorReport, f64)> = report.iter().filter_map(|t| Some((t, t.sparsity?))).collect();
    if pruned.is_empty() {
        return None;
    }
    let weights = |t: &TensorReport| (t.shape[0] * t.shape[1]) as f64;
    let total: f64 = pruned.iter().map(|(t, _)| weights(t)).sum();
    let (mut short, mut short_types) = (0, Vec::new());
    for (t, p) in &pruned {
        if t.zeros < p - 1.0 / t.shape[1] as f64 - 1e-9 {
            short += 1;
            if !short_types.contains(&t.qtype) {
                short_types.push(t.qtype.clone());
            }
        }
    }
    Some(SparsitySummary {
        requested: pruned.iter().map(|(t, p)| p * weights(t)).sum::<f64>() / total,
        measured: pruned.iter().map(|(t, _)| t.zeros * weights(t)).sum::<f64>() / total,
        linears: pruned.len(),
        short,
        short_types,
    })
}

/// A compressed model, ready to be written.
pub struct Compressed {
    /// The model with its new weights (dequantized), removed blocks gone; None when the source
    /// was streamed (the new weights are then only in `encoded`).
    pub model: Option<Model>,
    /// The configuration after compression (removed blocks gone).
    pub config: Config,
    /// The source model's description.
    pub source: Source,
    /// GGUF name (output numbering) → type and encoded bytes, for every tensor that changed.
    pub encoded: Encoded,
    /// Output block index → source block index.
    pub kept_blocks: Vec<usize>,
    pub report: Vec<TensorReport>,
    /// How the calibration tokens were weighted in the statistics (written to a GGUF's
    /// metadata as `triage.token_weights` unless equal).
    pub token_weights: TokenWeights,
}

impl Compressed {
    /// The sparsity asked for and written over the pruned linears; None when none was pruned.
    pub fn sparsity(&self) -> Option<SparsitySummary> {
        sparsity_summary(&self.report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, qtype: &str, shape: [usize; 2], sparsity: Option<f64>, zeros: f64) -> TensorReport {
        TensorReport { name: name.into(), qtype: qtype.into(), shape, sparsity, zeros, rel_error: None, seconds: 0.0 }
    }

    #[test]
    fn the_sparsity_summary_weighs_linears_by_size_and_flags_the_short_ones() {
        assert_eq!(sparsity_summary(&[tensor("token_embd.weight", "Q8_0", [300, 64], None, 0.001)]), None);
        let report = [
            tensor("blk.0.attn_q.weight", "Q8_0", [64, 64], Some(0.5), 0.5),
            // One weight per row short of 30%: the pruner's rounding down, not short.
            tensor("blk.0.ffn_up.weight", "Q4_0", [160, 64], Some(0.3), 19.0 / 64.0),
            tensor("blk.0.ffn_down.weight", "Q4_K", [64, 256], Some(0.5), 0.01),
            tensor("blk.1.ffn_down.weight", "Q4_K", [64, 256], Some(0.5), 0.02),
            tensor("blk.0.ffn_gate.weight", "Q8_0", [160, 64], None, 0.0),
        ];
        let s = sparsity_summary(&report).unwrap();
        let total = (64 * 64 + 160 * 64 + 2 * 64 * 256) as f64;
        assert!((s.requested - (0.5 * 4096.0 + 0.3 * 10240.0 + 0.5 * 32768.0) / total).abs() < 1e-12, "{s:?}");
        assert!((s.measured - (0.5 * 4096.0 + 19.0 * 160.0 + 0.03 * 16384.0) / total).abs() < 1e-12, "{s:?}");
        assert_eq!((s.linears, s.short, s.short_types.clone()), (4, 2, vec!["Q4_K".to_string()]));
    }
}
