//! Layer-sequential compression: block i is compressed on the inputs that the already
//! compressed blocks before it produce (GPTQ's sequential mode; switchable), streaming the
//! calibration hidden states block by block so that only one block's statistics exist at a time.
//!
//! Per block: one forward with the original weights gathers the input moments XᵀX of its four
//! linear inputs; each planned linear is then pruned and/or quantized (RTN, imatrix-weighted or
//! GPTQ rounding onto its GGUF type); a second forward with the new weights makes the next
//! block's inputs. Removed blocks are skipped and the rest renumbered; a removed sublayer's
//! linears become zeros, so the block adds nothing through it.

use std::time::Instant;

use candle_core::{Device, Tensor};

use super::compressed::{Compressed, TensorReport};
use super::encoded::Encoded;
use super::gptq::{gptq, gptq_factored, uses_act_order, ColumnQuantizer, Factor, GptqOptions, Mask, Sparsity};
use super::grid_columns::GgufColumns;
use super::plan::{Plan, TensorSpec};
use super::prune::{prune_mask, wanda_norms};
use crate::calib::imatrix::Imatrix;
use crate::calib::moments::{BlockMoments, InputMoments};
use crate::calib::runner::{Runner, StateLimits};
use crate::calib::Windows;
use crate::ggml::codec::{dequantize, encode_plain, quantize};
use crate::layout::renumbered;
use crate::model::kernels::with_f32;
use crate::model::tensor_id::gguf_block;
use crate::model::{Block, BlockOpts, Blocks, ModelError, Result, TensorId, Weights};
use crate::progress::Progress;

/// How quantized weights are rounded onto their GGUF grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// Nearest grid point, scales fitted without data (uniform importance).
    Rtn,
    /// Nearest grid point, scales fitted with the imatrix weighting (llama.cpp's recipe).
    Imatrix,
    /// GPTQ: imatrix-weighted grids, columns rounded in turn with error feedback through H.
    Gptq,
}

/// How weights are chosen for pruning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Pruner {
    /// Smallest |w| in each row.
    Magnitude,
    /// Smallest |w|·‖x_j‖ in each row (Wanda).
    Wanda,
    /// SparseGPT: masks by w²/[H⁻¹]_jj with the remaining weights updated.
    Sparsegpt,
}

#[derive(Debug, Clone)]
pub struct CompressOptions {
    pub method: Method,
    pub pruner: Pruner,
    /// Block i sees the outputs of the compressed blocks before it (else the original model's).
    pub sequential: bool,
    pub gptq: GptqOptions,
    /// Windows per forward pass.
    pub batch: usize,
    /// Column importances to use instead of those measured on the calibration windows.
    pub imatrix: Option<Imatrix>,
    /// Where the calibration states between blocks may live.
    pub state_limits: StateLimits,
}

/// Rows of the token embedding or output quantized at a time from a streamed model.
const EMBEDDING_ROWS: usize = 4096;

