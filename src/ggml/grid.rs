//! The grid a block of weights is rounded onto, and weighted searches for its scales.
//!
//! Every GGUF type maps an integer code c of a sub-block to `step·c + base` (k-quants, legacy
//! types) or `step·LUT[c]` (IQ4_NL, IQ4_XS; the IQ3 grids' levels). The encoders choose step and base per sub-block first
//! (weighted least squares over candidate scales, as llama.cpp's `make_qx_quants` /
//! `make_qkx2_quants` do), then any rounding — nearest, or GPTQ's column-by-column rounding with
//! error feedback — snaps each weight to the grid with those scales fixed.

/// Round to nearest (ties to even) without a libm call: adding and subtracting 1.5·2²³ leaves
/// the nearest integer for |x| < 2²². Keeps the quantization loops vectorisable.
#[inline(always)]
pub fn round_half_even(x: f32) -> f32 {
    const SHIFTER: f32 = 12_582_912.0;
    (x + SHIFTER) - SHIFTER
}

/// Sub-blocks per block at most (Q3_K, Q6_K, Q2_K: 256 weights in 16 sub-blocks of 16).
pub const MAX_SUB: usize = 16;

/// A table of 16 levels: code c stands for `step·LUT[c]`.
pub type Lut = &'static [i8; 16];

/// The non-linear levels of IQ4_NL and IQ4_XS (`kvalues_iq4nl` in ggml).
pub const IQ4NL_LEVELS: [i8; 16] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

/// IQ3_S's levels: a sign and an odd magnitude 1…15 (its grid's bytes); code 8 + m stands for
/// the magnitude index m (value 2m + 1), code 7 − m for its negative.
pub const ODD_LEVELS: [i8; 16] = [-15, -13, -11, -9, -7, -5, -3, -1, 1, 3, 5, 7, 9, 11, 13, 15];

/// IQ3_XXS's levels, as its grid's bytes hold them: 4·(2m + 1), but 62 for the top magnitude;
/// codes as [`ODD_LEVELS`]. The step they take is ggml's db = d·(0.5 + sc)·0.5.
pub const IQ3XXS_LEVELS: [i8; 16] = [-62, -52, -44, -36, -28, -20, -12, -4, 4, 12, 20, 28, 36, 44, 52, 62];

/// The IQ2 grids' levels, as their bytes hold them (`iq2xs_grid`, `iq2s_grid`): 8, 25 and 43 for
/// magnitude indices 0…2 (about 8·(2m + 1)), codes as [`ODD_LEVELS`]; the step they take is ggml's
/// db = d·(0.5 + sc)·0.25. Codes 0…4 and 11…15 never occur (the grids' points stop at index 2);
/// their entries only keep the table ascending.
pub const IQ2_LEVELS: [i8; 16] = [-123, -107, -91, -75, -59, -43, -25, -8, 8, 25, 43, 59, 75, 91, 107, 123];

/// One block's grid: the values each code takes in each sub-block, plus the raw scale fields the
/// packer writes (their meaning depends on the type).
#[derive(Debug, Clone, Copy)]
pub struct Grid {
    /// Weights per sub-block.
    pub sub: usize,
    /// Codes run over 0..levels.
    pub levels: u32,
    /// Step between neighbouring codes, per sub-block (may be negative).
    pub step: [f32; MAX_SUB],
    /// Value of code 0, per sub-block.
    pub base: [f32; MAX_SUB],
    /// value = step · LUT[code] instead of step·code + base (IQ4_NL, IQ4_XS, and the vector grids:
    /// IQ3_S, IQ3_XXS, IQ2_S, IQ2_XS).
    pub lut: Option<Lut>,
    /// Raw fields for the packer: the block's f16 scale(s) and the per-sub-block scale codes.
    pub d: half::f16,
    pub dmin: half::f16,
    pub sc: [u8; MAX_SUB],
    pub mn: [u8; MAX_SUB],
}

impl Grid {
    pub fn new(sub: usize, levels: u32) -> Self {
        Grid {
            sub,
            levels,
            step: [0.0; MAX_SUB],
            base: [0.0; MAX_SUB],
            lut: None,
            d: half::f16::ZERO,
            dmin: half::f16::ZERO,
            sc: [0; MAX_SUB],
            mn: [0; MAX_SUB],
        }
    }

    /// The code nearest to `x` for the weight at position `i` of the block.
    #[inline]
    pub fn code(&self, i: usize, x: f32) -> u8 {
        let s = i / self.sub;
        nearest_code(x, self.step[s], self.base[s], self.levels, self.lut)
    }

