//! A model's tensors read on demand from its memory-mapped files, in their stored encoding
//! (GGUF blocks; f32/f16/bf16 safetensors), by GGUF name, decoded to f32 when asked for: a whole
//! tensor, or a range of a matrix's rows. What streaming reads a block, an embedding row or a
//! chunk of the output head through.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::gguf_file::GgufFile;
use super::{ModelError, Result};
use crate::ggml::codec::dequantize;
use crate::ggml::types::QuantType;

/// Where a model's tensors are.
pub struct Store {
    path: PathBuf,
    files: Files,
    /// Gemma's norms from a Hugging Face folder are stored as w and held as 1 + w.
    norm_plus_one: bool,
}

enum Files {
    Gguf { map: memmap2::Mmap, header: GgufFile },
    /// The safetensors files, and the file's name of every tensor by its GGUF name.
    Safetensors { st: MmapedSafetensors, names: BTreeMap<String, String> },
}

impl Store {
    /// The GGUF file at `path` whose header has been read as `header`.
    pub fn gguf(path: &Path, file: &std::fs::File, header: GgufFile) -> Result<Store> {
        // Sound as long as nobody rewrites the file while we read it.
        let map = unsafe { memmap2::Mmap::map(file) }.map_err(|error| ModelError::Io { path: path.to_path_buf(), error })?;
        Ok(Store { path: path.to_path_buf(), files: Files::Gguf { map, header }, norm_plus_one: false })
    }

    /// Safetensors files with `names` (GGUF name → the files' name).
    pub fn safetensors(path: &Path, st: MmapedSafetensors, names: BTreeMap<String, String>, norm_plus_one: bool) -> Store {
        Store { path: path.to_path_buf(), files: Files::Safetensors { st, names }, norm_plus_one }
    }

    /// The shape (row-major) of tensor `name`, None when the model has no such tensor.
    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        match &self.files {
            Files::Gguf { header, .. } => header.tensor(name).map(|t| t.shape()),
            Files::Safetensors { st, names } => st.get(names.get(name)?).ok().map(|v| v.shape().to_vec()),
        }
    }

    /// Tensor `name` as f32, None when the model has no such tensor.
    pub fn tensor(&self, name: &str) -> Result<Option<Tensor>> {
        let Some(shape) = self.shape(name) else { return Ok(None) };
        let rows = shape.first().copied().unwrap_or(1);
        let values = self.decode(name, &shape, 0..rows)?;
        let t = Tensor::from_vec(values, shape, &Device::Cpu)?;
        Ok(Some(if self.norm_plus_one && name.ends_with("norm.weight") { (t + 1.0)? } else { t }))
    }

    /// Rows `rows` of the matrix `name` as f32, (rows, cols).
    pub fn rows(&self, name: &str, rows: Range<usize>) -> Result<Tensor> {
        let shape = self.shape(name).ok_or_else(|| ModelError::MissingTensor(name.to_string()))?;
        let [n, cols] = shape[..] else {
            return Err(ModelError::InvalidConfig(format!("tensor '{name}' is not a matrix")));
        };
        if rows.end > n || rows.start > rows.end {
            return Err(ModelError::InvalidConfig(format!("rows {rows:?} of '{name}', which has {n}")));
        }
        let m = rows.len();
        Ok(Tensor::from_vec(self.decode(name, &shape, rows)?, (m, cols), &Device::Cpu)?)
    }

    /// Decodes rows `rows` of tensor `name` (shape `shape`, rows along the first dimension).
    fn decode(&self, name: &str, shape: &[usize], rows: Range<usize>) -> Result<Vec<f32>> {
        let row_len: usize = shape.iter().skip(1).product();
        let bad = |reason: String| ModelError::Gguf { path: self.path.clone(), reason };
        match &self.files {
            Files::Gguf { map, header } => {
                let info = header.tensor(name).expect("shape() found it");
                let qtype = info.qtype().ok_or_else(|| bad(format!("tensor '{name}' has a type triage does not read")))?;
                let row_bytes = qtype.bytes(row_len);
                let start = header.data_offset + info.offset + (rows.start * row_bytes) as u64;
                let end = start + (rows.len() * row_bytes) as u64;
                let bytes = map.get(start as usize..end as usize).ok_or_else(|| bad(format!("truncated: tensor '{name}' ends past the end of the file")))?;
                Ok(dequantize(qtype, bytes, rows.len() * row_len))
            }
            Files::Safetensors { st, names } => {
                let view = st.get(&names[name])?;
                let dtype = view.dtype();
                let width = match dtype {
                    safetensors::Dtype::F32 => 4,
                    _ => 2,
                };
                let bytes = view.data().get(rows.start * row_len * width..rows.end * row_len * width).ok_or_else(|| ModelError::NotAModel {
                    path: self.path.clone(),
                    reason: format!("tensor '{}' holds fewer bytes than its shape needs", names[name]),
                })?;
                let mut out = vec![0f32; rows.len() * row_len];
                let chunk = 1 << 16;
                match dtype {
                    safetensors::Dtype::BF16 => out.par_chunks_mut(chunk).zip(bytes.par_chunks(chunk * 2)).for_each(|(o, b)| {
                        o.iter_mut().zip(b.chunks_exact(2)).for_each(|(o, b)| *o = f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
                    }),
                    safetensors::Dtype::F16 => out.par_chunks_mut(chunk).zip(bytes.par_chunks(chunk * 2)).for_each(|(o, b)| {
                        o.iter_mut().zip(b.chunks_exact(2)).for_each(|(o, b)| *o = half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                    }),
                    safetensors::Dtype::F32 => out.par_chunks_mut(chunk).zip(bytes.par_chunks(chunk * 4)).for_each(|(o, b)| {
                        o.iter_mut().zip(b.chunks_exact(4)).for_each(|(o, b)| *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    }),
                    other => {
                        return Err(ModelError::NotAModel { path: self.path.clone(), reason: format!("tensor '{}' is {other:?}; triage reads f32, f16 and bf16", names[name]) })
                    }
                }
                Ok(out)
            }
        }
    }

    /// The stored GGUF type of tensor `name` in a GGUF file (None for safetensors).
    pub fn gguf_type(&self, name: &str) -> Option<QuantType> {
        match &self.files {
            Files::Gguf { header, .. } => header.tensor(name)?.qtype(),
            Files::Safetensors { .. } => None,
        }
    }
}
