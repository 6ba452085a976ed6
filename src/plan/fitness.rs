//! KL fitness: KL(original ‖ candidate) per position over the full vocabulary, averaged over
//! calibration windows — EvoPress's fitness and what the sensitivities are measured with.
//!
//! The original model's logits and its hidden state at every block input are kept per window, so
//! a candidate that differs from the original (or from a parent whose states are given) only
//! from block b on is run from block b.

use candle_core::{Device, Tensor};

use crate::model::kernels::{kl_divergence_rows, with_f32};
use crate::model::{BlockOpts, Model, Positions, Result};

/// One calibration window and what the original model made of it.
pub struct ProbeWindow {
    pub tokens: Tensor,
    /// `states[i]`: the residual stream entering block i (i = 0..=n; states[n] is the last output).
    pub states: Vec<Tensor>,
    /// Original logits, row-major (ctx, vocab).
    pub reference: Vec<f32>,
}

pub struct Probe {
    pub positions: Positions,
    pub windows: Vec<ProbeWindow>,
}

/// Which blocks a candidate runs and how: None removes the block.
pub type Layout<'a> = &'a dyn Fn(usize) -> Option<BlockOpts>;

pub fn full_layout(_: usize) -> Option<BlockOpts> {
    Some(BlockOpts::default())
}

impl Probe {
    /// Runs the original `model` on every window once.
    pub fn new(model: &Model, windows: &[Vec<u32>], progress: &mut dyn FnMut(usize)) -> Result<Probe> {
        let ctx = windows.first().map_or(2, Vec::len);
        let positions = model.positions(ctx)?;
        let mut out = Vec::with_capacity(windows.len());
        for (k, w) in windows.iter().enumerate() {
            let tokens = Tensor::from_vec(w.clone(), (1, ctx), &Device::Cpu)?;
            let states = states_of(model, &tokens, &positions, &full_layout)?;
            let reference = with_f32(&model.head(states.last().expect("the output"))?, <[f32]>::to_vec)?;
            out.push(ProbeWindow { tokens, states, reference });
            progress(k + 1);
        }
        Ok(Probe { positions, windows: out })
    }

    /// Mean KL of `model` (with `layout`) over windows `which`, run from block `from` on the
    /// states `start` gives for each window (the original's when None; embeddings when from = 0).
    pub fn kl(&self, model: &Model, which: &[usize], from: usize, layout: Layout, start: Option<&[Vec<Tensor>]>) -> Result<f64> {
        let n = model.blocks.len();
        let mut total = 0.0;
        let mut count = 0usize;
        for (k, &w) in which.iter().enumerate() {
            let win = &self.windows[w];
            let x = if from == 0 {
                model.embed(&win.tokens)?
            } else {
                match start {
                    Some(s) => s[k][from].clone(),
                    None => win.states[from].clone(),
                }
            };
            let x = model.run_blocks(&x, from..n, &self.positions, layout, &mut ())?;
            let (s, c) = kl_sum(model, &x, &win.reference)?;
            total += s;
            count += c;
        }
        Ok(total / count.max(1) as f64)
    }

    /// The states of `model` at every block input on windows `which` (for its children to start from).
    pub fn states(&self, model: &Model, which: &[usize], layout: Layout) -> Result<Vec<Vec<Tensor>>> {
        which.iter().map(|&w| states_of(model, &self.windows[w].tokens, &self.positions, layout)).collect()
    }
}

fn states_of(model: &Model, tokens: &Tensor, positions: &Positions, layout: Layout) -> Result<Vec<Tensor>> {
    let mut x = model.embed(tokens)?;
    let mut states = vec![x.clone()];
    for b in &model.blocks {
        if let Some(o) = layout(b.index) {
            x = b.forward(&x, &model.config, positions, o, &mut ())?;
        }
        states.push(x.clone());
    }
    Ok(states)
}

/// (Σ KL, positions) of the head applied to last-block output `x` against `reference` logits.
fn kl_sum(model: &Model, x: &Tensor, reference: &[f32]) -> Result<(f64, usize)> {
    let logits = model.head(x)?;
    let vocab = model.config.vocab_size;
    let total = with_f32(&logits, |q| kl_divergence_rows(reference, q, vocab))?;
    Ok((total, reference.len() / vocab))
}
