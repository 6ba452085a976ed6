//! llama.cpp's importance-matrix files, both ways.
//!
//! - GGUF (`llama-imatrix`'s default since 2025): `general.type` = "imatrix", `imatrix.datasets`
//!   (strings), `imatrix.chunk_count` and `imatrix.chunk_size` (u32); per tensor `<name>.in_sum2`,
//!   F32 [n_in, 1], the raw Σ_t x_tj² over every token seen, and `<name>.counts`, F32 [1, 1], the
//!   number of tokens.
//! - Legacy `.dat`: i32 entry count; per entry i32 name length, name bytes, i32 ncall, i32 nval,
//!   f32 values[nval] = (Σx²/tokens)·ncall; then i32 chunk count, i32 length and the dataset name.
//!   Tokens are not stored: reading gives count = ncall · chunk size (the means are exact).
//!
//! llama.cpp collects only `blk.*` matrices (token embeddings are looked up, not multiplied).

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

use crate::ggml::codec::dequantize;
use crate::model::gguf_file::GgufFile;
use crate::model::{block_linears, Config, TensorId};
use crate::temp::write_atomic;

#[derive(Debug, thiserror::Error)]
pub enum ImatrixError {
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{path}: not an imatrix file: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("{path}: invalid imatrix: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("writing imatrix: {0}")]
    Write(String),
}

impl From<std::io::Error> for ImatrixError {
    fn from(e: std::io::Error) -> Self {
        ImatrixError::Write(e.to_string())
    }
}

/// Σx² per input column of one matrix, over `count` tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct ImatrixEntry {
    pub in_sum2: Vec<f32>,
    pub count: f64,
}

impl ImatrixEntry {
    /// Mean x² per column: the weights llama.cpp's quantizers use.
    pub fn means(&self) -> Vec<f32> {
        self.in_sum2.iter().map(|&s| (s as f64 / self.count.max(1.0)) as f32).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Imatrix {
    /// By GGUF tensor name.
    pub entries: BTreeMap<String, ImatrixEntry>,
    pub datasets: Vec<String>,
    pub chunk_count: u32,
    pub chunk_size: u32,
}

impl Imatrix {
    /// Writes llama.cpp's GGUF imatrix format.
    pub fn write_gguf(&self, path: &Path) -> Result<(), ImatrixError> {
        let werr = |e: candle_core::Error| ImatrixError::Write(crate::model::candle_message(&e));
        let mut tensors: Vec<(String, QTensor)> = Vec::new();
        for (name, e) in &self.entries {
            let n = e.in_sum2.len();
            let s = Tensor::from_slice(&e.in_sum2, (1, n), &Device::Cpu).map_err(werr)?;
            let c = Tensor::from_slice(&[e.count as f32], (1, 1), &Device::Cpu).map_err(werr)?;
            tensors.push((format!("{name}.in_sum2"), QTensor::quantize(&s, GgmlDType::F32).map_err(werr)?));
            tensors.push((format!("{name}.counts"), QTensor::quantize(&c, GgmlDType::F32).map_err(werr)?));
        }
        let md = [
            ("general.type", Value::String("imatrix".into())),
            ("imatrix.datasets", Value::Array(self.datasets.iter().map(|d| Value::String(d.clone())).collect())),
            ("imatrix.chunk_count", Value::U32(self.chunk_count)),
            ("imatrix.chunk_size", Value::U32(self.chunk_size)),
        ];
        let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (*k, v)).collect();
        let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
        write_atomic(path, |w| {
            // gguf_file::write needs Seek; BufWriter<File> has it.
            gguf_file::write(w, &md_refs, &t_refs).map_err(werr)
        })
    }

    /// Reads a GGUF or legacy `.dat` imatrix file, recognised by its first bytes.
    pub fn read(path: &Path) -> Result<Imatrix, ImatrixError> {
        let bytes = std::fs::read(path).map_err(|error| ImatrixError::Io { path: path.to_path_buf(), error })?;
        Self::from_bytes(path, &bytes)
    }

    /// Parses an imatrix file held in memory; `path` names it in errors. Every value must be a
    /// finite, non-negative sum of squares over a finite, non-negative token count.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Imatrix, ImatrixError> {
        let m = if bytes.starts_with(b"GGUF") { Self::read_gguf(path, bytes) } else { Self::read_dat(path, bytes) }?;
        m.check_values().map_err(|reason| ImatrixError::Invalid { path: path.to_path_buf(), reason })?;
        Ok(m)
    }

