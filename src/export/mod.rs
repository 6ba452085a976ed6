//! Files other tools read: imatrix files (llama.cpp's formats), written atomically.

pub mod gguf;
pub mod hf;
pub mod rotated;

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
