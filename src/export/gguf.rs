//! Writing a compressed model as GGUF for llama.cpp: the source's metadata (tokenizer,
//! hyper-parameters; a GGUF file's own, or for a Hugging Face folder what llama.cpp's converter
//! would write) with the block count and file type updated and the file's real bits per
//! weight added (`triage.bits_per_weight`: all tensor bytes over all weights), every changed
//! tensor in its new type, every other tensor's bytes copied unchanged. Written atomically.

use std::path::Path;

use crate::calib::token_weights::TokenWeights;
use crate::compress::compressed::Compressed;
use crate::ggml::types::QuantType;
use crate::layout::{finish_metadata, layout, Skeleton};
use crate::model::gguf_file;
use crate::model::tensor_id::gguf_block;
use crate::model::{Format, RopeLayout, TensorId, TensorKind};

use super::ExportError;

/// The file written: its size and bits per weight over every tensor.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GgufSummary {
    pub bytes: u64,
    pub tensor_bytes: u64,
    pub n_weights: u64,
    pub bits_per_weight: f64,
    /// Bytes per tensor type.
    pub type_bytes: std::collections::BTreeMap<String, u64>,
}

/// Writes `c` to `path` as GGUF: from a GGUF source its metadata and unchanged tensors are
/// copied; from a Hugging Face folder they are what llama.cpp's converter writes (see
/// [`crate::layout::converter`]), unchanged matrices in F16. One tensor at a time: each is read (from the
/// encoded tensors or the source's files), written, and dropped.
pub fn write_gguf(path: &Path, c: &Compressed) -> Result<GgufSummary, ExportError> {
    let source = &c.source;
    let mut src = Skeleton::open(&source.path)?;
    let mut file = src.file.take();
    let (mut metadata, infos) = layout(&src, &c.kept_blocks, &|n| c.encoded.qtype(n))?;
    // llama.cpp runs SmolLM3 without RoPE in every n-th block by number and has no key to list
    // other blocks: a model whose NoPE blocks are elsewhere (blocks removed) cannot be written.
    let nope = c.config.arch.facts().nope_interval;
    if nope > 0 && c.config.nope_layers != crate::model::Config::nope_pattern(nope, c.config.n_layers) {
        return Err(ExportError::Invalid(format!(
            "llama.cpp runs {} without RoPE in every {nope}th block, but this model's blocks without RoPE are elsewhere (after removing blocks); write a Hugging Face folder instead",
            c.config.arch.gguf_name()
        )));
    }
    let cfg = &c.config;
    let permute = |name: &str| rope_permuted_heads(source.format, cfg, name);
    let (mut summary, main_type) = summarize(&infos);
    finish_metadata(&mut metadata, main_type, summary.bits_per_weight);
    if c.token_weights != TokenWeights::Equal {
        metadata.push(("triage.token_weights".into(), gguf_file::Value::String(c.token_weights.name().into())));
    }
    // A Hugging Face source's unchanged tensors are read from its files.
    let folder = match source.format {
        Format::HuggingFace => {
            Some(crate::model::Streamed::open(&source.path).map_err(|e| ExportError::Invalid(e.to_string()))?)
        }
        Format::Gguf => None,
    };
    let invalid = |e: ExportError| std::io::Error::other(e.to_string());
    let data = |k: usize| -> std::io::Result<std::borrow::Cow<[u8]>> {
        let o = &infos[k];
        let data = match (c.encoded.bytes(&o.name)?, &o.source.stored, &mut file, &src.gguf) {
            (Some(bytes), _, _, _) => bytes,
            (None, Some(info), Some(f), Some(g)) => {
                std::borrow::Cow::Owned(g.read_data(f, info).map_err(|e| std::io::Error::other(e.to_string()))?)
            }
            _ => std::borrow::Cow::Owned(
                encode_unchanged(folder.as_ref(), cfg, &o.source.name, o.qtype).map_err(invalid)?,
            ),
        };
        let data = match permute(&o.name) {
            Some(heads) => std::borrow::Cow::Owned(crate::model::rope::permute_rows(
                &data,
                &crate::model::rope::interleaved_order(heads, cfg.head_dim),
            )),
            None => data,
        };
        // The converter drops Gemma 3's embedding rows beyond its vocabulary: rows are
        // independent in every type, so the leading bytes are the kept rows.
        let want = o.qtype.bytes(o.source.n_elements() as usize);
        Ok(match data {
            std::borrow::Cow::Borrowed(d) => std::borrow::Cow::Borrowed(&d[..want.min(d.len())]),
            std::borrow::Cow::Owned(mut d) => {
                d.truncate(want);
                std::borrow::Cow::Owned(d)
            }
        })
    };
    let shapes: Vec<(&str, &[u64], QuantType)> =
        infos.iter().map(|t| (t.name.as_str(), t.ne.as_slice(), t.qtype)).collect();
    crate::temp::write_atomic(path, |w| gguf_file::write_with(w, &metadata, &shapes, data).map_err(ExportError::Io))?;
    summary.bytes = std::fs::metadata(path)?.len();
    Ok(summary)
}

