//! What an architecture's row in [`super::config::ARCHS`] cannot say as a value: one file per
//! architecture that needs code.

pub mod gemma2;
pub mod gemma3;
pub mod phi3;
