//! Writing a model with its residual stream rotated (see [`crate::rotate`]) as GGUF: the source's
//! metadata and tensor list, every tensor of the stream rotated (matrices in the type asked for,
//! norms — now ones — in F32), an `output.weight` of its own where the source ties it to the
//! embedding, `triage.rotation` saying which Q. A block at a time: a streamed model is read, rotated
//! and written one block after another. Written atomically.

use std::borrow::Cow;
use std::path::Path;

use candle_core::Tensor;

use super::gguf::{encode_unchanged, rope_permuted_heads, summarize, GgufSummary};
use super::ExportError;
use crate::ggml::codec::encode_plain;
use crate::ggml::types::QuantType;
use crate::layout::{finish_metadata, layout, OutInfo, Skeleton, SourceTensor};
use crate::model::kernels::with_f32;
use crate::model::{block_tensor, gguf_file, Block, Blocks, Format, TensorId, Weights};
use crate::progress::Progress;
use crate::rotate::model::{check_supported, rotate_block, rotate_embedding, rotate_head};
use crate::rotate::Rotation;

/// Writes `weights` rotated by `r` to `path`, the matrices as `matrix_type` (F32, F16 or BF16).
/// `progress`'s stage "rotate: blocks" counts the blocks.
pub fn write_rotated(
    path: &Path,
    weights: &Weights,
    r: &Rotation,
    matrix_type: QuantType,
    progress: &mut dyn Progress,
) -> Result<GgufSummary, ExportError> {
    let model: &dyn Blocks = match weights {
        Weights::Resident(m) => m,
        Weights::Streamed(s) => s,
    };
    let cfg = model.config();
    let invalid = |e: crate::model::ModelError| ExportError::Invalid(e.to_string());
    check_supported(cfg).map_err(invalid)?;
    if matrix_type.is_quantized() {
        return Err(ExportError::Invalid(format!("a rotated model is written in F32, F16 or BF16, not {matrix_type}")));
    }
    if r.width() != cfg.hidden_size {
        return Err(ExportError::Invalid(format!(
            "a rotation of width {} for hidden size {}",
            r.width(),
            cfg.hidden_size
        )));
    }
    let source = model.source();
    let mut src = Skeleton::open(&source.path)?;
    let mut file = src.file.take();
    // The stream's tensors change type; others (RoPE factors) stay as they are.
    let is_stream = |name: &str| {
        TensorId::parse_gguf(name).is_some_and(|id| {
            id.block.is_some() || [TensorId::TOKEN_EMBD, TensorId::OUTPUT, TensorId::OUTPUT_NORM].contains(&id)
        })
    };
    let ndim: std::collections::BTreeMap<&str, usize> =
        src.tensors.iter().map(|t| (t.name.as_str(), t.ne.len())).collect();
    let new_type = |name: &str| match ndim.get(name) {
        Some(2) if is_stream(name) => Some(matrix_type),
        Some(_) if is_stream(name) => Some(QuantType::F32),
        _ => None,
    };
    let kept: Vec<usize> = (0..cfg.n_layers).collect();
    let (mut metadata, mut infos) = layout(&src, &kept, &new_type)?;
    let output = SourceTensor {
        name: TensorId::OUTPUT.to_string(),
        ne: vec![cfg.hidden_size as u64, cfg.vocab_size as u64],
        qtype: matrix_type,
        stored: None,
    };
    if cfg.tie_word_embeddings {
        // After the embedding, where llama.cpp's converter puts an untied output.
        let at = infos.iter().position(|o| o.name == TensorId::OUTPUT_NORM.to_string()).map_or(infos.len(), |k| k + 1);
        infos.insert(
            at,
            OutInfo { name: output.name.clone(), ne: output.ne.clone(), qtype: matrix_type, source: &output },
        );
    }
    let (mut summary, main_type) = summarize(&infos);
    finish_metadata(&mut metadata, main_type, summary.bits_per_weight);
    metadata.push(("triage.rotation".into(), gguf_file::Value::String(r.describe())));
    metadata.push(("triage.rotation.seed".into(), gguf_file::Value::U64(r.seed)));

    let folder = match source.format {
        Format::HuggingFace => Some(crate::model::Streamed::open(&source.path).map_err(invalid)?),
        Format::Gguf => None,
    };
    let io = |e: crate::model::ModelError| std::io::Error::other(e.to_string());
    let (vocab, h) = (cfg.vocab_size, cfg.hidden_size);
    // The block being written, rotated once for all its tensors.
    let mut current: Option<Block> = None;
    progress.start("rotate: blocks", cfg.n_layers);
    let mut rotated = |name: &str| -> crate::model::Result<Option<Tensor>> {
        let Some(id) = TensorId::parse_gguf(name).filter(|_| is_stream(name)) else { return Ok(None) };
        if let Some(i) = id.block {
            if current.as_ref().is_none_or(|b| b.index != i) {
                progress.step(i, None);
                let mut b = model.block(i)?.into_owned();
                rotate_block(&mut b, r)?;
                current = Some(b);
            }
            let b = current.as_ref().expect("just set");
            return Ok(block_tensor(b, &id).cloned());
        }
        Ok(Some(match id {
            id if id == TensorId::TOKEN_EMBD => rotate_embedding(&model.rows(name, 0..vocab)?, r)?,
            id if id == TensorId::OUTPUT_NORM => Tensor::ones(h, candle_core::DType::F32, &candle_core::Device::Cpu)?,
            _ => {
                let head = if cfg.tie_word_embeddings { TensorId::TOKEN_EMBD } else { TensorId::OUTPUT };
                rotate_head(&model.rows(&head.to_string(), 0..vocab)?, model.final_norm(), r)?
            }
        }))
    };
    let data = |k: usize| -> std::io::Result<Cow<[u8]>> {
        let o = &infos[k];
        let bytes = match rotated(&o.name).map_err(io)? {
            Some(t) => {
                let v = with_f32(&t, <[f32]>::to_vec).map_err(io)?;
                let bytes = encode_plain(o.qtype, &v);
                match rope_permuted_heads(source.format, cfg, &o.name) {
                    Some(heads) => crate::model::rope::permute_rows(
                        &bytes,
                        &crate::model::rope::interleaved_order(heads, cfg.head_dim),
                    ),
                    None => bytes,
                }
            }
            None => match (&o.source.stored, &mut file, &src.gguf) {
                (Some(info), Some(f), Some(g)) => {
                    g.read_data(f, info).map_err(|e| std::io::Error::other(e.to_string()))?
                }
                _ => encode_unchanged(folder.as_ref(), cfg, &o.source.name, o.qtype)
                    .map_err(|e| std::io::Error::other(e.to_string()))?,
            },
        };
        Ok(Cow::Owned(bytes))
    };
    let shapes: Vec<(&str, &[u64], QuantType)> =
        infos.iter().map(|t| (t.name.as_str(), t.ne.as_slice(), t.qtype)).collect();
    crate::temp::write_atomic(path, |w| gguf_file::write_with(w, &metadata, &shapes, data).map_err(ExportError::Io))?;
    summary.bytes = std::fs::metadata(path)?.len();
    Ok(summary)
}
