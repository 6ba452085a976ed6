//! The calibration layer that compression, the profile, the planner and evaluation share: texts
//! read once and cut into token windows (here), the runner that carries the windows through a
//! model block by block ([`runner`]), the input moments every linear's calibrated rounding needs
//! ([`moments`], its tokens weighted as [`token_weights`] says), and llama.cpp's importance
//! matrices ([`imatrix`]).
//!
//! The perplexity protocol (docs/design.md, "The perplexity protocol"): tokenize the whole file with no special tokens, cut it into
//! non-overlapping windows of `ctx` tokens, drop the remainder, run each window on its own. When
//! only the first windows are wanted, only as much of the text as they need is tokenized (the
//! same tokens: [`Tokenizer::encode_prefix`]).

pub mod imatrix;
pub mod moments;
pub mod runner;
pub mod token_weights;

use std::path::{Path, PathBuf};

use crate::model::Tokenizer;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{0}: not UTF-8 text")]
    NotUtf8(PathBuf),
    #[error("{0}: the text is empty")]
    Empty(PathBuf),
    #[error("{path}: {what}, not a text file")]
    NotText { path: PathBuf, what: &'static str },
    #[error("{path}: more than {max} bytes; give a shorter text", max = MAX_TEXT_BYTES)]
    TooLarge { path: PathBuf },
    #[error("the text has {n_tokens} tokens, fewer than one window of {ctx}")]
    TooShort { n_tokens: usize, ctx: usize },
    #[error("window length must be at least 2 tokens, got {0}")]
    BadCtx(usize),
    #[error("tokenizing: {0}")]
    Tokenize(#[from] crate::model::ModelError),
}

/// The most bytes a text may have (read whole into memory): 1 GiB, two hundred times the
/// default calibration text. A pipe or device that gives more is refused, not read without end.
pub const MAX_TEXT_BYTES: u64 = 1 << 30;

/// Reads a UTF-8 text file once, refusing empty (or whitespace-only) ones and anything past
/// [`MAX_TEXT_BYTES`]; returns the text and the sha256 of the bytes read (what caches are keyed
/// by: a pipe cannot be read a second time to hash it). A regular file, or a pipe or FIFO
/// (`--calib <(zcat text.gz)`), read to its end — a FIFO no process writes to is waited for,
/// as `cat` would, with a line saying so after two seconds; other kinds of file (devices,
/// sockets, folders) are refused.
pub fn read_text(path: &Path) -> Result<Text, DataError> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    use std::os::unix::io::AsRawFd;
    let io = |error| DataError::Io { path: path.into(), error };
    // Opened without blocking: opening a FIFO that no process writes to would otherwise wait
    // forever.
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).map_err(io)?;
    let kind = file.metadata().map_err(io)?.file_type();
    if kind.is_fifo() {
        // Until a process opens the FIFO to write, poll reports nothing (and a blocking read
        // would report the end of the file at once): wait for it, saying so.
        if !readable(&file, 2000).map_err(io)? {
            eprintln!("waiting for a process to write to the FIFO {} (Ctrl-C stops)", path.display());
            readable(&file, -1).map_err(io)?;
        }
        // Reads block again: a writer that is still producing is waited for; with no writer
        // left, a read gives end of file.
        // SAFETY: fcntl on a file descriptor this function owns.
        let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
        if flags < 0 || unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
            return Err(io(std::io::Error::last_os_error()));
        }
    } else if !kind.is_file() {
        return Err(DataError::NotText { path: path.into(), what: file_kind(kind) });
    } else if file.metadata().map_err(io)?.len() > MAX_TEXT_BYTES {
        return Err(DataError::TooLarge { path: path.into() });
    }
    let mut bytes = Vec::new();
    file.take(MAX_TEXT_BYTES + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > MAX_TEXT_BYTES {
        return Err(DataError::TooLarge { path: path.into() });
    }
    let sha256 = format!("{:x}", Sha256::digest(&bytes));
    let text = String::from_utf8(bytes).map_err(|_| DataError::NotUtf8(path.into()))?;
    if text.trim().is_empty() {
        return Err(DataError::Empty(path.into()));
    }
    Ok(Text { text, sha256 })
}

