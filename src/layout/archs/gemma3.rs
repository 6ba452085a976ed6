//! Gemma 3.

use serde_json::Value as Json;

use super::Hparams;
use crate::model::config::Config;
use crate::model::gguf_file::Value;

/// The converter's Gemma 3 class sets these again after the common list, with its defaults (in
/// place when set there).
pub fn converter_hparams(config: &Config, config_json: &Json, mut hp: Hparams) -> Hparams {
    let u32v = |n: usize| Value::U32(n as u32);
    hp.extend([
        ("context_length", u32v(config.context_length)),
        ("attention.head_count", u32v(config.n_heads)),
        ("attention.layer_norm_rms_epsilon", Value::F32(config.rms_norm_eps as f32)),
        ("attention.key_length", u32v(config.head_dim)),
        ("attention.value_length", u32v(config.head_dim)),
        ("rope.freq_base", Value::F32(config.rope_theta as f32)),
    ]);
    if let Some(c) = config.final_softcap {
        hp.push(("final_logit_softcapping", Value::F32(c as f32)));
    }
    if config_json.get("sliding_window_pattern").and_then(Json::as_u64) != Some(1) {
        hp.push(("attention.sliding_window", u32v(config.sliding_window.unwrap_or(0))));
    }
    if !config_json.get("num_key_value_heads").is_some_and(|v| !v.is_null()) {
        hp.push(("attention.head_count_kv", u32v(config.n_kv_heads)));
    }
    hp
}
