//! Compression primitives: quantizers (and later pruners and depth removal).

pub mod gguf_quant;
pub mod rtn;
