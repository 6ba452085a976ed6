//! Capture points: what a forward pass shows to whoever asks.
//!
//! Profile signals, GPTQ Hessians, the imatrix and Wanda norms are each a [`Capture`] that
//! accumulates what it needs from borrowed tensors; the forward pass knows none of them.

use candle_core::Tensor;

pub use super::kernels::Probs;
use super::{Linear, Result};

/// The two residual branches of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sublayer {
    Attention,
    Mlp,
}

impl Sublayer {
    pub fn name(self) -> &'static str {
        match self {
            Sublayer::Attention => "attention",
            Sublayer::Mlp => "mlp",
        }
    }
}

/// Observer of a forward pass. Every method has a no-op default; `()` observes nothing.
///
/// # Shapes
/// Hidden states and linear inputs are (batch, tokens, features); attention probabilities are
/// (batch, heads, query, key).
pub trait Capture {
    /// The residual stream entering block `block`.
    fn block_input(&mut self, _block: usize, _x: &Tensor) -> Result<()> {
        Ok(())
    }
    /// The residual stream leaving block `block`.
    fn block_output(&mut self, _block: usize, _x: &Tensor) -> Result<()> {
        Ok(())
    }
    /// What a sublayer adds to the residual stream, `f(norm(x))`, before the addition.
    fn sublayer_output(&mut self, _block: usize, _sublayer: Sublayer, _out: &Tensor) -> Result<()> {
        Ok(())
    }
    /// The input `x` shared by `linears` (q, k and v share one input, gate and up another).
    fn linear_input(&mut self, _block: usize, _linears: &[&Linear], _x: &Tensor) -> Result<()> {
        Ok(())
    }
    /// Which attention probabilities [`Capture::attention_probs`] should be given for `block`
    /// (every one is large: heads × tokens² per window).
    fn wants_attention(&self, _block: usize) -> Probs {
        Probs::None
    }
    /// Softmax attention probabilities of `block`, as [`Capture::wants_attention`] asked:
    /// (batch, heads, query, key), or summed over the queries (batch, heads, key).
    fn attention_probs(&mut self, _block: usize, _probs: &Tensor) -> Result<()> {
        Ok(())
    }
}

impl Capture for () {}
