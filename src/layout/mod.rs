//! What a GGUF written from a source holds, before any tensor is encoded: the source's metadata
//! (a GGUF file's own, or what llama.cpp's converter writes for a Hugging Face folder:
//! [`converter`]), the tensors' names, shapes and types once blocks are removed and types
//! changed, and so the exact size of the file. The planner asks it for sizes; the GGUF writer
//! (`export::gguf`) for the layout it fills with bytes.

pub mod archs;
pub mod converter;

use std::path::Path;

use crate::ggml::types::QuantType;
use crate::model::gguf_file::{self, GgufFile, TensorInfo, Value};
use crate::model::tensor_id::{gguf_block, gguf_in_block};

/// A source whose GGUF cannot be laid out: the file system's error, or what it holds that a GGUF
/// cannot say.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Invalid(String),
}

/// `blk.{old}.…` → `blk.{new}.…` for a kept block; None for names outside blocks.
pub fn renumbered(name: &str, kept: &[usize]) -> Option<String> {
    let old = gguf_block(name)?;
    gguf_in_block(name, kept.iter().position(|&k| k == old)?)
}

/// One tensor of the source: its name, ggml shape and type, and where its bytes are — in the
/// source GGUF (`stored`), or, for a Hugging Face source, in the model (to be encoded in `qtype`).
pub struct SourceTensor {
    pub name: String,
    pub ne: Vec<u64>,
    pub qtype: QuantType,
    pub stored: Option<TensorInfo>,
}

impl SourceTensor {
    pub fn n_elements(&self) -> u64 {
        self.ne.iter().product()
    }
}

/// What a GGUF written from a source starts from: the source's metadata and tensors — a GGUF
/// file's own, or those llama.cpp's converter would write for a Hugging Face folder.
pub struct Skeleton {
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<SourceTensor>,
    /// The GGUF file the stored tensors are read from.
    pub file: Option<std::fs::File>,
    pub gguf: Option<GgufFile>,
}

impl Skeleton {
    /// Reads what a GGUF written from `source` (a GGUF file or a Hugging Face folder) starts from.
    pub fn open(source: &Path) -> Result<Skeleton, LayoutError> {
        skeleton(source)
    }
}

fn skeleton(source: &Path) -> Result<Skeleton, LayoutError> {
    if source.is_dir() {
        let config = crate::model::hf::read_config(source).map_err(|e| LayoutError::Invalid(e.to_string()))?;
        let tensors = converter::tensors(source, &config)?;
        let metadata = converter::metadata(source, &config, &tensors)?;
        let tensors = tensors
            .into_iter()
            .map(|t| SourceTensor { name: t.name, ne: t.ne, qtype: t.qtype, stored: None })
            .collect();
        return Ok(Skeleton { metadata, tensors, file: None, gguf: None });
    }
    let (src, file) = GgufFile::read(source).map_err(|e| LayoutError::Invalid(format!("{}: {e}", source.display())))?;
    let tensors = src
        .tensors
        .iter()
        .map(|t| {
            let qtype = t.qtype().ok_or_else(|| LayoutError::Invalid(format!("{}: unknown type", t.name)))?;
            Ok(SourceTensor { name: t.name.clone(), ne: t.ne.clone(), qtype, stored: Some(t.clone()) })
        })
        .collect::<Result<_, LayoutError>>()?;
    Ok(Skeleton { metadata: src.metadata.clone(), tensors, file: Some(file), gguf: Some(src) })
}

/// Checks that a GGUF can be written from `source` (for a Hugging Face folder: that its
/// configuration and tokenizer can be written), before any work is done.
pub fn check_source(source: &Path) -> Result<(), LayoutError> {
    skeleton(source).map(|_| ())
}

/// One tensor of the output: its name (blocks renumbered), shape, type and source tensor.
pub struct OutInfo<'a> {
    pub name: String,
    pub ne: Vec<u64>,
    pub qtype: QuantType,
    pub source: &'a SourceTensor,
}

/// The output's metadata and its tensors.
pub type Layout<'a> = (Vec<(String, Value)>, Vec<OutInfo<'a>>);

/// The output's metadata (without the keys `finish_metadata` sets) and tensors, for the
/// source `src`, the kept blocks, and the new type of every changed tensor (output numbering).
pub fn layout<'a>(
    src: &'a Skeleton,
    kept_blocks: &[usize],
    new_type: &dyn Fn(&str) -> Option<QuantType>,
) -> Result<Layout<'a>, LayoutError> {
    let arch = match src.metadata.iter().find(|(k, _)| k == "general.architecture") {
        Some((_, Value::String(a))) => a.clone(),
        _ => return Err(LayoutError::Invalid("the source has no general.architecture".into())),
    };
    let n_source_blocks = src.tensors.iter().filter_map(|t| gguf_block(&t.name)).max().map_or(0, |m| m + 1);
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
        let name = if gguf_block(&t.name).is_some() {
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
pub fn finish_metadata(metadata: &mut Vec<(String, Value)>, main_type: QuantType, bits_per_weight: f64) {
    for (key, v) in
        [("general.quantization_version", Value::U32(2)), ("general.file_type", Value::U32(main_type.ftype()))]
    {
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

impl Skeleton {
    /// The exact size of the GGUF `export::gguf::write_gguf` makes from this source with
    /// `kept_blocks` (source numbering) and tensors of `types` (source names) changed.
    pub fn predicted_size(
        &self,
        kept_blocks: &[usize],
        types: &std::collections::BTreeMap<String, QuantType>,
    ) -> Result<PredictedSize, LayoutError> {
        let renamed: std::collections::BTreeMap<String, QuantType> =
            types.iter().map(|(n, &t)| (renumbered(n, kept_blocks).unwrap_or_else(|| n.clone()), t)).collect();
        let (mut metadata, tensors) = layout(self, kept_blocks, &|n| renamed.get(n).copied())?;
        finish_metadata(&mut metadata, QuantType::F32, 0.0);
        let infos: Vec<(&str, &[u64], QuantType)> =
            tensors.iter().map(|t| (t.name.as_str(), t.ne.as_slice(), t.qtype)).collect();
        let bytes = gguf_file::file_len(&metadata, &infos)?;
        let tensor_bytes = tensors.iter().map(|t| t.qtype.bytes(t.source.n_elements() as usize) as u64).sum();
        let n_weights = tensors.iter().map(|t| t.source.n_elements()).sum();
        Ok(PredictedSize { bytes, tensor_bytes, n_weights })
    }
}