    /// Checks that the imatrix (read from `path`) was made on a model of `config`'s shapes: an
    /// entry whose width is not its linear's input width is an error naming it, and so is an
    /// imatrix with no entry for any of the model's linears (one of another model, or an empty
    /// file); linears it lacks an entry for get one warning saying how many. Without this, a
    /// mismatched entry was passed over without a word.
    pub fn check_against(&self, path: &Path, config: &Config) -> Result<(), ImatrixError> {
        let invalid = |reason: String| ImatrixError::Invalid { path: path.to_path_buf(), reason };
        let linears: Vec<(String, usize)> = (0..config.n_layers)
            .flat_map(|i| {
                block_linears(config)
                    .into_iter()
                    .map(move |(kind, _, cols)| (TensorId::block(i, kind).to_string(), cols))
            })
            .collect();
        for (name, cols) in &linears {
            if let Some(e) = self.entries.get(name).filter(|e| e.in_sum2.len() != *cols) {
                return Err(invalid(format!(
                    "tensor '{name}' has {} columns, the model's has {cols} (an imatrix of another model?)",
                    e.in_sum2.len()
                )));
            }
        }
        let missing: Vec<&str> =
            linears.iter().filter(|(n, _)| !self.entries.contains_key(n)).map(|(n, _)| n.as_str()).collect();
        if missing.len() == linears.len() {
            let example = self.entries.keys().next().map_or(String::new(), |n| format!(", such as '{n}'"));
            return Err(invalid(format!(
                "it has no entry for any of the model's {} linears ({} entries{example}: an imatrix of another model?)",
                linears.len(),
                self.entries.len()
            )));
        }
        if let Some(first) = missing.first() {
            eprintln!(
                "warning: {}: the imatrix has no entry for {} of the model's {} linears (the first: {first})",
                path.display(),
                missing.len(),
                linears.len()
            );
        }
        Ok(())
    }

    fn check_values(&self) -> Result<(), String> {
        for (name, e) in &self.entries {
            if !(e.count.is_finite() && e.count >= 0.0) {
                return Err(format!("tensor '{name}' has a token count of {}", e.count));
            }
            if let Some(x) = e.in_sum2.iter().find(|x| !(x.is_finite() && **x >= 0.0)) {
                return Err(format!("tensor '{name}' holds the value {x}, not a finite non-negative sum of squares"));
            }
        }
        Ok(())
    }

    fn read_gguf(path: &Path, bytes: &[u8]) -> Result<Imatrix, ImatrixError> {
        let fmt = |reason: String| ImatrixError::Format { path: path.to_path_buf(), reason };
        let g = GgufFile::from_bytes(bytes).map_err(|e| fmt(e.to_string()))?;
        if g.get("general.type").and_then(|v| v.to_string().ok()).map(String::as_str) != Some("imatrix") {
            return Err(fmt("general.type is not 'imatrix'".into()));
        }
        let u = |k: &str| g.get(k).and_then(|v| v.to_u32().ok()).unwrap_or(0);
        let datasets = g
            .get("imatrix.datasets")
            .and_then(|v| v.to_vec().ok())
            .map(|v| v.iter().filter_map(|s| s.to_string().ok().cloned()).collect())
            .unwrap_or_default();
        let read = |name: &str| -> Result<Vec<f32>, ImatrixError> {
            let t = g.tensor(name).ok_or_else(|| fmt(format!("no tensor '{name}'")))?;
            let data = g.read_data(&mut Cursor::new(bytes), t).map_err(|e| fmt(e.to_string()))?;
            let qtype = t.qtype().expect("the header reader checked every type");
            Ok(dequantize(qtype, &data, t.n_elements() as usize))
        };
        let mut entries = BTreeMap::new();
        for (t, name) in g.tensors.iter().filter_map(|t| Some((t, t.name.strip_suffix(".in_sum2")?))) {
            let in_sum2 = read(&t.name)?;
            let counts = read(&format!("{name}.counts"))?;
            if counts.len() != 1 {
                return Err(fmt(format!(
                    "'{name}' has {} matrices (mixture-of-experts imatrices are not supported)",
                    counts.len()
                )));
            }
            entries.insert(name.to_string(), ImatrixEntry { in_sum2, count: counts[0] as f64 });
        }
        Ok(Imatrix { entries, datasets, chunk_count: u("imatrix.chunk_count"), chunk_size: u("imatrix.chunk_size") })
    }

