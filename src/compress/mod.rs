//! Compression primitives: GGUF types and their encoders, quantizers, pruners, depth removal.

pub mod codec;
pub mod gptq;
pub mod prune;
pub mod grid;
pub mod grid_columns;
pub mod pipeline;
pub mod plan;
pub mod rtn;
pub mod types;
