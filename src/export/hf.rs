//! Writing a model as a Hugging Face folder that `transformers` loads: `config.json`,
//! `model.safetensors` (f16) and `tokenizer.json`. The folder is assembled under a temporary
//! name and renamed into place when complete.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Tensor};

use crate::model::config::{Arch, RopeLayout};
use crate::model::hf::hf_name;
use crate::model::kernels::with_f32;
use crate::model::Model;

use super::temp::TempPath;

/// GGUF llama files store q and k rows interleaved per head (pairs 2i, 2i+1 rotate together);
/// Hugging Face's layout pairs i with i + head_dim/2. Reorders the rows of a (heads·hd, in) matrix.
fn interleaved_to_half_split(w: &Tensor, n_heads: usize, head_dim: usize) -> candle_core::Result<Tensor> {
    let (rows, cols) = w.dims2()?;
    let src = with_f32(w, <[f32]>::to_vec).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let mut dst = vec![0f32; rows * cols];
    let half = head_dim / 2;
    for h in 0..n_heads {
        for j in 0..head_dim {
            let from = h * head_dim + if j < half { 2 * j } else { 2 * (j - half) + 1 };
            let to = h * head_dim + j;
            dst[to * cols..(to + 1) * cols].copy_from_slice(&src[from * cols..(from + 1) * cols]);
        }
    }
    Tensor::from_vec(dst, (rows, cols), w.device())
}

fn config_json(model: &Model) -> serde_json::Value {
    let c = &model.config;
    let (arch, model_type) = match c.arch {
        Arch::Llama => ("LlamaForCausalLM", "llama"),
        Arch::Qwen2 => ("Qwen2ForCausalLM", "qwen2"),
    };
    let mut j = serde_json::json!({
        "architectures": [arch],
        "model_type": model_type,
        "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size,
        "intermediate_size": c.intermediate_size,
        "num_hidden_layers": c.n_layers,
        "num_attention_heads": c.n_heads,
        "num_key_value_heads": c.n_kv_heads,
        "head_dim": c.head_dim,
        "rms_norm_eps": c.rms_norm_eps,
        "rope_theta": c.rope_theta,
        "max_position_embeddings": c.context_length,
        "tie_word_embeddings": c.tie_word_embeddings,
        "hidden_act": "silu",
        "torch_dtype": "float16",
    });
    if c.arch == Arch::Llama {
        j["attention_bias"] = serde_json::Value::Bool(false);
        j["mlp_bias"] = serde_json::Value::Bool(false);
    }
    j
}

/// Writes `model` to the folder `path` (created; must not exist or be empty).
pub fn write_folder(path: &Path, model: &Model) -> anyhow::Result<()> {
    let c = &model.config;
    if c.rope_freq_factors.is_some() {
        anyhow::bail!("this model uses llama3 RoPE scaling, which the Hugging Face export does not write yet; write a .gguf instead");
    }
    let tokenizer = model.tokenizer()?.to_json()?;
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let mut put = |gguf: &str, t: &Tensor| -> anyhow::Result<()> {
        let name = hf_name(gguf).ok_or_else(|| anyhow::anyhow!("no Hugging Face name for {gguf}"))?;
        tensors.insert(name, t.to_dtype(DType::F16)?);
        Ok(())
    };
    put("token_embd.weight", &model.embed)?;
    put("output_norm.weight", &model.final_norm)?;
    if let Some(l) = &model.lm_head {
        put("output.weight", &l.weight)?;
    }
    let permute = c.rope_layout == RopeLayout::Interleaved;
    for b in &model.blocks {
        let i = b.index;
        put(&format!("blk.{i}.attn_norm.weight"), &b.attn_norm)?;
        put(&format!("blk.{i}.ffn_norm.weight"), &b.mlp_norm)?;
        for l in b.linears() {
            let kind = l.name.split('.').nth(2).unwrap_or_default();
            let w = match (permute, kind) {
                (true, "attn_q") => interleaved_to_half_split(&l.weight, c.n_heads, c.head_dim)?,
                (true, "attn_k") => interleaved_to_half_split(&l.weight, c.n_kv_heads, c.head_dim)?,
                _ => l.weight.clone(),
            };
            put(&format!("blk.{i}.{kind}.weight"), &w)?;
            if let Some(bias) = &l.bias {
                put(&format!("blk.{i}.{kind}.bias"), bias)?;
            }
        }
    }
    let tmp = TempPath::new(path);
    let dir = tmp.path();
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&config_json(model))?)?;
    std::fs::write(dir.join("tokenizer.json"), &tokenizer)?;
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors"))?;
    if path.exists() {
        std::fs::remove_dir(path)?; // empty: checked before compressing
    }
    tmp.persist(path)?;
    Ok(())
}
