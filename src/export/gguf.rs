//! Writing a compressed model as GGUF for llama.cpp: the source file's metadata (tokenizer,
//! hyper-parameters) with the block count and file type updated and the file's real bits per
//! weight added (`triage.bits_per_weight`: all tensor bytes over all weights), every changed
//! tensor in its new type, every other tensor's bytes copied unchanged. Written atomically.

use std::path::Path;

use crate::compress::pipeline::{renumbered, Compressed};
use crate::compress::types::QuantType;
use crate::model::gguf_file::{self, GgufFile, OutTensor, TensorInfo, Value};
use crate::model::Format;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Invalid(String),
}

/// llama.cpp's `general.file_type` (LLAMA_FTYPE_MOSTLY_*) for a model mostly of type `t`.
pub fn llama_ftype(t: QuantType) -> u32 {
    use QuantType::*;
    match t {
        F32 => 0,
        F16 => 1,
        Q4_0 => 2,
        Q4_1 => 3,
        Q8_0 => 7,
        Q5_0 => 8,
        Q5_1 => 9,
        Q2K => 10,
        Q3K => 12,
        Q4K => 15,
        Q5K => 17,
        Q6K => 18,
        IQ4NL => 25,
        BF16 => 32,
    }
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

/// One tensor of the output: its name (blocks renumbered), shape, type and source tensor.
struct OutInfo<'a> {
    name: String,
    ne: Vec<u64>,
    qtype: QuantType,
    source: &'a TensorInfo,
}

/// The output's metadata and its tensors.
type Layout<'a> = (Vec<(String, Value)>, Vec<OutInfo<'a>>);

/// The output's metadata (without the four keys `finish_metadata` adds) and tensors, for the
/// source `src`, the kept blocks, and the new type of every changed tensor (output numbering).
fn layout<'a>(src: &'a GgufFile, kept_blocks: &[usize], new_type: &dyn Fn(&str) -> Option<QuantType>) -> Result<Layout<'a>, ExportError> {
    let arch = match src.get("general.architecture") {
        Some(Value::String(a)) => a.clone(),
        _ => return Err(ExportError::Invalid("the source has no general.architecture".into())),
    };
    let n_source_blocks = src.tensors.iter().filter_map(|t| t.name.strip_prefix("blk.")?.split_once('.')?.0.parse::<usize>().ok()).max().map_or(0, |m| m + 1);
    let mut metadata = Vec::with_capacity(src.metadata.len() + 4);
    for (k, v) in &src.metadata {
        if ["general.file_type", "general.quantization_version", "general.quantized_by", "triage.bits_per_weight"].contains(&k.as_str()) {
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
    let mut tensors = Vec::with_capacity(src.tensors.len());
    for info in &src.tensors {
        let name = if info.name.starts_with("blk.") {
            match renumbered(&info.name, kept_blocks) {
                Some(n) => n,
                None => continue,
            }
        } else {
            info.name.clone()
        };
        let qtype = match new_type(&name) {
            Some(t) => t,
            None => info.qtype().ok_or_else(|| ExportError::Invalid(format!("{}: unknown type", info.name)))?,
        };
        tensors.push(OutInfo { name, ne: info.ne.clone(), qtype, source: info });
    }
    Ok((metadata, tensors))
}

fn finish_metadata(metadata: &mut Vec<(String, Value)>, main_type: QuantType, bits_per_weight: f64) {
    metadata.push(("general.quantization_version".into(), Value::U32(2)));
    metadata.push(("general.file_type".into(), Value::U32(llama_ftype(main_type))));
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

/// The exact size of the GGUF `write_gguf` makes from the GGUF `source` with `kept_blocks`
/// (source numbering) and tensors of `types` (source names) changed.
pub fn predicted_size(source: &Path, kept_blocks: &[usize], types: &std::collections::BTreeMap<String, QuantType>) -> Result<PredictedSize, ExportError> {
    let (src, _) = GgufFile::read(source).map_err(|e| ExportError::Invalid(format!("{}: {e}", source.display())))?;
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

/// Writes `c` to `path` as GGUF, copying metadata and unchanged tensors from the source GGUF.
pub fn write_gguf(path: &Path, c: &Compressed) -> Result<GgufSummary, ExportError> {
    let source = &c.model.source;
    if source.format != Format::Gguf {
        return Err(ExportError::Invalid(
            "GGUF output needs a GGUF source model (its tokenizer and metadata are copied); write a Hugging Face folder instead (--out DIR)".into(),
        ));
    }
    let (src, mut file) = GgufFile::read(&source.path).map_err(|e| ExportError::Invalid(format!("{}: {e}", source.path.display())))?;
    let (mut metadata, infos) = layout(&src, &c.kept_blocks, &|n| c.encoded.get(n).map(|(t, _)| *t))?;
    let mut tensors = Vec::with_capacity(infos.len());
    let mut summary = GgufSummary { bytes: 0, tensor_bytes: 0, n_weights: 0, bits_per_weight: 0.0, type_bytes: Default::default() };
    let mut linear_types: std::collections::BTreeMap<QuantType, u64> = Default::default();
    for o in infos {
        let data = match c.encoded.get(&o.name) {
            Some((_, bytes)) => std::borrow::Cow::Borrowed(bytes.as_slice()),
            None => std::borrow::Cow::Owned(src.read_data(&mut file, o.source).map_err(|e| ExportError::Invalid(e.to_string()))?),
        };
        summary.tensor_bytes += data.len() as u64;
        summary.n_weights += o.source.n_elements();
        *summary.type_bytes.entry(o.qtype.name().to_string()).or_default() += data.len() as u64;
        if o.name.starts_with("blk.") && o.ne.len() == 2 {
            *linear_types.entry(o.qtype).or_default() += data.len() as u64;
        }
        tensors.push(OutTensor { name: o.name, ne: o.ne, qtype: o.qtype, data });
    }
    let main_type = linear_types.iter().max_by_key(|(_, &b)| b).map_or(QuantType::F32, |(&t, _)| t);
    summary.bits_per_weight = 8.0 * summary.tensor_bytes as f64 / summary.n_weights.max(1) as f64;
    finish_metadata(&mut metadata, main_type, summary.bits_per_weight);
    super::write_atomic(path, |w| gguf_file::write(w, &metadata, &tensors).map_err(ExportError::Io))?;
    summary.bytes = std::fs::metadata(path)?.len();
    Ok(summary)
}
