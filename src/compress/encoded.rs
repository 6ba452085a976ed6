//! The encoded bytes of every tensor a compression changed, by GGUF name: held in memory, or, for
//! a streamed model (whose encoded tensors can be larger than the memory), appended to a
//! temporary file as each block finishes and read back one tensor at a time by the writer.
//! The file is a [`crate::spill::Spill`]: nothing is left behind however the process ends.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io;

use crate::ggml::types::QuantType;
use crate::spill::Spill;

pub struct Encoded {
    entries: BTreeMap<String, (QuantType, Bytes)>,
    spill: Option<Spill>,
}

enum Bytes {
    Memory(Vec<u8>),
    Spilled { offset: u64, len: usize },
}

impl Encoded {
    pub fn in_memory() -> Encoded {
        Encoded { entries: BTreeMap::new(), spill: None }
    }

    /// Bytes kept in an unlinked temporary file in the system's temporary folder.
    pub fn spilled() -> io::Result<Encoded> {
        Ok(Encoded { entries: BTreeMap::new(), spill: Some(Spill::new("encoded")?) })
    }

    pub fn insert(&mut self, name: String, qtype: QuantType, bytes: Vec<u8>) -> io::Result<()> {
        let b = match &mut self.spill {
            None => Bytes::Memory(bytes),
            Some(s) => Bytes::Spilled { offset: s.append(&bytes)?, len: bytes.len() },
        };
        self.entries.insert(name, (qtype, b));
        Ok(())
    }

    pub fn qtype(&self, name: &str) -> Option<QuantType> {
        self.entries.get(name).map(|(t, _)| *t)
    }

    /// The bytes of tensor `name`, None when it did not change.
    pub fn bytes(&self, name: &str) -> io::Result<Option<Cow<'_, [u8]>>> {
        let len = match self.entries.get(name) {
            None => return Ok(None),
            Some((_, Bytes::Memory(v))) => v.len(),
            Some((_, Bytes::Spilled { len, .. })) => *len,
        };
        self.range(name, 0..len)
    }

    /// Bytes `range` of tensor `name` (a chunk of its rows), None when it did not change.
    pub fn range(&self, name: &str, range: std::ops::Range<usize>) -> io::Result<Option<Cow<'_, [u8]>>> {
        let Some((_, b)) = self.entries.get(name) else { return Ok(None) };
        Ok(Some(match b {
            Bytes::Memory(v) => Cow::Borrowed(&v[range]),
            Bytes::Spilled { offset, len } => {
                assert!(range.end <= *len, "bytes {range:?} of {name}, which has {len}");
                Cow::Owned(
                    self.spill
                        .as_ref()
                        .expect("spilled bytes have a file")
                        .read(offset + range.start as u64, range.len())?,
                )
            }
        }))
    }

    /// Renames every entry by `rename`, dropping those it maps to None.
    pub fn rename(&mut self, rename: impl Fn(&str) -> Option<String>) {
        self.entries =
            std::mem::take(&mut self.entries).into_iter().filter_map(|(n, v)| Some((rename(&n)?, v))).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spilled_bytes_read_back_and_leave_no_file() {
        for mut e in [Encoded::in_memory(), Encoded::spilled().unwrap()] {
            e.insert("a".into(), QuantType::Q8_0, vec![1, 2, 3]).unwrap();
            e.insert("blk.2.b".into(), QuantType::F16, vec![9; 1000]).unwrap();
            assert_eq!(e.bytes("a").unwrap().unwrap().as_ref(), &[1, 2, 3]);
            assert_eq!(e.bytes("blk.2.b").unwrap().unwrap().len(), 1000);
            assert_eq!(e.range("a", 1..3).unwrap().unwrap().as_ref(), &[2, 3]);
            assert!(e.bytes("c").unwrap().is_none());
            e.rename(|n| if n == "a" { None } else { Some(n.replace("blk.2", "blk.1")) });
            assert_eq!(e.qtype("blk.1.b"), Some(QuantType::F16));
            assert!(e.qtype("a").is_none());
        }
        let prefix = format!(".triage-encoded-{}-", std::process::id());
        let left = std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .count();
        assert_eq!(left, 0);
    }
}
