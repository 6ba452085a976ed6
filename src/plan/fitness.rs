//! KL fitness: KL(original ‖ candidate) per position over the full vocabulary, averaged over
//! calibration windows — EvoPress's fitness and what the sensitivities are measured with.
//!
//! The original model's logits and its hidden state at every block input are kept per window, so
//! a candidate that differs from the original (or from a parent whose states are given) only
//! from block b on is run from block b. Both wait in a [`Spill`] file, exactly (f32): the
//! logits (ctx × vocab a window: 100 MB for SmolLM2's 512 × 49 152) are read back a few rows at
//! a time, a state (1.2 MB) when a candidate starts from it.

use candle_core::{Device, Tensor};

use crate::model::kernels::{kl_divergence_per_row, with_f32};
use crate::model::{BlockOpts, Model, ModelError, Positions, Result};
use crate::spill::Spill;

/// Rows of reference logits read back at once.
const REFERENCE_ROWS: usize = 64;

/// One calibration window and what the original model made of it.
pub struct ProbeWindow {
    pub tokens: Tensor,
    /// Where the residual stream entering each block i = 0..=n (n: the last output), (1, ctx,
    /// hidden) f32 each, starts in the probe's spill file.
    states: u64,
    /// Where the original logits, row-major (ctx, vocab) f32, start in the probe's spill file.
    reference: u64,
}

pub struct Probe {
    pub positions: Positions,
    pub windows: Vec<ProbeWindow>,
    /// (1, ctx, hidden): the shape of a state.
    state_dims: [usize; 3],
    spill: Spill,
}

fn spill_error(error: std::io::Error) -> ModelError {
    ModelError::Io { path: crate::spill::folder(), error }
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
        let mut spill = Spill::new("probe").map_err(spill_error)?;
        for (k, w) in windows.iter().enumerate() {
            let tokens = Tensor::from_vec(w.clone(), (1, ctx), &Device::Cpu)?;
            let all = states_of(model, &tokens, &positions, &full_layout)?;
            let logits = model.head(all.last().expect("the output"))?;
            let reference = with_f32(&logits, |l| spill.append_f32(l))?.map_err(spill_error)?;
            let mut states = None;
            for s in &all {
                let at = with_f32(s, |v| spill.append_f32(v))?.map_err(spill_error)?;
                states.get_or_insert(at);
            }
            out.push(ProbeWindow { tokens, states: states.expect("the embedding's state"), reference });
            progress(k + 1);
        }
        Ok(Probe { positions, windows: out, state_dims: [1, ctx, model.config.hidden_size], spill })
    }

    /// The original model's residual stream entering block `i` of window `w` (i = n: the last
    /// block's output).
    pub fn state(&self, w: usize, i: usize) -> Result<Tensor> {
        let n: usize = self.state_dims.iter().product();
        let v = self.spill.read_f32(self.windows[w].states + (4 * i * n) as u64, n).map_err(spill_error)?;
        Ok(Tensor::from_vec(v, &self.state_dims, &Device::Cpu)?)
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
                    None => self.state(w, from)?,
                }
            };
            let x = model.run_blocks(&x, from..n, &self.positions, layout, &mut ())?;
            let (s, c) = self.kl_sum(model, &x, win.reference)?;
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

impl Probe {
    /// (Σ KL, positions) of the head applied to last-block output `x` against the reference
    /// logits at `reference`: rows summed in order, as [`crate::model::kernels::kl_divergence_rows`].
    fn kl_sum(&self, model: &Model, x: &Tensor, reference: u64) -> Result<(f64, usize)> {
        let logits = model.head(x)?;
        let vocab = model.config.vocab_size;
        let per_row = with_f32(&logits, |q| {
            let mut per_row = Vec::with_capacity(q.len() / vocab);
            for (c, q) in q.chunks(REFERENCE_ROWS * vocab).enumerate() {
                let p = self.spill.read_f32(reference + (4 * c * REFERENCE_ROWS * vocab) as u64, q.len())?;
                per_row.extend(kl_divergence_per_row(&p, q, vocab));
            }
            Ok::<_, std::io::Error>(per_row)
        })?
        .map_err(spill_error)?;
        Ok((per_row.iter().sum(), per_row.len()))
    }
}
