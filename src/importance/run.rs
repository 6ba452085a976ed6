//! The profile pass: every signal of [`super::profile`] from one streaming run over calibration
//! windows, block by block (hidden states of all windows are kept between blocks; a block's
//! statistics are reduced and dropped before the next runs), then the ablations.

use std::collections::BTreeMap;
use std::time::Instant;

use candle_core::{Device, Tensor};

use super::ablation::{Ablation, AblationSet};
use super::block_signals::BlockCapture;
use super::correlation::spearman;
use super::outliers::outlier_ratio;
use super::profile::*;
use super::quant_error::quant_error_curve;
use crate::calib::imatrix::{Imatrix, ImatrixEntry};
use crate::calib::runner::{Runner, StateLimits};
use crate::calib::Windows;
use crate::ggml::codec::round_trip;
use crate::ggml::types::{allowed_types, QuantType};
use crate::model::kernels::with_f32;
use crate::model::{BlockOpts, Blocks, Result, Sublayer};
use crate::progress::Progress;

#[derive(Debug, Clone)]
pub struct ProfileOptions {
    /// Windows per forward batch.
    pub batch: usize,
    /// Windows (a prefix) used for the ablation ΔKL measurements.
    pub ablation_windows: usize,
    /// Windows (a prefix) whose attention probabilities are summarised.
    pub attention_windows: usize,
    /// Name of the calibration text, recorded in profile.json and the imatrix.
    pub calib_name: String,
    /// GGUF types for the end-to-end ΔKL of each linear quantized alone (empty: skipped; it
    /// costs one partial forward per linear and type).
    pub full_types: Vec<QuantType>,
    /// Where the calibration states between blocks may live.
    pub state_limits: StateLimits,
}

/// Runs every signal on `windows`, reporting the stages "profile: blocks", "profile: ablations"
/// (blocks each) and, with full types, "profile: --full" (linears) to `progress`. Returns the
/// profile and the imatrix gathered on the way.
pub fn profile(
    model: &dyn Blocks,
    windows: &Windows,
    opts: &ProfileOptions,
    progress: &mut dyn Progress,
) -> Result<(Profile, Imatrix)> {
    let n_blocks = model.n_blocks();
    let ctx = windows.ctx;
    let batch = opts.batch.max(1);
    let mut timings = BTreeMap::new();

    // Hidden states of every batch of windows, advanced one block at a time.
    let t0 = Instant::now();
    let mut runner = Runner::new(model, windows, batch, opts.state_limits)?;
    let n_abl = opts.ablation_windows.clamp(1, windows.len());
    let abl_batches = n_abl.div_ceil(batch);
    let att_batches = opts.attention_windows.div_ceil(batch).min(runner.n_batches());
    // The first n_abl windows at a block boundary.
    let boundary = |r: &Runner| -> Result<Tensor> {
        let h = (0..abl_batches).map(|j| r.state(j)).collect::<Result<Vec<_>>>()?;
        Ok(Tensor::cat(&h, 0)?.narrow(0, 0, n_abl)?)
    };
    let mut ablation_inputs = vec![boundary(&runner)?];

    let mut blocks = Vec::with_capacity(n_blocks);
    let mut sublayers = Vec::with_capacity(2 * n_blocks);
    let mut linears = Vec::new();
    let mut imatrix = Imatrix {
        datasets: vec![opts.calib_name.clone()],
        chunk_count: windows.len() as u32,
        chunk_size: ctx as u32,
        ..Default::default()
    };
    let mut stats_secs = 0.0;
    progress.start("profile: blocks", n_blocks);
    for i in 0..n_blocks {
        let block = model.block(i)?;
        let block = block.as_ref();
        let mut cap = BlockCapture::new(block);
        let out =
            runner.run(block, BlockOpts::default(), &mut cap, |j, cap| cap.attention_enabled = j < att_batches)?;
        runner.advance(out)?;
        ablation_inputs.push(boundary(&runner)?);
        let ts = Instant::now();
        let mut pooled: Vec<(Vec<f32>, Vec<f32>)> = Vec::new();
        let mut block_sq = 0.0;
        for l in block.linears() {
            let m = cap.moments.of(&l.name).expect("every linear has its input group");
            let sum_sq = m.sum_sq();
            let col_norms: Vec<f32> = sum_sq.iter().map(|s| s.max(0.0).sqrt()).collect();
            let w = with_f32(&l.weight, <[f32]>::to_vec)?;
            let sq: f64 = w.iter().map(|&x| (x as f64) * (x as f64)).sum();
            block_sq += sq;
            linears.push(LinearProfile {
                name: l.name.clone(),
                block: block.index,
                rows: l.out_features(),
                cols: l.in_features(),
                weight_norm: sq.sqrt(),
                outlier_ratio: outlier_ratio(&[(&w, &col_norms)]),
                imatrix_mean: sum_sq.iter().map(|&s| s as f64).sum::<f64>() / (sum_sq.len() * m.n_tokens.max(1)) as f64,
                quant_error: quant_error_curve(&l.name, &w, m)?,
                full_kld: BTreeMap::new(),
            });
            imatrix.entries.insert(l.name.clone(), ImatrixEntry { in_sum2: sum_sq, count: m.n_tokens as f64 });
            pooled.push((w, col_norms));
        }
        let pooled_refs: Vec<(&[f32], &[f32])> = pooled.iter().map(|(w, c)| (w.as_slice(), c.as_slice())).collect();
        blocks.push(BlockProfile {
            index: block.index,
            block_influence: cap.block_influence(),
            ablation_kld: 0.0,
            weight_norm: block_sq.sqrt(),
            outlier_ratio: outlier_ratio(&pooled_refs),
            attention: cap.attention.finish(),
        });
        for s in [Sublayer::Attention, Sublayer::Mlp] {
            sublayers.push(SublayerProfile {
                block: block.index,
                kind: s.name().into(),
                redundancy: cap.redundancy(s),
                ablation_kld: 0.0,
            });
        }
        stats_secs += ts.elapsed().as_secs_f64();
        progress.step(block.index + 1, None);
    }
    timings.insert("statistics_pass".into(), t0.elapsed().as_secs_f64() - stats_secs);
    timings.insert("quant_error_curves".into(), stats_secs);
    drop(runner);

    let t1 = Instant::now();
    let set = AblationSet::new(model, ablation_inputs)?;
    progress.start("profile: ablations", n_blocks);
    for i in 0..n_blocks {
        blocks[i].ablation_kld = set.kld(model, i, Ablation::Block)?;
        sublayers[2 * i].ablation_kld = set.kld(model, i, Ablation::Attention)?;
        sublayers[2 * i + 1].ablation_kld = set.kld(model, i, Ablation::Mlp)?;
        progress.step(i + 1, None);
    }
    timings.insert("ablations".into(), t1.elapsed().as_secs_f64());

    if !opts.full_types.is_empty() {
        let t2 = Instant::now();
        let total = linears.len();
        progress.start("profile: --full", total);
        for (k, lp) in linears.iter_mut().enumerate() {
            let allowed = allowed_types(lp.cols);
            let block = model.block(lp.block)?;
            let original = block.linears().into_iter().find(|l| l.name == lp.name).expect("linear of its block");
            let w = with_f32(&original.weight, <[f32]>::to_vec)?;
            for &t in opts.full_types.iter().filter(|t| allowed.contains(t)) {
                let mut replacement = block.as_ref().clone();
                let l = replacement.linears_mut().into_iter().find(|l| l.name == lp.name).expect("linear of its block");
                let q = round_trip(t, &w, lp.cols, None);
                l.weight = Tensor::from_vec(q, (lp.rows, lp.cols), &Device::Cpu)?;
                lp.full_kld.insert(t.name().to_string(), set.kld_replaced(model, &replacement)?);
            }
            progress.step(k + 1, None);
        }
        timings.insert("full_linear_kld".into(), t2.elapsed().as_secs_f64());
    }

    let correlation = correlate(&blocks, &sublayers, &linears);
    let profile = Profile {
        schema_version: SCHEMA_VERSION,
        model: ModelInfo {
            path: model.source().path.display().to_string(),
            architecture: model.config().arch.gguf_name().into(),
            n_blocks,
            hidden_size: model.config().hidden_size,
            n_params: model.config().n_params(),
        },
        calibration: CalibrationInfo {
            path: opts.calib_name.clone(),
            ctx,
            tokens: windows.len() * ctx,
            ablation_tokens: n_abl * ctx,
            attention_tokens: (att_batches * batch).min(windows.len()) * ctx,
        },
        blocks,
        sublayers,
        linears,
        correlation,
        timings,
    };
    Ok((profile, imatrix))
}

