//! Compression: quantizers onto the GGUF grids (GPTQ, imatrix-weighted, RTN), pruners, depth
//! removal, plans, the layer-sequential pipeline. The GGUF types and their codecs are
//! `crate::ggml`'s.

pub mod compressed;
pub mod encoded;
pub mod gptq;
pub mod grid_columns;
pub mod pipeline;
pub mod plan;
pub mod prune;
pub mod rtn;
