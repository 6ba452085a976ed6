//! Honest evaluation: perplexity on held-out windows and, against a reference model,
//! KL(reference ‖ model) per position (natural log, full vocabulary) and top-1 agreement —
//! the statistics llama.cpp's `llama-perplexity --kl-divergence` reports.

pub mod stats;

use std::time::Instant;

use candle_core::{Device, Tensor};
use rayon::prelude::*;
use serde::Serialize;

use crate::calib::Windows;
use crate::model::forward::{embed_batches, forward, full_layout};
use crate::model::kernels::with_f32;
use crate::model::{Blocks, ModelError, Positions, Weights};
use crate::progress::Progress;

pub use stats::Scored;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("window length {ctx} exceeds the context length {max} of {model}")]
    CtxTooLong { ctx: usize, max: usize, model: String },
    #[error("the reference model has {reference} vocabulary entries, the model {model}")]
    VocabMismatch { reference: usize, model: usize },
    #[error("the reference model's tokenizer differs from the model's: {0}")]
    TokenizerMismatch(String),
    /// A score that is NaN or infinite, and where it arose: reported instead of a `ppl NaN`
    /// or of a KL that a clamp turned into 0.
    #[error("{0}")]
    NonFinite(String),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{}", crate::model::candle_message(.0))]
    Tensor(#[from] candle_core::Error),
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub ppl: f64,
    pub nll_mean: f64,
    pub tokens_scored: usize,
    pub windows: usize,
    pub ctx: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kld_mean: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kld_median: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kld_p99: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top1_agree: Option<f64>,
    pub tokens_per_s: f64,
}

/// Refuses windows longer than the model was trained for.
pub fn check_ctx(model: &dyn Blocks, ctx: usize) -> Result<(), EvalError> {
    let max = model.config().context_length;
    if ctx > max {
        return Err(EvalError::CtxTooLong { ctx, max, model: model.source().path.display().to_string() });
    }
    Ok(())
}

/// Refuses a `reference` whose tokenizer differs from `model`'s, naming the first difference:
/// the KL compares the two models' probabilities of the same ids, which equal vocabulary sizes
/// do not make the same tokens. Where either carries no tokenizer, a warning says that only
/// the vocabulary sizes are compared.
pub fn check_reference_tokenizer(model: &Weights, reference: &Weights) -> Result<(), EvalError> {
    match (reference.tokenizer(), model.tokenizer()) {
        (Ok(r), Ok(m)) => r
            .first_difference(m, ("the reference", "the model"))
            .map_or(Ok(()), |d| Err(EvalError::TokenizerMismatch(d))),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("warning: the tokenizers cannot be compared ({e}); only the vocabulary sizes are");
            Ok(())
        }
    }
}

/// The final hidden states of each batch of windows: every block in turn over all batches, so a
/// streamed model decodes each block once. A step of `progress` after each block, counted in
/// `done`.
fn final_states(
    model: &dyn Blocks,
    windows: &Windows,
    batch: usize,
    progress: &mut dyn Progress,
    done: &mut usize,
) -> Result<Vec<Tensor>, EvalError> {
    let pos = Positions::new(model.config(), windows.ctx, &Device::Cpu)?;
    let mut hidden = embed_batches(model, &windows.windows, batch)?;
    forward(model, &mut hidden, 0..model.n_blocks(), &pos, &full_layout, &mut (), |_, _| {
        *done += 1;
        progress.step(*done, None);
        Ok(())
    })?;
    Ok(hidden)
}

/// The error for a non-finite `score` at row `position` of window `window`: whose logits are
/// not finite there (the model's, else the reference's), or else which score overflowed.
fn non_finite(
    logits: &Tensor,
    ref_logits: Option<&Tensor>,
    window: usize,
    position: usize,
    vocab: usize,
    score: &Scored,
) -> Result<EvalError, EvalError> {
    let finite =
        |t: &Tensor| with_f32(t, |l| l[position * vocab..(position + 1) * vocab].iter().all(|x| x.is_finite()));
    let what = if !finite(logits)? {
        "the model's logits are not finite".to_string()
    } else if ref_logits.map(finite).transpose()? == Some(false) {
        "the reference model's logits are not finite".to_string()
    } else if !score.nll_sum.is_finite() {
        format!("the NLL is {}", score.nll_sum)
    } else {
        format!(
            "KL(reference ‖ model) is {}",
            score.kld.iter().find(|k| !k.is_finite()).expect("a score that is not finite")
        )
    };
    Ok(EvalError::NonFinite(format!(
        "{what} at window {window}, position {position} (NaN or Inf weights, or products past f32's range?)"
    )))
}

