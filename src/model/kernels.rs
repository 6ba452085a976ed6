//! The numeric kernels of the forward pass, on the tensors' own buffers:
//! - `matmul_nt`, `y = x Wᵀ`, which every linear layer and the output head go through;
//! - `causal_attention`, softmax(q kᵀ/√d + causal mask) v per head, skipping the masked half;
//! - `fast_exp`, a vectorisable exponential, and on it `log_sum_exp` and `kl_divergence` over
//!   rows of logits (a vocabulary of 49 152 × every position: scoring is a hot path too).
//!
//! Measured on this project's 2-core AVX2 machine at the forward's shapes (512 tokens × 576 →
//! 1536 and so on): faer reaches ~140 GFLOP/s where candle's CPU matmul reaches ~110 (and ~60 on
//! per-head attention products). Linear layers and the head are ~90% of a forward's arithmetic.

use candle_core::{Device, Storage, Tensor};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

use super::{ModelError, Result};

/// Runs `f` on the f32 data of `t` laid out contiguously in row-major order.
pub fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return Err(ModelError::InvalidConfig("tensor is not on the CPU".into()));
    };
    let data = cpu.as_slice::<f32>()?;
    let (start, end) =
        layout.contiguous_offsets().ok_or_else(|| ModelError::InvalidConfig("tensor is not contiguous".into()))?;
    Ok(f(&data[start..end]))
}

/// `x Wᵀ` for `x` (rows, in) and `w` (out, in), giving (rows, out).
pub fn matmul_nt(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (rows, k) = x.dims2()?;
    let (out, k2) = w.dims2()?;
    if k != k2 {
        return Err(ModelError::ShapeMismatch {
            name: "matmul operand".into(),
            expected: vec![out, k],
            found: vec![out, k2],
        });
    }
    let mut y = vec![0f32; rows * out];
    with_f32(x, |xs| {
        with_f32(w, |ws| {
            let rhs = MatRef::from_row_major_slice(ws, out, k).transpose();
            // Row blocks on rayon's pool, each a sequential faer product: faer's own parallel
            // mode spins up a second pool whose busy-waiting workers steal the two cores from
            // rayon's (measured: ~40% slower forward passes). The block size depends on the
            // shapes only, never on the thread count, so every thread count gives the same bits:
            // a quarter of the rows within 16..=256 (a 512-token window: 4 blocks of 128; a batch
            // of 4 windows: 8 of 256), which is what 2 threads used to get. Blocks of 64 measured
            // 10–25% slower at the forward's shapes (faer packs Wᵀ once per block).
            let block = rows.div_ceil(4).clamp(16, 256);
            y.par_chunks_mut(block * out).zip(xs.par_chunks(block * k)).for_each(|(yb, xb)| {
                let r = xb.len() / k;
                let lhs = MatRef::from_row_major_slice(xb, r, k);
                let dst = MatMut::from_row_major_slice_mut(yb, r, out);
                matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, Par::Seq);
            });
        })
    })??;
    Ok(Tensor::from_vec(y, (rows, out), &Device::Cpu)?)
}

/// e^x for x ≤ 0 (callers subtract a maximum first); relative error below 1e-6 for x > −10 and
/// below 1e-5 down to −87, where the result underflows f32 anyway.
///
/// Cody–Waite: e^x = 2^n · 2^f with n = round(x·log2 e), f ∈ [−½, ½], and 2^f by a degree-6
/// polynomial: plain arithmetic and bit casts, so loops over it vectorise.
#[inline(always)]
pub fn fast_exp(x: f32) -> f32 {
    // Clamped below by a comparison, not `f32::max`, which would turn a NaN into e^−87 and
    // hide NaN logits from every sum over them.
    let t = x * std::f32::consts::LOG2_E;
    let t = if t < -126.0 { -126.0 } else { t };
    // Round to nearest with the 1.5·2²³ trick: `f32::round` is a libm call on baseline x86-64
    // and would stop loops from vectorising.
    const SHIFTER: f32 = 12_582_912.0;
    let n = (t + SHIFTER) - SHIFTER;
    let f = t - n;
    // Taylor coefficients of 2^f = e^(f ln 2).
    const C: [f32; 7] =
        [1.0, std::f32::consts::LN_2, 0.240_226_5, 0.055_504_11, 0.009_618_129, 0.001_333_355_8, 0.000_154_035_3];
    let p = C[0] + f * (C[1] + f * (C[2] + f * (C[3] + f * (C[4] + f * (C[5] + f * C[6])))));
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    p * scale
}

