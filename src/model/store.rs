//! A model's tensors read on demand from its files, in their stored encoding (GGUF blocks;
//! f32/f16/bf16 safetensors), by GGUF name, decoded to f32 when asked for: a whole tensor, or a
//! range of a matrix's rows. What streaming reads a block, an embedding row or a chunk of the
//! output head through.
//!
//! Reads are positioned reads into a buffer that lives as long as the decoding, not a memory
//! map: the pages of a mapped file count towards the process's resident memory as soon as they
//! are touched, so streaming a 16 GB model through a map would show 16 GB resident.

use std::collections::BTreeMap;
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::gguf_file::GgufFile;
use super::{ModelError, Result, TensorId};
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
    Gguf {
        file: File,
        header: GgufFile,
    },
    /// The safetensors files, and the files' name of every tensor by its GGUF name.
    Safetensors {
        st: Safetensors,
        names: BTreeMap<String, String>,
    },
}

/// One tensor of a safetensors file.
#[derive(Debug, Clone)]
pub struct Entry {
    file: usize,
    /// As the header writes it: "BF16", "F16", "F32", …
    pub dtype: String,
    pub shape: Vec<usize>,
    /// Absolute offset of the data in its file, and its length.
    start: u64,
    pub len: u64,
}

/// The headers of a model's safetensors files (one, or the shards of an index).
pub struct Safetensors {
    files: Vec<(PathBuf, File)>,
    /// Every tensor by the files' name.
    pub entries: BTreeMap<String, Entry>,
}

impl Safetensors {
    /// Reads the headers of `paths`, checking that every tensor's bytes lie inside its file.
    pub fn open(paths: &[PathBuf]) -> Result<Safetensors> {
        let mut files = Vec::with_capacity(paths.len());
        let mut entries = BTreeMap::new();
        for (k, path) in paths.iter().enumerate() {
            let io = |error| ModelError::Io { path: path.clone(), error };
            let bad = |reason: String| ModelError::NotAModel {
                path: path.clone(),
                reason: format!("cannot read safetensors ({reason}); a file may be truncated"),
            };
            let file = File::open(path).map_err(io)?;
            let file_len = file.metadata().map_err(io)?.len();
            let mut n = [0u8; 8];
            file.read_exact_at(&mut n, 0).map_err(|_| bad("no header".into()))?;
            let n = u64::from_le_bytes(n);
            if n > (100 << 20) || n + 8 > file_len {
                return Err(bad(format!("a header of {n} bytes in a file of {file_len}")));
            }
            let mut header = vec![0u8; n as usize];
            file.read_exact_at(&mut header, 8).map_err(io)?;
            let json: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(&header).map_err(|e| bad(format!("invalid header: {e}")))?;
            let data_start = 8 + n;
            for (name, v) in json {
                if name == "__metadata__" {
                    continue;
                }
                let dtype = v
                    .get("dtype")
                    .and_then(|d| d.as_str())
                    .ok_or_else(|| bad(format!("tensor '{name}' has no dtype")))?
                    .to_string();
                let shape: Vec<usize> = v
                    .get("shape")
                    .and_then(|s| s.as_array())
                    .and_then(|a| a.iter().map(|d| d.as_u64().map(|d| d as usize)).collect())
                    .ok_or_else(|| bad(format!("tensor '{name}' has no shape")))?;
                let offsets: Vec<u64> = v
                    .get("data_offsets")
                    .and_then(|s| s.as_array())
                    .and_then(|a| a.iter().map(|d| d.as_u64()).collect())
                    .unwrap_or_default();
                let [begin, end] = offsets[..] else { return Err(bad(format!("tensor '{name}' has no data_offsets"))) };
                let width = match dtype.as_str() {
                    "F64" | "I64" | "U64" => 8,
                    "F32" | "I32" | "U32" => 4,
                    "F16" | "BF16" | "I16" | "U16" => 2,
                    _ => 1,
                };
                let elements = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64));
                if begin > end
                    || end > file_len - data_start
                    || elements.and_then(|e| e.checked_mul(width)) != Some(end - begin)
                {
                    return Err(bad(format!(
                        "tensor '{name}': bytes {begin}..{end} do not hold shape {shape:?} of {dtype} inside the file"
                    )));
                }
                entries.insert(name, Entry { file: k, dtype, shape, start: data_start + begin, len: end - begin });
            }
            files.push((path.clone(), file));
        }
        Ok(Safetensors { files, entries })
    }

    /// `len` bytes at `start` of file `file`.
    fn read(&self, file: usize, start: u64, len: usize) -> Result<Vec<u8>> {
        let (path, f) = &self.files[file];
        let mut b = vec![0u8; len];
        f.read_exact_at(&mut b, start).map_err(|error| ModelError::Io { path: path.clone(), error })?;
        Ok(b)
    }
}