/// What kind of file `kind` is, for a message ("a folder", "a FIFO", "a device" …).
pub fn file_kind(kind: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a folder"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "a regular file"
    }
}

/// Whether `file` has data or an end to read within `timeout_ms` (-1: however long it takes).
fn readable(file: &std::fs::File, timeout_ms: i32) -> std::io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    let mut fd = libc::pollfd { fd: file.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    loop {
        // SAFETY: one valid pollfd.
        match unsafe { libc::poll(&mut fd, 1, timeout_ms) } {
            -1 if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => continue,
            -1 => return Err(std::io::Error::last_os_error()),
            n => return Ok(n > 0),
        }
    }
}

/// A text as read, once, from its file.
#[derive(Debug, Clone)]
pub struct Text {
    pub text: String,
    /// The sha256 of the file's bytes.
    pub sha256: String,
}

/// Non-overlapping windows of `ctx` token ids.
#[derive(Debug, Clone)]
pub struct Windows {
    pub ctx: usize,
    pub windows: Vec<Vec<u32>>,
    /// The sha256 of the text file the windows were cut from (None: made from token ids).
    pub text_sha256: Option<String>,
}

impl Windows {
    /// Cuts `tokens` into windows of `ctx`, dropping the remainder, keeping at most `max` windows.
    pub fn new(tokens: &[u32], ctx: usize, max: Option<usize>) -> Result<Self, DataError> {
        if ctx < 2 {
            return Err(DataError::BadCtx(ctx));
        }
        if tokens.len() < ctx {
            return Err(DataError::TooShort { n_tokens: tokens.len(), ctx });
        }
        let windows = tokens.chunks_exact(ctx).take(max.unwrap_or(usize::MAX)).map(<[u32]>::to_vec).collect();
        Ok(Windows { ctx, windows, text_sha256: None })
    }

    /// Reads, tokenizes and cuts a text file.
    pub fn from_file(path: &Path, tokenizer: &Tokenizer, ctx: usize, max: Option<usize>) -> Result<Self, DataError> {
        Self::from_text(&read_text(path)?, tokenizer, ctx, max)
    }

    /// Tokenizes and cuts a text already read.
    pub fn from_text(text: &Text, tokenizer: &Tokenizer, ctx: usize, max: Option<usize>) -> Result<Self, DataError> {
        let tokens = match max {
            Some(n) => tokenizer.encode_prefix(&text.text, n.saturating_mul(ctx))?,
            None => tokenizer.encode(&text.text)?,
        };
        Ok(Windows { text_sha256: Some(text.sha256.clone()), ..Self::new(&tokens, ctx, max)? })
    }

    /// What identifies the windows' source in a cache key: the sha256 of the text they were
    /// read from, else of their token ids.
    pub fn source_digest(&self) -> String {
        use sha2::{Digest, Sha256};
        self.text_sha256.clone().unwrap_or_else(|| {
            let mut h = Sha256::new();
            h.update((self.ctx as u64).to_le_bytes());
            for t in self.windows.iter().flatten() {
                h.update(t.to_le_bytes());
            }
            format!("tokens {:x}", h.finalize())
        })
    }

    pub fn len(&self) -> usize {
        self.windows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_drop_the_remainder() {
        let t: Vec<u32> = (0..10).collect();
        let w = Windows::new(&t, 4, None).unwrap();
        assert_eq!(w.windows, vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7]]);
        assert_eq!(Windows::new(&t, 4, Some(1)).unwrap().len(), 1);
    }

    #[test]
    fn too_short_text_is_refused() {
        let t: Vec<u32> = (0..3).collect();
        let e = Windows::new(&t, 4, None).unwrap_err();
        assert_eq!(e.to_string(), "the text has 3 tokens, fewer than one window of 4");
    }
}