/// The largest of `xs` (NaN ignored), in 16 lanes: a maximum does not depend on the order it is
/// taken in, so this is the plain fold's value, and it vectorises.
#[inline(always)]
fn max(xs: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 16];
    let mut chunks = xs.chunks_exact(16);
    for c in &mut chunks {
        for (m, &x) in lanes.iter_mut().zip(c) {
            *m = m.max(x);
        }
    }
    chunks.remainder().iter().chain(&lanes).copied().fold(f32::NEG_INFINITY, f32::max)
}

/// Elements whose exponentials are computed together before they are summed. A sum runs in
/// order (its rounding is the plain loop's), which stops a loop that sums as it goes from
/// vectorising; computed apart, the exponentials vectorise (measured: the KL over a window of
/// SmolLM2 logits took as long as half a forward before).
const EXP_CHUNK: usize = 64;

/// `out[i] = e^(xs[i] − m)`.
#[inline(always)]
fn exp_shifted(xs: &[f32], m: f32, out: &mut [f32]) {
    for (e, &x) in out.iter_mut().zip(xs) {
        *e = fast_exp(x - m);
    }
}

crate::simd::avx2_dispatch! {
/// log Σ exp(logits): `logits[i] − log_sum_exp` is a log-probability. f32 lanes are folded
/// into an f64 sum every 64 elements.
pub fn log_sum_exp(logits: &[f32]) -> f64 {
    let m = max(logits);
    let mut total = 0.0f64;
    let mut e = [0f32; EXP_CHUNK];
    for chunk in logits.chunks(EXP_CHUNK) {
        let e = &mut e[..chunk.len()];
        exp_shifted(chunk, m, e);
        let s: f32 = e.iter().sum();
        total += s as f64;
    }
    m as f64 + total.ln()
}
}

crate::simd::avx2_dispatch! {
/// KL(P ‖ Q) from logits `p`, `q` and log Σ exp(q), in one pass over the vocabulary:
/// KL = Σ P_i (p_i − q_i) − lse(p) + lse(q), with P_i = e^(p_i − lse(p)).
pub fn kl_divergence_lse(p: &[f32], q: &[f32], lse_q: f64) -> f64 {
    let m = max(p);
    let (mut z, mut dot) = (0.0f64, 0.0f64);
    let (mut e, mut d) = ([0f32; EXP_CHUNK], [0f32; EXP_CHUNK]);
    for (cp, cq) in p.chunks(EXP_CHUNK).zip(q.chunks(EXP_CHUNK)) {
        let (e, d) = (&mut e[..cp.len()], &mut d[..cp.len()]);
        exp_shifted(cp, m, e);
        for (((d, &e), &a), &b) in d.iter_mut().zip(&*e).zip(cp).zip(cq) {
            *d = e * (a - b);
        }
        let (mut zs, mut ds) = (0.0f32, 0.0f32);
        for (&e, &d) in e.iter().zip(&*d) {
            zs += e;
            ds += d;
        }
        z += zs as f64;
        dot += ds as f64;
    }
    let lse_p = m as f64 + z.ln();
    non_negative(dot / z - lse_p + lse_q)
}
}

/// `x`, or 0 for a negative `x` (a KL below zero by rounding); a NaN stays NaN, where
/// `f64::max(x, 0.0)` would report it as a perfect 0.
#[inline(always)]
pub fn non_negative(x: f64) -> f64 {
    if x < 0.0 {
        0.0
    } else {
        x
    }
}

/// The first row of `vocab` logits holding a NaN or an infinity: where a forward pass went
/// non-finite, for an error that says so instead of a metric that hides it.
pub fn first_non_finite_row(logits: &[f32], vocab: usize) -> Option<usize> {
    logits.chunks(vocab).position(|row| !row.iter().fold(true, |ok, x| ok & x.is_finite()))
}

