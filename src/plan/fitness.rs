//! KL fitness: KL(original ‖ candidate) per position over the full vocabulary, averaged over
//! calibration windows — EvoPress's fitness and what the sensitivities are measured with.
//!
//! The original model's logits and its hidden state at every block input are kept per window, so
//! a candidate that differs from the original (or from a parent whose states are given) only
//! from block b on is run from block b. Both wait in a [`Spill`] file, exactly (f32): the
//! logits (ctx × vocab a window: 100 MB for SmolLM2's 512 × 49 152) are read back a few rows at
//! a time, a state (1.2 MB) when a candidate starts from it. A search parent's states wait
//! the same way ([`States`]).

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};

use crate::model::forward::{embed_batches, forward};
use crate::model::kernels::{first_non_finite_row, kl_divergence_per_row, with_f32};
use crate::model::{Blocks, ModelError, Positions, Result};
use crate::progress::Progress;
use crate::spill::Spill;

/// Rows of reference logits read back at once.
const REFERENCE_ROWS: usize = 64;

/// One calibration window and where the original's logits for it start in the probe's spill
/// file, row-major (ctx, vocab) f32.
pub struct ProbeWindow {
    pub tokens: Tensor,
    reference: u64,
}

pub struct Probe {
    pub positions: Positions,
    pub windows: Vec<ProbeWindow>,
    /// The original model's states on every window.
    original: States,
    spill: Spill,
}

fn spill_error(error: std::io::Error) -> ModelError {
    ModelError::Io { path: crate::spill::folder(), error }
}

pub use crate::model::forward::{full_layout, Layout};

/// A model's residual stream entering every block i = 0..=n (n: the last block's output) on
/// some of the probe's windows, waiting in a spill file exactly (f32): a candidate that starts
/// at block b reads only the state it starts from (1.2 MB for SmolLM2's 512 × 576).
pub struct States {
    spill: Spill,
    /// Where each known window's states start, one offset per block input.
    at: BTreeMap<usize, Vec<u64>>,
    /// (1, ctx, hidden): the shape of a state.
    dims: [usize; 3],
}

impl States {
    pub fn new(probe: &Probe) -> Result<States> {
        Self::with_dims(probe.original.dims)
    }

    fn with_dims(dims: [usize; 3]) -> Result<States> {
        Ok(States { spill: Spill::new("states").map_err(spill_error)?, at: BTreeMap::new(), dims })
    }

    /// Appends `state` as window `w`'s next one.
    fn push(&mut self, w: usize, state: &Tensor) -> Result<()> {
        let at = with_f32(state, |v| self.spill.append_f32(v))?.map_err(spill_error)?;
        self.at.entry(w).or_default().push(at);
        Ok(())
    }

    fn put(&mut self, w: usize, states: &[Tensor]) -> Result<()> {
        states.iter().try_for_each(|s| self.push(w, s))
    }

    /// Computes `model`'s states (with `layout`) on each of the probe's windows `which` not yet
    /// known. With an `ancestor` — the states of a model whose blocks before `first` are
    /// `model`'s own — a window it knows is run only from block `first` on, on its state there:
    /// the same numbers as a run from the embedding.
    pub fn ensure(
        &mut self,
        probe: &Probe,
        model: &dyn Blocks,
        layout: Layout,
        which: &[usize],
        ancestor: Option<(&States, usize)>,
    ) -> Result<()> {
        for &w in which {
            if self.at.contains_key(&w) {
                continue;
            }
            let states = match ancestor.filter(|(a, _)| a.at.contains_key(&w)) {
                Some((a, first)) => a.derived(probe, model, w, first, layout)?,
                None => states_of(model, &probe.windows[w].tokens, &probe.positions, layout)?,
            };
            self.put(w, &states)?;
        }
        Ok(())
    }

