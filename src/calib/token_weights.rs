//! Token weights for the input statistics (RSQ, "Learning from Important Tokens Leads to Better
//! Quantized LLMs"): H = Σ_t r_t x_t x_tᵀ instead of Σ_t x_t x_tᵀ, so that GPTQ (and the
//! imatrix-weighted grids, which read H's diagonal) keep the layer's output right where it
//! matters most.
//!
//! Each window's raw scores s_t are scaled min-max into [lo, hi] (RSQ's per-sequence scaling) and
//! then to mean 1 over the window (as RSQ's GPTQ does before it adds a batch), so a window's
//! tokens weigh as much in all as they do unweighted: H keeps its scale, and the damping, a share
//! of H's mean diagonal, means the same.

use candle_core::Tensor;

use crate::model::Result;

/// How calibration tokens are weighted in the input statistics of a block's linears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TokenWeights {
    /// Every token alike (GPTQ's Hessian as published).
    #[default]
    Equal,
    /// RSQ's attention concentration: the attention a token receives in the block, summed over
    /// heads and query positions; scaled into [0.005, 1] per window (RSQ's released setting).
    Attention,
    /// The same attention scores scaled into [1, 3] per window (RSQ's configuration default: a
    /// milder tilt).
    AttentionMild,
    /// The norm of the token's residual stream entering the block (RSQ's "ActNorm"), into [1, 3].
    Actnorm,
}

impl TokenWeights {
    /// The name the command line, plan.json and the GGUF's metadata use.
    pub fn name(self) -> &'static str {
        match self {
            TokenWeights::Equal => "equal",
            TokenWeights::Attention => "attention",
            TokenWeights::AttentionMild => "attention-mild",
            TokenWeights::Actnorm => "actnorm",
        }
    }

    /// The range [lo, hi] a window's scores are scaled into.
    fn range(self) -> (f32, f32) {
        match self {
            TokenWeights::Attention => (0.005, 1.0),
            _ => (1.0, 3.0),
        }
    }

    /// Whether the weights come from the block's attention probabilities.
    pub fn from_attention(self) -> bool {
        matches!(self, TokenWeights::Attention | TokenWeights::AttentionMild)
    }

    /// Per-token weights, window after window ((batch · tokens) values), from the attention each
    /// key received in each head, summed over the queries (batch, heads, key): the score of
    /// token k is Σ_h Σ_q p[h, q, k].
    pub fn of_attention(self, received: &Tensor) -> Result<Vec<f32>> {
        let (b, heads, t) = received.dims3()?;
        let p = received.flatten_all()?.to_vec1::<f32>()?;
        let mut scores = vec![0f32; b * t];
        for (w, window) in p.chunks_exact(heads * t).enumerate() {
            let s = &mut scores[w * t..(w + 1) * t];
            for head in window.chunks_exact(t) {
                s.iter_mut().zip(head).for_each(|(a, x)| *a += x);
            }
        }
        Ok(self.scale(scores, t))
    }

    /// Per-token weights from the residual stream `x` (batch, tokens, features): each token's
    /// L2 norm.
    pub fn of_norms(self, x: &Tensor) -> Result<Vec<f32>> {
        let (_, t, n) = x.dims3()?;
        let v = x.flatten_all()?.to_vec1::<f32>()?;
        let scores = v.chunks_exact(n).map(|r| r.iter().map(|a| a * a).sum::<f32>().sqrt()).collect();
        Ok(self.scale(scores, t))
    }

    /// Each window of `t` scores scaled min-max into [lo, hi], then to mean 1. A window whose
    /// scores are all equal weighs every token 1.
    fn scale(self, mut scores: Vec<f32>, t: usize) -> Vec<f32> {
        let (lo, hi) = self.range();
        for s in scores.chunks_exact_mut(t) {
            let (min, max) = s.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
            if !(max > min) {
                s.fill(1.0);
                continue;
            }
            s.iter_mut().for_each(|x| *x = lo + (hi - lo) * (*x - min) / (max - min));
            let mean = s.iter().map(|&x| x as f64).sum::<f64>() / t as f64;
            s.iter_mut().for_each(|x| *x = (*x as f64 / mean) as f32);
        }
        scores
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn attention_scores_are_the_attention_received_scaled_per_window() {
        // One window, one head, 3 tokens, uniform causal attention: token k receives
        // Σ_{q ≥ k} 1/(q+1) = (1 + 1/2 + 1/3, 1/2 + 1/3, 1/3) = (11/6, 5/6, 2/6).
        let probs =
            Tensor::new(&[[[[1f32, 0., 0.], [0.5, 0.5, 0.], [1. / 3., 1. / 3., 1. / 3.]]]], &Device::Cpu).unwrap();
        // What the attention kernel hands out: each key's attention summed over the queries.
        let u = probs.sum(2).unwrap();
        // Mild: min-max into [1, 3] gives (3, 1 + 2·(3/9), 1) = (3, 5/3, 1), mean 17/9.
        let w = TokenWeights::AttentionMild.of_attention(&u).unwrap();
        let want = [3.0 * 9.0 / 17.0, 5.0 / 3.0 * 9.0 / 17.0, 9.0 / 17.0];
        assert!(w.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-5), "{w:?}");
        // RSQ's released range [0.005, 1]: (1, 0.005 + 0.995/3, 0.005), to mean 1.
        let w = TokenWeights::Attention.of_attention(&u).unwrap();
        let raw = [1.0f32, 0.005 + 0.995 / 3.0, 0.005];
        let mean = raw.iter().sum::<f32>() / 3.0;
        assert!(w.iter().zip(raw).all(|(a, b)| (a - b / mean).abs() < 1e-5), "{w:?}");
        // Two heads that agree give the same weights; two windows are scaled apart.
        let two = Tensor::cat(&[&u, &u], 1).unwrap();
        assert_eq!(TokenWeights::Attention.of_attention(&two).unwrap(), w);
        let windows = Tensor::cat(&[&u, &u], 0).unwrap();
        assert_eq!(TokenWeights::Attention.of_attention(&windows).unwrap(), [w.clone(), w].concat());
    }

    #[test]
    fn norms_and_a_flat_window() {
        // Norms 5, 0, 10 into [1, 3]: (2, 1, 3), mean 2.
        let x = Tensor::new(&[[[3f32, 4.], [0., 0.], [6., 8.]]], &Device::Cpu).unwrap();
        assert_eq!(TokenWeights::Actnorm.of_norms(&x).unwrap(), vec![1.0, 0.5, 1.5]);
        let flat = Tensor::new(&[[[1f32, 0.], [0., 1.]]], &Device::Cpu).unwrap();
        assert_eq!(TokenWeights::Actnorm.of_norms(&flat).unwrap(), vec![1.0, 1.0]);
    }
}