    /// The value of `code` at position `i`.
    #[inline]
    pub fn value(&self, i: usize, code: u8) -> f32 {
        let s = i / self.sub;
        level_value(code, self.step[s], self.base[s], self.lut)
    }
}

#[inline]
pub fn level_value(code: u8, step: f32, base: f32, lut: Option<Lut>) -> f32 {
    match lut {
        Some(l) => step * l[code as usize] as f32,
        None => step * code as f32 + base,
    }
}

/// The midpoints between neighbouring levels of an ascending LUT (exact: half-integers).
#[inline(always)]
pub fn midpoints(lut: Lut) -> [f32; 15] {
    std::array::from_fn(|k| (lut[k] as f32 + lut[k + 1] as f32) * 0.5)
}

/// The index of the level nearest `t` in an ascending LUT with midpoints `mids`: how many
/// midpoints lie below t. A tie goes to the lower level, as a scan for the first minimum of
/// |t − level| gives (the two agree wherever that scan's differences are exact, as they are
/// near every midpoint but 0 for weights that round to IQ4_NL's levels).
#[inline(always)]
pub fn lut_index(t: f32, mids: &[f32; 15]) -> u8 {
    mids.iter().map(|&m| (t > m) as u8).sum()
}

/// Nearest code to `x` on the grid `step·c + base` (or `step·LUT[c]`).
#[inline]
pub fn nearest_code(x: f32, step: f32, base: f32, levels: u32, lut: Option<Lut>) -> u8 {
    if let Some(lut) = lut {
        if step == 0.0 {
            return 8; // LUT value 1 → the grid's value nearest to zero
        }
        return lut_index(x / step, &midpoints(lut));
    }
    if step == 0.0 {
        // Every code gives `base`; pick the one nearest the grid's zero for a stable encoding.
        return 0;
    }
    round_half_even((x - base) / step).clamp(0.0, (levels - 1) as f32) as u8
}

/// Per-weight importance for the scale searches of one row (llama.cpp's recipe): with an imatrix
/// column mean `imp_j`, w_j = imp_j·√(σ² + x_j²), σ² = mean x² of the row; without, w_j = 1.
pub fn row_weights(row: &[f32], imp: Option<&[f32]>) -> Vec<f32> {
    match imp {
        None => vec![1.0; row.len()],
        Some(imp) => weights_of(row, imp, row_sigma2(row)),
    }
}

/// σ² of a row: its mean squared weight.
pub fn row_sigma2(row: &[f32]) -> f32 {
    row.iter().map(|x| x * x).sum::<f32>() / row.len() as f32
}

/// imp_j·√(σ² + x_j²) for the weights `x` of a row whose σ² is `sigma2`.
pub fn weights_of(x: &[f32], imp: &[f32], sigma2: f32) -> Vec<f32> {
    x.iter().zip(imp).map(|(&v, &q)| q.max(0.0) * (sigma2 + v * v).sqrt()).collect()
}

crate::simd::avx2_dispatch! {
/// Weighted least-squares symmetric scale: the grid s·q for integer q in [qmin, qmax] that
/// minimises Σ w (x − s·q)², searched over candidate scales around max|x| mapped to either end.
/// Returns s (possibly negative; 0 for an all-zero block).
pub fn fit_symmetric(x: &[f32], w: &[f32], qmin: i32, qmax: i32) -> f32 {
    let amax = x.iter().copied().fold(0f32, |a, v| if v.abs() > a.abs() { v } else { a });
    if amax == 0.0 {
        return 0.0;
    }
    let (lo, hi) = (qmin as f32, qmax as f32);
    let mut buf = CodeBuf::new(x.len());
    let q = buf.as_mut();
    let mut best = (f32::INFINITY, 0f32);
    for end in [qmin, qmax] {
        for k in -9..=9 {
            let s0 = amax / (end as f32 + 0.1 * k as f32 * end.signum() as f32);
            if !s0.is_finite() || s0 == 0.0 {
                continue;
            }
            codes(x, s0, 0.0, lo, hi, q);
            let (mut sxq, mut sqq) = (0f32, 0f32);
            for ((&v, &wt), &q) in x.iter().zip(w).zip(&*q) {
                sxq += wt * v * q;
                sqq += wt * q * q;
            }
            if sqq <= 0.0 {
                continue;
            }
            let s = sxq / sqq;
            codes(x, s, 0.0, lo, hi, q);
            let err = coded_error(x, w, q, s, 0.0);
            if err < best.0 {
                best = (err, s);
            }
        }
    }
    if best.0.is_finite() {
        best.1
    } else {
        amax / qmin as f32
    }
}
}

