//! Row-sampled levels: a layer database that quantizes, at every level, only a sample of each
//! tensor's rows. Rows are quantized independently given the shared factorization of H (GPTQ
//! updates a row from its own errors; every grid fits its scales row by row), so the sampled
//! rows' bytes are exactly those rows of the whole tensor's, and a ratio over the sample of
//! Σ ‖(w_r − ŵ_r)X‖² to Σ ‖w_r X‖² estimates the whole tensor's t² (a ratio estimator:
//! consistent, its bias O(1/s)). Row energies are heavy-tailed where a model has massive
//! activations (a few rows of an ffn_down carry most of ‖WX‖²), and a uniform sample that misses
//! them misjudges t several times over; so the rows of largest energy by a cheap proxy
//! (Σ_j w_rj²·H_jj) are taken with certainty — a quarter of the sample — and the rest drawn
//! uniformly from the others, each standing for (N − k)/(s − k) rows ([`Draw`]). The standard
//! error is the stratified ratio estimator's, from the drawn rows' residuals with the
//! finite-population correction; the whole tensor is quantized only at the levels a plan
//! chooses, when they are measured or written ([`super::database::materialize`]).

/// Rows sampled per tensor by default: the estimate of t is within a few percent (its standard
/// error is recorded with it), and GPTQ's cost at a level falls by rows/256 (16 for Llama-3.1-8B's
/// attention, 56 for its 14 336-row gate and up).
pub const DEFAULT_ROWS: usize = 256;

/// The rows a sampled tensor holds, in increasing order, and which of them were taken with
/// certainty (the others drawn uniformly from the rest).
#[derive(Debug, Clone, PartialEq)]
pub struct Draw {
    pub rows: Vec<usize>,
    pub certain: Vec<bool>,
    /// The rows of the tensor.
    pub population: usize,
}

/// `count` of `rows` rows of the tensor `name` (all of them when `count` ≥ `rows`): with a
/// `proxy` of each row's energy, the `count`/4 rows of largest proxy with certainty; the rest
/// drawn uniformly by a generator seeded with the name (the same rows on every run and every
/// machine, different rows for different tensors).
pub fn draw(name: &str, rows: usize, count: usize, proxy: Option<&[f64]>) -> Draw {
    if count >= rows {
        return Draw { rows: (0..rows).collect(), certain: vec![true; rows], population: rows };
    }
    let mut order: Vec<usize> = (0..rows).collect();
    let k = match proxy {
        Some(p) => {
            order.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
            count / 4
        }
        None => 0,
    };
    let (sure, rest) = order.split_at_mut(k);
    let mut state = crc32fast::hash(name.as_bytes()) as u64 ^ 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        // splitmix64
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    // A partial Fisher–Yates shuffle of the rest: its first count − k places are a uniform sample.
    rest.sort_unstable();
    for i in 0..count - k {
        let j = i + (next() % (rest.len() - i) as u64) as usize;
        rest.swap(i, j);
    }
    let mut picked: Vec<(usize, bool)> =
        sure.iter().map(|&r| (r, true)).chain(rest[..count - k].iter().map(|&r| (r, false))).collect();
    picked.sort_unstable();
    Draw { rows: picked.iter().map(|p| p.0).collect(), certain: picked.iter().map(|p| p.1).collect(), population: rows }
}

/// A level's relative error estimated from sampled rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// t̂ = sqrt(Σ_s w_r e_r / Σ_s w_r n_r), w_r the rows each sampled row stands for.
    pub rel_error: f64,
    /// The standard error of t̂ (0 when every row was used).
    pub stderr: f64,
}

impl Draw {
    /// How many rows each sampled row stands for: 1 when taken with certainty, (N − k)/(s − k)
    /// when drawn.
    pub fn weights(&self) -> Vec<f64> {
        let k = self.certain.iter().filter(|&&c| c).count();
        let drawn = self.rows.len() - k;
        let w = if drawn == 0 { 1.0 } else { (self.population - k) as f64 / drawn as f64 };
        self.certain.iter().map(|&c| if c { 1.0 } else { w }).collect()
    }

