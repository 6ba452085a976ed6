//! The GGUF container (llama.cpp's `gguf.cpp`): header, typed key/value metadata, tensor infos,
//! aligned tensor data. Read and written here so that every tensor type we encode — IQ4_NL
//! included — can be read back, and raw tensor bytes can be copied from one file to another.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Cursor, Read, Seek, SeekFrom, Write};
use std::path::Path;

pub use candle_core::quantized::gguf_file::Value;

use crate::ggml::types::QuantType;

pub const DEFAULT_ALIGNMENT: u64 = 32;

/// The most elements a tensor may claim (2⁴⁰, 4 TiB as f32): a bound that keeps every size
/// computed from a shape inside u64 and usize.
pub const MAX_TENSOR_ELEMENTS: u64 = 1 << 40;

/// One tensor's entry in the header.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: ne[0] is the row width.
    pub ne: Vec<u64>,
    /// The raw ggml type id (not every id is a type we decode).
    pub type_id: u32,
    /// Offset from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// The number of elements; [`GgufFile::read`] has checked that it is at most
    /// [`MAX_TENSOR_ELEMENTS`].
    pub fn n_elements(&self) -> u64 {
        self.ne.iter().fold(1u64, |a, &d| a.saturating_mul(d))
    }

    /// The element count, or an error when a dimension or the product exceeds
    /// [`MAX_TENSOR_ELEMENTS`] (a product that wraps included).
    fn checked_elements(&self) -> Result<u64, GgufError> {
        self.ne
            .iter()
            .try_fold(1u64, |a, &d| (d <= MAX_TENSOR_ELEMENTS).then(|| a.checked_mul(d)).flatten())
            .filter(|&n| n <= MAX_TENSOR_ELEMENTS)
            .ok_or_else(|| bad(format!("tensor '{}' has dimensions {:?}, more than 2^40 elements", self.name, self.ne)))
    }

    /// (rows, …, cols): the shape in row-major order, ggml's ne reversed.
    pub fn shape(&self) -> Vec<usize> {
        self.ne.iter().rev().map(|&d| d as usize).collect()
    }

    pub fn qtype(&self) -> Option<QuantType> {
        QuantType::from_ggml_id(self.type_id)
    }
}

/// A GGUF header.
#[derive(Debug, Clone)]
pub struct GgufFile {
    pub version: u32,
    /// Metadata in file order.
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<TensorInfo>,
    /// Absolute offset of the data section.
    pub data_offset: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("{0}")]
    Format(String),
}

fn bad(msg: impl Into<String>) -> GgufError {
    GgufError::Format(msg.into())
}

struct Reader<'a, R> {
    r: &'a mut R,
    len: u64,
}

impl<R: Read + Seek> Reader<'_, R> {
    fn bytes(&mut self, n: u64) -> Result<Vec<u8>, GgufError> {
        let pos = self.r.stream_position()?;
        if pos.checked_add(n).is_none_or(|end| end > self.len) {
            return Err(bad(format!(
                "header runs past the end of the file (needs {n} bytes at byte {pos} of {})",
                self.len
            )));
        }
        let mut b = vec![0u8; n as usize];
        self.r.read_exact(&mut b)?;
        Ok(b)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        let mut b = [0u8; N];
        b.copy_from_slice(&self.bytes(N as u64)?);
        Ok(b)
    }
    fn u32(&mut self) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn string(&mut self) -> Result<String, GgufError> {
        let n = self.u64()?;
        String::from_utf8(self.bytes(n)?).map_err(|_| bad("a metadata string is not UTF-8"))
    }
    fn value(&mut self, vtype: u32, depth: usize) -> Result<Value, GgufError> {
        Ok(match vtype {
            0 => Value::U8(self.array::<1>()?[0]),
            1 => Value::I8(self.array::<1>()?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.array()?)),
            3 => Value::I16(i16::from_le_bytes(self.array()?)),
            4 => Value::U32(self.u32()?),
            5 => Value::I32(self.u32()? as i32),
            6 => Value::F32(f32::from_bits(self.u32()?)),
            7 => Value::Bool(self.array::<1>()?[0] != 0),
            8 => Value::String(self.string()?),
            9 if depth == 0 => {
                let et = self.u32()?;
                let n = self.u64()?;
                if n > self.len {
                    return Err(bad(format!("an array claims {n} elements")));
                }
                let mut v = Vec::with_capacity(n.min(1 << 20) as usize);
                for _ in 0..n {
                    v.push(self.value(et, depth + 1)?);
                }
                Value::Array(v)
            }
            10 => Value::U64(self.u64()?),
            11 => Value::I64(self.u64()? as i64),
            12 => Value::F64(f64::from_bits(self.u64()?)),
            t => return Err(bad(format!("unknown metadata value type {t}"))),
        })
    }
}

