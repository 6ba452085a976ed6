//! Every flag's value parsed once, in one place: each is checked by its clap parser into a typed
//! value, so a value out of range is refused in one line (exit 2) before anything is read, and no
//! later division or allocation sees it (`--ctx 0` once divided by zero).

use crate::compress::gptq::Sparsity;
use crate::compress::plan::parse_sparsity;
use crate::ggml::types::QuantType;
use crate::plan::budget::{parse_bytes, Budget};

/// A budget: bpw=B, size=N, sparsity=S, drop-blocks=K, drop-sublayers=K or kld<=T.
pub fn budget(s: &str) -> Result<Budget, String> {
    Budget::parse(s)
}

/// A size in bytes (B, KB, MB, GB, KiB, MiB, GiB).
pub fn bytes(s: &str) -> Result<u64, String> {
    parse_bytes(s)
}

/// A GGUF type by name (Q4_K, q4_k, IQ4_XS, F16 …).
pub fn qtype(s: &str) -> Result<QuantType, String> {
    QuantType::parse(s)
}

/// A sparsity: a share in [0, 1) or N:M.
pub fn sparsity(s: &str) -> Result<Sparsity, String> {
    parse_sparsity(s)
}

/// `--embeddings-type`: a GGUF type, or "keep" (the source's bytes unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Embeddings {
    Keep,
    Type(QuantType),
}

pub fn embeddings(s: &str) -> Result<Embeddings, String> {
    if s.trim().eq_ignore_ascii_case("keep") {
        return Ok(Embeddings::Keep);
    }
    QuantType::parse(s).map(Embeddings::Type)
}

/// A count of at least one (`--batch`, `--tokens`, `--offspring`, windows …).
pub fn positive(s: &str) -> Result<usize, String> {
    at_least(s, 1)
}

/// A window length: at least 2 tokens (one scored position), at most 2^20.
pub fn ctx(s: &str) -> Result<usize, String> {
    let n = at_least(s, 2)?;
    if n > MAX_CTX {
        return Err(format!("{n} tokens is longer than any model's context (at most {MAX_CTX})"));
    }
    Ok(n)
}

/// The longest window accepted: no model triage loads has a longer context, and the states of
/// one window of this length already take gigabytes.
const MAX_CTX: usize = 1 << 20;

/// A count that may be zero (`--generations`, `--frontier`, token counts that may be off).
pub fn count(s: &str) -> Result<usize, String> {
    at_least(s, 0)
}

/// GPTQ's dampening: a finite share in [0, 1) of H's mean diagonal.
pub fn damp(s: &str) -> Result<f32, String> {
    let x: f32 = s.trim().parse().map_err(|_| format!("'{s}' is not a number"))?;
    if !(0.0..1.0).contains(&x) {
        return Err(format!("{s} is outside [0, 1)"));
    }
    Ok(x)
}

fn at_least(s: &str, min: usize) -> Result<usize, String> {
    let n: usize = s.trim().parse().map_err(|_| format!("'{s}' is not a whole number of at least {min}"))?;
    if n < min {
        return Err(format!("{n} is less than {min}"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_out_of_range_are_refused() {
        assert_eq!(ctx("512"), Ok(512));
        for bad in ["0", "1", "-3", "1e3", "", "99999999999999999999999", "2097152"] {
            assert!(ctx(bad).is_err(), "ctx {bad}");
        }
        assert_eq!(positive("1"), Ok(1));
        assert!(positive("0").is_err());
        assert_eq!(count("0"), Ok(0));
        assert_eq!(damp("0.01"), Ok(0.01));
        for bad in ["1", "-0.1", "NaN", "inf", "x"] {
            assert!(damp(bad).is_err(), "damp {bad}");
        }
    }
}