    fn read_dat(path: &Path, bytes: &[u8]) -> Result<Imatrix, ImatrixError> {
        let fmt = |reason: &str| ImatrixError::Format { path: path.to_path_buf(), reason: reason.to_string() };
        let mut r = bytes;
        let i32_ = |r: &mut &[u8]| -> Result<i32, ImatrixError> {
            let mut b = [0u8; 4];
            r.read_exact(&mut b).map_err(|_| fmt("truncated"))?;
            Ok(i32::from_le_bytes(b))
        };
        let n = i32_(&mut r)?;
        if !(0..=1_000_000).contains(&n) {
            return Err(fmt("neither GGUF nor a legacy .dat (bad entry count)"));
        }
        let mut raw = Vec::new();
        for _ in 0..n {
            let len = i32_(&mut r)?;
            if !(1..=4096).contains(&len) || r.len() < len as usize {
                return Err(fmt("bad tensor name length"));
            }
            let name = String::from_utf8(r[..len as usize].to_vec()).map_err(|_| fmt("tensor name is not UTF-8"))?;
            r = &r[len as usize..];
            let ncall = i32_(&mut r)?;
            let nval = i32_(&mut r)?;
            if nval < 0 || r.len() < 4 * nval as usize {
                return Err(fmt("truncated values"));
            }
            let vals: Vec<f32> =
                r[..4 * nval as usize].chunks(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            r = &r[4 * nval as usize..];
            raw.push((name, ncall, vals));
        }
        let chunk_count = i32_(&mut r).unwrap_or(0).max(0) as u32;
        let dataset = i32_(&mut r)
            .ok()
            .filter(|&l| l >= 0 && r.len() >= l as usize)
            .map(|l| String::from_utf8_lossy(&r[..l as usize]).into_owned());
        // Values are means × ncall; with ncall calls of chunk_size tokens the sums follow. The
        // chunk size is not stored: take 1 token per call, which keeps the means exact.
        let mut entries = BTreeMap::new();
        for (name, ncall, vals) in raw {
            let entry = ImatrixEntry { in_sum2: vals, count: ncall.max(1) as f64 };
            if entries.insert(name.clone(), entry).is_some() {
                return Err(fmt(&format!("tensor '{name}' appears twice")));
            }
        }
        Ok(Imatrix { entries, datasets: dataset.into_iter().collect(), chunk_count, chunk_size: 0 })
    }

    /// Writes the legacy `.dat` format (for older llama.cpp builds).
    pub fn write_dat(&self, path: &Path) -> Result<(), ImatrixError> {
        write_atomic(path, |w| {
            let chunk = self.chunk_size.max(1) as f64;
            w.write_all(&(self.entries.len() as i32).to_le_bytes())?;
            for (name, e) in &self.entries {
                w.write_all(&(name.len() as i32).to_le_bytes())?;
                w.write_all(name.as_bytes())?;
                let ncall = (e.count / chunk).ceil().max(1.0);
                w.write_all(&(ncall as i32).to_le_bytes())?;
                w.write_all(&(e.in_sum2.len() as i32).to_le_bytes())?;
                for m in e.means() {
                    w.write_all(&((m as f64 * ncall) as f32).to_le_bytes())?;
                }
            }
            w.write_all(&(self.chunk_count as i32).to_le_bytes())?;
            let ds = self.datasets.first().map(String::as_str).unwrap_or("");
            w.write_all(&(ds.len() as i32).to_le_bytes())?;
            w.write_all(ds.as_bytes())?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Imatrix {
        let mut entries = BTreeMap::new();
        entries.insert("blk.0.attn_q.weight".into(), ImatrixEntry { in_sum2: vec![1.0, 4.0, 9.5], count: 1024.0 });
        entries.insert("blk.0.ffn_down.weight".into(), ImatrixEntry { in_sum2: vec![0.5; 8], count: 1024.0 });
        Imatrix { entries, datasets: vec!["calib.txt".into()], chunk_count: 2, chunk_size: 512 }
    }

    #[test]
    fn gguf_round_trip() {
        let p = std::env::temp_dir().join(format!("triage-imatrix-{}.gguf", std::process::id()));
        let m = sample();
        m.write_gguf(&p).unwrap();
        assert_eq!(Imatrix::read(&p).unwrap(), m);
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn dat_round_trip_keeps_the_means() {
        let p = std::env::temp_dir().join(format!("triage-imatrix-{}.dat", std::process::id()));
        let m = sample();
        m.write_dat(&p).unwrap();
        let back = Imatrix::read(&p).unwrap();
        assert_eq!(back.chunk_count, 2);
        assert_eq!(back.datasets, vec!["calib.txt".to_string()]);
        for (name, e) in &m.entries {
            let b = &back.entries[name];
            for (x, y) in e.means().iter().zip(b.means()) {
                assert!((x - y).abs() <= 1e-6 * x.abs(), "{name}: {x} vs {y}");
            }
        }
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn garbage_is_refused() {
        let p = std::env::temp_dir().join(format!("triage-imatrix-bad-{}.dat", std::process::id()));
        std::fs::write(&p, b"\xff\xff\xff\xffnot an imatrix").unwrap();
        assert!(Imatrix::read(&p).unwrap_err().to_string().contains("not an imatrix file"));
        std::fs::remove_file(&p).unwrap();
    }
}
