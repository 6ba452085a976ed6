//! GPTQ (Frantar et al. 2022) and SparseGPT (Frantar & Alistarh 2023): quantize and/or prune a
//! linear layer column by column, spreading each column's error over the columns not yet
//! processed so that ‖(W − Ŵ)X‖² stays small.
//!
//! With H = 2XXᵀ/N (damped), U = chol(H⁻¹) upper: column j is rounded to q_j, its scaled error
//! e_j = (w_j − q_j)/U_jj updates the columns after it in the block, w_k −= e_j U_jk; after a block
//! of columns, all later columns take the block's errors at once (the "lazy batch" update, one
//! matrix product). What a column is rounded onto is a [`ColumnQuantizer`]: a GGUF grid
//! (GPTQ onto k-quant and legacy blocks), plain grouped RTN, or nothing (pruning only).

use faer::linalg::matmul::matmul;
use faer::linalg::triangular_inverse::invert_lower_triangular;
use faer::{Accum, Mat, MatMut, MatRef, Par, Side};
use rayon::prelude::*;

use crate::calib::token_weights::TokenWeights;

/// What each column is rounded onto. Columns come in groups (a GGUF block: 32 or 256 input
/// columns share each row's scales); the group's grids are chosen from the current, already
/// error-updated weights when its first column is reached.
pub trait ColumnQuantizer {
    /// Columns per group (the grid of a group is chosen once).
    fn group(&self) -> usize;
    /// Chooses the grids of the group starting at column `c0`; `cols[i]` is column c0+i over all rows.
    fn choose(&mut self, c0: usize, cols: &[&[f32]]);
    /// Rounds column `c` (over all rows) onto its group's grids, writing the values to `out`.
    fn round(&mut self, c: usize, col: &[f32], out: &mut [f32]);
}

/// How much of a layer to prune, SparseGPT's way.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sparsity {
    /// This share of the weights of each block of columns, smallest w²/U_jj² first.
    Unstructured(f32),
    /// N of every M consecutive input weights of a row pruned (2:4, 4:8).
    NofM(usize, usize),
}

impl Sparsity {
    /// The share of a tensor's weights it prunes (N/M for N:M).
    pub fn share(&self) -> f64 {
        match *self {
            // f32 shares as the decimals they were given (0.3, not 0.30000001).
            Sparsity::Unstructured(p) => (p as f64 * 1e6).round() / 1e6,
            Sparsity::NofM(n, m) => n as f64 / m as f64,
        }
    }
}

/// Which weights GPTQ writes as zeros. A masked weight is rounded from 0, so its code is its
/// grid's value nearest 0 — 0 itself where the grid has it (Q8_0, Q4_0, Q5_0, Q3_K, Q6_K); the
/// grids with a minimum (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K) or without a 0 level (IQ4_NL, IQ4_XS and
/// the IQ2/IQ3 grids) write a small non-zero value instead — and the error of the value written,
/// not of an exact 0, is what the columns after it absorb.
#[derive(Debug, Clone, Copy)]
pub enum Mask<'a> {
    /// SparseGPT's: chosen from the error-updated weights as GPTQ reaches them.
    Chosen(Sparsity),
    /// Given up front (magnitude's or Wanda's choice), row-major (rows, cols) like the weights:
    /// SparseGPT's updates with a fixed mask.
    Fixed(&'a [bool]),
}

