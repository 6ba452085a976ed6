//! Text → token windows: the calibration and evaluation sets.
//!
//! The perplexity protocol (PRODUCT.md): tokenize the whole file with no special tokens, cut it into
//! non-overlapping windows of `ctx` tokens, drop the remainder, run each window on its own. When
//! only the first windows are wanted, only as much of the text as they need is tokenized (the
//! same tokens: [`Tokenizer::encode_prefix`]).

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
    #[error("the text has {n_tokens} tokens, fewer than one window of {ctx}")]
    TooShort { n_tokens: usize, ctx: usize },
    #[error("window length must be at least 2 tokens, got {0}")]
    BadCtx(usize),
    #[error("tokenizing: {0}")]
    Tokenize(#[from] crate::model::ModelError),
}

/// Reads a UTF-8 text file, refusing empty (or whitespace-only) ones.
pub fn read_text(path: &Path) -> Result<String, DataError> {
    let bytes = std::fs::read(path).map_err(|error| DataError::Io { path: path.into(), error })?;
    let text = String::from_utf8(bytes).map_err(|_| DataError::NotUtf8(path.into()))?;
    if text.trim().is_empty() {
        return Err(DataError::Empty(path.into()));
    }
    Ok(text)
}

/// Non-overlapping windows of `ctx` token ids.
#[derive(Debug, Clone)]
pub struct Windows {
    pub ctx: usize,
    pub windows: Vec<Vec<u32>>,
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
        let windows = tokens
            .chunks_exact(ctx)
            .take(max.unwrap_or(usize::MAX))
            .map(<[u32]>::to_vec)
            .collect();
        Ok(Windows { ctx, windows })
    }

    /// Reads, tokenizes and cuts a text file.
    pub fn from_file(
        path: &Path,
        tokenizer: &Tokenizer,
        ctx: usize,
        max: Option<usize>,
    ) -> Result<Self, DataError> {
        let text = read_text(path)?;
        let tokens = match max {
            Some(n) => tokenizer.encode_prefix(&text, n.saturating_mul(ctx))?,
            None => tokenizer.encode(&text)?,
        };
        Self::new(&tokens, ctx, max)
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