impl GgufFile {
    /// Reads the header of `path`, checking that every tensor's data lies inside the file.
    pub fn read(path: &Path) -> Result<(GgufFile, File), GgufError> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        let mut r = BufReader::new(file);
        let gguf = Self::parse(&mut r, len)?;
        Ok((gguf, r.into_inner()))
    }

    /// Reads the header of a GGUF file held in memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<GgufFile, GgufError> {
        Self::parse(&mut Cursor::new(bytes), bytes.len() as u64)
    }

    /// Reads the header of the `len`-byte GGUF that `r` is positioned at the start of. Every
    /// count, length and offset is checked against `len` before anything is allocated from it;
    /// keys and tensor names are unique; every tensor has a type we read, a size that fits in
    /// 2^40 elements, an aligned offset, and data inside the file.
    pub fn parse<R: Read + Seek>(r: &mut R, len: u64) -> Result<GgufFile, GgufError> {
        let mut rd = Reader { r, len };
        if rd.bytes(4).ok().as_deref() != Some(b"GGUF") {
            return Err(bad("no 'GGUF' magic"));
        }
        let version = rd.u32()?;
        if !(2..=3).contains(&version) {
            return Err(bad(format!("GGUF version {version} (2 and 3 are supported)")));
        }
        let n_tensors = rd.u64()?;
        let n_kv = rd.u64()?;
        if n_tensors > len || n_kv > len {
            return Err(bad("tensor or metadata count larger than the file"));
        }
        let metadata = read_metadata(&mut rd, n_kv)?;
        let tensors = read_tensor_infos(&mut rd, n_tensors)?;
        let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
            Some((_, Value::U32(a))) if a.is_power_of_two() => *a as u64,
            Some(_) => return Err(bad("general.alignment is not a power of two u32")),
            None => DEFAULT_ALIGNMENT,
        };
        let pos = rd.r.stream_position()?;
        let data_offset = pos.div_ceil(alignment) * alignment;
        let gguf = GgufFile { version, metadata, tensors, data_offset };
        for t in &gguf.tensors {
            if !t.offset.is_multiple_of(alignment) {
                return Err(bad(format!(
                    "tensor '{}' starts at offset {}, not a multiple of the alignment {alignment}",
                    t.name, t.offset
                )));
            }
            let end = data_offset.saturating_add(t.offset).saturating_add(gguf.tensor_bytes(t)?);
            if end > len {
                return Err(bad(format!(
                    "truncated: tensor '{}' ends at byte {end} but the file has {len} bytes",
                    t.name
                )));
            }
        }
        Ok(gguf)
    }

    /// Bytes of a tensor's data (for the types we know).
    pub fn tensor_bytes(&self, t: &TensorInfo) -> Result<u64, GgufError> {
        let q = t.qtype().ok_or_else(|| {
            bad(format!("tensor '{}' has ggml type {}, which triage does not read", t.name, t.type_id))
        })?;
        let row = t.ne.first().copied().unwrap_or(1);
        if !row.is_multiple_of(q.block_size() as u64) {
            return Err(bad(format!("tensor '{}': rows of {row} do not tile {q} blocks", t.name)));
        }
        Ok(q.bytes(t.checked_elements()? as usize) as u64)
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Reads the raw bytes of tensor `t` from `r` (the file or bytes the header came from).
    pub fn read_data<R: Read + Seek>(&self, r: &mut R, t: &TensorInfo) -> Result<Vec<u8>, GgufError> {
        let n = self.tensor_bytes(t)?;
        let start = self
            .data_offset
            .checked_add(t.offset)
            .ok_or_else(|| bad(format!("tensor '{}' starts past 2^64", t.name)))?;
        r.seek(SeekFrom::Start(start))?;
        // The header reader checked `n` against the file's length.
        let mut b = Vec::with_capacity(n as usize);
        r.take(n).read_to_end(&mut b)?;
        if b.len() as u64 != n {
            return Err(bad(format!("truncated: tensor '{}' needs {n} bytes at byte {start}", t.name)));
        }
        Ok(b)
    }
}