/// Compresses `weights` by `plan` with calibration `windows`. A streamed model is read block by
/// block and its encoded tensors kept in a temporary file, so only one block is in memory.
/// `progress`'s stage "compress: blocks" counts the blocks.
pub fn compress(
    weights: Weights,
    windows: &Windows,
    plan: &Plan,
    opts: &CompressOptions,
    progress: &mut dyn Progress,
) -> Result<Compressed> {
    let config = weights.config().clone();
    plan.validate(&config).map_err(ModelError::InvalidConfig)?;
    let mut runner = Runner::new(&weights, windows, opts.batch, opts.state_limits)?;
    let io = |error| ModelError::Io { path: std::env::temp_dir(), error };
    let (mut resident, streamed) = match weights {
        Weights::Resident(m) => (Some(m), None),
        Weights::Streamed(s) => (None, Some(s)),
    };
    let mut encoded = if streamed.is_some() { Encoded::spilled().map_err(io)? } else { Encoded::in_memory() };
    let mut source_blocks = resident.as_mut().map(|m| std::mem::take(&mut m.blocks).into_iter());
    let mut new_blocks = Vec::new();
    let mut report = Vec::new();
    let n_blocks = config.n_layers;
    progress.start("compress: blocks", n_blocks);
    for i in 0..n_blocks {
        progress.step(i, None);
        let mut block = match (&mut source_blocks, &streamed) {
            (Some(blocks), _) => blocks.next().expect("one block per index"),
            (None, Some(s)) if !plan.drop_blocks.contains(&i) => s.block(i)?,
            _ => continue,
        };
        if plan.drop_blocks.contains(&i) {
            continue;
        }
        let block_opts =
            BlockOpts { skip_attention: plan.drop_attention.contains(&i), skip_mlp: plan.drop_mlp.contains(&i) };
        let planned = block.linears().iter().any(|l| plan.tensors.contains_key(&l.name));
        let mut moments = BlockMoments::weighted(&block, opts.gptq.token_weights);
        // The original block's outputs: the next block's inputs unless compressing sequentially.
        let original = match planned {
            true => Some(runner.run(&block, block_opts, &mut moments, |_, _| {})?)
                .filter(|_| !opts.sequential)
                .unwrap_or_default(),
            false => Vec::new(),
        };
        let mut factors = Factors::default();
        for l in block.linears_mut() {
            if plan.removes_linear(i, &l.name) {
                // A removed sublayer adds nothing: its linears become zeros.
                let (rows, cols) = (l.out_features(), l.in_features());
                let t = plan.zeroed_type(&l.name, cols);
                let zeros = vec![0f32; rows * cols];
                let bytes = if t.is_quantized() { quantize(t, &zeros, cols, None) } else { encode_plain(t, &zeros) };
                l.weight = l.weight.zeros_like()?;
                encoded.insert(l.name.clone(), t, bytes).map_err(io)?;
                continue;
            }
            let Some(spec) = plan.tensors.get(&l.name) else { continue };
            let t0 = Instant::now();
            let m = moments.of(&l.name).expect("every linear has an input group");
            let (rows, cols) = (l.out_features(), l.in_features());
            let w = with_f32(&l.weight, <[f32]>::to_vec)?;
            let imp = importance(m, opts.imatrix.as_ref(), &l.name);
            let factor = if opts.method == Method::Gptq || sparsegpt_of(spec, opts).is_some() {
                Some(factors.of(m, opts.gptq, sparsegpt_of(spec, opts))?)
            } else {
                None
            };
            let (new_w, bytes) = compress_linear(&w, rows, cols, spec, m, factor, &imp, opts, &l.name)?;
            let rel_error = relative_output_error(m, &w, &new_w);
            report.push(TensorReport {
                name: l.name.clone(),
                qtype: spec.qtype.name().into(),
                shape: [rows, cols],
                sparsity: spec.sparsity.map(|s| s.share()).filter(|&p| p > 0.0),
                zeros: new_w.iter().filter(|&&x| x == 0.0).count() as f64 / new_w.len() as f64,
                rel_error: Some(rel_error),
                seconds: t0.elapsed().as_secs_f64(),
            });
            l.weight = Tensor::from_vec(new_w, (rows, cols), &Device::Cpu)?;
            encoded.insert(l.name.clone(), spec.qtype, bytes).map_err(io)?;
        }
        drop(factors);
        drop(moments);
        if i + 1 < n_blocks {
            if opts.sequential || !planned {
                runner.step(&block, block_opts)?;
            } else {
                runner.advance(original)?;
            }
        }
        if resident.is_some() {
            new_blocks.push(block);
        }
    }
    progress.step(n_blocks, None);
    drop(runner);
    // Token embedding and a separate output matrix: no calibrated rounding (llama-imatrix has
    // no entries for them either).
    for id in [TensorId::TOKEN_EMBD, TensorId::OUTPUT] {
        let name = id.to_string();
        let Some(spec) = plan.tensors.get(&name) else { continue };
        let t0 = Instant::now();
        let (bytes, zeros, shape) = match (&mut resident, &streamed) {
            (Some(model), _) => {
                let target = if id == TensorId::TOKEN_EMBD {
                    &mut model.embed
                } else {
                    &mut model.lm_head.as_mut().expect("validated").weight
                };
                let (rows, cols) = target.dims2()?;
                let w = with_f32(target, <[f32]>::to_vec)?;
                let bytes = quantize(spec.qtype, &w, cols, None);
                let new_w = dequantize(spec.qtype, &bytes, w.len());
                let zeros = new_w.iter().filter(|&&x| x == 0.0).count();
                *target = Tensor::from_vec(new_w, (rows, cols), &Device::Cpu)?;
                (bytes, zeros, [rows, cols])
            }
            (None, Some(s)) => {
                // Rows are independent in every type: quantized a chunk of rows at a time.
                let (rows, cols) = (config.vocab_size, config.hidden_size);
                let (mut bytes, mut zeros) = (Vec::with_capacity(spec.qtype.bytes(rows * cols)), 0);
                for start in (0..rows).step_by(EMBEDDING_ROWS) {
                    let w = s.store.rows(&name, start..(start + EMBEDDING_ROWS).min(rows))?;
                    let b = with_f32(&w, |w| quantize(spec.qtype, w, cols, None))?;
                    zeros += dequantize(spec.qtype, &b, w.elem_count()).iter().filter(|&&x| x == 0.0).count();
                    bytes.extend(b);
                }
                (bytes, zeros, [rows, cols])
            }
            (None, None) => unreachable!("a model is resident or streamed"),
        };
        let n = shape[0] * shape[1];
        report.push(TensorReport {
            name: name.clone(),
            qtype: spec.qtype.name().into(),
            shape,
            sparsity: None,
            zeros: zeros as f64 / n as f64,
            rel_error: None,
            seconds: t0.elapsed().as_secs_f64(),
        });
        encoded.insert(name, spec.qtype, bytes).map_err(io)?;
    }
    let kept_blocks: Vec<usize> = (0..n_blocks).filter(|i| !plan.drop_blocks.contains(i)).collect();
    encoded.rename(|n| if gguf_block(n).is_some() { renumbered(n, &kept_blocks) } else { Some(n.to_string()) });
    for r in &mut report {
        r.name = renumbered(&r.name, &kept_blocks).unwrap_or_else(|| r.name.clone());
    }
    let mut config = config;
    config.keep_blocks(&kept_blocks);
    let source = resident
        .as_ref()
        .map(|m| m.source.clone())
        .or_else(|| streamed.as_ref().map(|s| s.source.clone()))
        .expect("a model");
    let model = resident.map(|mut m| {
        m.blocks = renumber_blocks(new_blocks, &kept_blocks);
        m.config = config.clone();
        m
    });
    Ok(Compressed { model, config, source, encoded, kept_blocks, report, token_weights: opts.gptq.token_weights })
}

