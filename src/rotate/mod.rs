//! Rotating the residual stream (QuaRot's and SpinQuant's R1): every vector the blocks read from
//! and write to the residual stream is multiplied by one orthogonal matrix Q, so the rotated model
//! computes the same function with different weights — and outliers spread over all channels,
//! which the quantization grids prefer.
//!
//! Q = D · (A ⊗ H/√p) for a width n = m·p with p the largest power of two dividing n: D a random
//! ±1 diagonal, H the p×p Walsh–Hadamard matrix, A a random m×m orthogonal matrix (identity when
//! n is a power of two). Applying it costs O(n·(log p + m)) a row, against O(n²) for a dense Q,
//! and every output channel depends on every input channel. Seeded: one seed, one Q.
//!
//! [`model`] folds the RMSNorm weights into the linears and applies Q to a model's tensors.

pub mod model;

use crate::stats::Rng;

/// One orthogonal n×n matrix Q, kept in factored form.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub seed: u64,
    /// Random signs, one per channel (D).
    signs: Vec<f32>,
    /// The Hadamard factor's order p (a power of two).
    p: usize,
    /// The m×m orthogonal factor A, row-major; empty when m = 1.
    a: Vec<f32>,
}

impl Rotation {
    /// The rotation of width `n` drawn from `seed`.
    pub fn new(n: usize, seed: u64) -> Rotation {
        assert!(n > 0, "a rotation of width 0");
        let p = 1 << n.trailing_zeros();
        let m = n / p;
        // A fixed offset keeps seed 0 from SplitMix's weakest start.
        let mut rng = Rng::new(seed ^ 0x5EED_0F0A_7A7E);
        let signs = (0..n).map(|_| if rng.next_u64() & 1 == 1 { 1.0 } else { -1.0 }).collect();
        let a = if m == 1 { Vec::new() } else { random_orthogonal(m, &mut rng) };
        Rotation { seed, signs, p, a }
    }

    /// The width n.
    pub fn width(&self) -> usize {
        self.signs.len()
    }

    /// How Q is built, in words (for reports and metadata).
    pub fn describe(&self) -> String {
        let m = self.width() / self.p;
        match m {
            1 => format!("random Hadamard {n}×{n}, seed {}", self.seed, n = self.p),
            _ => format!("random orthogonal {m}×{m} ⊗ Hadamard {p}×{p}, seed {}", self.seed, p = self.p),
        }
    }

    /// Every row x of `rows` (row-major, rows of the rotation's width) becomes x Q.
    pub fn rows_times_q(&self, rows: &mut [f32]) {
        use rayon::prelude::*;
        let n = self.width();
        assert_eq!(rows.len() % n, 0, "rows of width {n}");
        rows.par_chunks_mut(n).for_each_init(|| vec![0f32; n], |scratch, x| self.row_times_q(x, scratch));
    }

    /// x ← x Q: y = (x ⊙ d) as an m×p matrix X, then Aᵀ (X H/√p).
    fn row_times_q(&self, x: &mut [f32], scratch: &mut [f32]) {
        let (n, p) = (self.width(), self.p);
        let m = n / p;
        for (v, s) in x.iter_mut().zip(&self.signs) {
            *v *= s;
        }
        let norm = 1.0 / (p as f32).sqrt();
        for chunk in x.chunks_mut(p) {
            walsh_hadamard(chunk);
            for v in chunk.iter_mut() {
                *v *= norm;
            }
        }
        if m == 1 {
            return;
        }
        // Y[i'] = Σ_i A[i][i'] X[i]: rows of X mixed by Aᵀ, in f64 sums.
        for (i2, out) in scratch.chunks_mut(p).enumerate() {
            for (j, o) in out.iter_mut().enumerate() {
                let s: f64 = (0..m).map(|i| f64::from(self.a[i * m + i2]) * f64::from(x[i * p + j])).sum();
                *o = s as f32;
            }
        }
        x.copy_from_slice(scratch);
    }

    /// A (n × cols) row-major matrix W becomes Qᵀ W: its columns are rotated, W = (Wᵀ Q)ᵀ.
    pub fn q_transpose_times(&self, w: &mut [f32], cols: usize) {
        let n = self.width();
        assert_eq!(w.len(), n * cols, "a matrix of {n} rows");
        let mut t = transpose(w, n, cols);
        self.rows_times_q(&mut t);
        w.copy_from_slice(&transpose(&t, cols, n));
    }
}

/// The (cols × rows) transpose of a (rows × cols) row-major matrix.
fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; w.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = w[r * cols + c];
        }
    }
    t
}