/// `n_kv` metadata pairs, each key once.
fn read_metadata<R: Read + Seek>(rd: &mut Reader<'_, R>, n_kv: u64) -> Result<Vec<(String, Value)>, GgufError> {
    let mut metadata = Vec::with_capacity(n_kv.min(1 << 12) as usize);
    let mut seen = HashSet::new();
    for _ in 0..n_kv {
        let key = rd.string()?;
        if !seen.insert(key.clone()) {
            return Err(bad(format!("metadata key '{key}' appears twice")));
        }
        let vtype = rd.u32()?;
        let value = rd.value(vtype, 0).map_err(|e| match e {
            GgufError::Format(m) => bad(format!("metadata '{key}': {m}")),
            io => io,
        })?;
        metadata.push((key, value));
    }
    Ok(metadata)
}

/// `n_tensors` tensor infos, each name once.
fn read_tensor_infos<R: Read + Seek>(rd: &mut Reader<'_, R>, n_tensors: u64) -> Result<Vec<TensorInfo>, GgufError> {
    let mut tensors = Vec::with_capacity(n_tensors.min(1 << 12) as usize);
    let mut seen = HashSet::new();
    for _ in 0..n_tensors {
        let name = rd.string()?;
        if !seen.insert(name.clone()) {
            return Err(bad(format!("tensor '{name}' appears twice")));
        }
        let n_dims = rd.u32()?;
        if n_dims > 4 {
            return Err(bad(format!("tensor '{name}' has {n_dims} dimensions")));
        }
        let ne = (0..n_dims).map(|_| rd.u64()).collect::<Result<Vec<_>, _>>()?;
        let type_id = rd.u32()?;
        let offset = rd.u64()?;
        tensors.push(TensorInfo { name, ne, type_id, offset });
    }
    Ok(tensors)
}

/// A tensor to write: its name, ggml-order dims, type and encoded bytes.
pub struct OutTensor<'a> {
    pub name: String,
    pub ne: Vec<u64>,
    pub qtype: QuantType,
    pub data: std::borrow::Cow<'a, [u8]>,
}

fn value_type(v: &Value) -> u32 {
    match v {
        Value::U8(_) => 0,
        Value::I8(_) => 1,
        Value::U16(_) => 2,
        Value::I16(_) => 3,
        Value::U32(_) => 4,
        Value::I32(_) => 5,
        Value::F32(_) => 6,
        Value::Bool(_) => 7,
        Value::String(_) => 8,
        Value::Array(_) => 9,
        Value::U64(_) => 10,
        Value::I64(_) => 11,
        Value::F64(_) => 12,
    }
}

fn write_string(w: &mut impl Write, s: &str) -> io::Result<()> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

fn write_value(w: &mut impl Write, v: &Value) -> io::Result<()> {
    match v {
        Value::U8(x) => w.write_all(&[*x]),
        Value::I8(x) => w.write_all(&[*x as u8]),
        Value::U16(x) => w.write_all(&x.to_le_bytes()),
        Value::I16(x) => w.write_all(&x.to_le_bytes()),
        Value::U32(x) => w.write_all(&x.to_le_bytes()),
        Value::I32(x) => w.write_all(&x.to_le_bytes()),
        Value::F32(x) => w.write_all(&x.to_le_bytes()),
        Value::Bool(x) => w.write_all(&[*x as u8]),
        Value::String(s) => write_string(w, s),
        Value::U64(x) => w.write_all(&x.to_le_bytes()),
        Value::I64(x) => w.write_all(&x.to_le_bytes()),
        Value::F64(x) => w.write_all(&x.to_le_bytes()),
        Value::Array(a) => {
            w.write_all(&a.first().map_or(0, value_type).to_le_bytes())?;
            w.write_all(&(a.len() as u64).to_le_bytes())?;
            a.iter().try_for_each(|x| write_value(w, x))
        }
    }
}

fn pad(n: u64) -> u64 {
    n.div_ceil(DEFAULT_ALIGNMENT) * DEFAULT_ALIGNMENT
}

