//! Rotary position embeddings (RoFormer, Su et al. 2021) as `transformers` and llama.cpp apply them.

use candle_core::{Device, Tensor};

use super::config::{Config, RopeLayout};
use super::Result;

/// cos/sin tables for positions `0..n_tokens`, each (n_tokens, head_dim/2), of the global blocks
/// or (`sliding`) of the windowed ones where their RoPE differs (Gemma 3's local base, unscaled).
///
/// The angle of pair `i` at position `p` is `p · θ^(−2i/d) / (f_i · s)` where `f_i` are the
/// optional llama3 frequency factors and `s` the linear scaling factor. Computed in f64, stored
/// in f32.
pub fn tables(config: &Config, n_tokens: usize, sliding: bool, device: &Device) -> Result<(Tensor, Tensor)> {
    let half = config.head_dim / 2;
    let mut cos = Vec::with_capacity(n_tokens * half);
    let mut sin = Vec::with_capacity(n_tokens * half);
    let (theta, linear) = match config.rope_theta_swa {
        Some(t) if sliding => (t, 1.0),
        _ => (config.rope_theta, config.rope_linear_factor),
    };
    // LongRoPE: the long factors past the original context, as transformers and llama.cpp.
    let factors = match &config.rope_long_factors {
        Some(long) if n_tokens > config.rope_original_context => Some(long),
        _ => config.rope_freq_factors.as_ref(),
    };
    let a = config.rope_attn_factor;
    let inv_freq: Vec<f64> = (0..half)
        .map(|i| {
            let f = factors.map_or(1.0, |f| f[i] as f64);
            theta.powf(-((2 * i) as f64) / config.head_dim as f64) / f / linear
        })
        .collect();
    for p in 0..n_tokens {
        for &w in &inv_freq {
            // transformers computes the angle in f32; round it the same way.
            let angle = (p as f32 * w as f32) as f64;
            cos.push((angle.cos() * a) as f32);
            sin.push((angle.sin() * a) as f32);
        }
    }
    Ok((Tensor::from_vec(cos, (n_tokens, half), device)?, Tensor::from_vec(sin, (n_tokens, half), device)?))
}

/// Rotates `x` of shape (batch, heads, tokens, head_dim) in the layout its weights were stored in.
pub fn apply(x: &Tensor, cos: &Tensor, sin: &Tensor, layout: RopeLayout) -> Result<Tensor> {
    let x = x.contiguous()?;
    Ok(match layout {
        RopeLayout::HalfSplit => candle_nn::rotary_emb::rope(&x, cos, sin)?,
        RopeLayout::Interleaved => candle_nn::rotary_emb::rope_i(&x, cos, sin)?,
    })
}

/// The row order that takes a (heads·head_dim, ·) q or k matrix from Hugging Face's half-split
/// RoPE layout (dimension i rotates with i + d/2) to llama.cpp's interleaved one (2i with
/// 2i + 1), as its converter's `permute` does: row `to` of the result is row `order[to]` of the
/// source. [`invert`] gives the way back.
pub fn interleaved_order(heads: usize, head_dim: usize) -> Vec<usize> {
    let half = head_dim / 2;
    (0..heads * head_dim).map(|to| to - to % head_dim + (to % head_dim % 2) * half + to % head_dim / 2).collect()
}

/// The order that undoes `order`.
pub fn invert(order: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; order.len()];
    for (to, &from) in order.iter().enumerate() {
        inv[from] = to;
    }
    inv
}

/// The rows of `data` (as many as `order` has, equally long) in `order`. Rows are independent
/// in every GGUF type, so encoded bytes permute as the weights do.
pub fn permute_rows<T: Copy>(data: &[T], order: &[usize]) -> Vec<T> {
    let row = data.len() / order.len().max(1);
    order.iter().flat_map(|&from| data[from * row..(from + 1) * row].iter().copied()).collect()
}

#[cfg(test)]
mod order_tests {
    use super::*;

    #[test]
    fn interleaving_pairs_i_with_i_plus_half() {
        // One head of 4: half-split rows [a0 a1 b0 b1] (a rotates with b) → [a0 b0 a1 b1].
        assert_eq!(interleaved_order(2, 4), vec![0, 2, 1, 3, 4, 6, 5, 7]);
        let o = interleaved_order(3, 8);
        assert_eq!(
            permute_rows(&permute_rows(&(0..48).collect::<Vec<u32>>(), &o), &invert(&o)),
            (0..48).collect::<Vec<u32>>()
        );
    }
}
