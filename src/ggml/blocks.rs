//! The block functions of each GGUF type, bit-exact with ggml (layouts of
//! `ggml/src/ggml-common.h`): the grid fits an encoder family chooses, the packers that write a
//! block's codes and scales, and the decoders (ggml's `dequantize_row_*` arithmetic). The types'
//! rows (`traits.rs`) name them; `codec.rs` calls them by type.
//!
//! The loops index weights, codes and bytes by position on purpose: they mirror ggml's layouts.
#![allow(clippy::needless_range_loop)]

use half::f16;

use super::grid::{
    codes_around, fit_asymmetric, fit_symmetric, level_value, lut_index, midpoints, nearest_code, weighted_error, Grid,
    Lut, IQ2_LEVELS, IQ3XXS_LEVELS, IQ4NL_LEVELS, MAX_SUB,
};
use super::iq::{self, IqGrid};

fn h(x: f32) -> f16 {
    f16::from_f32(x)
}

/// Error of sub-block `x` (weights `w`) once rounded on the grid (step, base).
fn sub_error(x: &[f32], w: &[f32], step: f32, base: f32, levels: u32, lut: Option<Lut>) -> f32 {
    match lut {
        Some(lut) if step != 0.0 => {
            let mids = midpoints(lut);
            weighted_error(x, w, |v| step * lut[lut_index(v / step, &mids) as usize] as f32)
        }
        _ => weighted_error(x, w, |v| level_value(nearest_code(v, step, base, levels, lut), step, base, lut)),
    }
}
/// Q4_0, Q5_0, Q8_0: one f16 scale, codes centred on `levels / 2`; the scale fitted to the
/// weights (`fitted`) or max|x| over the largest code (Q8_0).
pub(super) fn symmetric(levels: u32, fitted: bool, x: &[f32], w: &[f32]) -> Grid {
    let half = (levels / 2) as i32;
    let s = if fitted {
        fit_symmetric(x, w, -half, half - 1)
    } else {
        // llama.cpp ignores the imatrix for Q8_0: scale = max|x|/127.
        let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
        amax / (half - 1) as f32
    };
    symmetric_block(h(s), levels, levels / 2)
}

/// Q4_1, Q5_1: an f16 scale and minimum fitted to the weights.
pub(super) fn asymmetric(levels: u32, x: &[f32], w: &[f32]) -> Grid {
    let (s, b) = fit_asymmetric(x, w, levels - 1, false);
    let mut g = Grid::new(32, levels);
    g.d = h(s);
    g.dmin = h(b);
    g.step[0] = g.d.to_f32();
    g.base[0] = g.dmin.to_f32();
    g
}

/// IQ4_NL: one f16 scale on the non-linear levels.
pub(super) fn iq4_nl(x: &[f32], w: &[f32]) -> Grid {
    let mut g = Grid::new(32, 16);
    g.lut = Some(&IQ4NL_LEVELS);
    g.d = h(fit_lut(x, w));
    g.step[0] = g.d.to_f32();
    g
}

fn symmetric_block(d: f16, levels: u32, zero: u32) -> Grid {
    let mut g = Grid::new(32, levels);
    g.d = d;
    g.step[0] = d.to_f32();
    g.base[0] = -(zero as f32) * g.step[0];
    g
}

