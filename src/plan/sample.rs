//! Row-sampled levels: a layer database that quantizes, at every level, only a uniform sample
//! of each tensor's rows. Rows are quantized independently given the shared factorization of H
//! (GPTQ updates a row from its own errors; every grid fits its scales row by row), so the
//! sampled rows' bytes are exactly those rows of the whole tensor's, and the ratio
//! Σ_s ‖(w_r − ŵ_r)X‖² / Σ_s ‖w_r X‖² over the sample estimates the whole tensor's t² (a ratio
//! estimator: consistent, its bias O(1/s)). The standard error comes from the sample's
//! residuals with the finite-population correction; the whole tensor is quantized only at the
//! levels a plan chooses, when they are measured or written ([`super::database::materialize`]).

/// Rows sampled per tensor by default: the estimate of t is within a few percent (its standard
/// error is recorded with it), and GPTQ's cost at a level falls by rows/256 (16 for Llama-3.1-8B's
/// attention, 56 for its 14 336-row gate and up).
pub const DEFAULT_ROWS: usize = 256;

/// Which of `rows` rows are sampled for the tensor `name`: `count` distinct rows in increasing
/// order, drawn uniformly by a generator seeded with the name (the same rows on every run and
/// every machine, different rows for different tensors). All of them when `count` ≥ `rows`.
pub fn sample_rows(name: &str, rows: usize, count: usize) -> Vec<usize> {
    if count >= rows {
        return (0..rows).collect();
    }
    let mut state = crc32fast::hash(name.as_bytes()) as u64 ^ 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        // splitmix64
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    // A partial Fisher–Yates shuffle: the first `count` places are a uniform sample.
    let mut all: Vec<usize> = (0..rows).collect();
    for i in 0..count {
        let j = i + (next() % (rows - i) as u64) as usize;
        all.swap(i, j);
    }
    let mut picked = all[..count].to_vec();
    picked.sort_unstable();
    picked
}

/// A level's relative error estimated from sampled rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// t̂ = sqrt(Σ_s e_r / Σ_s n_r).
    pub rel_error: f64,
    /// The standard error of t̂ (0 when every row was used).
    pub stderr: f64,
}

/// The ratio estimate of t = sqrt(Σ e / Σ n) over a population of `population` rows from the
/// sampled rows' error energies `e` and energies `n` (the same rows, in order). Its standard
/// error is the ratio estimator's, sqrt((1 − s/N)/s · S²_d)/n̄ with d_r = e_r − R̂·n_r, carried
/// to t by the delta method (SE(t) = SE(R)/(2t)).
pub fn ratio_estimate(e: &[f64], n: &[f64], population: usize) -> Estimate {
    let s = e.len();
    let (se, sn) = (e.iter().sum::<f64>(), n.iter().sum::<f64>());
    if sn <= 0.0 || s == 0 {
        return Estimate { rel_error: 0.0, stderr: 0.0 };
    }
    let r = (se / sn).max(0.0);
    let t = r.sqrt();
    if s >= population || s < 2 || t == 0.0 {
        return Estimate { rel_error: t, stderr: 0.0 };
    }
    let s2 = e.iter().zip(n).map(|(a, b)| (a - r * b).powi(2)).sum::<f64>() / (s - 1) as f64;
    let mean_n = sn / s as f64;
    let fpc = 1.0 - s as f64 / population as f64;
    let se_r = (fpc * s2 / s as f64).sqrt() / mean_n;
    Estimate { rel_error: t, stderr: se_r / (2.0 * t) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_distinct_sorted_seeded_by_name_and_whole_when_asked_for_all() {
        let a = sample_rows("blk.0.attn_q.weight", 1000, 100);
        assert_eq!(a.len(), 100);
        assert!(a.windows(2).all(|w| w[0] < w[1]) && *a.last().unwrap() < 1000);
        assert_eq!(a, sample_rows("blk.0.attn_q.weight", 1000, 100));
        assert_ne!(a, sample_rows("blk.1.attn_q.weight", 1000, 100));
        assert_eq!(sample_rows("x", 5, 9), vec![0, 1, 2, 3, 4]);
        // Uniform: every decile of the rows gets about its tenth of a large sample.
        let big = sample_rows("blk.3.ffn_up.weight", 100_000, 10_000);
        for d in 0..10 {
            let k = big.iter().filter(|&&r| r / 10_000 == d).count();
            assert!((900..1100).contains(&k), "decile {d}: {k}");
        }
    }

    #[test]
    fn the_ratio_estimate_and_its_standard_error_match_hand_computed_values() {
        // e = (1, 4), n = (2, 2): R = 5/4, t = sqrt(1.25); d = (1 − 2.5, 4 − 2.5) = (−1.5, 1.5),
        // S² = 4.5, of N = 4 rows: SE(R) = sqrt(0.5 · 4.5 / 2)/2 = 0.5303…, SE(t) = SE(R)/(2t).
        let est = ratio_estimate(&[1.0, 4.0], &[2.0, 2.0], 4);
        assert!((est.rel_error - 1.25f64.sqrt()).abs() < 1e-15);
        let se_r = (0.5f64 * 4.5 / 2.0).sqrt() / 2.0;
        assert!((est.stderr - se_r / (2.0 * 1.25f64.sqrt())).abs() < 1e-15, "{}", est.stderr);
        // The whole population: exact, no error.
        assert_eq!(ratio_estimate(&[1.0, 4.0], &[2.0, 2.0], 2).stderr, 0.0);
        assert_eq!(ratio_estimate(&[0.0], &[0.0], 9), Estimate { rel_error: 0.0, stderr: 0.0 });
    }

    #[test]
    fn the_standard_error_covers_the_truth_as_often_as_it_should() {
        // A population of rows with uneven energies and errors: over 200 seeded samples, the
        // true t lies within two standard errors of the estimate about 95% of the time.
        let rows = 4000;
        let n: Vec<f64> = (0..rows).map(|r| 1.0 + ((r * 7919) % 97) as f64 / 10.0).collect();
        let e: Vec<f64> = (0..rows).map(|r| n[r] * (0.01 + ((r * 104_729) % 53) as f64 / 2000.0)).collect();
        let truth = (e.iter().sum::<f64>() / n.iter().sum::<f64>()).sqrt();
        let mut covered = 0;
        for k in 0..200 {
            let pick = sample_rows(&format!("t{k}"), rows, 256);
            let est = ratio_estimate(
                &pick.iter().map(|&r| e[r]).collect::<Vec<_>>(),
                &pick.iter().map(|&r| n[r]).collect::<Vec<_>>(),
                rows,
            );
            covered += usize::from((est.rel_error - truth).abs() <= 2.0 * est.stderr);
        }
        assert!((180..=200).contains(&covered), "{covered} of 200");
    }
}
