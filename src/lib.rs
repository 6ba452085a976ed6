//! triage — find what matters inside a transformer language model and spend a compression budget
//! where it matters.
//!
//! The pipeline, one module each, data flowing one way:
//! `model` (load, run block by block with capture points) → `data` (text → windows)
//! → `eval` (perplexity, KL to a reference).

pub mod calib;
pub mod cli;
pub mod compress;
pub mod eval;
pub mod export;
pub mod failpoint;
pub mod fuzz;
pub mod ggml;
pub mod importance;
pub mod layout;
pub mod memory;
pub mod model;
pub mod plan;
pub mod progress;
pub mod report;
pub mod rotate;
mod simd;
pub mod spill;
pub mod stats;
pub mod temp;