impl Mask<'_> {
    /// The sparsity SparseGPT chooses masks for (None for a fixed mask).
    pub fn chosen(&self) -> Option<Sparsity> {
        match self {
            Mask::Chosen(s) => Some(*s),
            Mask::Fixed(_) => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct GptqOptions {
    /// Dampening added to H's diagonal, as a share of its mean diagonal.
    pub damp: f32,
    /// Columns per lazy-update block (raised to the quantizer's group when that is wider).
    pub block: usize,
    /// Process columns by descending H_jj ("act-order"); the groups' grids are then chosen up
    /// front from the original weights (GPTQ's static groups). Not combined with N:M masks,
    /// whose groups are consecutive columns.
    pub act_order: bool,
    /// How the calibration tokens weigh in H = Σ_t r_t x_t x_tᵀ (RSQ), and so in every calibrated
    /// rounding that reads H or its diagonal (the imatrix).
    pub token_weights: TokenWeights,
}

impl Default for GptqOptions {
    fn default() -> Self {
        GptqOptions { damp: 0.01, block: 128, act_order: false, token_weights: TokenWeights::Equal }
    }
}

/// Why GPTQ could not run on a tensor (named in each).
#[derive(Debug, thiserror::Error)]
pub enum GptqError {
    #[error("GPTQ on '{0}': its calibration inputs are not finite (NaN or Inf activations reach it: weights out of range before it?)")]
    NonFiniteInputs(String),
    #[error("GPTQ on '{0}': the Hessian of its calibration inputs is not positive definite even after dampening (raise --damp)")]
    NotPositiveDefinite(String),
    #[error("GPTQ on '{0}': the factorization given was made for other columns or options")]
    Factorization(String),
}

impl From<GptqError> for crate::model::ModelError {
    fn from(e: GptqError) -> Self {
        crate::model::ModelError::Gptq(e.to_string())
    }
}

/// The upper Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU) for H = 2·xxt/n_tokens, after zeroing dead
/// columns (H_jj = 0 → H_jj = 1; their weights must be zeroed by the caller) and dampening.
/// Returns U row-major (n, n) in f32 and the dead columns.
pub fn inverse_cholesky(
    xxt: &[f32],
    n: usize,
    n_tokens: usize,
    damp: f32,
    name: &str,
) -> Result<(Vec<f32>, Vec<usize>), GptqError> {
    let identity: Vec<usize> = (0..n).collect();
    inverse_cholesky_permuted(xxt, &identity, n_tokens, damp, name)
}

/// [`inverse_cholesky`] of H with rows and columns taken in the order `perm`. Built straight
/// from `xxt` and each intermediate dropped as soon as it is used: at n = 14 336 one n² matrix
/// is 822 MB, and at most three exist at once besides `xxt`.
fn inverse_cholesky_permuted(
    xxt: &[f32],
    perm: &[usize],
    n_tokens: usize,
    damp: f32,
    name: &str,
) -> Result<(Vec<f32>, Vec<usize>), GptqError> {
    let n = perm.len();
    // A NaN passes the factorization's positivity tests unnoticed and spreads to every weight.
    if xxt.iter().any(|x| !x.is_finite()) {
        return Err(GptqError::NonFiniteInputs(name.to_string()));
    }
    let scale = 2.0 / n_tokens.max(1) as f32;
    // H's diagonal in processing order: a dead input (never non-zero) gets 1.
    let mut dead = Vec::new();
    let diag: Vec<f32> = (0..n)
        .map(|k| {
            let d = xxt[perm[k] * n + perm[k]] * scale;
            if d == 0.0 {
                dead.push(k);
                1.0
            } else {
                d
            }
        })
        .collect();
    let mean_diag = diag.iter().map(|&d| d as f64).sum::<f64>() / n as f64;
    let damping = (damp as f64 * mean_diag) as f32;
    // With J the reversal permutation and JHJ = L'L'ᵀ: H⁻¹ = (J L'⁻¹ J)ᵀ (J L'⁻¹ J), and
    // J L'⁻¹ J is upper triangular — so U costs one Cholesky and one triangular inverse
    // instead of an inverse and a second Cholesky. `hr` is JHJ.
    let hr = Mat::<f32>::from_fn(n, n, |i, j| {
        let (a, b) = (n - 1 - i, n - 1 - j);
        if a == b {
            diag[a] + damping
        } else {
            xxt[perm[a] * n + perm[b]] * scale
        }
    });
    let llt = hr.llt(Side::Lower).map_err(|_| GptqError::NotPositiveDefinite(name.to_string()))?;
    drop(hr);
    let mut linv = Mat::<f32>::zeros(n, n);
    invert_lower_triangular(linv.as_mut(), llt.L(), Par::rayon(0));
    drop(llt);
    let mut u = vec![0f32; n * n];
    for i in 0..n {
        for j in i..n {
            u[i * n + j] = linv[(n - 1 - i, n - 1 - j)];
        }
    }
    Ok((u, dead))
}

/// Whether GPTQ processes columns in act-order with these options and this sparsity.
pub fn uses_act_order(opts: GptqOptions, sparsity: Option<Sparsity>) -> bool {
    opts.act_order && !matches!(sparsity, Some(Sparsity::NofM(..)))
}

/// GPTQ's factorization of one input's H: the processing order, the upper Cholesky factor U of
/// H⁻¹ in that order, and the dead columns. It depends only on H, the dampening and act-order,
/// so the linears that read one input (q/k/v, gate/up) and every level of the layer database
/// share one (for an FFN input of 14 336 columns it is about a minute on 2 cores).
#[derive(Debug, Clone)]
pub struct Factor {
    act_order: bool,
    damp: f32,
    /// perm[k] is the original column processed k-th.
    perm: Vec<usize>,
    u: Vec<f32>,
    dead: Vec<usize>,
}

impl Factor {
    /// The factorization of H = 2·xxt/n_tokens for (cols, cols) `xxt`.
    pub fn new(
        xxt: &[f32],
        cols: usize,
        n_tokens: usize,
        damp: f32,
        act_order: bool,
        name: &str,
    ) -> Result<Factor, GptqError> {
        let mut perm: Vec<usize> = (0..cols).collect();
        if act_order {
            perm.sort_by(|&a, &b| xxt[b * cols + b].total_cmp(&xxt[a * cols + a]));
        }
        let (u, dead) = inverse_cholesky_permuted(xxt, &perm, n_tokens, damp, name)?;
        Ok(Factor { act_order, damp, perm, u, dead })
    }

    /// Whether this factorization is the one GPTQ needs for `cols` columns with these options.
    pub fn serves(&self, cols: usize, opts: GptqOptions, sparsity: Option<Sparsity>) -> bool {
        self.perm.len() == cols && self.damp == opts.damp && self.act_order == uses_act_order(opts, sparsity)
    }
}

/// Runs GPTQ / SparseGPT over a row-major (rows, cols) weight matrix in place, with inputs
/// summarised by `xxt` = Σ x xᵀ over `n_tokens`: afterwards `w` holds the rounded (and pruned)
/// weights, the masked ones as [`Mask`] says. Returns GPTQ's loss Σ (w − q)²/U_jj² / 2.
#[allow(clippy::too_many_arguments)]
pub fn gptq(
    w: &mut [f32],
    rows: usize,
    cols: usize,
    xxt: &[f32],
    n_tokens: usize,
    quantizer: Option<&mut dyn ColumnQuantizer>,
    mask: Option<Mask>,
    opts: GptqOptions,
    name: &str,
) -> Result<f64, GptqError> {
    let f = Factor::new(xxt, cols, n_tokens, opts.damp, uses_act_order(opts, mask.and_then(|m| m.chosen())), name)?;
    gptq_factored(w, rows, cols, &f, quantizer, mask, opts, name)
}

/// Greatest common divisor (for blocks that hold whole groups of two widths).
fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// [`gptq`] with H's factorization given; one that does not [`Factor::serves`] this call is an
/// error.
#[allow(clippy::too_many_arguments)]
pub fn gptq_factored(
    w: &mut [f32],
    rows: usize,
    cols: usize,
    f: &Factor,
    mut quantizer: Option<&mut dyn ColumnQuantizer>,
    mask: Option<Mask>,
    opts: GptqOptions,
    name: &str,
) -> Result<f64, GptqError> {
    let sparsity = mask.and_then(|m| m.chosen());
    if !f.serves(cols, opts, sparsity) {
        return Err(GptqError::Factorization(name.to_string()));
    }
    let Factor { act_order, perm, u, dead, .. } = f;
    let act_order = *act_order;
    // Work on Wᵀ (in processing order) so that a column of W is a contiguous slice.
    let mut wt = vec![0f32; rows * cols];
    for r in 0..rows {
        for (k, &c) in perm.iter().enumerate() {
            wt[k * rows + r] = w[r * cols + c];
        }
    }
    for &j in dead {
        wt[j * rows..(j + 1) * rows].fill(0.0);
    }
    let group = quantizer.as_ref().map_or(1, |q| q.group());
    if act_order {
        // Static groups: every grid chosen up front from the original weights.
        if let Some(qz) = quantizer.as_deref_mut() {
            let mut pos = vec![0usize; cols];
            for (k, &c) in perm.iter().enumerate() {
                pos[c] = k;
            }
            for g0 in (0..cols).step_by(group) {
                let cs: Vec<&[f32]> =
                    (g0..(g0 + group).min(cols)).map(|c| &wt[pos[c] * rows..(pos[c] + 1) * rows]).collect();
                qz.choose(g0, &cs);
            }
        }
    }
    // A block holds whole quantizer groups and whole N:M groups (which then start at multiples
    // of M): a multiple of both, and no wider than the matrix.
    let unit = match sparsity {
        Some(Sparsity::NofM(_, m)) => group / gcd(group, m) * m,
        _ => group,
    };
    let block = (opts.block.max(unit).div_ceil(unit) * unit).min(cols);
    // A fixed mask in processing order, like `wt`.
    let fixed: Option<Vec<bool>> = match mask {
        Some(Mask::Fixed(m)) => {
            assert_eq!(m.len(), rows * cols, "a fixed mask covers the weights");
            let mut mt = vec![false; rows * cols];
            for r in 0..rows {
                for (k, &c) in perm.iter().enumerate() {
                    mt[k * rows + r] = m[r * cols + c];
                }
            }
            Some(mt)
        }
        _ => None,
    };
    let mut loss = 0f64;
    let mut err = vec![0f32; block * rows];
    let mut q = vec![0f32; rows];
    let mut masked_col = Vec::with_capacity(if mask.is_some() { rows } else { 0 });
    let mut mask = vec![false; if mask.is_some() { block * rows } else { 0 }];
    let mut b0 = 0;
    while b0 < cols {
        let b1 = (b0 + block).min(cols);
        if let Some(Sparsity::Unstructured(p)) = sparsity {
            unstructured_mask(&wt[b0 * rows..b1 * rows], &u_diag(u, cols, b0, b1), rows, p, &mut mask);
        }
        if let Some(mt) = &fixed {
            mask[..(b1 - b0) * rows].copy_from_slice(&mt[b0 * rows..b1 * rows]);
        }
        for j in b0..b1 {
            if let Some(qz) = quantizer.as_deref_mut() {
                if !act_order && (j - b0) % group == 0 {
                    let g1 = (j + group).min(cols);
                    let cs: Vec<&[f32]> = (j..g1).map(|c| &wt[c * rows..(c + 1) * rows]).collect();
                    qz.choose(j, &cs);
                }
            }
            if let Some(Sparsity::NofM(n, m)) = sparsity {
                if (j - b0) % m == 0 {
                    let j1 = (j + m).min(b1);
                    n_of_m_mask(
                        &wt[j * rows..j1 * rows],
                        &u_diag(u, cols, j, j1),
                        rows,
                        n,
                        &mut mask[(j - b0) * rows..],
                    );
                }
            }
            let d = u[j * cols + j];
            let col = &wt[j * rows..(j + 1) * rows];
            let masked = mask.get((j - b0) * rows..(j - b0 + 1) * rows);
            match (quantizer.as_deref_mut(), masked) {
                // A masked weight is rounded from 0, so its code and `q` agree on the value written.
                (Some(qz), Some(mk)) => {
                    masked_col.clear();
                    masked_col.extend(col.iter().zip(mk).map(|(&x, &m)| if m { 0.0 } else { x }));
                    qz.round(perm[j], &masked_col, &mut q);
                }
                (Some(qz), None) => qz.round(perm[j], col, &mut q),
                (None, Some(mk)) => {
                    q.iter_mut().zip(col).zip(mk).for_each(|((qi, &x), &m)| *qi = if m { 0.0 } else { x })
                }
                (None, None) => q.copy_from_slice(col),
            }
            let e = &mut err[(j - b0) * rows..(j - b0 + 1) * rows];
            for ((ei, &wi), &qi) in e.iter_mut().zip(col).zip(&q) {
                *ei = (wi - qi) / d;
                loss += 0.5 * (*ei as f64).powi(2);
            }
            wt[j * rows..(j + 1) * rows].copy_from_slice(&q);
            // Within the block: w_k −= e_j · U_jk for k after j.
            let e = &err[(j - b0) * rows..(j - b0 + 1) * rows];
            let (_, after) = wt.split_at_mut((j + 1) * rows);
            after[..(b1 - j - 1) * rows].par_chunks_mut(rows).enumerate().for_each(|(i, wk)| {
                let ujk = u[j * cols + j + 1 + i];
                for (x, &ei) in wk.iter_mut().zip(e) {
                    *x -= ujk * ei;
                }
            });
        }
        if b1 < cols {
            // Lazy batch update: Wᵀ[b1..] −= U[b0..b1, b1..]ᵀ · E.
            let bsz = b1 - b0;
            let ub = MatRef::from_row_major_slice(&u[b0 * cols..b1 * cols], bsz, cols).subcols(b1, cols - b1);
            let em = MatRef::from_row_major_slice(&err[..bsz * rows], bsz, rows);
            let dst = MatMut::from_row_major_slice_mut(&mut wt[b1 * rows..], cols - b1, rows);
            matmul(dst, Accum::Add, ub.transpose(), em, -1.0f32, Par::rayon(0));
        }
        b0 = b1;
    }
    for r in 0..rows {
        for (k, &c) in perm.iter().enumerate() {
            w[r * cols + c] = wt[k * rows + r];
        }
    }
    Ok(loss)
}

fn u_diag(u: &[f32], n: usize, j0: usize, j1: usize) -> Vec<f32> {
    (j0..j1).map(|j| u[j * n + j]).collect()
}

/// SparseGPT's unstructured mask of a block of columns (`cols_t`: column-major, `rows` each):
/// the share `p` of the block with the smallest w²/U_jj², over all rows at once.
fn unstructured_mask(cols_t: &[f32], d: &[f32], rows: usize, p: f32, mask: &mut [bool]) {
    let scores: Vec<f32> =
        cols_t.chunks(rows).zip(d).flat_map(|(c, &dj)| c.iter().map(move |&x| (x / dj).powi(2))).collect();
    let k = (scores.len() as f32 * p) as usize;
    mask[..scores.len()].fill(false);
    if k == 0 {
        return;
    }
    let mut sorted = scores.clone();
    let (_, &mut thresh, _) = sorted.select_nth_unstable_by(k - 1, |a, b| a.total_cmp(b));
    let mut left = k;
    // Ties at the threshold: prune only as many as needed so the share is exact.
    for (m, &s) in mask.iter_mut().zip(&scores) {
        if s < thresh {
            *m = true;
            left -= 1;
        }
    }
    for (m, &s) in mask.iter_mut().zip(&scores) {
        if left == 0 {
            break;
        }
        if s == thresh {
            *m = true;
            left -= 1;
        }
    }
}

/// N:M mask of `m` consecutive columns: per row, the `n` with the smallest w²/U_jj².
fn n_of_m_mask(cols_t: &[f32], d: &[f32], rows: usize, n: usize, mask: &mut [bool]) {
    let m = d.len();
    for r in 0..rows {
        let mut idx: Vec<usize> = (0..m).collect();
        let score = |i: usize| (cols_t[i * rows + r] / d[i]).powi(2);
        idx.sort_by(|&a, &b| score(a).total_cmp(&score(b)));
        for (rank, &i) in idx.iter().enumerate() {
            mask[i * rows + r] = rank < n;
        }
    }
}

/// Grouped round-to-nearest as in the GPTQ paper's code: per row and group (group = cols: per
/// row), asymmetric scale = (max(0, max) − min(0, min))/(2^bits − 1), zero = round(−min/scale);
/// symmetric: the range is ±max|w| and zero = 2^(bits−1).
pub struct RtnGrid {
    bits: u32,
    group: usize,
    rows: usize,
    symmetric: bool,
    scale: Vec<f32>,
    zero: Vec<f32>,
}

impl RtnGrid {
    pub fn new(bits: u32, group: usize, rows: usize, symmetric: bool) -> Self {
        RtnGrid { bits, group, rows, symmetric, scale: vec![0.0; rows], zero: vec![0.0; rows] }
    }
}

impl ColumnQuantizer for RtnGrid {
    fn group(&self) -> usize {
        self.group
    }

    fn choose(&mut self, _c0: usize, cols: &[&[f32]]) {
        let maxq = ((1u32 << self.bits) - 1) as f32;
        for r in 0..self.rows {
            let (mut lo, mut hi) = cols.iter().fold((0f32, 0f32), |(a, b), c| (a.min(c[r]), b.max(c[r])));
            if self.symmetric {
                hi = hi.max(-lo);
                lo = -hi;
            }
            if lo == 0.0 && hi == 0.0 {
                (lo, hi) = (-1.0, 1.0);
            }
            self.scale[r] = (hi - lo) / maxq;
            self.zero[r] = if self.symmetric {
                (maxq + 1.0) / 2.0
            } else {
                crate::ggml::grid::round_half_even(-lo / self.scale[r])
            };
        }
    }

    fn round(&mut self, _c: usize, col: &[f32], out: &mut [f32]) {
        let maxq = ((1u32 << self.bits) - 1) as f32;
        for (r, (o, &x)) in out.iter_mut().zip(col).enumerate() {
            let (s, z) = (self.scale[r], self.zero[r]);
            *o = s * ((crate::ggml::grid::round_half_even(x / s) + z).clamp(0.0, maxq) - z);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Correlated inputs X (n tokens × dim) and their xxt.
    fn inputs(dim: usize, n: usize) -> (Vec<f32>, Vec<f32>) {
        let mut s = 12345u32;
        let mut rnd = || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 10_000) as f32 / 5_000.0 - 1.0
        };
        let mut x = vec![0f32; n * dim];
        for t in 0..n {
            let common = rnd();
            for j in 0..dim {
                x[t * dim + j] = rnd() + 0.8 * common * (1.0 + (j % 3) as f32);
            }
        }
        let mut xxt = vec![0f32; dim * dim];
        for t in 0..n {
            for i in 0..dim {
                for j in 0..dim {
                    xxt[i * dim + j] += x[t * dim + i] * x[t * dim + j];
                }
            }
        }
        (x, xxt)
    }

    fn output_error(w: &[f32], q: &[f32], xxt: &[f32], dim: usize) -> f64 {
        let rows = w.len() / dim;
        let mut e = 0f64;
        for r in 0..rows {
            for i in 0..dim {
                for j in 0..dim {
                    let di = (w[r * dim + i] - q[r * dim + i]) as f64;
                    let dj = (w[r * dim + j] - q[r * dim + j]) as f64;
                    e += di * xxt[i * dim + j] as f64 * dj;
                }
            }
        }
        e
    }

    #[test]
    fn inverse_cholesky_factor_reproduces_the_inverse() {
        let (_, xxt) = inputs(8, 64);
        let (u, dead) = inverse_cholesky(&xxt, 8, 64, 0.0, "t").unwrap();
        assert!(dead.is_empty());
        // (UᵀU)·H = I with H = 2 xxt / n.
        for i in 0..8 {
            for j in 0..8 {
                let mut v = 0f64;
                for k in 0..8 {
                    let hinv_ik: f64 = (0..8).map(|l| u[l * 8 + i] as f64 * u[l * 8 + k] as f64).sum();
                    v += hinv_ik * xxt[k * 8 + j] as f64 * 2.0 / 64.0;
                }
                assert!((v - if i == j { 1.0 } else { 0.0 }).abs() < 1e-3, "({i},{j}) {v}");
            }
        }
    }

    #[test]
    fn gptq_beats_round_to_nearest_on_correlated_inputs() {
        let (dim, rows) = (64, 16);
        let (_, xxt) = inputs(dim, 256);
        let w: Vec<f32> = (0..rows * dim).map(|i| ((i * 7919 % 1013) as f32 / 506.0 - 1.0) * 0.05).collect();
        let mut rtn = w.clone();
        {
            let mut g = RtnGrid::new(3, 32, rows, false);
            let mut wt = vec![0f32; rows * dim];
            for r in 0..rows {
                for c in 0..dim {
                    wt[c * rows + r] = w[r * dim + c];
                }
            }
            for g0 in (0..dim).step_by(32) {
                let cs: Vec<&[f32]> = (g0..g0 + 32).map(|c| &wt[c * rows..(c + 1) * rows]).collect();
                g.choose(g0, &cs);
                for c in g0..g0 + 32 {
                    let mut out = vec![0f32; rows];
                    g.round(c, &wt[c * rows..(c + 1) * rows], &mut out);
                    for r in 0..rows {
                        rtn[r * dim + c] = out[r];
                    }
                }
            }
        }
        let mut q = w.clone();
        let mut g = RtnGrid::new(3, 32, rows, false);
        gptq(&mut q, rows, dim, &xxt, 256, Some(&mut g), None, GptqOptions::default(), "t").unwrap();
        let (e_rtn, e_gptq) = (output_error(&w, &rtn, &xxt, dim), output_error(&w, &q, &xxt, dim));
        assert!(e_gptq < 0.8 * e_rtn, "gptq {e_gptq} rtn {e_rtn}");
        // Act-order with static groups also beats nearest rounding.
        let mut qa = w.clone();
        let mut g = RtnGrid::new(3, 32, rows, false);
        let ao = GptqOptions { act_order: true, ..GptqOptions::default() };
        gptq(&mut qa, rows, dim, &xxt, 256, Some(&mut g), None, ao, "t").unwrap();
        let e_ao = output_error(&w, &qa, &xxt, dim);
        assert!(e_ao < 0.8 * e_rtn, "act-order {e_ao} rtn {e_rtn}");
    }

    #[test]
    fn symmetric_rtn_grid_is_centred() {
        let mut g = RtnGrid::new(4, 4, 1, true);
        let cols: Vec<Vec<f32>> = [-1.0f32, 0.5, 0.25, 0.0].iter().map(|&x| vec![x]).collect();
        let refs: Vec<&[f32]> = cols.iter().map(|c| c.as_slice()).collect();
        g.choose(0, &refs);
        let mut out = [0f32];
        // Range ±1 in 15 steps of 2/15, zero point 8: 0 stays 0, −0.5 → −4 steps.
        g.round(0, &[0.0], &mut out);
        assert_eq!(out[0], 0.0);
        g.round(0, &[-0.5], &mut out);
        assert!((out[0] + 8.0 / 15.0).abs() < 1e-6, "{}", out[0]);
    }

    #[test]
    fn sparsegpt_masks_have_the_requested_shape() {
        let (dim, rows) = (64, 8);
        let (_, xxt) = inputs(dim, 256);
        let w: Vec<f32> = (0..rows * dim).map(|i| (i * 31 % 97) as f32 / 97.0 - 0.5).collect();
        let mut q = w.clone();
        gptq(&mut q, rows, dim, &xxt, 256, None, Some(Mask::Chosen(Sparsity::NofM(2, 4))), GptqOptions::default(), "t")
            .unwrap();
        for row in q.chunks(dim) {
            for g in row.chunks(4) {
                assert_eq!(g.iter().filter(|&&x| x == 0.0).count(), 2);
            }
        }
        let mut q = w.clone();
        gptq(
            &mut q,
            rows,
            dim,
            &xxt,
            256,
            None,
            Some(Mask::Chosen(Sparsity::Unstructured(0.5))),
            GptqOptions::default(),
            "t",
        )
        .unwrap();
        assert_eq!(q.iter().filter(|&&x| x == 0.0).count(), rows * dim / 2);
    }

    /// On Q8_0 (which has a 0) and Q4_1 (which has not) the bytes the grid packs are the
    /// weights GPTQ computed, masked weights included; on Q8_0 those are exact zeros.
    #[test]
    fn masks_reach_the_bytes_of_a_gguf_grid() {
        use super::super::grid_columns::GgufColumns;
        use crate::ggml::codec::dequantize;
        use crate::ggml::types::QuantType;
        let (dim, rows) = (64, 8);
        let (_, xxt) = inputs(dim, 256);
        let w: Vec<f32> = (0..rows * dim).map(|i| ((i * 7919 % 1013) as f32 / 506.0 - 1.0) * 0.05).collect();
        let fixed: Vec<bool> = (0..rows * dim).map(|i| i * 37 % 11 < 5).collect();
        for t in [QuantType::Q8_0, QuantType::Q4_1] {
            for act_order in [false, true] {
                let opts = GptqOptions { act_order, ..GptqOptions::default() };
                for mask in
                    [Mask::Chosen(Sparsity::NofM(2, 4)), Mask::Chosen(Sparsity::Unstructured(0.5)), Mask::Fixed(&fixed)]
                {
                    let mut q = w.clone();
                    let mut grid = GgufColumns::new(t, &w, rows, dim, None);
                    gptq(&mut q, rows, dim, &xxt, 256, Some(&mut grid), Some(mask), opts, "t").unwrap();
                    let written = dequantize(t, &grid.into_bytes(), rows * dim);
                    for (a, b) in q.iter().zip(&written) {
                        assert!((a - b).abs() <= 1e-6 * a.abs().max(1e-4), "{t} {mask:?}: {a} computed, {b} written");
                    }
                    if t != QuantType::Q8_0 {
                        continue;
                    }
                    match mask {
                        Mask::Chosen(Sparsity::NofM(..)) => {
                            assert!(written.chunks(4).all(|g| g.iter().filter(|&&x| x == 0.0).count() >= 2), "{mask:?}")
                        }
                        Mask::Chosen(Sparsity::Unstructured(_)) => {
                            assert!(written.iter().filter(|&&x| x == 0.0).count() >= rows * dim / 2)
                        }
                        Mask::Fixed(m) => assert!(written.iter().zip(m).all(|(&x, &m)| !m || x == 0.0)),
                    }
                }
            }
        }
    }

    /// A fixed mask is kept while the other weights absorb its error: closer outputs than
    /// zeroing the same weights and leaving the rest.
    #[test]
    fn a_fixed_mask_is_kept_and_compensated() {
        let (dim, rows) = (64, 8);
        let (_, xxt) = inputs(dim, 256);
        let w: Vec<f32> = (0..rows * dim).map(|i| (i * 31 % 97) as f32 / 97.0 - 0.5).collect();
        let fixed: Vec<bool> = w.iter().map(|x| x.abs() < 0.25).collect();
        let zeroed: Vec<f32> = w.iter().zip(&fixed).map(|(&x, &m)| if m { 0.0 } else { x }).collect();
        for act_order in [false, true] {
            let mut q = w.clone();
            gptq(
                &mut q,
                rows,
                dim,
                &xxt,
                256,
                None,
                Some(Mask::Fixed(&fixed)),
                GptqOptions { act_order, ..GptqOptions::default() },
                "t",
            )
            .unwrap();
            assert!(q.iter().zip(&fixed).all(|(&x, &m)| !m || x == 0.0));
            let (e_fixed, e_zeroed) = (output_error(&w, &q, &xxt, dim), output_error(&w, &zeroed, &xxt, dim));
            assert!(e_fixed < 0.95 * e_zeroed, "act-order {act_order}: {e_fixed} vs {e_zeroed}");
        }
    }

    /// N:M groups start at multiples of M even where M does not divide GPTQ's block of 128.
    #[test]
    fn n_of_m_groups_stay_aligned_across_blocks() {
        let (dim, rows) = (192, 4);
        let (_, xxt) = inputs(dim, 512);
        let w: Vec<f32> = (0..rows * dim).map(|i| (i * 31 % 97) as f32 / 97.0 - 0.5).collect();
        let mut q = w.clone();
        gptq(&mut q, rows, dim, &xxt, 512, None, Some(Mask::Chosen(Sparsity::NofM(1, 3))), GptqOptions::default(), "t")
            .unwrap();
        for row in q.chunks(dim) {
            for g in row.chunks(3) {
                assert_eq!(g.iter().filter(|&&x| x == 0.0).count(), 1, "{g:?}");
            }
        }
    }

    #[test]
    fn factorization_errors_name_the_tensor_and_the_cause() {
        let (_, mut xxt) = inputs(8, 64);
        let negative: Vec<f32> = xxt.iter().map(|x| -x).collect();
        let e = Factor::new(&negative, 8, 64, 0.01, false, "blk.3.ffn_down.weight").unwrap_err().to_string();
        assert!(
            e.contains("'blk.3.ffn_down.weight'") && e.contains("not positive definite") && e.contains("raise --damp"),
            "{e}"
        );
        xxt[9] = f32::NAN;
        let e = Factor::new(&xxt, 8, 64, 0.01, false, "blk.3.ffn_down.weight").unwrap_err().to_string();
        assert!(e.contains("'blk.3.ffn_down.weight'") && e.contains("not finite"), "{e}");
    }
}
