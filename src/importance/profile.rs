//! `profile.json`: the importance profile of one model on one calibration text.
//!
//! Schema version 1. Scripts rely on these keys staying stable:
//! - `"blocks"`: one object per block with `"index"`, `"block_influence"`, `"ablation_kld"`;
//! - `"sublayers"`: objects with `"block"`, `"kind"` (`"attention"` | `"mlp"`), `"redundancy"`,
//!   `"ablation_kld"`;
//! - `"linears"`: objects with `"name"` (the GGUF tensor name), `"outlier_ratio"`, `"quant_error"`
//!   (type name → relative output error).
//!
//! Other keys may be added in later versions; none will change meaning.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub schema_version: u32,
    pub model: ModelInfo,
    pub calibration: CalibrationInfo,
    pub blocks: Vec<BlockProfile>,
    pub sublayers: Vec<SublayerProfile>,
    pub linears: Vec<LinearProfile>,
    /// Spearman rank correlations between the per-block signals.
    pub correlation: Correlation,
    /// Wall-clock seconds of each stage.
    pub timings: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub path: String,
    pub architecture: String,
    pub n_blocks: usize,
    pub hidden_size: usize,
    pub n_params: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationInfo {
    pub path: String,
    pub ctx: usize,
    /// Tokens run through the model for the per-block, per-linear and per-sublayer statistics.
    pub tokens: usize,
    /// Tokens used for the ablation ΔKL measurements (a prefix of the above).
    pub ablation_tokens: usize,
    /// Tokens whose attention probabilities were summarised.
    pub attention_tokens: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockProfile {
    pub index: usize,
    /// ShortGPT: 1 − mean over tokens of cos(block input, block output).
    pub block_influence: f64,
    /// Mean KL(full ‖ model without this block) per calibration position.
    pub ablation_kld: f64,
    /// LISA: Frobenius norm of all the block's linear weights together.
    pub weight_norm: f64,
    /// OWL: share of the block's Wanda scores |W_ij|·‖X_j‖ above 5× their mean.
    pub outlier_ratio: f64,
    /// RSQ / Q-VLM attention summaries; see [`AttentionStats`].
    pub attention: AttentionStats,
}

/// How a block's attention is spread, averaged over heads and calibration windows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttentionStats {
    /// Mean entropy (nats) of each query's attention distribution.
    pub row_entropy: f64,
    /// Entropy of the attention each token receives (RSQ's r_t, normalised to sum to one),
    /// divided by ln(tokens): 1 = spread evenly, 0 = all on one token.
    pub received_entropy: f64,
    /// Share of all attention received by the first token of the window (the "sink").
    pub sink_share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SublayerProfile {
    pub block: usize,
    /// `"attention"` or `"mlp"`.
    pub kind: String,
    /// LLM-Drop: mean over tokens of cos(x, x + f(norm(x))); near 1 = the sublayer barely
    /// changes the residual stream.
    pub redundancy: f64,
    /// Mean KL(full ‖ model without this sublayer) per calibration position.
    pub ablation_kld: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearProfile {
    /// The GGUF tensor name, e.g. `blk.3.ffn_down.weight`.
    pub name: String,
    pub block: usize,
    pub rows: usize,
    pub cols: usize,
    pub weight_norm: f64,
    /// OWL: share of Wanda scores |W_ij|·‖X_j‖ above 5× their mean.
    pub outlier_ratio: f64,
    /// Mean over input columns of the imatrix (mean x² per token).
    pub imatrix_mean: f64,
    /// Relative output error ‖(W − Q(W))X‖ / ‖WX‖ on the calibration inputs, by quantization:
    /// GGUF type names ("Q4_0", "Q4_K", …; only the types the row width allows) and
    /// "RTN2" … "RTN8" (asymmetric round-to-nearest in groups of 32 columns).
    pub quant_error: BTreeMap<String, f64>,
    /// With `--full`: mean KL(full ‖ model with only this linear quantized) per ablation
    /// position, by GGUF type name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub full_kld: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Correlation {
    pub signals: Vec<String>,
    /// `matrix[i][j]`: Spearman's ρ between signals i and j over blocks.
    pub matrix: Vec<Vec<f64>>,
}

impl Profile {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a profile always serialises")
    }

    pub fn from_json(text: &str) -> Result<Profile, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn read(path: &Path) -> Result<Profile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::from_json(&text).map_err(|e| format!("{}: not a profile.json: {e}", path.display()))
    }
}
