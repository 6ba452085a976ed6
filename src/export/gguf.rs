//! Writing a compressed model as GGUF for llama.cpp: the source file's metadata (tokenizer,
//! hyper-parameters) with the block count and file type updated and the file's real bits per
//! weight added (`triage.bits_per_weight`: all tensor bytes over all weights), every changed
//! tensor in its new type, every other tensor's bytes copied unchanged. Written atomically.

use std::path::Path;

use crate::compress::pipeline::{renumbered, Compressed};
use crate::compress::types::QuantType;
use crate::model::gguf_file::{self, GgufFile, OutTensor, Value};
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

/// Writes `c` to `path` as GGUF, copying metadata and unchanged tensors from the source GGUF.
pub fn write_gguf(path: &Path, c: &Compressed) -> Result<GgufSummary, ExportError> {
    let source = &c.model.source;
    if source.format != Format::Gguf {
        return Err(ExportError::Invalid(
            "GGUF output needs a GGUF source model (its tokenizer and metadata are copied); write a Hugging Face folder instead (--out DIR)".into(),
        ));
    }
    let (src, mut file) = GgufFile::read(&source.path).map_err(|e| ExportError::Invalid(format!("{}: {e}", source.path.display())))?;
    let arch = match src.get("general.architecture") {
        Some(Value::String(a)) => a.clone(),
        _ => return Err(ExportError::Invalid("the source has no general.architecture".into())),
    };
    let n_source_blocks = src.tensors.iter().filter_map(|t| t.name.strip_prefix("blk.")?.split_once('.')?.0.parse::<usize>().ok()).max().map_or(0, |m| m + 1);
    let mut metadata = Vec::with_capacity(src.metadata.len() + 2);
    for (k, v) in &src.metadata {
        if ["general.file_type", "general.quantization_version", "general.quantized_by", "triage.bits_per_weight"].contains(&k.as_str()) {
            continue;
        }
        let v = if *k == format!("{arch}.block_count") {
            match v {
                Value::U64(_) => Value::U64(c.kept_blocks.len() as u64),
                _ => Value::U32(c.kept_blocks.len() as u32),
            }
        } else if let (true, Value::Array(a)) = (k.starts_with(&format!("{arch}.")), v) {
            // Per-layer arrays follow the kept blocks.
            if a.len() == n_source_blocks {
                Value::Array(c.kept_blocks.iter().map(|&i| a[i].clone()).collect())
            } else {
                v.clone()
            }
        } else {
            v.clone()
        };
        metadata.push((k.clone(), v));
    }
    let mut tensors = Vec::with_capacity(src.tensors.len());
    let mut summary = GgufSummary { bytes: 0, tensor_bytes: 0, n_weights: 0, bits_per_weight: 0.0, type_bytes: Default::default() };
    let mut linear_types: std::collections::BTreeMap<QuantType, u64> = Default::default();
    for info in &src.tensors {
        let name = if info.name.starts_with("blk.") {
            match renumbered(&info.name, &c.kept_blocks) {
                Some(n) => n,
                None => continue,
            }
        } else {
            info.name.clone()
        };
        let (qtype, data) = match c.encoded.get(&name) {
            Some((t, bytes)) => (*t, std::borrow::Cow::Borrowed(bytes.as_slice())),
            None => {
                let t = info.qtype().ok_or_else(|| ExportError::Invalid(format!("{}: unknown type", info.name)))?;
                (t, std::borrow::Cow::Owned(src.read_data(&mut file, info).map_err(|e| ExportError::Invalid(e.to_string()))?))
            }
        };
        summary.tensor_bytes += data.len() as u64;
        summary.n_weights += info.n_elements();
        *summary.type_bytes.entry(qtype.name().to_string()).or_default() += data.len() as u64;
        if name.starts_with("blk.") && info.ne.len() == 2 {
            *linear_types.entry(qtype).or_default() += data.len() as u64;
        }
        tensors.push(OutTensor { name, ne: info.ne.clone(), qtype, data });
    }
    let main_type = linear_types.iter().max_by_key(|(_, &b)| b).map_or(QuantType::F32, |(&t, _)| t);
    summary.bits_per_weight = 8.0 * summary.tensor_bytes as f64 / summary.n_weights.max(1) as f64;
    metadata.push(("general.quantization_version".into(), Value::U32(2)));
    metadata.push(("general.file_type".into(), Value::U32(llama_ftype(main_type))));
    metadata.push(("general.quantized_by".into(), Value::String("triage".into())));
    metadata.push(("triage.bits_per_weight".into(), Value::F32(summary.bits_per_weight as f32)));
    super::write_atomic(path, |w| gguf_file::write(w, &metadata, &tensors).map_err(ExportError::Io))?;
    summary.bytes = std::fs::metadata(path)?.len();
    Ok(summary)
}