crate::simd::avx2_dispatch! {
/// IQ4_NL scale: candidates mapping the largest-magnitude weight near either end level, −127 or
/// 113 (the levels are not symmetric), each refitted by weighted least squares. (The −127 end
/// alone, as first written, cost 29% more KL on SmolLM2 with IQ4_XS/IQ4_NL linears.) Each
/// candidate's levels are found apart from the in-order sums that use them, so that the search
/// vectorises and the sums keep their bits. `x` is one sub-block of at most 32 weights.
fn fit_lut(x: &[f32], w: &[f32]) -> f32 {
    let amax = x.iter().copied().fold(0f32, |a, v| if v.abs() > a.abs() { v } else { a });
    if amax == 0.0 {
        return 0.0;
    }
    let mids = midpoints(&IQ4NL_LEVELS);
    // A level is the lowest plus the rises past each midpoint below t (the midpoints ascend, so
    // those are the first lut_index(t) of them): integers, so exactly the LUT's value, and a sum
    // that vectorises where a table lookup does not.
    let rises: [i32; 15] = std::array::from_fn(|k| (IQ4NL_LEVELS[k + 1] - IQ4NL_LEVELS[k]) as i32);
    let mut buf = [0f32; 32];
    let lv = &mut buf[..x.len()];
    let levels = |s: f32, lv: &mut [f32]| {
        for (l, &v) in lv.iter_mut().zip(x) {
            let t = v / s;
            *l = mids.iter().zip(&rises).fold(IQ4NL_LEVELS[0] as i32, |a, (&m, &r)| a + if t > m { r } else { 0 }) as f32;
        }
    };
    let mut best = (f32::INFINITY, amax / -127.0);
    for (end, k) in [-127f32, 113.0].into_iter().flat_map(|e| (-7..=7).map(move |k| (e, k))) {
        let s0 = amax / (end + k as f32);
        levels(s0, lv);
        let (mut sxl, mut sll) = (0f32, 0f32);
        for ((&v, &wt), &l) in x.iter().zip(w).zip(&*lv) {
            sxl += wt * v * l;
            sll += wt * l * l;
        }
        if sll <= 0.0 {
            continue;
        }
        let s = sxl / sll;
        levels(s, lv);
        let err: f32 = x.iter().zip(w).zip(&*lv).map(|((&v, &wt), &l)| wt * (v - s * l).powi(2)).sum();
        if err < best.0 {
            best = (err, s);
        }
    }
    best.1
}
}

/// Of the two scale codes around a fitted scale, the one whose rounding errs least (the first on
/// a tie).
fn better_code(opts: [i32; 2], err: impl Fn(i32) -> f32) -> i32 {
    let mut best = (f32::INFINITY, 0);
    for c in opts {
        let e = err(c);
        if e < best.0 {
            best = (e, c);
        }
    }
    best.1
}

/// IQ4_XS: IQ4_NL's levels on eight sub-blocks of 32, each with a signed 6-bit scale code
/// (stored offset by 32) times the block's f16 `d` (ggml's `quantize_row_iq4_nl_impl` with
/// super-blocks of 256): each sub-block's scale is fitted alone, `d` maps the largest to −32,
/// and each code is the better of the two around the fitted scale.
pub(super) fn iq4_xs(x: &[f32], w: &[f32]) -> Grid {
    let mut g = Grid::new(32, 16);
    g.lut = Some(&IQ4NL_LEVELS);
    let mut s = [0f32; 8];
    for j in 0..8 {
        let r = j * 32..(j + 1) * 32;
        s[j] = fit_lut(&x[r.clone()], &w[r]);
    }
    let smax = s.iter().copied().fold(0f32, |a, v| if v.abs() > a.abs() { v } else { a });
    g.d = h(smax / -32.0);
    let d = g.d.to_f32();
    for j in 0..8 {
        let r = j * 32..(j + 1) * 32;
        let opts = if d != 0.0 { codes_around(s[j] / d, -32, 31) } else { [0, 0] };
        let c =
            better_code(opts, |c| sub_error(&x[r.clone()], &w[r.clone()], d * c as f32, 0.0, 16, Some(&IQ4NL_LEVELS)));
        g.sc[j] = (c + 32) as u8;
        g.step[j] = d * c as f32;
    }
    g
}