    /// `model`'s states on window `w`, where its blocks before `from` are those of the model
    /// whose states these are: theirs before block `from`, the state entering it (the token
    /// embedding's own when `from` = 0: the embedding is what differs then), and `model` run
    /// from there.
    fn derived(&self, probe: &Probe, model: &dyn Blocks, w: usize, from: usize, layout: Layout) -> Result<Vec<Tensor>> {
        let mut states = (0..from).map(|i| self.state(w, i)).collect::<Result<Vec<_>>>()?;
        states.push(if from == 0 { model.embed(&probe.windows[w].tokens)? } else { self.state(w, from)? });
        let x = states.last().expect("the state entering block `from`").clone();
        states.extend(run_states(model, x, from, &probe.positions, layout)?);
        Ok(states)
    }

    /// The state entering block `i` on window `w` (i = n: the last block's output).
    pub fn state(&self, w: usize, i: usize) -> Result<Tensor> {
        let n: usize = self.dims.iter().product();
        let at = self.at.get(&w).and_then(|a| a.get(i)).expect("the window's states were computed");
        let v = self.spill.read_f32(*at, n).map_err(spill_error)?;
        Ok(Tensor::from_vec(v, &self.dims, &Device::Cpu)?)
    }
}

impl Probe {
    /// Runs the original `model` on every window once, block by block (each block read once:
    /// a streamed model decodes it once for all the windows). The stage "original logits" of
    /// `progress` counts windows.
    pub fn new(model: &dyn Blocks, windows: &[Vec<u32>], progress: &mut dyn Progress) -> Result<Probe> {
        let ctx = windows.first().map_or(2, Vec::len);
        let positions = Positions::new(model.config(), ctx, &Device::Cpu)?;
        let n = model.n_blocks();
        let mut spill = Spill::new("probe").map_err(spill_error)?;
        let mut original = States::with_dims([1, ctx, model.config().hidden_size])?;
        let tokens: Vec<Tensor> = windows
            .iter()
            .map(|w| Tensor::from_vec(w.clone(), (1, ctx), &Device::Cpu))
            .collect::<candle_core::Result<_>>()?;
        progress.start("original logits", windows.len());
        let mut xs = embed_batches(model, windows, 1)?;
        let record =
            |original: &mut States, xs: &[Tensor]| xs.iter().enumerate().try_for_each(|(k, x)| original.push(k, x));
        record(&mut original, &xs)?;
        forward(model, &mut xs, 0..n, &positions, &full_layout, &mut (), |i, xs| {
            record(&mut original, xs)?;
            progress.step(i * windows.len() / (n + 1), None);
            Ok(())
        })?;
        let mut out = Vec::with_capacity(windows.len());
        let vocab = model.config().vocab_size;
        for (k, (x, tokens)) in xs.iter().zip(tokens).enumerate() {
            let logits = model.head(x)?;
            // Every KL is measured against these: non-finite ones would make every fitness NaN.
            if let Some(p) = with_f32(&logits, |l| first_non_finite_row(l, vocab))? {
                return Err(ModelError::NonFiniteOutput(format!(
                    "the original model's logits are not finite at window {k}, position {p} of the planning windows (NaN or Inf weights, or products past f32's range?)"
                )));
            }
            let reference = with_f32(&logits, |l| spill.append_f32(l))?.map_err(spill_error)?;
            out.push(ProbeWindow { tokens, reference });
        }
        progress.step(windows.len(), None);
        Ok(Probe { positions, windows: out, original, spill })
    }

    /// The original model's residual stream entering block `i` of window `w` (i = n: the last
    /// block's output).
    pub fn state(&self, w: usize, i: usize) -> Result<Tensor> {
        self.original.state(w, i)
    }