    /// The estimated share of the tensor's Σ n_r that the sampled rows carry (`n` theirs).
    pub fn share(&self, n: &[f64]) -> f64 {
        let total: f64 = n.iter().zip(self.weights()).map(|(a, w)| a * w).sum();
        if total > 0.0 {
            n.iter().sum::<f64>() / total
        } else {
            self.rows.len() as f64 / self.population as f64
        }
    }

    /// The ratio estimate of t = sqrt(Σ e / Σ n) over the tensor's rows from the sampled rows'
    /// error energies `e` and energies `n` (in the order of `rows`). Its standard error is the
    /// stratified ratio estimator's — only the drawn rows vary: sqrt((N−k)²(1 − f)/(s−k)·S²_d)
    /// / N̂ with d_r = e_r − R̂·n_r over the drawn rows, f = (s−k)/(N−k), N̂ = Σ w_r n_r —
    /// carried to t by the delta method (SE(t) = SE(R)/(2t)).
    pub fn estimate(&self, e: &[f64], n: &[f64]) -> Estimate {
        let w = self.weights();
        let se: f64 = e.iter().zip(&w).map(|(a, w)| a * w).sum();
        let sn: f64 = n.iter().zip(&w).map(|(a, w)| a * w).sum();
        if sn <= 0.0 || e.is_empty() {
            return Estimate { rel_error: 0.0, stderr: 0.0 };
        }
        let r = (se / sn).max(0.0);
        let t = r.sqrt();
        let drawn: Vec<usize> = (0..self.rows.len()).filter(|&i| !self.certain[i]).collect();
        let (m, rest) = (drawn.len(), self.population - (self.rows.len() - drawn.len()));
        if m < 2 || m >= rest || t == 0.0 {
            return Estimate { rel_error: t, stderr: 0.0 };
        }
        let s2 = drawn.iter().map(|&i| (e[i] - r * n[i]).powi(2)).sum::<f64>() / (m - 1) as f64;
        let fpc = 1.0 - m as f64 / rest as f64;
        let se_r = (rest as f64).powi(2) * fpc * s2 / m as f64;
        Estimate { rel_error: t, stderr: se_r.sqrt() / sn / (2.0 * t) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_distinct_sorted_seeded_by_name_and_whole_when_asked_for_all() {
        let a = draw("blk.0.attn_q.weight", 1000, 100, None);
        assert_eq!(a.rows.len(), 100);
        assert!(a.rows.windows(2).all(|w| w[0] < w[1]) && *a.rows.last().unwrap() < 1000);
        assert!(a.certain.iter().all(|&c| !c));
        assert_eq!(a, draw("blk.0.attn_q.weight", 1000, 100, None));
        assert_ne!(a, draw("blk.1.attn_q.weight", 1000, 100, None));
        assert_eq!(draw("x", 5, 9, None).rows, vec![0, 1, 2, 3, 4]);
        // Uniform: every decile of the rows gets about its tenth of a large sample.
        let big = draw("blk.3.ffn_up.weight", 100_000, 10_000, None);
        for d in 0..10 {
            let k = big.rows.iter().filter(|&&r| r / 10_000 == d).count();
            assert!((900..1100).contains(&k), "decile {d}: {k}");
        }
        // With a proxy: its count/4 largest rows for certain, the rest drawn from the others.
        let proxy: Vec<f64> = (0..1000).map(|r| if r % 97 == 5 { 1e6 + r as f64 } else { 1.0 }).collect();
        let s = draw("blk.0.ffn_down.weight", 1000, 100, Some(&proxy));
        let sure: Vec<usize> = s.rows.iter().zip(&s.certain).filter(|(_, &c)| c).map(|(&r, _)| r).collect();
        assert_eq!(sure.len(), 25);
        assert!((0..1000).filter(|r| r % 97 == 5).all(|r| sure.contains(&r)), "{sure:?}");
        assert_eq!(s.rows.len(), 100);
    }

    #[test]
    fn the_ratio_estimate_and_its_standard_error_match_hand_computed_values() {
        // Drawn rows e = (1, 4), n = (2, 2) of N = 4, none certain: R = 5/4, t = sqrt(1.25);
        // d = (−1.5, 1.5), S² = 4.5: SE(R) = sqrt(16 · 0.5 · 4.5 / 2) / (2 · 4/2 · 2)... written
        // out: N̂ = Σ w n = 2·2 + 2·2 = 8, SE(R) = sqrt(4² · (1 − 2/4) · 4.5 / 2) / 8.
        let d = Draw { rows: vec![0, 3], certain: vec![false, false], population: 4 };
        let est = d.estimate(&[1.0, 4.0], &[2.0, 2.0]);
        assert!((est.rel_error - 1.25f64.sqrt()).abs() < 1e-15);
        let se_r = (16.0f64 * 0.5 * 4.5 / 2.0).sqrt() / 8.0;
        assert!((est.stderr - se_r / (2.0 * 1.25f64.sqrt())).abs() < 1e-15, "{}", est.stderr);
        // A certain row counts once and adds no variance: e = (9 | 1, 4), n = (10 | 2, 2), N = 5.
        let d = Draw { rows: vec![0, 1, 4], certain: vec![true, false, false], population: 5 };
        let est = d.estimate(&[9.0, 1.0, 4.0], &[10.0, 2.0, 2.0]);
        let r = (9.0 + 2.0 * 5.0) / (10.0 + 2.0 * 4.0);
        assert!((est.rel_error - f64::sqrt(r)).abs() < 1e-15);
        let s2 = (1.0 - r * 2.0f64).powi(2) + (4.0 - r * 2.0f64).powi(2);
        let se_r = (16.0 * 0.5 * s2 / 2.0f64).sqrt() / 18.0;
        assert!((est.stderr - se_r / (2.0 * r.sqrt())).abs() < 1e-15);
        // The whole population: exact, no error.
        let all = draw("x", 2, 2, None);
        assert_eq!(all.estimate(&[1.0, 4.0], &[2.0, 2.0]).stderr, 0.0);
        assert_eq!(all.estimate(&[0.0, 0.0], &[0.0, 0.0]), Estimate { rel_error: 0.0, stderr: 0.0 });
    }

    #[test]
    fn the_standard_error_covers_the_truth_as_often_as_it_should() {
        // Rows with uneven energies and errors, a few of them massive: over 200 seeded draws, the
        // true t lies within two standard errors of the estimate about 95% of the time, with the
        // massive rows taken for certain by their proxy.
        let rows = 4000;
        let n: Vec<f64> =
            (0..rows).map(|r| if r % 1000 == 7 { 5e3 } else { 1.0 + ((r * 7919) % 97) as f64 / 10.0 }).collect();
        let e: Vec<f64> = (0..rows).map(|r| n[r] * (0.01 + ((r * 104_729) % 53) as f64 / 2000.0)).collect();
        let truth = (e.iter().sum::<f64>() / n.iter().sum::<f64>()).sqrt();
        let mut covered = 0;
        for k in 0..200 {
            let d = draw(&format!("t{k}"), rows, 256, Some(&n));
            let pick = |v: &[f64]| d.rows.iter().map(|&r| v[r]).collect::<Vec<_>>();
            let est = d.estimate(&pick(&e), &pick(&n));
            covered += usize::from((est.rel_error - truth).abs() <= 2.0 * est.stderr);
            let share = d.share(&pick(&n));
            let exact = pick(&n).iter().sum::<f64>() / n.iter().sum::<f64>();
            assert!((share - exact).abs() < 0.1 * exact, "{share} against {exact}");
        }
        assert!((180..=200).contains(&covered), "{covered} of 200");
    }
}
