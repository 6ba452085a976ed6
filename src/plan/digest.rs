//! What the caches are keyed by: the sha256 of the model's and the calibration text's bytes.
//!
//! Hashing a 16 GB model takes a minute or more, so a file's sha256 is remembered in the cache
//! folder (`hash-KEY.json`, KEY from the file's canonical path) together with the file's size,
//! modification time (to the nanosecond), device and inode; it is reused only while all four
//! are unchanged — the test `make` and `rsync` trust — and the file is hashed again otherwise.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:x}", h.finalize()))
}

/// What a file is, as far as the remembered hash trusts it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileState {
    path: PathBuf,
    size: u64,
    mtime_ns: i128,
    dev: u64,
    ino: u64,
}

/// A remembered hash: the file as it was when hashed, and its sha256.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Remembered {
    file: FileState,
    sha256: String,
}

fn stat(path: &Path) -> std::io::Result<FileState> {
    let m = std::fs::metadata(path)?;
    let mtime_ns = i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec());
    Ok(FileState { path: std::fs::canonicalize(path)?, size: m.len(), mtime_ns, dev: m.dev(), ino: m.ino() })
}

/// The sha256 of `path`'s bytes, remembered in `cache` (when given) while the file is unchanged.
pub fn sha256_remembered(path: &Path, cache: Option<&Path>) -> std::io::Result<String> {
    let Some(cache) = cache else { return sha256_file(path) };
    let now = stat(path)?;
    let sidecar = cache.join(format!("hash-{}.json", short_key(&now.path.to_string_lossy())));
    let known: Option<Remembered> = std::fs::read_to_string(&sidecar).ok().and_then(|t| serde_json::from_str(&t).ok());
    if let Some(k) = known.filter(|k| k.file == now && k.sha256.len() == 64) {
        return Ok(k.sha256);
    }
    let sha256 = sha256_file(path)?;
    // Remembered only when the file did not change while it was read.
    if stat(path).is_ok_and(|after| after == now) {
        let text =
            serde_json::to_string(&Remembered { file: now, sha256: sha256.clone() }).map_err(std::io::Error::other)?;
        if let Err(e) = std::fs::create_dir_all(cache)
            .and_then(|_| crate::temp::write_atomic(&sidecar, |w| std::io::Write::write_all(w, text.as_bytes())))
        {
            eprintln!("warning: could not remember the sha256 of {} at {}: {e}", path.display(), sidecar.display());
        }
    }
    Ok(sha256)
}

/// The sha256 of the model's bytes and the calibration text's digest (the sha256 of the bytes
/// its windows were read from, taken as they were read: a piped text cannot be read twice):
/// what every cache key starts from. The model's (each file of a Hugging Face folder) is
/// remembered in `cache`.
pub fn inputs_digest(model: &Path, calib: &str, cache: Option<&Path>) -> std::io::Result<String> {
    let m = if model.is_dir() {
        // A Hugging Face folder: its weights, config and tokenizer (tokenizer.json, or the
        // SentencePiece tokenizer.model), which decide the calibration tokens.
        let mut names: Vec<PathBuf> = std::fs::read_dir(model)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors" || e == "json" || e == "model"))
            .collect();
        names.sort();
        names.iter().map(|p| sha256_remembered(p, cache)).collect::<std::io::Result<Vec<_>>>()?.join("")
    } else {
        sha256_remembered(model, cache)?
    };
    Ok(format!("model {m} calib {calib}"))
}

/// A key of 24 hex digits for what `text` describes.
pub fn short_key(text: &str) -> String {
    format!("{:x}", Sha256::digest(text.as_bytes()))[..24].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_remembered_while_the_file_is_unchanged() {
        let dir = std::env::temp_dir().join(format!("triage-digest-{}", std::process::id()));
        let cache = dir.join("cache");
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("model.gguf");
        std::fs::write(&f, b"abc").unwrap();
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_remembered(&f, Some(&cache)).unwrap(), abc);
        let sidecar = std::fs::read_dir(&cache)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().contains("hash-"))
            .unwrap();
        // A remembered value is used as it is: plant another one to see it come back.
        let planted = std::fs::read_to_string(&sidecar).unwrap().replace(abc, &"0".repeat(64));
        std::fs::write(&sidecar, planted).unwrap();
        assert_eq!(sha256_remembered(&f, Some(&cache)).unwrap(), "0".repeat(64));
        // Another size (and modification time): hashed again.
        std::fs::write(&f, b"abcd").unwrap();
        let abcd = "88d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589";
        assert_eq!(sha256_remembered(&f, Some(&cache)).unwrap(), abcd);
        assert_eq!(sha256_remembered(&f, None).unwrap(), abcd);
        // A corrupt sidecar is ignored.
        std::fs::write(&sidecar, "{").unwrap();
        assert_eq!(sha256_remembered(&f, Some(&cache)).unwrap(), abcd);
        std::fs::remove_dir_all(&dir).ok();
    }
}