/// Per-column importance for the grids: the given imatrix's means, else the calibration's.
pub(crate) fn importance(m: &InputMoments, imatrix: Option<&Imatrix>, name: &str) -> Vec<f32> {
    if let Some(e) = imatrix.and_then(|im| im.entries.get(name)) {
        if e.in_sum2.len() == m.dim {
            let c = e.count.max(1.0) as f32;
            return e.in_sum2.iter().map(|s| s / c).collect();
        }
    }
    let n = m.n_tokens.max(1) as f32;
    m.sum_sq().iter().map(|s| s / n).collect()
}

pub(crate) fn relative_output_error(m: &InputMoments, w: &[f32], new_w: &[f32]) -> f64 {
    // W and ΔW stacked, only the rows the energies sample (every row below
    // [`InputMoments::row_block_energies`]' threshold): one product with H gives both energies.
    let (n, rows) = (m.dim, w.len() / m.dim);
    let picked = (0..rows).step_by(m.sample_stride(2 * rows, rows));
    let delta =
        picked.clone().flat_map(|r| w[r * n..(r + 1) * n].iter().zip(&new_w[r * n..(r + 1) * n]).map(|(a, b)| a - b));
    let stacked: Vec<f32> = picked.clone().flat_map(|r| w[r * n..(r + 1) * n].iter().copied()).chain(delta).collect();
    let e = m.row_block_energies_exact(&stacked, picked.len());
    if e[0] > 0.0 {
        (e[1] / e[0]).max(0.0).sqrt()
    } else {
        0.0
    }
}

/// GPTQ's factorizations of a block's inputs, one per input and act-order setting, each made
/// on first use: q/k/v and gate/up share theirs, and so do all levels of one linear.
#[derive(Default)]
pub(crate) struct Factors(Vec<(String, bool, Factor)>);

impl Factors {
    /// The factorization GPTQ needs for the input `m` with these options and this sparsity.
    pub fn of(&mut self, m: &InputMoments, gptq: GptqOptions, sparsity: Option<Sparsity>) -> Result<&Factor> {
        let (key, act_order) = (&m.linears[0], uses_act_order(gptq, sparsity));
        let at =
            match self.0.iter().position(|(k, a, f)| k == key && *a == act_order && f.serves(m.dim, gptq, sparsity)) {
                Some(i) => i,
                None => {
                    let f = Factor::new(&m.xxt, m.dim, m.n_tokens, gptq.damp, act_order, key)?;
                    self.0.push((key.clone(), act_order, f));
                    self.0.len() - 1
                }
            };
        Ok(&self.0[at].2)
    }
}

/// The sparsity SparseGPT applies inside GPTQ for `spec` (None when another pruner prunes).
pub(crate) fn sparsegpt_of(spec: &TensorSpec, opts: &CompressOptions) -> Option<Sparsity> {
    spec.sparsity.filter(|s| *s != Sparsity::Unstructured(0.0) && opts.pruner == Pruner::Sparsegpt)
}