/// IQ3_S, IQ3_XXS, IQ2_S, IQ2_XS: each sub-block's step fitted alone over its grid points
/// ([`IqGrid::fit_step`]); `d` maps the largest to the top scale code 15 (step 31·d), and each
/// sub-block takes the better of the two codes around its step, scored after rounding at that
/// step. Those steps are the odd lattice's, d·(1 + 2·sc); the grid's are theirs over the LUT's
/// unit (on IQ3_XXS exactly ggml's db = d·(0.5 + sc)·0.5, on the IQ2 grids d·(0.5 + sc)·0.25: the
/// factors are powers of two).
pub(super) fn vector_grid(q: &IqGrid, x: &[f32], w: &[f32]) -> Grid {
    let n_sub = 256 / q.sub;
    let mut g = Grid::new(q.sub, 16);
    g.lut = Some(q.lut);
    let mut s = [0f32; MAX_SUB];
    for j in 0..n_sub {
        let r = j * q.sub..(j + 1) * q.sub;
        s[j] = q.fit_step(&x[r.clone()], &w[r]);
    }
    g.d = h(s.iter().copied().fold(0f32, f32::max) / 31.0);
    let d = g.d.to_f32();
    for j in 0..n_sub {
        let r = j * q.sub..(j + 1) * q.sub;
        let opts = if d > 0.0 { codes_around(0.5 * (s[j] / d - 1.0), 0, 15) } else { [0, 0] };
        let c = better_code(opts, |c| q.sub_error(&x[r.clone()], &w[r.clone()], d * (1 + 2 * c) as f32));
        g.sc[j] = c as u8;
        g.step[j] = d * (1 + 2 * c) as f32 / q.unit;
    }
    g
}

/// Q2_K, Q4_K, Q5_K: sub-blocks of `sub` weights s·q − m, q in [0, levels), with unsigned scale
/// and min codes up to `code_max` (4 bits for Q2_K, 6 bits otherwise) times the block's f16 `d`
/// and `dmin`.
pub(super) fn kquant_asymmetric(sub: usize, levels: u32, code_max: i32, x: &[f32], w: &[f32]) -> Grid {
    let n_sub = 256 / sub;
    let mut g = Grid::new(sub, levels);
    let mut s = [0f32; MAX_SUB];
    let mut m = [0f32; MAX_SUB];
    for j in 0..n_sub {
        let r = j * sub..(j + 1) * sub;
        let (sj, bj) = fit_asymmetric(&x[r.clone()], &w[r], levels - 1, true);
        s[j] = sj;
        m[j] = -bj;
    }
    let smax = s[..n_sub].iter().fold(0f32, |a, &v| a.max(v));
    let mmax = m[..n_sub].iter().fold(0f32, |a, &v| a.max(v));
    g.d = h(smax / code_max as f32);
    g.dmin = h(mmax / code_max as f32);
    let (d, dmin) = (g.d.to_f32(), g.dmin.to_f32());
    for j in 0..n_sub {
        let r = j * sub..(j + 1) * sub;
        let sc_opts = if d > 0.0 { codes_around(s[j] / d, 0, code_max) } else { [0, 0] };
        let mn_opts = if dmin > 0.0 { codes_around(m[j] / dmin, 0, code_max) } else { [0, 0] };
        let mut best = (f32::INFINITY, 0, 0);
        for sc in sc_opts {
            for mn in mn_opts {
                let (step, base) = (d * sc as f32, -(dmin * mn as f32));
                let e = sub_error(&x[r.clone()], &w[r.clone()], step, base, levels, None);
                if e < best.0 {
                    best = (e, sc, mn);
                }
            }
        }
        g.sc[j] = best.1 as u8;
        g.mn[j] = best.2 as u8;
        g.step[j] = d * best.1 as f32;
        g.base[j] = -(dmin * best.2 as f32);
    }
    g
}

/// Q3_K, Q6_K: sub-blocks of 16, s·q with q in [−levels/2, levels/2) ([−4, 3] / [−32, 31]);
/// signed scale codes in [cmin, cmax] times the block's f16 `d`, stored plus `code_offset`
/// (6-bit offset by 32 / int8).
pub(super) fn kquant_symmetric(levels: u32, (cmin, cmax): (i32, i32), code_offset: i32, x: &[f32], w: &[f32]) -> Grid {
    let (qmin, qmax) = (-((levels / 2) as i32), (levels / 2) as i32 - 1);
    let mut g = Grid::new(16, levels);
    let mut s = [0f32; MAX_SUB];
    for j in 0..16 {
        let r = j * 16..(j + 1) * 16;
        s[j] = fit_symmetric(&x[r.clone()], &w[r], qmin, qmax);
    }
    let smax = s.iter().copied().fold(0f32, |a, v| if v.abs() > a.abs() { v } else { a });
    g.d = h(smax / cmin as f32);
    let d = g.d.to_f32();
    for j in 0..16 {
        let r = j * 16..(j + 1) * 16;
        let opts = if d != 0.0 { codes_around(s[j] / d, cmin, cmax) } else { [0, 0] };
        let best = better_code(opts, |c| {
            let step = d * c as f32;
            sub_error(&x[r.clone()], &w[r.clone()], step, qmin as f32 * step, levels, None)
        });
        // Q3_K stores the code offset by 32 in 6 bits, Q6_K as an int8.
        g.sc[j] = (best + code_offset) as i8 as u8;
        g.step[j] = d * best as f32;
        g.base[j] = qmin as f32 * g.step[j];
    }
    g
}

