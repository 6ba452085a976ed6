//! The ground floor that model loading and compression share, as ggml keeps it: the GGUF tensor
//! types and their traits (one table), the bit-exact block encoders and decoders, and the
//! weighted grid fits the encoders choose scales with.

pub mod blocks;
pub mod codec;
pub mod grid;
pub mod iq;
pub mod kgrid;
pub mod traits;
pub mod types;