    /// Mean KL of `model` (with `layout`) over windows `which`, run from block `from` on the
    /// states of `start` (the original's when None; embeddings when from = 0). The windows go
    /// through each block together: a block is read once (decoded once when streamed or planned).
    pub fn kl(
        &self,
        model: &dyn Blocks,
        which: &[usize],
        from: usize,
        layout: Layout,
        start: Option<&States>,
    ) -> Result<f64> {
        let n = model.n_blocks();
        let start = start.unwrap_or(&self.original);
        let mut xs = which
            .iter()
            .map(|&w| if from == 0 { model.embed(&self.windows[w].tokens) } else { start.state(w, from) })
            .collect::<Result<Vec<_>>>()?;
        forward(model, &mut xs, from..n, &self.positions, layout, &mut (), |_, _| Ok(()))?;
        let mut total = 0.0;
        let mut count = 0usize;
        for (&w, x) in which.iter().zip(&xs) {
            let (s, c) = self.kl_sum(model, x, w)?;
            total += s;
            count += c;
        }
        Ok(total / count.max(1) as f64)
    }

    /// [`Probe::kl`] from `start`'s states, also keeping `model`'s states on those windows in
    /// `record` (`start`'s before block `from`), should it become the search's parent.
    pub fn kl_recorded(
        &self,
        model: &dyn Blocks,
        which: &[usize],
        from: usize,
        layout: Layout,
        start: &States,
        record: &mut States,
    ) -> Result<f64> {
        let mut total = 0.0;
        let mut count = 0usize;
        for &w in which {
            let states = start.derived(self, model, w, from, layout)?;
            let (s, c) = self.kl_sum(model, states.last().expect("the output"), w)?;
            record.put(w, &states)?;
            total += s;
            count += c;
        }
        Ok(total / count.max(1) as f64)
    }
}

/// The states after every block from `from` on, starting from `x` entering block `from` (a
/// removed block passes its input on).
fn run_states(
    model: &dyn Blocks,
    x: Tensor,
    from: usize,
    positions: &Positions,
    layout: Layout,
) -> Result<Vec<Tensor>> {
    let n = model.n_blocks();
    let mut states = Vec::with_capacity(n - from);
    forward(model, &mut [x], from..n, positions, layout, &mut (), |_, xs| {
        states.push(xs[0].clone());
        Ok(())
    })?;
    Ok(states)
}

fn states_of(model: &dyn Blocks, tokens: &Tensor, positions: &Positions, layout: Layout) -> Result<Vec<Tensor>> {
    let x = model.embed(tokens)?;
    let mut states = vec![x.clone()];
    states.extend(run_states(model, x, 0, positions, layout)?);
    Ok(states)
}

impl Probe {
    /// (Σ KL, positions) of the head applied to last-block output `x` against the original's
    /// logits on window `w`: rows summed in order, as [`crate::model::kernels::kl_divergence_rows`].
    /// A row whose KL is not finite is an error naming it (the original's logits are finite).
    pub(crate) fn kl_sum(&self, model: &dyn Blocks, x: &Tensor, w: usize) -> Result<(f64, usize)> {
        let reference = self.windows[w].reference;
        let logits = model.head(x)?;
        let vocab = model.config().vocab_size;
        let per_row = with_f32(&logits, |q| {
            let mut per_row = Vec::with_capacity(q.len() / vocab);
            for (c, q) in q.chunks(REFERENCE_ROWS * vocab).enumerate() {
                let p = self.spill.read_f32(reference + (4 * c * REFERENCE_ROWS * vocab) as u64, q.len())?;
                per_row.extend(kl_divergence_per_row(&p, q, vocab));
            }
            Ok::<_, std::io::Error>(per_row)
        })?
        .map_err(spill_error)?;
        if let Some((p, kl)) = per_row.iter().enumerate().find(|(_, k)| !k.is_finite()) {
            return Err(ModelError::NonFiniteOutput(format!(
                "KL(original ‖ candidate) is {kl} at window {w}, position {p} of the planning windows: the candidate's logits are not finite (NaN or Inf weights, or products past f32's range?)"
            )));
        }
        Ok((per_row.iter().sum(), per_row.len()))
    }
}
