//! Phi-3.

use serde_json::Value as Json;

use super::Hparams;
use crate::model::config::Config;
use crate::model::gguf_file::Value;

/// The converter's Phi-3 class writes its own list, in its own order.
pub fn converter_hparams(config: &Config, config_json: &Json, _common: Hparams) -> Hparams {
    let u32v = |n: usize| Value::U32(n as u32);
    let original = config_json
        .get("original_max_position_embeddings")
        .and_then(Json::as_u64)
        .map_or(config.rope_original_context, |n| n as usize);
    vec![
        ("context_length", u32v(config.context_length)),
        ("rope.scaling.original_context_length", u32v(original)),
        ("embedding_length", u32v(config.hidden_size)),
        ("feed_forward_length", u32v(config.intermediate_size)),
        ("block_count", u32v(config.n_layers)),
        ("attention.head_count", u32v(config.n_heads)),
        ("attention.head_count_kv", u32v(config.n_kv_heads)),
        ("attention.layer_norm_rms_epsilon", Value::F32(config.rms_norm_eps as f32)),
        ("rope.dimension_count", u32v(config.head_dim)),
        ("rope.freq_base", Value::F32(config.rope_theta as f32)),
        ("", Value::U32(0)),
        (
            "attention.sliding_window",
            u32v(config_json.get("sliding_window").and_then(Json::as_u64).unwrap_or(0) as usize),
        ),
    ]
}
