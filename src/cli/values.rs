//! The ranges of the numeric flags, in one place: each flag's value is checked by its clap
//! parser, so a value out of range is refused in one line before anything is read, and no
//! later division or allocation sees it (`--ctx 0` once divided by zero).

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
