//! Ablation: remove one block or one sublayer and measure KL(full ‖ ablated) per position on
//! calibration windows. Costly but honest — EvoPress shows that errors of removed pieces are
//! not additive, so this is the ground truth the cheap proxies are compared with.

use candle_core::Tensor;

use crate::model::forward::{forward_one, full_layout};
use crate::model::kernels::{first_non_finite_row, kl_divergence_rows, with_f32};
use crate::model::{Block, BlockOpts, Blocks, ModelError, Positions, Result};

/// What to remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ablation {
    Block,
    Attention,
    Mlp,
}

/// Hidden states of the ablation windows at every block boundary of the full model, and the
/// full model's logits on them: enough to rerun the model from any block with one piece removed.
pub struct AblationSet {
    /// `inputs[i]`: the residual stream entering block i, (windows, tokens, hidden).
    pub inputs: Vec<Tensor>,
    /// Full-model logits, row-major (windows · tokens, vocab).
    pub reference: Vec<f32>,
    pub positions: Positions,
}

impl AblationSet {
    /// Needs `inputs` for blocks 0..n and the output of the last block as `inputs[n]`.
    pub fn new(model: &dyn Blocks, inputs: Vec<Tensor>) -> Result<Self> {
        let last = inputs.last().expect("at least the embeddings");
        let t = last.dims()[1];
        let reference = with_f32(&model.head(last)?, <[f32]>::to_vec)?;
        // Every ΔKL is measured against these: non-finite ones would make each NaN.
        if let Some(r) = first_non_finite_row(&reference, model.config().vocab_size) {
            let (w, p) = (r / t, r % t);
            return Err(ModelError::NonFiniteOutput(format!(
                "the model's logits are not finite at window {w}, position {p} of the ablation windows (NaN or Inf weights, or products past f32's range?)"
            )));
        }
        Ok(AblationSet { inputs, reference, positions: Positions::new(model.config(), t, &candle_core::Device::Cpu)? })
    }

    /// Mean KL(full ‖ ablated) over every position of the ablation windows.
    pub fn kld(&self, model: &dyn Blocks, block: usize, what: Ablation) -> Result<f64> {
        let opts = match what {
            Ablation::Block => None,
            Ablation::Attention => Some(BlockOpts { skip_attention: true, skip_mlp: false }),
            Ablation::Mlp => Some(BlockOpts { skip_attention: false, skip_mlp: true }),
        };
        let n = model.n_blocks();
        let x = forward_one(
            model,
            self.inputs[block].clone(),
            block..n,
            &self.positions,
            &|i| if i == block { opts } else { Some(BlockOpts::default()) },
            &mut (),
        )?;
        self.kld_of_output(model, &x, || {
            format!(
                "the ablation ΔKL of block {block}'s {}",
                match what {
                    Ablation::Block => "whole block",
                    Ablation::Attention => "attention",
                    Ablation::Mlp => "MLP",
                }
            )
        })
    }

    /// Mean KL(full ‖ model with `replacement` in place of its block) — e.g. one linear
    /// quantized — rerunning only the blocks from the replaced one on.
    pub fn kld_replaced(&self, model: &dyn Blocks, replacement: &Block) -> Result<f64> {
        let i = replacement.index;
        let x = replacement.forward(&self.inputs[i], model.config(), &self.positions, BlockOpts::default(), &mut ())?;
        let x = forward_one(model, x, i + 1..model.n_blocks(), &self.positions, &full_layout, &mut ())?;
        self.kld_of_output(model, &x, || format!("the ΔKL of block {i} with a linear replaced"))
    }

    /// Mean KL between the reference logits and the head applied to last-block output `x`; a
    /// non-finite mean is an error saying it is `what`'s.
    fn kld_of_output(&self, model: &dyn Blocks, x: &Tensor, what: impl FnOnce() -> String) -> Result<f64> {
        let logits = model.head(x)?;
        let vocab = model.config().vocab_size;
        let total = with_f32(&logits, |q| kl_divergence_rows(&self.reference, q, vocab))?;
        let mean = total / (self.reference.len() / vocab) as f64;
        if !mean.is_finite() {
            return Err(ModelError::NonFiniteOutput(format!(
                "{} is {mean}: the logits are not finite (NaN or Inf weights, or products past f32's range?)",
                what()
            )));
        }
        Ok(mean)
    }
}