impl Store {
    /// The GGUF file at `path`, open as `file`, whose header has been read as `header`.
    pub fn gguf(path: &Path, file: File, header: GgufFile) -> Store {
        Store { path: path.to_path_buf(), files: Files::Gguf { file, header }, norm_plus_one: false }
    }

    /// Safetensors files with `names` (GGUF name → the files' name).
    pub fn safetensors(path: &Path, st: Safetensors, names: BTreeMap<String, String>, norm_plus_one: bool) -> Store {
        Store { path: path.to_path_buf(), files: Files::Safetensors { st, names }, norm_plus_one }
    }

    /// The shape (row-major) of tensor `name`, None when the model has no such tensor.
    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        match &self.files {
            Files::Gguf { header, .. } => header.tensor(name).map(|t| t.shape()),
            Files::Safetensors { st, names } => st.entries.get(names.get(name)?).map(|e| e.shape.clone()),
        }
    }

    /// Tensor `name` as f32, None when the model has no such tensor.
    pub fn tensor(&self, name: &str) -> Result<Option<Tensor>> {
        let Some(shape) = self.shape(name) else { return Ok(None) };
        let rows = shape.first().copied().unwrap_or(1);
        let values = self.decode(name, &shape, 0..rows)?;
        let t = Tensor::from_vec(values, shape, &Device::Cpu)?;
        Ok(Some(if self.norm_plus_one && TensorId::parse_gguf(name).is_some_and(|id| id.is_norm_weight()) {
            (t + 1.0)?
        } else {
            t
        }))
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
            Files::Gguf { file, header } => {
                let info = header.tensor(name).expect("shape() found it");
                let qtype =
                    info.qtype().ok_or_else(|| bad(format!("tensor '{name}' has a type triage does not read")))?;
                let row_bytes = qtype.bytes(row_len);
                let start = header.data_offset + info.offset + (rows.start * row_bytes) as u64;
                let mut bytes = vec![0u8; rows.len() * row_bytes];
                // The header reader checked that every tensor lies inside the file.
                file.read_exact_at(&mut bytes, start)
                    .map_err(|error| ModelError::Io { path: self.path.clone(), error })?;
                Ok(dequantize(qtype, &bytes, rows.len() * row_len))
            }
            Files::Safetensors { st, names } => {
                let e = &st.entries[&names[name]];
                let width = match e.dtype.as_str() {
                    "F32" => 4,
                    "F16" | "BF16" => 2,
                    other => {
                        return Err(ModelError::NotAModel {
                            path: self.path.clone(),
                            reason: format!("tensor '{}' is {other}; triage reads F32, F16 and BF16", names[name]),
                        })
                    }
                };
                let bytes =
                    st.read(e.file, e.start + (rows.start * row_len * width) as u64, rows.len() * row_len * width)?;
                let mut out = vec![0f32; rows.len() * row_len];
                let chunk = 1 << 16;
                let chunks = out.par_chunks_mut(chunk).zip(bytes.par_chunks(chunk * width));
                match width {
                    4 => chunks.for_each(|(o, b)| {
                        o.iter_mut()
                            .zip(b.chunks_exact(4))
                            .for_each(|(o, b)| *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    }),
                    _ if e.dtype == "BF16" => chunks.for_each(|(o, b)| {
                        o.iter_mut()
                            .zip(b.chunks_exact(2))
                            .for_each(|(o, b)| *o = f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
                    }),
                    _ => chunks.for_each(|(o, b)| {
                        o.iter_mut()
                            .zip(b.chunks_exact(2))
                            .for_each(|(o, b)| *o = half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                    }),
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
