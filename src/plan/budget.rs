//! Budget specs (docs/design.md, "triage plan and triage compress --budget"): what a plan must fit.
//!
//! `bpw=B` — bits per weight over every tensor (all tensor bytes × 8 / all weights, as
//! `triage.bits_per_weight` and llama.cpp's "BPW" count them); `size=N` — the whole GGUF file in
//! bytes (suffixes B, KB, MB, GB, KiB, MiB, GiB); `sparsity=S` — as many weights of the blocks'
//! linears pruned as pruning a share S of every row would remove (`0.6` or `60%`);
//! `drop-blocks=K` — K whole blocks removed; `drop-sublayers=K` — K attention or MLP sublayers
//! removed; `kld<=T` — the smallest plan whose KL on
//! calibration text stays within T.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Budget {
    Bpw(f64),
    Size(u64),
    Sparsity(f64),
    DropBlocks(usize),
    DropSublayers(usize),
    Kld(f64),
}

impl Budget {
    pub fn parse(spec: &str) -> Result<Budget, String> {
        let s = spec.trim();
        if let Some(t) = s.strip_prefix("kld<=") {
            return match t.trim().parse::<f64>() {
                Ok(v) if v > 0.0 && v.is_finite() => Ok(Budget::Kld(v)),
                _ => Err(format!("budget '{s}': kld<= needs a positive number, e.g. kld<=0.05")),
            };
        }
        let (key, value) = s.split_once('=').ok_or_else(|| format!("budget '{s}' is not KEY=VALUE (bpw=4.5, size=90MiB, sparsity=0.6, drop-blocks=6, drop-sublayers=8, kld<=0.05)"))?;
        let value = value.trim();
        match key.trim() {
            "bpw" => match value.parse::<f64>() {
                Ok(b) if b > 0.0 && b.is_finite() => Ok(Budget::Bpw(b)),
                _ => Err(format!("budget '{s}': bpw needs a positive number of bits per weight")),
            },
            "size" => parse_bytes(value).map(Budget::Size).map_err(|e| format!("budget '{s}': {e}")),
            "drop-blocks" => match value.parse::<usize>() {
                Ok(k) if k > 0 => Ok(Budget::DropBlocks(k)),
                _ => Err(format!("budget '{s}': drop-blocks needs a positive whole number of blocks")),
            },
            "drop-sublayers" => match value.parse::<usize>() {
                Ok(k) if k > 0 => Ok(Budget::DropSublayers(k)),
                _ => Err(format!("budget '{s}': drop-sublayers needs a positive whole number of sublayers")),
            },
            "sparsity" => {
                let share = match value.strip_suffix('%') {
                    Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
                    None => value.parse::<f64>(),
                };
                match share {
                    Ok(p) if p > 0.0 && p < 1.0 => Ok(Budget::Sparsity(p)),
                    _ => Err(format!("budget '{s}': sparsity needs a share of weights strictly between 0 and 1, e.g. sparsity=0.6 or sparsity=60%")),
                }
            }
            k => Err(format!("unknown budget '{k}' (bpw=, size=, sparsity=, drop-blocks=, drop-sublayers=, kld<=)")),
        }
    }

    /// Whether the budget is met by choosing a GGUF type per tensor.
    pub fn is_quantization(&self) -> bool {
        matches!(self, Budget::Bpw(_) | Budget::Size(_) | Budget::Kld(_))
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Budget::Bpw(b) => write!(f, "bpw={b}"),
            Budget::Size(n) => write!(f, "size={n}"),
            Budget::Sparsity(p) => write!(f, "sparsity={p}"),
            Budget::DropBlocks(k) => write!(f, "drop-blocks={k}"),
            Budget::DropSublayers(k) => write!(f, "drop-sublayers={k}"),
            Budget::Kld(t) => write!(f, "kld<={t}"),
        }
    }
}

/// "88202048", "84.1MiB", "90 MB" → bytes.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (num, unit) = (s[..split].trim(), s[split..].trim());
    let mult: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        u => return Err(format!("unknown size unit '{u}' (B, KB, MB, GB, KiB, MiB, GiB)")),
    };
    match num.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok((v * mult).round() as u64),
        _ => Err(format!("size '{s}' is not a positive number of bytes")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_past_u64_saturate_to_its_largest_value() {
        // Above any plan, which quant_limits refuses as it refuses bpw=9 (u64::MAX is no
        // "no limit" sentinel there).
        assert_eq!(parse_bytes("18446744073709551000"), Ok(u64::MAX));
        assert_eq!(parse_bytes("99999999999999999999999 GB"), Ok(u64::MAX));
    }

    #[test]
    fn specs_parse() {
        assert_eq!(Budget::parse("bpw=3.5"), Ok(Budget::Bpw(3.5)));
        assert_eq!(Budget::parse("size=80MiB"), Ok(Budget::Size(80 * 1024 * 1024)));
        assert_eq!(Budget::parse("size=88202048"), Ok(Budget::Size(88_202_048)));
        assert_eq!(Budget::parse("size=1.5 GB"), Ok(Budget::Size(1_500_000_000)));
        assert_eq!(Budget::parse("drop-blocks=6"), Ok(Budget::DropBlocks(6)));
        assert_eq!(Budget::parse("drop-sublayers=9"), Ok(Budget::DropSublayers(9)));
        assert_eq!(Budget::parse("kld<=0.05"), Ok(Budget::Kld(0.05)));
        assert_eq!(Budget::parse("sparsity=0.6"), Ok(Budget::Sparsity(0.6)));
        assert_eq!(Budget::parse("sparsity=70%"), Ok(Budget::Sparsity(0.7)));
        for bad in [
            "sparsity=0",
            "sparsity=1",
            "sparsity=1.0",
            "sparsity=NaN",
            "sparsity=150%",
            "sparsity=half",
            "bpw=-1",
            "bpw=0",
            "bpw=NaN",
            "bpw=inf",
            "bpw=x",
            "size=12 parsecs",
            "size=0",
            "size=NaN",
            "size=inf",
            "size=-5",
            "drop-blocks=0",
            "drop-blocks=-1",
            "drop-sublayers=x",
            "kld<=0",
            "kld<=NaN",
            "kld<=-0.1",
            "kld<=inf",
            "speed=3",
            "4.5",
        ] {
            assert!(Budget::parse(bad).is_err(), "{bad}");
        }
    }
}
