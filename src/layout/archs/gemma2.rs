//! Gemma 2.

use serde_json::Value as Json;

use super::Hparams;
use crate::model::config::Config;
use crate::model::gguf_file::Value;

/// The converter's Gemma 2 class writes its own list, in its own order.
pub fn converter_hparams(config: &Config, _config_json: &Json, _common: Hparams) -> Hparams {
    let u32v = |n: usize| Value::U32(n as u32);
    vec![
        ("context_length", u32v(config.context_length)),
        ("embedding_length", u32v(config.hidden_size)),
        ("block_count", u32v(config.n_layers)),
        ("feed_forward_length", u32v(config.intermediate_size)),
        ("attention.head_count", u32v(config.n_heads)),
        ("attention.head_count_kv", u32v(config.n_kv_heads)),
        ("attention.layer_norm_rms_epsilon", Value::F32(config.rms_norm_eps as f32)),
        ("attention.key_length", u32v(config.head_dim)),
        ("attention.value_length", u32v(config.head_dim)),
        ("", Value::U32(0)),
        ("attn_logit_softcapping", Value::F32(config.attn_softcap.unwrap_or(0.0) as f32)),
        ("final_logit_softcapping", Value::F32(config.final_softcap.unwrap_or(0.0) as f32)),
        ("attention.sliding_window", u32v(config.sliding_window.unwrap_or(0))),
    ]
}