/// Prunes and/or quantizes one linear; returns its new weights and their encoding. GPTQ and
/// SparseGPT use `factor` when it serves them (see [`Factors`]), else factorize H themselves.
#[allow(clippy::too_many_arguments)]
pub(crate) fn compress_linear(
    w: &[f32],
    rows: usize,
    cols: usize,
    spec: &TensorSpec,
    m: &InputMoments,
    factor: Option<&Factor>,
    imp: &[f32],
    opts: &CompressOptions,
    name: &str,
) -> Result<(Vec<f32>, Vec<u8>)> {
    let mut w = w.to_vec();
    let t = spec.qtype;
    // Magnitude's or Wanda's choice of the weights to prune, made on the original weights.
    let fixed = match (spec.sparsity.filter(|s| *s != Sparsity::Unstructured(0.0)), opts.pruner) {
        (Some(sp), Pruner::Magnitude) => Some(prune_mask(&w, cols, None, sp)),
        (Some(sp), Pruner::Wanda) => Some(prune_mask(&w, cols, Some(&wanda_norms(&m.sum_sq())), sp)),
        _ => None,
    };
    let sparsegpt = sparsegpt_of(spec, opts);
    let run = |w: &mut [f32], grid: Option<&mut dyn ColumnQuantizer>, mask: Option<Mask>| match factor
        .filter(|f| f.serves(cols, opts.gptq, sparsegpt))
    {
        Some(f) => gptq_factored(w, rows, cols, f, grid, mask, opts.gptq, name),
        None => gptq(w, rows, cols, &m.xxt, m.n_tokens, grid, mask, opts.gptq, name),
    };
    if t.is_quantized() && opts.method == Method::Gptq {
        // The mask, fixed or SparseGPT's, reaches the grid's codes: the bytes hold it.
        let mask = fixed.as_deref().map(Mask::Fixed).or(sparsegpt.map(Mask::Chosen));
        let mut grid = GgufColumns::new(t, &w, rows, cols, Some(imp));
        run(&mut w, Some(&mut grid), mask)?;
        let bytes = grid.into_bytes();
        let w = dequantize(t, &bytes, rows * cols);
        return Ok((w, bytes));
    }
    if let Some(mask) = &fixed {
        w.iter_mut().zip(mask).filter(|(_, &m)| m).for_each(|(x, _)| *x = 0.0);
    }
    if let Some(sp) = sparsegpt {
        run(&mut w, None, Some(Mask::Chosen(sp)))?;
    }
    let bytes = if t.is_quantized() {
        quantize(t, &w, cols, (opts.method == Method::Imatrix).then_some(imp))
    } else {
        encode_plain(t, &w)
    };
    let w = dequantize(t, &bytes, rows * cols);
    Ok((w, bytes))
}

/// The kept blocks (source numbering) renumbered: indices and tensor names.
fn renumber_blocks(blocks: Vec<Block>, kept: &[usize]) -> Vec<Block> {
    blocks
        .into_iter()
        .enumerate()
        .map(|(new, mut b)| {
            for l in b.linears_mut() {
                l.name = renumbered(&l.name, kept).expect("a kept block's linear");
            }
            b.index = new;
            b
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gptq_errors_name_the_tensor_not_the_model_configuration() {
        let (rows, cols) = (4, 32);
        let mut m = InputMoments::new(vec!["blk.0.attn_q.weight".into()], cols);
        m.n_tokens = 8;
        m.xxt.iter_mut().step_by(cols + 1).for_each(|x| *x = 1.0);
        m.xxt[1] = f32::INFINITY;
        let opts = CompressOptions {
            method: Method::Gptq,
            pruner: Pruner::Sparsegpt,
            sequential: true,
            gptq: GptqOptions::default(),
            batch: 1,
            imatrix: None,
            state_limits: StateLimits::UNLIMITED,
        };
        let spec = TensorSpec { qtype: crate::ggml::types::QuantType::Q8_0, sparsity: None };
        let Err(e) =
            compress_linear(&[0.1; 128], rows, cols, &spec, &m, None, &[1.0; 32], &opts, "blk.0.attn_q.weight")
        else {
            panic!("GPTQ on infinite inputs")
        };
        let e = e.to_string();
        assert!(e.starts_with("GPTQ on 'blk.0.attn_q.weight': its calibration inputs are not finite"), "{e}");
    }

    #[test]
    fn renumbering_skips_removed_blocks() {
        let kept = [0, 2, 3];
        assert_eq!(renumbered("blk.2.attn_q.weight", &kept).as_deref(), Some("blk.1.attn_q.weight"));
        assert_eq!(renumbered("blk.1.attn_q.weight", &kept), None);
        assert_eq!(renumbered("token_embd.weight", &kept), None);
    }
}