/// Room for one sub-block's codes: on the stack up to [`CodeBuf::STACK`] weights.
enum CodeBuf {
    Stack([f32; CodeBuf::STACK], usize),
    Heap(Vec<f32>),
}

impl CodeBuf {
    /// The longest sub-block a fit is run on (Q4_1, Q5_1 and the k-quants' 32-weight sub-blocks).
    const STACK: usize = 32;

    fn new(n: usize) -> Self {
        if n <= Self::STACK {
            CodeBuf::Stack([0.0; Self::STACK], n)
        } else {
            CodeBuf::Heap(vec![0.0; n])
        }
    }

    fn as_mut(&mut self) -> &mut [f32] {
        match self {
            CodeBuf::Stack(b, n) => &mut b[..*n],
            CodeBuf::Heap(v) => v,
        }
    }
}

/// The codes `round((x − b)/s)` clamped to [lo, hi], into `q`: computed apart from the sums
/// that use them, so that this loop vectorises while the sums keep their order (and bits).
#[inline(always)]
fn codes(x: &[f32], s: f32, b: f32, lo: f32, hi: f32, q: &mut [f32]) {
    for (q, &v) in q.iter_mut().zip(x) {
        *q = round_half_even((v - b) / s).clamp(lo, hi);
    }
}

/// Σ w (x − (s·q + b))² for codes `q`: [`weighted_error`] of the grid rounding that gave them.
#[inline(always)]
fn coded_error(x: &[f32], w: &[f32], q: &[f32], s: f32, b: f32) -> f32 {
    x.iter().zip(w).zip(q).map(|((&v, &wt), &q)| wt * (v - (s * q + b)).powi(2)).sum()
}

crate::simd::avx2_dispatch! {
/// Weighted least-squares asymmetric grid s·q + b, q in [0, qmax]: candidate ranges around
/// [min, max] (llama.cpp's `make_qkx2_quants` search), each refitted by solving the 2×2 normal
/// equations. With `base_nonpositive` (k-quants store −b as an unsigned min) b is kept ≤ 0.
/// Returns (s, b).
pub fn fit_asymmetric(x: &[f32], w: &[f32], qmax: u32, base_nonpositive: bool) -> (f32, f32) {
    let mut lo = x.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if base_nonpositive {
        lo = lo.min(0.0);
    }
    if hi <= lo {
        return (0.0, lo);
    }
    let qm = qmax as f32;
    let mut buf = CodeBuf::new(x.len());
    let q = buf.as_mut();
    codes(x, (hi - lo) / qm, lo, 0.0, qm, q);
    let mut best = (coded_error(x, w, q, (hi - lo) / qm, lo), (hi - lo) / qm, lo);
    // The sums that do not depend on the codes.
    let (mut sw, mut sx) = (0f32, 0f32);
    for (&v, &wt) in x.iter().zip(w) {
        sw += wt;
        sx += wt * v;
    }
    for k in -10..=10 {
        // Alternate rounding and the least-squares refit a few times from each candidate.
        let (mut s, mut b) = ((hi - lo) / (qm + 0.1 * k as f32), lo);
        codes(x, s, b, 0.0, qm, q);
        for _ in 0..4 {
            let (mut sq, mut sqq, mut sxq) = (0f32, 0f32, 0f32);
            for ((&v, &wt), &q) in x.iter().zip(w).zip(&*q) {
                sq += wt * q;
                sqq += wt * q * q;
                sxq += wt * v * q;
            }
            let Some((s1, b1)) = refit_scale_min([sw, sx, sq, sqq, sxq], base_nonpositive) else { break };
            if s1.is_nan() || s1 <= 0.0 || (s1 == s && b1 == b) {
                break;
            }
            (s, b) = (s1, b1);
            // These codes score (s, b) and are the next refit's.
            codes(x, s, b, 0.0, qm, q);
            let err = coded_error(x, w, q, s, b);
            if err < best.0 {
                best = (err, s, b);
            }
        }
    }
    (best.1, best.2)
}
}

/// The weighted least-squares (scale, min) of the grid s·q + b for fixed codes q: the 2×2 normal
/// equations' solution from the sums [Σw, Σw·x, Σw·q, Σw·q², Σw·x·q]. With `base_nonpositive`, a
/// positive b is set to 0 and s refitted alone. None where the equations are singular.
#[inline(always)]
fn refit_scale_min([sw, sx, sq, sqq, sxq]: [f32; 5], base_nonpositive: bool) -> Option<(f32, f32)> {
    let det = sw * sqq - sq * sq;
    if det <= 0.0 {
        return None;
    }
    let (mut s, mut b) = ((sw * sxq - sq * sx) / det, (sqq * sx - sq * sxq) / det);
    if base_nonpositive && b > 0.0 {
        b = 0.0;
        s = sxq / sqq;
    }
    Some((s, b))
}

