//! Files other tools read: imatrix files (llama.cpp's formats), written atomically.

pub mod gguf;
pub mod hf;
pub mod imatrix;
pub mod temp;

use std::io::Write;
use std::path::Path;

/// A file that cannot be written: the file system's error, or what of the model it cannot hold.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Layout(#[from] crate::layout::LayoutError),
}

/// Writes `path` through a temporary file in the same folder, renamed into place only once
/// `write` has succeeded: a failure never leaves a partial file under the final name. Errors of
/// the file system name `path`.
pub fn write_atomic<E: From<std::io::Error>>(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> Result<(), E>,
) -> Result<(), E> {
    let named = |e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let tmp = temp::TempPath::new(path);
    let mut w = std::io::BufWriter::new(std::fs::File::create(tmp.path()).map_err(named)?);
    write(&mut w)?;
    w.flush().map_err(named)?;
    w.into_inner().map_err(|e| named(e.into_error()))?.sync_all().map_err(named)?;
    tmp.persist(path).map_err(named)?;
    Ok(())
}
