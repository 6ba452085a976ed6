//! Writing a compressed model as GGUF for llama.cpp: the source's metadata (tokenizer,
//! hyper-parameters; a GGUF file's own, or for a Hugging Face folder what llama.cpp's converter
//! would write) with the block count and file type updated and the file's real bits per
//! weight added (`triage.bits_per_weight`: all tensor bytes over all weights), every changed
//! tensor in its new type, every other tensor's bytes copied unchanged. Written atomically.

use std::path::Path;

use crate::compress::pipeline::{renumbered, Compressed};
use crate::ggml::types::QuantType;
use crate::model::gguf_file::{self, GgufFile, TensorInfo, Value};
use crate::model::{Format, RopeLayout};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Invalid(String),
}

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

/// One tensor of the source: its name, ggml shape and type, and where its bytes are — in the
/// source GGUF (`stored`), or, for a Hugging Face source, in the model (to be encoded in `qtype`).
struct SourceTensor {
    name: String,
    ne: Vec<u64>,
    qtype: QuantType,
    stored: Option<TensorInfo>,
}

impl SourceTensor {
    fn n_elements(&self) -> u64 {
        self.ne.iter().product()
    }
}

/// What a GGUF written from a source starts from: the source's metadata and tensors — a GGUF
/// file's own, or those llama.cpp's converter would write for a Hugging Face folder.
struct Skeleton {
    metadata: Vec<(String, Value)>,
    tensors: Vec<SourceTensor>,
    /// The GGUF file the stored tensors are read from.
    file: Option<std::fs::File>,
    gguf: Option<GgufFile>,
}

fn skeleton(source: &Path) -> Result<Skeleton, ExportError> {
    if source.is_dir() {
        let config = crate::model::hf::read_config(source).map_err(|e| ExportError::Invalid(e.to_string()))?;
        let tensors = super::hf_gguf::tensors(source, &config)?;
        let metadata = super::hf_gguf::metadata(source, &config, &tensors)?;
        let tensors = tensors.into_iter().map(|t| SourceTensor { name: t.name, ne: t.ne, qtype: t.qtype, stored: None }).collect();
        return Ok(Skeleton { metadata, tensors, file: None, gguf: None });
    }
    let (src, file) = GgufFile::read(source).map_err(|e| ExportError::Invalid(format!("{}: {e}", source.display())))?;
    let tensors = src
        .tensors
        .iter()
        .map(|t| {
            let qtype = t.qtype().ok_or_else(|| ExportError::Invalid(format!("{}: unknown type", t.name)))?;
            Ok(SourceTensor { name: t.name.clone(), ne: t.ne.clone(), qtype, stored: Some(t.clone()) })
        })
        .collect::<Result<_, ExportError>>()?;
    Ok(Skeleton { metadata: src.metadata.clone(), tensors, file: Some(file), gguf: Some(src) })
}

/// Checks that a GGUF can be written from `source` (for a Hugging Face folder: that its
/// configuration and tokenizer can be written), before any work is done.
pub fn check_source(source: &Path) -> Result<(), ExportError> {
    skeleton(source).map(|_| ())
}

/// One tensor of the output: its name (blocks renumbered), shape, type and source tensor.
struct OutInfo<'a> {
    name: String,
    ne: Vec<u64>,
    qtype: QuantType,
    source: &'a SourceTensor,
}

/// The output's metadata and its tensors.
type Layout<'a> = (Vec<(String, Value)>, Vec<OutInfo<'a>>);