/// Σ over rows of KL(P ‖ Q) for row-major logits `q` and reference logits `p` with rows of
/// `vocab`: rows in parallel, summed in row order, so the total does not depend on the number
/// of threads (rayon's own `sum` splits by thread count).
pub fn kl_divergence_rows(p: &[f32], q: &[f32], vocab: usize) -> f64 {
    kl_divergence_per_row(p, q, vocab).iter().sum()
}

/// KL(P ‖ Q) of each row of `vocab` logits.
pub fn kl_divergence_per_row(p: &[f32], q: &[f32], vocab: usize) -> Vec<f64> {
    q.par_chunks(vocab).zip(p.par_chunks(vocab)).map(|(q, p)| kl_divergence(p, q)).collect()
}

/// KL(P ‖ Q) between the distributions of two rows of logits (natural log).
pub fn kl_divergence(p: &[f32], q: &[f32]) -> f64 {
    kl_divergence_lse(p, q, log_sum_exp(q))
}

/// Query rows handled together: a block of rows only needs the keys up to its last row.
const ROW_BLOCK: usize = 64;

crate::simd::avx2_dispatch! {
/// Softmax of `s[..live]` in place; the masked tail `s[live..]` becomes zero.
fn causal_softmax_row(s: &mut [f32], first: usize, live: usize) {
    let m = max(&s[first..live]);
    for x in &mut s[first..live] {
        *x = fast_exp(*x - m);
    }
    let mut sum = 0f32;
    for &x in &s[first..live] {
        sum += x;
    }
    let inv = 1.0 / sum;
    s[first..live].iter_mut().for_each(|x| *x *= inv);
    s[..first].iter_mut().for_each(|x| *x = 0.0);
    s[live..].iter_mut().for_each(|x| *x = 0.0);
}
}

/// How a block's attention scores are formed, beyond the causal mask.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionOpts {
    /// The factor on q·kᵀ (1/√head_dim unless the model sets its own).
    pub scale: f32,
    /// Token i attends only to the `window` tokens up to and including itself (sliding window).
    pub window: Option<usize>,
    /// Scores become `c · tanh(s / c)` before the softmax (Gemma 2).
    pub softcap: Option<f32>,
}

impl AttentionOpts {
    /// Plain scaled dot-product attention over heads of `head_dim`.
    pub fn plain(head_dim: usize) -> Self {
        AttentionOpts { scale: 1.0 / (head_dim as f32).sqrt(), window: None, softcap: None }
    }
}

/// One head: `o = softmax(q kᵀ · scale + causal mask) v`; the probabilities are copied into `p`
/// (tokens × tokens) when given. The window and the soft cap are those of `opts`.
///
/// Scores go through a contiguous scratch block: faer 0.24's x86 kernels crashed on a row-major
/// destination whose row stride exceeds its width.
#[allow(clippy::too_many_arguments)]
fn attention_head(
    qs: &[f32],
    ks: &[f32],
    vs: &[f32],
    mut p: ProbsOut,
    o: &mut [f32],
    t: usize,
    d: usize,
    opts: AttentionOpts,
) {
    let qh = MatRef::from_row_major_slice(qs, t, d);
    let kh = MatRef::from_row_major_slice(ks, t, d);
    let vh = MatRef::from_row_major_slice(vs, t, d);
    let mut scratch = vec![0f32; ROW_BLOCK.min(t) * t];
    for r0 in (0..t).step_by(ROW_BLOCK) {
        let r1 = (r0 + ROW_BLOCK).min(t);
        let rows = r1 - r0;
        // Scores of rows r0..r1 against keys 0..r1; keys after r1 are masked for all of them.
        let block = &mut scratch[..rows * r1];
        let sm = MatMut::from_row_major_slice_mut(block, rows, r1);
        matmul(
            sm,
            Accum::Replace,
            qh.submatrix(r0, 0, rows, d),
            kh.submatrix(0, 0, r1, d).transpose(),
            opts.scale,
            Par::Seq,
        );
        for (i, row) in block.chunks_mut(r1).enumerate() {
            let live = r0 + i + 1;
            if let Some(c) = opts.softcap {
                row[..live].iter_mut().for_each(|s| *s = c * (*s / c).tanh());
            }
            causal_softmax_row(row, opts.window.map_or(0, |w| live.saturating_sub(w)), live);
        }
        let om = MatMut::from_row_major_slice_mut(&mut o[r0 * d..r1 * d], rows, d);
        let pm = MatRef::from_row_major_slice(block, rows, r1);
        matmul(om, Accum::Replace, pm, vh.submatrix(0, 0, r1, d), 1.0f32, Par::Seq);
        match &mut p {
            ProbsOut::None => {}
            ProbsOut::Full(p) => {
                for (i, row) in block.chunks(r1).enumerate() {
                    p[(r0 + i) * t..(r0 + i) * t + r1].copy_from_slice(row);
                }
            }
            ProbsOut::Received(sums) => {
                for row in block.chunks(r1) {
                    sums[..r1].iter_mut().zip(row).for_each(|(a, x)| *a += x);
                }
            }
        }
    }
}