/// The steps [`evaluate`] reports: one per block of each model, one per batch scored.
pub fn steps(model: &dyn Blocks, reference: Option<&dyn Blocks>, windows: &Windows, batch: usize) -> usize {
    model.n_blocks() + reference.map_or(0, |r| r.n_blocks()) + windows.len().div_ceil(batch.max(1))
}

/// Scores `model` on `windows`, `batch` windows per forward pass; with a `reference`, also the KL
/// statistics. Predictions made at positions `score_from..ctx-1` of each window are scored (0:
/// every position; ctx/2: llama-perplexity's protocol). The two models run one after the other,
/// block by block, and only the logits of one window exist at a time. `progress` counts the
/// steps of [`steps`], in one stage.
pub fn evaluate(
    model: &dyn Blocks,
    reference: Option<&dyn Blocks>,
    windows: &Windows,
    batch: usize,
    score_from: usize,
    progress: &mut dyn Progress,
) -> Result<EvalReport, EvalError> {
    check_ctx(model, windows.ctx)?;
    if let Some(r) = reference {
        check_ctx(r, windows.ctx)?;
        if r.config().vocab_size != model.config().vocab_size {
            return Err(EvalError::VocabMismatch {
                reference: r.config().vocab_size,
                model: model.config().vocab_size,
            });
        }
    }
    let start = Instant::now();
    let vocab = model.config().vocab_size;
    let ctx = windows.ctx;
    let batches: Vec<&[Vec<u32>]> = windows.windows.chunks(batch.max(1)).collect();
    progress.start("eval", steps(model, reference, windows, batch));
    let mut done = 0;
    let hidden = final_states(model, windows, batch, progress, &mut done)?;
    let ref_hidden = reference.map(|r| final_states(r, windows, batch, progress, &mut done)).transpose()?;
    let mut scored = Scored::default();
    // Rows whose next token lies in the same window: positions score_from..ctx-1.
    let first = score_from.min(ctx - 2);
    for (b, chunk) in batches.iter().enumerate() {
        // One window's logits at a time (ctx × vocab: 100 MB for SmolLM2's 512 × 49 152),
        // read in place.
        for (w, win) in chunk.iter().enumerate() {
            let logits = model.head(&hidden[b].narrow(0, w, 1)?)?;
            let ref_logits = match (reference, &ref_hidden) {
                (Some(r), Some(h)) => Some(r.head(&h[b].narrow(0, w, 1)?)?),
                _ => None,
            };
            let score = |logits: &[f32], ref_logits: Option<&[f32]>| -> Vec<Scored> {
                (first..ctx - 1)
                    .into_par_iter()
                    .map(|p| {
                        Scored::position(
                            &logits[p * vocab..(p + 1) * vocab],
                            win[p + 1],
                            ref_logits.map(|r| &r[p * vocab..(p + 1) * vocab]),
                        )
                    })
                    .collect()
            };
            let positions = with_f32(&logits, |q| match &ref_logits {
                Some(r) => with_f32(r, |r| score(q, Some(r))),
                None => Ok(score(q, None)),
            })??;
            if let Some(k) = positions.iter().position(|s| !s.is_finite()) {
                return Err(non_finite(
                    &logits,
                    ref_logits.as_ref(),
                    b * batch.max(1) + w,
                    first + k,
                    vocab,
                    &positions[k],
                )?);
            }
            // Merged in position order: the same sums at any thread count.
            scored = positions.into_iter().fold(scored, Scored::merge);
        }
        done += 1;
        progress.step(done, None);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let nll_mean = scored.nll_sum / scored.n as f64;
    if !nll_mean.exp().is_finite() {
        return Err(EvalError::NonFinite(format!(
            "the perplexity overflows: the mean NLL is {nll_mean} nats per token"
        )));
    }
    let (kld_mean, kld_median, kld_p99, top1_agree) = if reference.is_some() {
        let (mean, median, p99) = scored.kld_summary();
        (Some(mean), Some(median), Some(p99), Some(scored.top1_agree as f64 / scored.n as f64))
    } else {
        (None, None, None, None)
    };
    Ok(EvalReport {
        ppl: nll_mean.exp(),
        nll_mean,
        tokens_scored: scored.n,
        windows: windows.len(),
        ctx,
        kld_mean,
        kld_median,
        kld_p99,
        top1_agree,
        tokens_per_s: (windows.len() * ctx) as f64 / elapsed,
    })
}
