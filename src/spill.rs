//! Spill files: bytes that would not fit (or need not stay) in memory, appended to an unlinked
//! temporary file in the system's temporary folder (`$TMPDIR`) and read back with positioned
//! reads. The file is unlinked as soon as it is created, so nothing is left behind however the
//! process ends; its pages live in the kernel's page cache, not in the process's memory.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

pub struct Spill {
    file: File,
    len: u64,
}

impl Spill {
    /// A new empty spill file; `tag` names what it holds (`.triage-TAG-PID-NANOS` while it is
    /// being created).
    pub fn new(tag: &str) -> io::Result<Spill> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!(".triage-{tag}-{}-{nanos:x}", std::process::id()));
        let file = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
        std::fs::remove_file(&path)?;
        Ok(Spill { file, len: 0 })
    }

    /// Forgets what was written: the next append writes from the start again (the file keeps
    /// its size until overwritten).
    pub fn rewind(&mut self) -> &mut Spill {
        self.len = 0;
        self
    }

    /// Appends `bytes`; returns the offset they start at.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<u64> {
        let at = self.len;
        self.file.write_all_at(bytes, at)?;
        self.len += bytes.len() as u64;
        Ok(at)
    }

    /// Sets aside `len` bytes at the end, to be filled by [`Spill::write_at`]; returns their offset.
    pub fn reserve(&mut self, len: u64) -> u64 {
        let at = self.len;
        self.len += len;
        at
    }

    /// Writes `bytes` at `offset`, inside what was appended or reserved.
    pub fn write_at(&self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        debug_assert!(offset + bytes.len() as u64 <= self.len);
        self.file.write_all_at(bytes, offset)
    }

    /// Another handle on the file, to read what was written (positioned reads).
    pub fn reader(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    /// Fills `buf` from `offset`.
    pub fn read_into(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    /// `len` bytes from `offset`.
    pub fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut v = vec![0u8; len];
        self.read_into(offset, &mut v)?;
        Ok(v)
    }

    /// The file, to be read with positioned reads ([`FileExt::read_exact_at`]).
    pub fn into_file(self) -> File {
        self.file
    }

    /// Appends f32 values (little-endian), a megabyte at a time; returns their offset.
    pub fn append_f32(&mut self, values: &[f32]) -> io::Result<u64> {
        let at = self.len;
        for c in values.chunks(1 << 18) {
            let bytes: Vec<u8> = c.iter().flat_map(|x| x.to_le_bytes()).collect();
            self.append(&bytes)?;
        }
        Ok(at)
    }

    /// `n` f32 values from `offset`.
    pub fn read_f32(&self, offset: u64, n: usize) -> io::Result<Vec<f32>> {
        Ok(self.read(offset, 4 * n)?.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }
}

/// Where spill files go, for error messages.
pub fn folder() -> PathBuf {
    std::env::temp_dir()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appended_bytes_read_back_and_no_file_is_left() {
        let mut s = Spill::new("spill-test").unwrap();
        assert_eq!(s.append(&[1, 2, 3]).unwrap(), 0);
        let at = s.append_f32(&[1.5, -2.0]).unwrap();
        assert_eq!(at, 3);
        assert_eq!(s.read(0, 3).unwrap(), vec![1, 2, 3]);
        assert_eq!(s.read_f32(at, 2).unwrap(), vec![1.5, -2.0]);
        assert!(s.read(at, 100).is_err());
        let prefix = format!(".triage-spill-test-{}-", std::process::id());
        let left = std::fs::read_dir(folder())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .count();
        assert_eq!(left, 0);
    }
}