/// The low 4 bits of 32 codes, two per byte (code l and code l + 16), into `out` (16 bytes).
fn nibbles(c: &[u8], out: &mut [u8]) {
    for l in 0..16 {
        out[l] = (c[l] & 0xF) | ((c[l + 16] & 0xF) << 4);
    }
}

/// Bit 4 of 32 codes as a little-endian u32, into `out` (4 bytes).
fn high_bits(c: &[u8], out: &mut [u8]) {
    let qh: u32 = (0..32).fold(0, |a, i| a | (((c[i] >> 4) as u32 & 1) << i));
    out.copy_from_slice(&qh.to_le_bytes());
}

pub(super) fn pack_q8_0(g: &Grid, c: &[u8], out: &mut [u8]) {
    out[..2].copy_from_slice(&g.d.to_le_bytes());
    for (o, &ci) in out[2..].iter_mut().zip(c) {
        *o = (ci as i32 - 128) as i8 as u8;
    }
}

/// Q4_0 and IQ4_NL: the f16 scale, then the codes' nibbles.
pub(super) fn pack_q4_0(g: &Grid, c: &[u8], out: &mut [u8]) {
    out[..2].copy_from_slice(&g.d.to_le_bytes());
    nibbles(c, &mut out[2..18]);
}

pub(super) fn pack_q4_1(g: &Grid, c: &[u8], out: &mut [u8]) {
    out[..2].copy_from_slice(&g.d.to_le_bytes());
    out[2..4].copy_from_slice(&g.dmin.to_le_bytes());
    nibbles(c, &mut out[4..20]);
}

pub(super) fn pack_q5_0(g: &Grid, c: &[u8], out: &mut [u8]) {
    out[..2].copy_from_slice(&g.d.to_le_bytes());
    high_bits(c, &mut out[2..6]);
    nibbles(c, &mut out[6..22]);
}

pub(super) fn pack_q5_1(g: &Grid, c: &[u8], out: &mut [u8]) {
    out[..2].copy_from_slice(&g.d.to_le_bytes());
    out[2..4].copy_from_slice(&g.dmin.to_le_bytes());
    high_bits(c, &mut out[4..8]);
    nibbles(c, &mut out[8..24]);
}

pub(super) fn pack_q4_k(g: &Grid, c: &[u8], out: &mut [u8]) {
    pack_q45_k(false, g, c, out)
}

pub(super) fn pack_q5_k(g: &Grid, c: &[u8], out: &mut [u8]) {
    pack_q45_k(true, g, c, out)
}

/// Q4_K, Q5_K (`five`): d, dmin, the 6-bit scales and mins, Q5_K's fifth bits, the nibbles.
#[inline(always)]
fn pack_q45_k(five: bool, g: &Grid, c: &[u8], out: &mut [u8]) {
    out[..2].copy_from_slice(&g.d.to_le_bytes());
    out[2..4].copy_from_slice(&g.dmin.to_le_bytes());
    pack_scales_k4(&g.sc, &g.mn, &mut out[4..16]);
    let qs_at = if !five { 16 } else { 48 };
    if five {
        let qh = &mut out[16..48];
        qh.fill(0);
        for ch in 0..4 {
            for l in 0..32 {
                qh[l] |= ((c[64 * ch + l] >> 4) & 1) << (2 * ch);
                qh[l] |= ((c[64 * ch + 32 + l] >> 4) & 1) << (2 * ch + 1);
            }
        }
    }
    let qs = &mut out[qs_at..qs_at + 128];
    for ch in 0..4 {
        for l in 0..32 {
            qs[32 * ch + l] = (c[64 * ch + l] & 0xF) | ((c[64 * ch + 32 + l] & 0xF) << 4);
        }
    }
}