/// The output's metadata (without the keys `finish_metadata` sets) and tensors, for the
/// source `src`, the kept blocks, and the new type of every changed tensor (output numbering).
fn layout<'a>(src: &'a Skeleton, kept_blocks: &[usize], new_type: &dyn Fn(&str) -> Option<QuantType>) -> Result<Layout<'a>, ExportError> {
    let arch = match src.metadata.iter().find(|(k, _)| k == "general.architecture") {
        Some((_, Value::String(a))) => a.clone(),
        _ => return Err(ExportError::Invalid("the source has no general.architecture".into())),
    };
    let n_source_blocks = src.tensors.iter().filter_map(|t| t.name.strip_prefix("blk.")?.split_once('.')?.0.parse::<usize>().ok()).max().map_or(0, |m| m + 1);
    let mut metadata = Vec::with_capacity(src.metadata.len() + 4);
    for (k, v) in &src.metadata {
        if ["general.quantized_by", "triage.bits_per_weight"].contains(&k.as_str()) {
            continue;
        }
        let v = if *k == format!("{arch}.block_count") {
            match v {
                Value::U64(_) => Value::U64(kept_blocks.len() as u64),
                _ => Value::U32(kept_blocks.len() as u32),
            }
        } else if let (true, Value::Array(a)) = (k.starts_with(&format!("{arch}.")), v) {
            // Per-layer arrays follow the kept blocks.
            if a.len() == n_source_blocks {
                Value::Array(kept_blocks.iter().map(|&i| a[i].clone()).collect())
            } else {
                v.clone()
            }
        } else {
            v.clone()
        };
        metadata.push((k.clone(), v));
    }
    // Gemma's windowed blocks follow a pattern by block number; once blocks are removed the
    // kept blocks' own flags are written, which llama.cpp reads in place of the pattern.
    let pattern_key = format!("{arch}.attention.sliding_window_pattern");
    let swa_pattern = crate::model::Arch::from_gguf_name(&arch).map_or(0, |a| a.facts().swa_pattern);
    if swa_pattern > 0 && kept_blocks.len() != n_source_blocks && !metadata.iter().any(|(k, _)| *k == pattern_key) {
        let source = crate::model::Config::sliding_pattern(swa_pattern, n_source_blocks);
        let flags: Vec<bool> = kept_blocks.iter().map(|&i| source[i]).collect();
        if flags != crate::model::Config::sliding_pattern(swa_pattern, flags.len()) {
            metadata.push((pattern_key, Value::Array(flags.into_iter().map(Value::Bool).collect())));
        }
    }
    let mut tensors = Vec::with_capacity(src.tensors.len());
    for t in &src.tensors {
        let name = if t.name.starts_with("blk.") {
            match renumbered(&t.name, kept_blocks) {
                Some(n) => n,
                None => continue,
            }
        } else {
            t.name.clone()
        };
        let qtype = new_type(&name).unwrap_or(t.qtype);
        tensors.push(OutInfo { name, ne: t.ne.clone(), qtype, source: t });
    }
    Ok((metadata, tensors))
}

/// Sets the file type and quantization version (in place when the source has them, as the
/// converter places them) and adds who quantized and the real bits per weight.
fn finish_metadata(metadata: &mut Vec<(String, Value)>, main_type: QuantType, bits_per_weight: f64) {
    for (key, v) in [("general.quantization_version", Value::U32(2)), ("general.file_type", Value::U32(main_type.ftype()))] {
        match metadata.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = v,
            None => metadata.push((key.into(), v)),
        }
    }
    metadata.push(("general.quantized_by".into(), Value::String("triage".into())));
    metadata.push(("triage.bits_per_weight".into(), Value::F32(bits_per_weight as f32)));
}

/// Sizes of a GGUF that `write_gguf` would write.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct PredictedSize {
    /// The whole file.
    pub bytes: u64,
    /// All tensor data, without alignment padding.
    pub tensor_bytes: u64,
    pub n_weights: u64,
}

impl PredictedSize {
    pub fn bits_per_weight(&self) -> f64 {
        8.0 * self.tensor_bytes as f64 / self.n_weights.max(1) as f64
    }
}

/// The exact size of the GGUF `write_gguf` makes from `source` (a GGUF file or a Hugging Face
/// folder) with `kept_blocks`
/// (source numbering) and tensors of `types` (source names) changed.
pub fn predicted_size(source: &Path, kept_blocks: &[usize], types: &std::collections::BTreeMap<String, QuantType>) -> Result<PredictedSize, ExportError> {
    let src = skeleton(source)?;
    let renamed: std::collections::BTreeMap<String, QuantType> =
        types.iter().map(|(n, &t)| (renumbered(n, kept_blocks).unwrap_or_else(|| n.clone()), t)).collect();
    let (mut metadata, tensors) = layout(&src, kept_blocks, &|n| renamed.get(n).copied())?;
    finish_metadata(&mut metadata, QuantType::F32, 0.0);
    let infos: Vec<(&str, &[u64], QuantType)> = tensors.iter().map(|t| (t.name.as_str(), t.ne.as_slice(), t.qtype)).collect();
    let bytes = gguf_file::file_len(&metadata, &infos)?;
    let tensor_bytes = tensors.iter().map(|t| t.qtype.bytes(t.source.n_elements() as usize) as u64).sum();
    let n_weights = tensors.iter().map(|t| t.source.n_elements()).sum();
    Ok(PredictedSize { bytes, tensor_bytes, n_weights })
}