/// Spearman's ρ between every pair of per-block signals.
fn correlate(blocks: &[BlockProfile], sublayers: &[SublayerProfile], linears: &[LinearProfile]) -> Correlation {
    let sub = |kind: &str, f: fn(&SublayerProfile) -> f64| -> Vec<f64> {
        sublayers.iter().filter(|s| s.kind == kind).map(f).collect()
    };
    let mean_error = |b: usize| {
        let errs: Vec<f64> = linears
            .iter()
            .filter(|l| l.block == b)
            .filter_map(|l| l.quant_error.get("Q4_0").or_else(|| l.quant_error.get("RTN4")).copied())
            .collect();
        errs.iter().sum::<f64>() / errs.len().max(1) as f64
    };
    let signals: Vec<(&str, Vec<f64>)> = vec![
        ("block_influence", blocks.iter().map(|b| b.block_influence).collect()),
        ("ablation_kld", blocks.iter().map(|b| b.ablation_kld).collect()),
        ("attention_ablation_kld", sub("attention", |s| s.ablation_kld)),
        ("mlp_ablation_kld", sub("mlp", |s| s.ablation_kld)),
        ("attention_redundancy", sub("attention", |s| s.redundancy)),
        ("mlp_redundancy", sub("mlp", |s| s.redundancy)),
        ("weight_norm", blocks.iter().map(|b| b.weight_norm).collect()),
        ("outlier_ratio", blocks.iter().map(|b| b.outlier_ratio).collect()),
        ("quant_error_4bit", blocks.iter().map(|b| mean_error(b.index)).collect()),
        ("attention_entropy", blocks.iter().map(|b| b.attention.row_entropy).collect()),
        ("sink_share", blocks.iter().map(|b| b.attention.sink_share).collect()),
    ];
    let matrix = signals.iter().map(|(_, a)| signals.iter().map(|(_, b)| spearman(a, b)).collect()).collect();
    Correlation { signals: signals.iter().map(|(n, _)| n.to_string()).collect(), matrix }
}