pub(super) fn pack_q2_k(g: &Grid, c: &[u8], out: &mut [u8]) {
    for j in 0..16 {
        out[j] = g.sc[j] | (g.mn[j] << 4);
    }
    pack_2bit(c, &mut out[16..80]);
    out[80..82].copy_from_slice(&g.d.to_le_bytes());
    out[82..84].copy_from_slice(&g.dmin.to_le_bytes());
}

pub(super) fn pack_q3_k(g: &Grid, c: &[u8], out: &mut [u8]) {
    let hmask = &mut out[..32];
    hmask.fill(0);
    for (j, &ci) in c.iter().enumerate() {
        hmask[j % 32] |= ((ci >> 2) & 1) << (j / 32);
    }
    pack_2bit(c, &mut out[32..96]);
    let scales = &mut out[96..108];
    scales.fill(0);
    for j in 0..16 {
        let l = g.sc[j];
        if j < 8 {
            scales[j] = l & 0xF;
        } else {
            scales[j - 8] |= (l & 0xF) << 4;
        }
        scales[j % 4 + 8] |= (l >> 4) << (2 * (j / 4));
    }
    out[108..110].copy_from_slice(&g.d.to_le_bytes());
}

pub(super) fn pack_q6_k(g: &Grid, c: &[u8], out: &mut [u8]) {
    let (ql, rest) = out.split_at_mut(128);
    let (qh, rest) = rest.split_at_mut(64);
    for n in 0..2 {
        for l in 0..32 {
            let q = |k: usize| c[128 * n + 32 * k + l];
            ql[64 * n + l] = (q(0) & 0xF) | ((q(2) & 0xF) << 4);
            ql[64 * n + 32 + l] = (q(1) & 0xF) | ((q(3) & 0xF) << 4);
            qh[32 * n + l] = (q(0) >> 4) | ((q(1) >> 4) << 2) | ((q(2) >> 4) << 4) | ((q(3) >> 4) << 6);
        }
    }
    rest[..16].copy_from_slice(&g.sc);
    rest[16..18].copy_from_slice(&g.d.to_le_bytes());
}

pub(super) fn pack_iq4_xs(g: &Grid, c: &[u8], out: &mut [u8]) {
    out[..2].copy_from_slice(&g.d.to_le_bytes());
    let high: u16 = (0..8).fold(0, |a, j| a | (((g.sc[j] >> 4) as u16) << (2 * j)));
    out[2..4].copy_from_slice(&high.to_le_bytes());
    for j in 0..4 {
        out[4 + j] = (g.sc[2 * j] & 0xF) | ((g.sc[2 * j + 1] & 0xF) << 4);
    }
    for j in 0..8 {
        for l in 0..16 {
            out[8 + 16 * j + l] = (c[32 * j + l] & 0xF) | ((c[32 * j + 16 + l] & 0xF) << 4);
        }
    }
}

pub(super) fn pack_iq3_s(g: &Grid, c: &[u8], out: &mut [u8]) {
    out.fill(0);
    out[..2].copy_from_slice(&g.d.to_le_bytes());
    for (k, group) in c.chunks(iq::IQ3S.group).enumerate() {
        let p = iq::IQ3S.point_of(group);
        out[2 + k] = (p & 255) as u8;
        out[66 + k / 8] |= ((p >> 8) as u8) << (k % 8);
    }
    for (i, &ci) in c.iter().enumerate() {
        out[74 + i / 8] |= (iq::magnitude(ci).1 as u8) << (i % 8);
    }
    for j in 0..8 {
        out[106 + j / 2] |= g.sc[j] << (4 * (j % 2));
    }
}