/// Writes `c` to `path` as GGUF: from a GGUF source its metadata and unchanged tensors are
/// copied; from a Hugging Face folder they are what llama.cpp's converter writes (see
/// [`super::hf_gguf`]), unchanged matrices in F16. One tensor at a time: each is read (from the
/// encoded tensors or the source's files), written, and dropped.
pub fn write_gguf(path: &Path, c: &Compressed) -> Result<GgufSummary, ExportError> {
    let source = &c.source;
    let mut src = skeleton(&source.path)?;
    let mut file = src.file.take();
    let (mut metadata, infos) = layout(&src, &c.kept_blocks, &|n| c.encoded.qtype(n))?;
    // Llama checkpoints pair RoPE dimensions i and i + d/2; llama.cpp pairs 2i and 2i + 1.
    let cfg = &c.config;
    let permute = |name: &str| -> Option<usize> {
        if source.format != Format::HuggingFace || !cfg.arch.facts().gguf_rope_interleaved || cfg.rope_layout != RopeLayout::HalfSplit {
            return None;
        }
        match name.split('.').nth(2) {
            Some("attn_q") => Some(cfg.n_heads),
            Some("attn_k") => Some(cfg.n_kv_heads),
            _ => None,
        }
    };
    let mut summary = GgufSummary { bytes: 0, tensor_bytes: 0, n_weights: 0, bits_per_weight: 0.0, type_bytes: Default::default() };
    let mut linear_types: std::collections::BTreeMap<QuantType, u64> = Default::default();
    for o in &infos {
        let n = o.qtype.bytes(o.source.n_elements() as usize) as u64;
        summary.tensor_bytes += n;
        summary.n_weights += o.source.n_elements();
        *summary.type_bytes.entry(o.qtype.name().to_string()).or_default() += n;
        if o.name.starts_with("blk.") && o.ne.len() == 2 {
            *linear_types.entry(o.qtype).or_default() += n;
        }
    }
    let main_type = linear_types.iter().max_by_key(|(_, &b)| b).map_or(QuantType::F32, |(&t, _)| t);
    summary.bits_per_weight = 8.0 * summary.tensor_bytes as f64 / summary.n_weights.max(1) as f64;
    finish_metadata(&mut metadata, main_type, summary.bits_per_weight);
    // A Hugging Face source's unchanged tensors are read from its files.
    let folder = match source.format {
        Format::HuggingFace => Some(crate::model::hf::open(&source.path).map_err(|e| ExportError::Invalid(e.to_string()))?),
        Format::Gguf => None,
    };
    let invalid = |e: ExportError| std::io::Error::other(e.to_string());
    let data = |k: usize| -> std::io::Result<std::borrow::Cow<[u8]>> {
        let o = &infos[k];
        let data = match (c.encoded.bytes(&o.name)?, &o.source.stored, &mut file, &src.gguf) {
            (Some(bytes), _, _, _) => bytes,
            (None, Some(info), Some(f), Some(g)) => std::borrow::Cow::Owned(g.read_data(f, info).map_err(|e| std::io::Error::other(e.to_string()))?),
            _ => std::borrow::Cow::Owned(encode_unchanged(folder.as_ref(), cfg, &o.source.name, o.qtype).map_err(invalid)?),
        };
        let data = match permute(&o.name) {
            Some(heads) => std::borrow::Cow::Owned(crate::model::rope::permute_rows(&data, &crate::model::rope::interleaved_order(heads, cfg.head_dim))),
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
    let shapes: Vec<(&str, &[u64], QuantType)> = infos.iter().map(|t| (t.name.as_str(), t.ne.as_slice(), t.qtype)).collect();
    super::write_atomic(path, |w| gguf_file::write_with(w, &metadata, &shapes, data).map_err(ExportError::Io))?;
    summary.bytes = std::fs::metadata(path)?.len();
    Ok(summary)
}

/// An unchanged tensor of a Hugging Face source (`name` in the source's numbering), read from
/// its folder and encoded plainly as `qtype` (F32 or F16); RoPE factors from the configuration.
fn encode_unchanged(folder: Option<&crate::model::Streamed>, cfg: &crate::model::Config, name: &str, qtype: QuantType) -> Result<Vec<u8>, ExportError> {
    let factors = |f: &Option<Vec<f32>>| f.clone().ok_or_else(|| ExportError::Invalid(format!("{name} without the RoPE scaling that holds it")));
    let values: Vec<f32> = if name == "rope_freqs.weight" || name == "rope_factors_short.weight" {
        factors(&cfg.rope_freq_factors)?
    } else if name == "rope_factors_long.weight" {
        factors(&cfg.rope_long_factors)?
    } else {
        let folder = folder.ok_or_else(|| ExportError::Invalid(format!("no source for tensor {name}")))?;
        let t = folder.store.tensor(name).map_err(|e| ExportError::Invalid(e.to_string()))?.ok_or_else(|| ExportError::Invalid(format!("the model has no tensor {name}")))?;
        t.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(|e| ExportError::Invalid(e.to_string()))?
    };
    if qtype.is_quantized() {
        return Err(ExportError::Invalid(format!("{name}: an unchanged tensor cannot be written as {qtype}")));
    }
    Ok(crate::ggml::codec::encode_plain(qtype, &values))
}
