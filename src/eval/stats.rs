//! Per-position scores and their summaries.
//!
//! The log-sum-exp and KL kernels over logits live in `model::kernels`.

use crate::model::kernels::{kl_divergence_lse, log_sum_exp};
use crate::stats::quantile;

fn argmax(xs: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best
}

/// Accumulated scores over positions.
#[derive(Debug, Clone, Default)]
pub struct Scored {
    pub n: usize,
    pub nll_sum: f64,
    /// KL(reference ‖ model) of every position (only with a reference).
    pub kld: Vec<f64>,
    pub top1_agree: usize,
}

impl Scored {
    /// Scores one position: the model's logits `q`, the true next token, and optionally the
    /// reference's logits `p`.
    pub fn position(q: &[f32], next: u32, p: Option<&[f32]>) -> Scored {
        let lse_q = log_sum_exp(q);
        let mut s = Scored { n: 1, nll_sum: lse_q - q[next as usize] as f64, ..Default::default() };
        if let Some(p) = p {
            s.kld.push(kl_divergence_lse(p, q, lse_q));
            s.top1_agree = usize::from(argmax(p) == argmax(q));
        }
        s
    }

    /// Whether every score is a number: NaN or infinite logits make them NaN or infinite.
    pub fn is_finite(&self) -> bool {
        self.nll_sum.is_finite() && self.kld.iter().all(|k| k.is_finite())
    }

    pub fn merge(mut self, other: Scored) -> Scored {
        self.n += other.n;
        self.nll_sum += other.nll_sum;
        self.kld.extend(other.kld);
        self.top1_agree += other.top1_agree;
        self
    }

    /// Mean, median and 99th percentile of the per-position KL.
    pub fn kld_summary(&self) -> (f64, f64, f64) {
        if self.kld.is_empty() {
            return (0.0, 0.0, 0.0);
        }
        let mut v = self.kld.clone();
        v.sort_by(f64::total_cmp);
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        (mean, quantile(&v, 0.5), quantile(&v, 0.99))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_logits_give_log_vocab_nll() {
        let s = Scored::position(&[0.0; 4], 2, None);
        assert!((s.nll_sum - 4f64.ln()).abs() < 1e-7);
    }

    #[test]
    fn kl_of_identical_rows_is_zero_and_known_otherwise() {
        let p = [1.0f32, 2.0, 3.0];
        assert!(Scored::position(&p, 0, Some(&p)).kld[0].abs() < 1e-7);
        // P = softmax([ln 3, 0]) = (3/4, 1/4); Q uniform: KL = 3/4 ln(3/2) + 1/4 ln(1/2).
        let s = Scored::position(&[0.0, 0.0], 0, Some(&[3f32.ln(), 0.0]));
        let expected = 0.75 * 1.5f64.ln() + 0.25 * 0.5f64.ln();
        assert!((s.kld[0] - expected).abs() < 1e-6);
        assert_eq!(s.top1_agree, 1); // ties go to the first index in both
    }

    #[test]
    fn kl_matches_the_definition_on_a_long_row() {
        let p: Vec<f32> = (0..1000).map(|i| ((i * 37 % 101) as f32 * 0.13).sin() * 4.0).collect();
        let q: Vec<f32> = p.iter().enumerate().map(|(i, &x)| x + (i as f32 * 0.7).cos() * 0.3).collect();
        let lse = |v: &[f32]| {
            let m = v.iter().copied().fold(f32::MIN, f32::max) as f64;
            m + v.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln()
        };
        let (lp, lq) = (lse(&p), lse(&q));
        let exact: f64 =
            p.iter().zip(&q).map(|(&a, &b)| (a as f64 - lp).exp() * ((a as f64 - lp) - (b as f64 - lq))).sum();
        let got = Scored::position(&q, 0, Some(&p)).kld[0];
        assert!((got - exact).abs() < 1e-5 * exact, "{got} vs {exact}");
    }
}