/// Σ w (x − f(x))².
pub fn weighted_error(x: &[f32], w: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    x.iter().zip(w).map(|(&v, &wt)| wt * (v - f(v)).powi(2)).sum()
}

/// The two integer codes either side of `t`, clamped to [lo, hi].
pub fn codes_around(t: f32, lo: i32, hi: i32) -> [i32; 2] {
    let f = t.floor() as i32;
    [f.clamp(lo, hi), (f + 1).clamp(lo, hi)]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fits as first written, codes computed inside the sums: the restructured fits must
    /// give their bits.
    fn plain_symmetric(x: &[f32], w: &[f32], qmin: i32, qmax: i32) -> f32 {
        let amax = x.iter().copied().fold(0f32, |a, v| if v.abs() > a.abs() { v } else { a });
        if amax == 0.0 {
            return 0.0;
        }
        let mut best = (f32::INFINITY, 0f32);
        for end in [qmin, qmax] {
            for k in -9..=9 {
                let s0 = amax / (end as f32 + 0.1 * k as f32 * end.signum() as f32);
                if !s0.is_finite() || s0 == 0.0 {
                    continue;
                }
                let (mut sxq, mut sqq) = (0f32, 0f32);
                for (&v, &wt) in x.iter().zip(w) {
                    let q = round_half_even(v / s0).clamp(qmin as f32, qmax as f32);
                    sxq += wt * v * q;
                    sqq += wt * q * q;
                }
                if sqq <= 0.0 {
                    continue;
                }
                let s = sxq / sqq;
                let err = weighted_error(x, w, |v| s * round_half_even(v / s).clamp(qmin as f32, qmax as f32));
                if err < best.0 {
                    best = (err, s);
                }
            }
        }
        if best.0.is_finite() {
            best.1
        } else {
            amax / qmin as f32
        }
    }

    fn plain_asymmetric(x: &[f32], w: &[f32], qmax: u32, base_nonpositive: bool) -> (f32, f32) {
        let mut lo = x.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if base_nonpositive {
            lo = lo.min(0.0);
        }
        if hi <= lo {
            return (0.0, lo);
        }
        let qm = qmax as f32;
        let q_of = |v: f32, s: f32, b: f32| round_half_even((v - b) / s).clamp(0.0, qm);
        let err_of = |s: f32, b: f32| weighted_error(x, w, |v| s * q_of(v, s, b) + b);
        let mut best = (err_of((hi - lo) / qm, lo), (hi - lo) / qm, lo);
        for k in -10..=10 {
            let (mut s, mut b) = ((hi - lo) / (qm + 0.1 * k as f32), lo);
            for _ in 0..4 {
                let (mut sw, mut sq, mut sqq, mut sx, mut sxq) = (0f32, 0f32, 0f32, 0f32, 0f32);
                for (&v, &wt) in x.iter().zip(w) {
                    let q = q_of(v, s, b);
                    sw += wt;
                    sq += wt * q;
                    sqq += wt * q * q;
                    sx += wt * v;
                    sxq += wt * v * q;
                }
                let Some((s1, b1)) = refit_scale_min([sw, sx, sq, sqq, sxq], base_nonpositive) else { break };
                if s1.is_nan() || s1 <= 0.0 || (s1 == s && b1 == b) {
                    break;
                }
                (s, b) = (s1, b1);
                let err = err_of(s, b);
                if err < best.0 {
                    best = (err, s, b);
                }
            }
        }
        (best.1, best.2)
    }

    #[test]
    fn the_fits_give_the_plain_loops_bits() {
        let mut rng = crate::stats::Rng::new(11);
        for trial in 0..3000 {
            let n = [16usize, 32, 40][trial % 3];
            let spread = [1e-3f64, 0.05, 3.0][trial % 7 % 3];
            let x: Vec<f32> = (0..n)
                .map(|i| if i % 9 == trial % 9 { 0.0 } else { ((rng.uniform() - 0.4) * spread) as f32 })
                .collect();
            let w: Vec<f32> = (0..n).map(|_| if trial % 2 == 0 { 1.0 } else { (rng.uniform() * 2.0) as f32 }).collect();
            for (qmin, qmax) in [(-8, 7), (-16, 15), (-32, 31)] {
                assert_eq!(
                    fit_symmetric(&x, &w, qmin, qmax).to_bits(),
                    plain_symmetric(&x, &w, qmin, qmax).to_bits(),
                    "trial {trial}"
                );
            }
            for (qmax, nonpos) in [(15, false), (31, false), (3, true), (15, true), (31, true)] {
                let (a, b) = (fit_asymmetric(&x, &w, qmax, nonpos), plain_asymmetric(&x, &w, qmax, nonpos));
                assert_eq!((a.0.to_bits(), a.1.to_bits()), (b.0.to_bits(), b.1.to_bits()), "trial {trial}");
            }
        }
    }

    #[test]
    fn symmetric_fit_recovers_a_grid() {
        // x already on the grid 0.5·q with q in [-8, 7]: the fit must find step ±0.5 exactly.
        let x = [-4.0f32, -2.0, 0.5, 3.5, 1.0, 0.0, -0.5, 2.0];
        let w = [1.0f32; 8];
        let s = fit_symmetric(&x, &w, -8, 7);
        assert!((s.abs() - 0.5).abs() < 1e-6, "{s}");
        assert_eq!(weighted_error(&x, &w, |v| s * round_half_even(v / s).clamp(-8.0, 7.0)), 0.0);
    }

    #[test]
    fn asymmetric_fit_recovers_a_grid() {
        let x = [0.3f32, 0.5, 0.7, 1.9, 3.3];
        let w = [1.0f32; 5];
        let (s, b) = fit_asymmetric(&x, &w, 15, false);
        let err = weighted_error(&x, &w, |v| s * round_half_even((v - b) / s).clamp(0.0, 15.0) + b);
        assert!(err < 1e-10, "s {s} b {b} err {err}");
    }

    #[test]
    fn weights_move_the_error_to_unimportant_weights() {
        let x: Vec<f32> = (0..32).map(|i| ((i * 37 % 29) as f32 / 14.0 - 1.0) * 0.1).collect();
        let mut w = vec![1.0f32; 32];
        w[5] = 1000.0;
        let s_w = fit_symmetric(&x, &w, -8, 7);
        let s_u = fit_symmetric(&x, &[1.0; 32], -8, 7);
        let err5 = |s: f32| (x[5] - s * round_half_even(x[5] / s).clamp(-8.0, 7.0)).abs();
        assert!(err5(s_w) <= err5(s_u));
    }

    #[test]
    fn the_midpoint_count_is_the_first_nearest_level() {
        let scan = |t: f32, lut: Lut| -> u8 {
            let mut best = (f32::INFINITY, 0u8);
            for (k, &l) in lut.iter().enumerate() {
                let d = (t - l as f32).abs();
                if d < best.0 {
                    best = (d, k as u8);
                }
            }
            best.1
        };
        let mut rng = crate::stats::Rng::new(17);
        for lut in [&IQ4NL_LEVELS, &ODD_LEVELS] {
            let mids = midpoints(lut);
            // (Beside ODD_LEVELS' midpoint 0, |t ± 1| round to 1 and the scan sees a tie that is
            // not one; the count takes the true nearest there.)
            let mut ts: Vec<f32> = mids.iter().flat_map(|&m| [m, m.next_up(), m.next_down()]).collect();
            // (Past about 2^30 the scan's differences round to equal and it takes level 0; the
            // count still takes the nearest, the end level.)
            ts.extend([0.0, -0.0, 1e-30, -1e-30, 1e6, -1e6]);
            ts.extend((0..200_000).map(|i| ((rng.uniform() - 0.5) * [3.0, 30.0, 300.0, 3000.0][i % 4]) as f32));
            for t in ts.into_iter().filter(|t| *lut != ODD_LEVELS || *t == 0.0 || t.abs() > 1e-6) {
                assert_eq!(lut_index(t, &mids), scan(t, lut), "t = {t}");
            }
        }
    }

    #[test]
    fn lut_codes_are_nearest() {
        let nl = Some(&IQ4NL_LEVELS);
        assert_eq!(nearest_code(-127.0, 1.0, 0.0, 16, nl), 0);
        assert_eq!(nearest_code(0.0, 1.0, 0.0, 16, nl), 8);
        assert_eq!(nearest_code(100.0, 1.0, 0.0, 16, nl), 14);
        let odd = Some(&ODD_LEVELS);
        assert_eq!(nearest_code(0.1, 1.0, 0.0, 16, odd), 8);
        assert_eq!(nearest_code(-0.5, 1.0, 0.0, 16, odd), 7);
        assert_eq!(nearest_code(-20.0, 1.0, 0.0, 16, odd), 0);
    }
}
