//! Honest evaluation: perplexity on held-out windows and, against a reference model,
//! KL(reference ‖ model) per position (natural log, full vocabulary) and top-1 agreement —
//! the statistics llama.cpp's `llama-perplexity --kl-divergence` reports.

pub mod stats;

use std::time::Instant;

use candle_core::{Device, Tensor};
use rayon::prelude::*;
use serde::Serialize;

use crate::data::Windows;
use crate::model::{Model, ModelError};

pub use stats::Scored;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("window length {ctx} exceeds the context length {max} of {model}")]
    CtxTooLong { ctx: usize, max: usize, model: String },
    #[error("the reference model has {reference} vocabulary entries, the model {model}")]
    VocabMismatch { reference: usize, model: usize },
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
pub fn check_ctx(model: &Model, ctx: usize) -> Result<(), EvalError> {
    if ctx > model.config.context_length {
        return Err(EvalError::CtxTooLong {
            ctx,
            max: model.config.context_length,
            model: model.source.path.display().to_string(),
        });
    }
    Ok(())
}

/// Logits of a batch of windows as one flat row-major vector (batch·ctx rows of vocab).
fn batch_logits(model: &Model, batch: &[Vec<u32>]) -> Result<Vec<f32>, EvalError> {
    let ctx = batch[0].len();
    let flat: Vec<u32> = batch.iter().flatten().copied().collect();
    let tokens = Tensor::from_vec(flat, (batch.len(), ctx), &Device::Cpu)?;
    let logits = model.forward(&tokens, &mut ())?;
    Ok(logits.flatten_all()?.to_vec1::<f32>()?)
}

/// Scores `model` on `windows`, `batch` windows per forward pass; with a `reference`, also the KL
/// statistics. Predictions made at positions `score_from..ctx-1` of each window are scored (0:
/// every position; ctx/2: llama-perplexity's protocol). `progress` is called with the number of
/// windows done.
pub fn evaluate(
    model: &Model,
    reference: Option<&Model>,
    windows: &Windows,
    batch: usize,
    score_from: usize,
    progress: &mut dyn FnMut(usize),
) -> Result<EvalReport, EvalError> {
    check_ctx(model, windows.ctx)?;
    if let Some(r) = reference {
        check_ctx(r, windows.ctx)?;
        if r.config.vocab_size != model.config.vocab_size {
            return Err(EvalError::VocabMismatch {
                reference: r.config.vocab_size,
                model: model.config.vocab_size,
            });
        }
    }
    let start = Instant::now();
    let vocab = model.config.vocab_size;
    let ctx = windows.ctx;
    let mut scored = Scored::default();
    let mut done = 0;
    for chunk in windows.windows.chunks(batch.max(1)) {
        let logits = batch_logits(model, chunk)?;
        let ref_logits = reference.map(|r| batch_logits(r, chunk)).transpose()?;
        // Rows whose next token lies in the same window: positions score_from..ctx-1.
        let first = score_from.min(ctx - 2);
        let rows: Vec<(usize, u32)> = chunk
            .iter()
            .enumerate()
            .flat_map(|(w, win)| (first..ctx - 1).map(move |p| (w * ctx + p, win[p + 1])))
            .collect();
        let positions: Vec<Scored> = rows
            .par_iter()
            .map(|&(row, next)| {
                let q = &logits[row * vocab..(row + 1) * vocab];
                let p = ref_logits.as_ref().map(|r| &r[row * vocab..(row + 1) * vocab]);
                Scored::position(q, next, p)
            })
            .collect();
        // Merged in position order: the same sums at any thread count.
        scored = positions.into_iter().fold(scored, Scored::merge);
        done += chunk.len();
        progress(done);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let nll_mean = scored.nll_sum / scored.n as f64;
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
