//! Rotary position embeddings (RoFormer, Su et al. 2021) as `transformers` and llama.cpp apply them.

use candle_core::{Device, Tensor};

use super::config::{Config, RopeLayout};
use super::Result;

/// cos/sin tables for positions `0..n_tokens`, each (n_tokens, head_dim/2).
///
/// The angle of pair `i` at position `p` is `p · θ^(−2i/d) / f_i` where `f_i` are the optional
/// llama3 frequency factors. Computed in f64, stored in f32.
pub fn tables(config: &Config, n_tokens: usize, device: &Device) -> Result<(Tensor, Tensor)> {
    let half = config.head_dim / 2;
    let mut cos = Vec::with_capacity(n_tokens * half);
    let mut sin = Vec::with_capacity(n_tokens * half);
    let inv_freq: Vec<f64> = (0..half)
        .map(|i| {
            let f = config.rope_freq_factors.as_ref().map_or(1.0, |f| f[i] as f64);
            config.rope_theta.powf(-((2 * i) as f64) / config.head_dim as f64) / f
        })
        .collect();
    for p in 0..n_tokens {
        for &w in &inv_freq {
            // transformers computes the angle in f32; round it the same way.
            let angle = (p as f32 * w as f32) as f64;
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    Ok((
        Tensor::from_vec(cos, (n_tokens, half), device)?,
        Tensor::from_vec(sin, (n_tokens, half), device)?,
    ))
}

/// Rotates `x` of shape (batch, heads, tokens, head_dim) in the layout its weights were stored in.
pub fn apply(x: &Tensor, cos: &Tensor, sin: &Tensor, layout: RopeLayout) -> Result<Tensor> {
    let x = x.contiguous()?;
    Ok(match layout {
        RopeLayout::HalfSplit => candle_nn::rotary_emb::rope(&x, cos, sin)?,
        RopeLayout::Interleaved => candle_nn::rotary_emb::rope_i(&x, cos, sin)?,
    })
}