pub(super) fn pack_iq3_xxs(g: &Grid, c: &[u8], out: &mut [u8]) {
    // d, a point index per group of 4, then per sub-block a u32: the first 7 signs of
    // each group of 8 (7 bits each; the eighth is their parity) and the scale code.
    out[..2].copy_from_slice(&g.d.to_le_bytes());
    for (k, group) in c.chunks(iq::IQ3XXS.group).enumerate() {
        out[2 + k] = iq::IQ3XXS.point_of(group) as u8;
    }
    for j in 0..8 {
        let mut aux = (g.sc[j] as u32) << 28;
        for (l, octet) in c[32 * j..32 * (j + 1)].chunks(iq::OCTET).enumerate() {
            aux |= (even_signs("IQ3_XXS", octet) as u32) << (7 * l);
        }
        out[66 + 4 * j..70 + 4 * j].copy_from_slice(&aux.to_le_bytes());
    }
}

pub(super) fn pack_iq2_xs(g: &Grid, c: &[u8], out: &mut [u8]) {
    // d, per group of 8 a u16: its point (9 bits) and its first 7 signs (the eighth is
    // their parity), then a 4-bit scale code per 16 weights.
    out[..2].copy_from_slice(&g.d.to_le_bytes());
    for (k, octet) in c.chunks(iq::OCTET).enumerate() {
        let q = iq::IQ2XS.point_of(octet) | (even_signs("IQ2_XS", octet) as u16) << 9;
        out[2 + 2 * k..4 + 2 * k].copy_from_slice(&q.to_le_bytes());
    }
    for j in 0..8 {
        out[66 + j] = g.sc[2 * j] | (g.sc[2 * j + 1] << 4);
    }
}

pub(super) fn pack_iq2_s(g: &Grid, c: &[u8], out: &mut [u8]) {
    // d, the low 8 bits of each group's point (10 bits), each group's 8 signs, the
    // points' high 2 bits (four groups per byte), then a 4-bit scale code per 16 weights.
    out.fill(0);
    out[..2].copy_from_slice(&g.d.to_le_bytes());
    for (k, octet) in c.chunks(iq::OCTET).enumerate() {
        let p = iq::IQ2S.point_of(octet);
        out[2 + k] = (p & 255) as u8;
        out[66 + k / 4] |= ((p >> 8) as u8) << (2 * (k % 4));
        out[34 + k] = octet.iter().enumerate().fold(0u8, |a, (i, &ci)| a | (iq::magnitude(ci).1 as u8) << i);
    }
    for j in 0..8 {
        out[74 + j] = g.sc[2 * j] | (g.sc[2 * j + 1] << 4);
    }
}

/// Q4_K/Q5_K: eight 6-bit scales and mins in 12 bytes (inverse of ggml's `get_scale_min_k4`).
fn pack_scales_k4(sc: &[u8], mn: &[u8], out: &mut [u8]) {
    for j in 0..4 {
        out[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
        out[j + 4] = mn[j] | ((mn[j + 4] >> 4) << 6);
        out[j + 8] = (sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4);
    }
}

fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

/// Q2_K/Q3_K: the low two bits of 256 codes, four per byte, in two halves of 128.
fn pack_2bit(c: &[u8], qs: &mut [u8]) {
    for n in 0..2 {
        for l in 0..32 {
            let q = |k: usize| c[128 * n + 32 * k + l] & 3;
            qs[32 * n + l] = q(0) | (q(1) << 2) | (q(2) << 4) | (q(3) << 6);
        }
    }
}

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// IQ3_XXS, IQ2_XS: the first 7 signs of a group of 8 codes (bit i: weight i negative), which
/// must have an even count of negatives — ggml stores these 7 and decodes the eighth as their parity.
fn even_signs(t: &str, octet: &[u8]) -> u8 {
    let signs = octet.iter().enumerate().fold(0u8, |a, (i, &ci)| a | (iq::magnitude(ci).1 as u8) << i);
    assert!(signs.count_ones() % 2 == 0, "{t} codes with an odd count of negatives");
    signs & 127
}

/// The 8 signs of a group (bit i: weight i negative) from its 7 stored ones (ggml's
/// `ksigns_iq2xs`: the eighth is their parity).
fn ksigns(stored: u32) -> u8 {
    let s = (stored & 127) as u8;
    s | ((s.count_ones() % 2) as u8) << 7
}

/// Code `i` of 32 stored as nibbles (code l low and code l + 16 high in byte l).
#[inline(always)]
fn low(qs: &[u8], i: usize) -> u8 {
    if i < 16 {
        qs[i] & 0xF
    } else {
        qs[i - 16] >> 4
    }
}

pub(super) fn decode_f32(b: &[u8], y: &mut [f32]) {
    y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
}

pub(super) fn decode_f16(b: &[u8], y: &mut [f32]) {
    y[0] = f16_at(b, 0);
}

pub(super) fn decode_bf16(b: &[u8], y: &mut [f32]) {
    y[0] = half::bf16::from_le_bytes([b[0], b[1]]).to_f32();
}

pub(super) fn decode_q8_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for i in 0..32 {
        y[i] = d * (b[2 + i] as i8) as f32;
    }
}