/// The unnormalized fast Walsh–Hadamard transform in place: x ← x H, len a power of two.
fn walsh_hadamard(x: &mut [f32]) {
    let n = x.len();
    debug_assert!(n.is_power_of_two());
    let mut h = 1;
    while h < n {
        for block in x.chunks_mut(2 * h) {
            let (lo, hi) = block.split_at_mut(h);
            for (a, b) in lo.iter_mut().zip(hi.iter_mut()) {
                let (u, v) = (*a, *b);
                *a = u + v;
                *b = u - v;
            }
        }
        h *= 2;
    }
}

/// A random m×m orthogonal matrix (row-major): Gram–Schmidt, twice, on Gaussian rows, in f64 —
/// the rows of a Gaussian matrix orthonormalized are Haar-distributed.
fn random_orthogonal(m: usize, rng: &mut Rng) -> Vec<f32> {
    let mut gauss = || {
        // Box–Muller.
        let (u, v) = (1.0 - rng.uniform(), rng.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    };
    let mut q: Vec<Vec<f64>> = Vec::with_capacity(m);
    while q.len() < m {
        let mut r: Vec<f64> = (0..m).map(|_| gauss()).collect();
        for _ in 0..2 {
            for prev in &q {
                let d: f64 = r.iter().zip(prev).map(|(a, b)| a * b).sum();
                r.iter_mut().zip(prev).for_each(|(a, b)| *a -= d * b);
            }
        }
        let norm = r.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm > 1e-6 {
            q.push(r.into_iter().map(|a| a / norm).collect());
        }
    }
    q.into_iter().flatten().map(|a| a as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Q itself: the rows of the identity, each times Q.
    fn matrix(r: &Rotation) -> Vec<f32> {
        let n = r.width();
        let mut q = vec![0f32; n * n];
        (0..n).for_each(|i| q[i * n + i] = 1.0);
        r.rows_times_q(&mut q);
        q
    }

    fn q_qt_error(q: &[f32], n: usize) -> f32 {
        let mut worst = 0f32;
        for i in 0..n {
            for j in 0..n {
                let d: f32 = (0..n).map(|k| q[i * n + k] * q[j * n + k]).sum();
                worst = worst.max((d - if i == j { 1.0 } else { 0.0 }).abs());
            }
        }
        worst
    }

    #[test]
    fn the_walsh_hadamard_transform_of_order_four_is_the_matrix() {
        // H4 rows: ++++, +-+-, ++--, +--+ (symmetric): x H = [10, -2, -4, 0] for x = 1..4.
        let mut x = [1.0, 2.0, 3.0, 4.0];
        walsh_hadamard(&mut x);
        assert_eq!(x, [10.0, -2.0, -4.0, 0.0]);
    }

    #[test]
    fn rotations_are_orthogonal_for_powers_of_two_and_other_widths() {
        for (n, m) in [(64, 1), (96, 3), (576, 9), (28, 7), (7, 7)] {
            let r = Rotation::new(n, 3);
            assert_eq!(n / r.p, m, "{n}");
            let q = matrix(&r);
            assert!(q_qt_error(&q, n) < 1e-5, "width {n}: Q Qᵀ − I = {}", q_qt_error(&q, n));
            // Every channel reaches every other one.
            assert!(q.iter().all(|v| v.abs() > 0.0) || m > 1, "width {n}");
        }
    }

    #[test]
    fn a_power_of_two_rotation_is_signed_hadamard_over_root_n() {
        let r = Rotation::new(4, 1);
        let q = matrix(&r);
        let h = [[1., 1., 1., 1.], [1., -1., 1., -1.], [1., 1., -1., -1.], [1., -1., -1., 1.]];
        for i in 0..4 {
            for j in 0..4 {
                assert!((q[i * 4 + j] - r.signs[i] * h[i][j] / 2.0).abs() < 1e-7);
            }
        }
    }

    #[test]
    fn seeds_give_different_rotations_and_the_same_seed_the_same() {
        let (a, b, c) = (matrix(&Rotation::new(96, 1)), matrix(&Rotation::new(96, 2)), matrix(&Rotation::new(96, 1)));
        assert_ne!(a, b);
        assert_eq!(a, c);
    }

    #[test]
    fn q_transpose_times_rotates_columns() {
        // Qᵀ W for W (n × 2), against Q computed explicitly.
        let r = Rotation::new(12, 5);
        let (n, cols) = (12, 2);
        let q = matrix(&r);
        let w: Vec<f32> = (0..n * cols).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut got = w.clone();
        r.q_transpose_times(&mut got, cols);
        for i in 0..n {
            for c in 0..cols {
                let want: f32 = (0..n).map(|k| q[k * n + i] * w[k * cols + c]).sum();
                assert!((got[i * cols + c] - want).abs() < 1e-5, "({i}, {c})");
            }
        }
    }
}