/// Which attention probabilities [`causal_attention`] hands out beside its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probs {
    None,
    /// Every probability: (batch, heads, query, key), zero above the diagonal.
    Full,
    /// The attention each key receives, summed over the queries: (batch, heads, key) — what
    /// RSQ's token weights read, without the (tokens × tokens) matrix per head.
    Received,
}

/// Where one head's probabilities go.
enum ProbsOut<'a> {
    None,
    Full(&'a mut [f32]),
    Received(&'a mut [f32]),
}

/// Causal scaled-dot-product attention with grouped key/value heads.
///
/// # Shapes
/// - `q`: (batch, heads, tokens, head_dim); `k`, `v`: (batch, kv_heads, tokens, head_dim)
/// - returns the output (batch, heads, tokens, head_dim) and the probabilities `keep` asks for.
///
/// Query head `h` reads key/value head `h / (heads / kv_heads)`, as `transformers`' `repeat_kv`.
/// Heads run in parallel; each takes its query rows in blocks of 64 against only the keys up to
/// the block's last row, so most of the masked half of q kᵀ is never computed.
pub fn causal_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    keep: Probs,
    opts: AttentionOpts,
) -> Result<(Tensor, Option<Tensor>)> {
    let (b, nh, t, d) = q.dims4()?;
    let nkv = k.dims4()?.1;
    let rep = nh / nkv;
    let mut out = vec![0f32; b * nh * t * d];
    let per_head = match keep {
        Probs::None => 0,
        Probs::Full => t * t,
        Probs::Received => t,
    };
    let mut probs = vec![0f32; b * nh * per_head];
    with_f32(q, |qs| {
        with_f32(k, |ks| {
            with_f32(v, |vs| {
                let head = |bh: usize, o: &mut [f32], p: ProbsOut| {
                    let kv = (bh / nh * nkv + bh % nh / rep) * t * d;
                    let (kh, vh) = (&ks[kv..kv + t * d], &vs[kv..kv + t * d]);
                    attention_head(&qs[bh * t * d..(bh + 1) * t * d], kh, vh, p, o, t, d, opts);
                };
                let outs = out.par_chunks_mut(t * d).enumerate();
                match keep {
                    Probs::None => outs.for_each(|(bh, o)| head(bh, o, ProbsOut::None)),
                    Probs::Full => {
                        outs.zip(probs.par_chunks_mut(per_head)).for_each(|((bh, o), p)| head(bh, o, ProbsOut::Full(p)))
                    }
                    Probs::Received => outs
                        .zip(probs.par_chunks_mut(per_head))
                        .for_each(|((bh, o), p)| head(bh, o, ProbsOut::Received(p))),
                }
            })
        })
    })???;
    let out = Tensor::from_vec(out, (b, nh, t, d), &Device::Cpu)?;
    let probs = match keep {
        Probs::None => None,
        Probs::Full => Some(Tensor::from_vec(probs, (b, nh, t, t), &Device::Cpu)?),
        Probs::Received => Some(Tensor::from_vec(probs, (b, nh, t), &Device::Cpu)?),
    };
    Ok((out, probs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_hand_computed_product_and_candle() {
        let x = Tensor::new(&[[1f32, 2., 3.], [4., 5., 6.]], &Device::Cpu).unwrap();
        let w = Tensor::new(&[[1f32, 0., -1.], [0.5, 0.5, 0.5]], &Device::Cpu).unwrap();
        let y = matmul_nt(&x, &w).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(y, vec![vec![-2., 3.], vec![-2., 7.5]]);
        // A non-contiguous operand (a transposed view) gives the same as candle's matmul.
        let a = Tensor::arange(0f32, 35., &Device::Cpu).unwrap().reshape((5, 7)).unwrap().t().unwrap();
        let b = Tensor::arange(0f32, 20., &Device::Cpu).unwrap().reshape((4, 5)).unwrap();
        let ours = matmul_nt(&a, &b).unwrap().to_vec2::<f32>().unwrap();
        let theirs = a.matmul(&b.t().unwrap()).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(ours, theirs);
    }

    /// Reference attention with candle ops: full scores, mask, softmax, product.
    fn naive_attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
        let (b, nh, t, d) = q.dims4().unwrap();
        let nkv = k.dims4().unwrap().1;
        let rep = nh / nkv;
        let expand = |x: &Tensor| {
            x.unsqueeze(2).unwrap().broadcast_as((b, nkv, rep, t, d)).unwrap().reshape((b, nh, t, d)).unwrap()
        };
        let (k, v) = (expand(k), expand(v));
        let s = (q.matmul(&k.t().unwrap()).unwrap() / (d as f64).sqrt()).unwrap();
        let mask: Vec<f32> =
            (0..t).flat_map(|i| (0..t).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 })).collect();
        let mask = Tensor::from_vec(mask, (t, t), &Device::Cpu).unwrap();
        let p = candle_nn::ops::softmax_last_dim(&s.broadcast_add(&mask).unwrap()).unwrap();
        p.matmul(&v).unwrap()
    }

    #[test]
    fn causal_attention_matches_the_naive_computation() {
        // 150 tokens: three row blocks, the last one partial; 6 query heads over 2 kv heads.
        let dev = Device::Cpu;
        let q = Tensor::randn(0f32, 1., (2, 6, 150, 8), &dev).unwrap();
        let k = Tensor::randn(0f32, 1., (2, 2, 150, 8), &dev).unwrap();
        let v = Tensor::randn(0f32, 1., (2, 2, 150, 8), &dev).unwrap();
        let (out, probs) = causal_attention(&q, &k, &v, Probs::Full, AttentionOpts::plain(8)).unwrap();
        // The received sums are the full probabilities summed over the queries.
        let (_, received) = causal_attention(&q, &k, &v, Probs::Received, AttentionOpts::plain(8)).unwrap();
        let summed = probs.as_ref().unwrap().sum(2).unwrap();
        let gap = (received.unwrap() - summed).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(gap < 1e-4, "received sums off by {gap}");
        let want = naive_attention(&q, &k, &v);
        let diff = (out - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-5, "max difference {diff}");
        // Probabilities: rows sum to one, nothing above the diagonal, the first query sees itself.
        let p: Vec<f32> = probs.unwrap().flatten_all().unwrap().to_vec1().unwrap();
        for (i, row) in p.chunks(150).take(150).enumerate() {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            assert!(row[i + 1..].iter().all(|&x| x == 0.0));
        }
        assert_eq!(p[0], 1.0);
    }

    /// Logits-like rows: lengths around the chunk and lane sizes, a spread of values, ties at
    /// the maximum and signed zeros.
    fn rows() -> Vec<Vec<f32>> {
        let mut rng = crate::stats::Rng::new(7);
        [1usize, 15, 16, 17, 63, 64, 65, 200, 49_152]
            .iter()
            .map(|&n| {
                (0..n)
                    .map(|i| {
                        if i % 37 == 5 {
                            0.0
                        } else if i % 41 == 3 {
                            -0.0
                        } else {
                            (rng.uniform() * 40.0 - 25.0) as f32
                        }
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn the_vectorised_reductions_give_the_plain_loops_bits() {
        // The plain loops, as these kernels were first written: sums in order as they go.
        let plain_max = |xs: &[f32]| xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let plain_lse = |xs: &[f32]| {
            let m = plain_max(xs);
            let total: f64 = xs.chunks(64).map(|c| c.iter().map(|&x| fast_exp(x - m)).sum::<f32>() as f64).sum();
            m as f64 + total.ln()
        };
        let plain_kl = |p: &[f32], q: &[f32], lse_q: f64| {
            let m = plain_max(p);
            let (mut z, mut dot) = (0.0f64, 0.0f64);
            for (cp, cq) in p.chunks(64).zip(q.chunks(64)) {
                let (mut zs, mut ds) = (0.0f32, 0.0f32);
                for (&a, &b) in cp.iter().zip(cq) {
                    let e = fast_exp(a - m);
                    zs += e;
                    ds += e * (a - b);
                }
                z += zs as f64;
                dot += ds as f64;
            }
            non_negative(dot / z - (m as f64 + z.ln()) + lse_q)
        };
        let rows = rows();
        for (i, p) in rows.iter().enumerate() {
            let q: Vec<f32> = p.iter().rev().map(|x| x * 0.9 + 0.1).collect();
            assert_eq!(max(p).to_bits(), plain_max(p).to_bits(), "row {i}");
            assert_eq!(log_sum_exp(p).to_bits(), plain_lse(p).to_bits(), "row {i}");
            let lse_q = log_sum_exp(&q);
            assert_eq!(kl_divergence_lse(p, &q, lse_q).to_bits(), plain_kl(p, &q, lse_q).to_bits(), "row {i}");
            // The softmax of a causal row: in place, masked ends zero.
            let (first, live) = (p.len() / 5, p.len() - p.len() / 7);
            let mut ours = p.clone();
            causal_softmax_row(&mut ours, first, live);
            let mut want = p.clone();
            let m = plain_max(&want[first..live]);
            let mut sum = 0f32;
            for x in &mut want[first..live] {
                *x = fast_exp(*x - m);
                sum += *x;
            }
            want[first..live].iter_mut().for_each(|x| *x *= 1.0 / sum);
            want[..first].iter_mut().for_each(|x| *x = 0.0);
            want[live..].iter_mut().for_each(|x| *x = 0.0);
            assert_eq!(
                ours.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                "row {i}"
            );
        }
    }

    #[test]
    fn non_finite_logits_give_non_finite_scores_not_zero() {
        assert!(fast_exp(f32::NAN).is_nan());
        assert_eq!(fast_exp(f32::NEG_INFINITY), fast_exp(-200.0), "−∞ is clamped as before");
        let p: Vec<f32> = (0..100).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut q = p.clone();
        q[40] = f32::NAN;
        // A NaN anywhere in a row: its log Σ exp, hence the NLL of any next token, is NaN.
        assert!(log_sum_exp(&q).is_nan());
        assert!(kl_divergence(&p, &q).is_nan(), "NaN logits: {}", kl_divergence(&p, &q));
        assert!(kl_divergence(&q, &p).is_nan());
        q[40] = f32::INFINITY;
        assert!(!kl_divergence(&p, &q).is_finite());
        // Identical rows: rounding may go below zero; that is still clamped to 0.
        assert_eq!(kl_divergence(&p, &p), 0.0);
        assert_eq!(non_negative(-1e-12), 0.0);
        assert_eq!(first_non_finite_row(&[p.clone(), p.clone(), q.clone(), q].concat(), 100), Some(2));
        assert_eq!(first_non_finite_row(&p, 10), None);
    }

    #[test]
    fn fast_exp_is_accurate_over_the_range_used() {
        let mut x = -87.0f32;
        while x <= 0.0 {
            let exact = (x as f64).exp();
            let rel = ((fast_exp(x) as f64 - exact) / exact).abs();
            // Large |x| lose digits in x·log2 e, but such terms are negligible in any sum.
            let ok = if x > -10.0 { rel < 1e-6 } else { rel < 1e-5 };
            assert!(ok, "x = {x}: relative error {rel}");
            x += 0.013;
        }
        assert_eq!(fast_exp(0.0), 1.0);
    }
}