pub(super) fn decode_q4_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for i in 0..32 {
        y[i] = (low(&b[2..], i) as i32 - 8) as f32 * d;
    }
}

pub(super) fn decode_q4_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    for i in 0..32 {
        y[i] = low(&b[4..], i) as f32 * d + m;
    }
}

pub(super) fn decode_q5_0(b: &[u8], y: &mut [f32]) {
    decode_q5(false, b, y)
}

pub(super) fn decode_q5_1(b: &[u8], y: &mut [f32]) {
    decode_q5(true, b, y)
}

/// Q5_0, Q5_1 (`one`: with a min).
#[inline(always)]
fn decode_q5(one: bool, b: &[u8], y: &mut [f32]) {
    let (d, m, at) = if !one { (f16_at(b, 0), 0.0, 2) } else { (f16_at(b, 0), f16_at(b, 2), 4) };
    let qh = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    for i in 0..32 {
        let q = low(&b[at + 4..], i) as u32 | (((qh >> i) & 1) << 4);
        y[i] = if !one { (q as i32 - 16) as f32 * d } else { q as f32 * d + m };
    }
}

pub(super) fn decode_q2_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 80), f16_at(b, 82));
    for i in 0..256 {
        let s = b[i / 16];
        let (n, k, l) = (i / 128, (i % 128) / 32, i % 32);
        let q = (b[16 + 32 * n + l] >> (2 * k)) & 3;
        y[i] = d * (s & 0xF) as f32 * q as f32 - dmin * (s >> 4) as f32;
    }
}

pub(super) fn decode_q3_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 108);
    let scales = &b[96..108];
    for i in 0..256 {
        let j = i / 16;
        let lo = if j < 8 { scales[j] & 0xF } else { scales[j - 8] >> 4 };
        let sc = (lo | (((scales[j % 4 + 8] >> (2 * (j / 4))) & 3) << 4)) as i32 - 32;
        let (n, k, l) = (i / 128, (i % 128) / 32, i % 32);
        let q = ((b[32 + 32 * n + l] >> (2 * k)) & 3) as i32;
        let hbit = (b[i % 32] >> (i / 32)) & 1;
        y[i] = d * sc as f32 * (q - if hbit == 1 { 0 } else { 4 }) as f32;
    }
}

pub(super) fn decode_q4_k(b: &[u8], y: &mut [f32]) {
    decode_q45_k(false, b, y)
}

pub(super) fn decode_q5_k(b: &[u8], y: &mut [f32]) {
    decode_q45_k(true, b, y)
}

/// Q4_K, Q5_K (`five`).
#[inline(always)]
fn decode_q45_k(five: bool, b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let scales = &b[4..16];
    let (qh, qs) = if !five { (&b[0..0], &b[16..144]) } else { (&b[16..48], &b[48..176]) };
    for j in 0..8 {
        let (sc, m) = scale_min_k4(j, scales);
        let (step, min) = (d * sc as f32, dmin * m as f32);
        let (ch, hi) = (j / 2, j % 2);
        for l in 0..32 {
            let byte = qs[32 * ch + l];
            let mut q = if hi == 0 { byte & 0xF } else { byte >> 4 };
            if five {
                q |= ((qh[l] >> j) & 1) << 4;
            }
            y[32 * j + l] = step * q as f32 - min;
        }
    }
}