/// The header (magic, counts, metadata, tensor infos), padded to the data's alignment, for
/// tensors given as (name, ne, type).
fn header(metadata: &[(String, Value)], tensors: &[(&str, &[u64], QuantType)]) -> io::Result<Vec<u8>> {
    let mut b = Vec::new();
    b.write_all(b"GGUF")?;
    b.write_all(&3u32.to_le_bytes())?;
    b.write_all(&(tensors.len() as u64).to_le_bytes())?;
    b.write_all(&(metadata.len() as u64).to_le_bytes())?;
    for (k, v) in metadata {
        write_string(&mut b, k)?;
        b.write_all(&value_type(v).to_le_bytes())?;
        write_value(&mut b, v)?;
    }
    let mut offset = 0u64;
    for &(name, ne, qtype) in tensors {
        write_string(&mut b, name)?;
        b.write_all(&(ne.len() as u32).to_le_bytes())?;
        ne.iter().try_for_each(|d| b.write_all(&d.to_le_bytes()))?;
        b.write_all(&qtype.ggml_id().to_le_bytes())?;
        b.write_all(&offset.to_le_bytes())?;
        offset += pad(qtype.bytes(ne.iter().product::<u64>() as usize) as u64);
    }
    b.resize(pad(b.len() as u64) as usize, 0);
    Ok(b)
}

/// The exact size of the file [`write`] makes from this metadata and these tensors.
pub fn file_len(metadata: &[(String, Value)], tensors: &[(&str, &[u64], QuantType)]) -> io::Result<u64> {
    let data: u64 = tensors.iter().map(|&(_, ne, t)| pad(t.bytes(ne.iter().product::<u64>() as usize) as u64)).sum();
    Ok(header(metadata, tensors)?.len() as u64 + data)
}

/// Writes a GGUF v3 file (alignment 32) to `w`.
pub fn write(w: impl Write, metadata: &[(String, Value)], tensors: &[OutTensor<'_>]) -> io::Result<()> {
    let infos: Vec<(&str, &[u64], QuantType)> =
        tensors.iter().map(|t| (t.name.as_str(), t.ne.as_slice(), t.qtype)).collect();
    write_with(w, metadata, &infos, |i| Ok(std::borrow::Cow::Borrowed(&tensors[i].data)))
}

/// Writes a GGUF v3 file (alignment 32) to `w` whose tensors, given as (name, ne, type), have
/// their bytes made by `data(i)` one at a time, in order: no more than one tensor's bytes need
/// exist at once.
pub fn write_with<'a>(
    w: impl Write,
    metadata: &[(String, Value)],
    tensors: &[(&str, &[u64], QuantType)],
    mut data: impl FnMut(usize) -> io::Result<std::borrow::Cow<'a, [u8]>>,
) -> io::Result<()> {
    let mut w = BufWriter::with_capacity(1 << 20, w);
    w.write_all(&header(metadata, tensors)?)?;
    let zeros = [0u8; DEFAULT_ALIGNMENT as usize];
    for (i, &(name, ne, qtype)) in tensors.iter().enumerate() {
        let d = data(i)?;
        let want = qtype.bytes(ne.iter().product::<u64>() as usize);
        if d.len() != want {
            return Err(io::Error::other(format!(
                "tensor '{name}' has {} bytes, its shape and type need {want}",
                d.len()
            )));
        }
        w.write_all(&d)?;
        let n = d.len() as u64;
        w.write_all(&zeros[..(pad(n) - n) as usize])?;
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_round_trips() {
        let dir = std::env::temp_dir().join(format!("triage-gguf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.gguf");
        let md = vec![
            ("general.architecture".to_string(), Value::String("llama".into())),
            ("llama.block_count".to_string(), Value::U32(3)),
            ("x.arr".to_string(), Value::Array(vec![Value::I32(-1), Value::I32(2)])),
            ("x.f".to_string(), Value::F32(0.5)),
        ];
        let w: Vec<f32> = (0..64).map(|i| i as f32 * 0.01).collect();
        let q = crate::ggml::codec::quantize(QuantType::Q4_0, &w, 32, None);
        let tensors = vec![
            OutTensor {
                name: "a".into(),
                ne: vec![3],
                qtype: QuantType::F32,
                data: crate::ggml::codec::encode_plain(QuantType::F32, &[1.0, 2.0, 3.0]).into(),
            },
            OutTensor { name: "b".into(), ne: vec![32, 2], qtype: QuantType::Q4_0, data: q.clone().into() },
        ];
        write(File::create(&path).unwrap(), &md, &tensors).unwrap();
        let (g, mut f) = GgufFile::read(&path).unwrap();
        assert_eq!(g.version, 3);
        assert_eq!(g.metadata.len(), 4);
        assert!(matches!(g.get("llama.block_count"), Some(Value::U32(3))));
        assert_eq!(g.data_offset % 32, 0);
        let b = g.tensor("b").unwrap();
        assert_eq!(b.shape(), vec![2, 32]);
        assert_eq!(g.read_data(&mut f, b).unwrap(), q);
        std::fs::remove_dir_all(&dir).ok();
    }
}