/// Llama checkpoints pair RoPE dimensions i and i + d/2; llama.cpp pairs 2i and 2i + 1: the
/// number of heads whose rows tensor `name` of a Hugging Face source has reordered in a GGUF.
pub(crate) fn rope_permuted_heads(format: Format, cfg: &crate::model::Config, name: &str) -> Option<usize> {
    if format != Format::HuggingFace
        || !cfg.arch.facts().gguf_rope_interleaved
        || cfg.rope_layout != RopeLayout::HalfSplit
    {
        return None;
    }
    match TensorId::parse_gguf(name).map(|id| id.kind) {
        Some(TensorKind::AttnQ) => Some(cfg.n_heads),
        Some(TensorKind::AttnK) => Some(cfg.n_kv_heads),
        _ => None,
    }
}

/// The sizes of a GGUF of tensors `infos`, and its main type (the one holding the most bytes of
/// the blocks' matrices; F32 when there are none).
pub(crate) fn summarize(infos: &[crate::layout::OutInfo]) -> (GgufSummary, QuantType) {
    let mut summary =
        GgufSummary { bytes: 0, tensor_bytes: 0, n_weights: 0, bits_per_weight: 0.0, type_bytes: Default::default() };
    let mut linear_types: std::collections::BTreeMap<QuantType, u64> = Default::default();
    for o in infos {
        let n = o.qtype.bytes(o.source.n_elements() as usize) as u64;
        summary.tensor_bytes += n;
        summary.n_weights += o.source.n_elements();
        *summary.type_bytes.entry(o.qtype.name().to_string()).or_default() += n;
        if gguf_block(&o.name).is_some() && o.ne.len() == 2 {
            *linear_types.entry(o.qtype).or_default() += n;
        }
    }
    let main_type = linear_types.iter().max_by_key(|(_, &b)| b).map_or(QuantType::F32, |(&t, _)| t);
    summary.bits_per_weight = 8.0 * summary.tensor_bytes as f64 / summary.n_weights.max(1) as f64;
    (summary, main_type)
}

/// An unchanged tensor of a Hugging Face source (`name` in the source's numbering), read from
/// its folder and encoded plainly as `qtype` (F32 or F16); RoPE factors from the configuration.
pub(crate) fn encode_unchanged(
    folder: Option<&crate::model::Streamed>,
    cfg: &crate::model::Config,
    name: &str,
    qtype: QuantType,
) -> Result<Vec<u8>, ExportError> {
    let factors = |f: &Option<Vec<f32>>| {
        f.clone().ok_or_else(|| ExportError::Invalid(format!("{name} without the RoPE scaling that holds it")))
    };
    let values: Vec<f32> = if name == "rope_freqs.weight" || name == "rope_factors_short.weight" {
        factors(&cfg.rope_freq_factors)?
    } else if name == "rope_factors_long.weight" {
        factors(&cfg.rope_long_factors)?
    } else {
        let folder = folder.ok_or_else(|| ExportError::Invalid(format!("no source for tensor {name}")))?;
        let t = folder
            .store
            .tensor(name)
            .map_err(|e| ExportError::Invalid(e.to_string()))?
            .ok_or_else(|| ExportError::Invalid(format!("the model has no tensor {name}")))?;
        t.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(|e| ExportError::Invalid(e.to_string()))?
    };
    if qtype.is_quantized() {
        return Err(ExportError::Invalid(format!("{name}: an unchanged tensor cannot be written as {qtype}")));
    }
    Ok(crate::ggml::codec::encode_plain(qtype, &values))
}