pub(super) fn decode_q6_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 208);
    for i in 0..256 {
        let (n, k, l) = (i / 128, (i % 128) / 32, i % 32);
        let ql = b[64 * n + 32 * (k % 2) + l];
        let lo = if k < 2 { ql & 0xF } else { ql >> 4 };
        let hi = (b[128 + 32 * n + l] >> (2 * k)) & 3;
        let q = (lo | (hi << 4)) as i32 - 32;
        y[i] = d * (b[192 + i / 16] as i8) as f32 * q as f32;
    }
}

pub(super) fn decode_iq4_nl(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for i in 0..32 {
        y[i] = d * IQ4NL_LEVELS[low(&b[2..], i) as usize] as f32;
    }
}

pub(super) fn decode_iq4_xs(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let high = u16::from_le_bytes([b[2], b[3]]);
    for j in 0..8 {
        let ls = ((b[4 + j / 2] >> (4 * (j % 2))) & 0xF) | ((((high >> (2 * j)) & 3) as u8) << 4);
        let dl = d * (ls as i32 - 32) as f32;
        for i in 0..32 {
            y[32 * j + i] = dl * IQ4NL_LEVELS[low(&b[8 + 16 * j..], i) as usize] as f32;
        }
    }
}

pub(super) fn decode_iq3_s(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for i in 0..256 {
        let k = i / 4;
        let p = b[2 + k] as usize | ((((b[66 + k / 8] >> (k % 8)) & 1) as usize) << 8);
        let db = d * (1 + 2 * ((b[106 + i / 64] >> (4 * (i / 32 % 2))) & 0xF) as i32) as f32;
        let v = db * (2 * iq::IQ3S.point(p)[i % 4] + 1) as f32;
        y[i] = if (b[74 + i / 8] >> (i % 8)) & 1 == 1 { -v } else { v };
    }
}

pub(super) fn decode_iq3_xxs(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for j in 0..8 {
        let aux = u32::from_le_bytes([b[66 + 4 * j], b[67 + 4 * j], b[68 + 4 * j], b[69 + 4 * j]]);
        let db = d * (0.5 + (aux >> 28) as f32) * 0.5;
        for i in 0..32 {
            let negative = (ksigns(aux >> (7 * (i / 8))) >> (i % 8)) & 1 == 1;
            let m = iq::IQ3XXS.point(b[2 + 8 * j + i / 4] as usize)[i % 4];
            let v = db * IQ3XXS_LEVELS[8 + m as usize] as f32;
            y[32 * j + i] = if negative { -v } else { v };
        }
    }
}

pub(super) fn decode_iq2_xs(b: &[u8], y: &mut [f32]) {
    decode_iq2(true, b, y)
}

pub(super) fn decode_iq2_s(b: &[u8], y: &mut [f32]) {
    decode_iq2(false, b, y)
}

/// IQ2_XS (`xs`), IQ2_S.
#[inline(always)]
fn decode_iq2(xs: bool, b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let scales = if xs { &b[66..74] } else { &b[74..82] };
    for k in 0..32 {
        let db = d * (0.5 + ((scales[k / 4] >> (4 * (k / 2 % 2))) & 0xF) as f32) * 0.25;
        let (m, signs) = if xs {
            let q = u16::from_le_bytes([b[2 + 2 * k], b[3 + 2 * k]]);
            (iq::IQ2XS.point((q & 511) as usize), ksigns((q >> 9) as u32))
        } else {
            let p = b[2 + k] as usize | ((((b[66 + k / 4] >> (2 * (k % 4))) & 3) as usize) << 8);
            (iq::IQ2S.point(p), b[34 + k])
        };
        for i in 0..8 {
            let v = db * IQ2_LEVELS[8 + m[i] as usize] as f32;
            y[8 * k + i] = if (signs >> i) & 1 == 1 { -v } else { v };
        }
    }
}

pub(super) fn encode_f32(w: &[f32]) -> Vec<u8> {
    w.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(super) fn encode_f16(w: &[f32]) -> Vec<u8> {
    w.iter().flat_map(|&x| h(x).to_le_bytes()).collect()
}

pub(super) fn encode_bf16(w: &[f32]) -> Vec<u8> {
    w.iter().flat_map(|&x| half::bf16::from_f32(x).to_le_bytes()).collect()
}
