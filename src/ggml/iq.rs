//! ggml's vector grids, one description for four types. A block holds 256 weights in
//! sub-blocks, each with a 4-bit scale code (odd-lattice step s = d·(1 + 2·sc)); every group of
//! weights takes its magnitudes from one point of the type's grid:
//!
//! | type | bits/weight | group | points | magnitudes | sub-block | signs |
//! |---|---|---|---|---|---|---|
//! | IQ3_S (`block_iq3_s`) | 3.4375 | 4 | 512 | 8 | 32 | every weight its own |
//! | IQ3_XXS (`block_iq3_xxs`) | 3.0625 | 4 | 256 | 8 | 32 | 7 stored per 8 |
//! | IQ2_S (`block_iq2_s`) | 2.5625 | 8 | 1024 | 3 | 16 | every weight its own |
//! | IQ2_XS (`block_iq2_xs`) | 2.3125 | 8 | 512 | 3 | 16 | 7 stored per 8 |
//!
//! A weight's code is a sign and a magnitude index m (code 8 + m, or 7 − m when negative). The
//! functions here work on the odd lattice's step s: magnitude index m stands for s·level(m),
//! level(m) = lut[8 + m] / unit — 2m + 1 on IQ3_S; on IQ3_XXS the same but its top level, which
//! ggml's `iq3xxs_grid` stores as 62 = 4·15.5; on the IQ2 grids 1, 3.125 and 5.375, the bytes 8,
//! 25 and 43 of `iq2xs_grid`/`iq2s_grid` over 8 (the block's [`Grid`](super::grid::Grid) steps are
//! s/[`IqGrid::unit`], its levels the grid's bytes: [`ODD_LEVELS`](super::grid::ODD_LEVELS),
//! [`IQ3XXS_LEVELS`](super::grid::IQ3XXS_LEVELS), [`IQ2_LEVELS`](super::grid::IQ2_LEVELS)).
//!
//! Round to nearest takes each group's nearest magnitudes on the odd lattice when they are a
//! point, else the best of their neighbours — every point within the smallest distances (three
//! for IQ3_S, two for IQ3_XXS and IQ2_XS, one for IQ2_S), as ggml's `iq3xs_init_impl` and
//! `iq2xs_init_impl` list them; errors and fits use the levels the decoder gives. GPTQ rounds
//! column by column, in any order (act-order permutes them): a weight's magnitude is chosen among
//! the points that agree with the group's weights already rounded, scored on its own
//! error-updated value and the estimates of the group's weights not yet rounded.
//!
//! IQ3_XXS's and IQ2_XS's signs: the eighth sign of every group of 8 is the parity of the other
//! seven (ggml's `ksigns_iq2xs`), so the count of negatives is even. Round to nearest gives every
//! weight its own sign, then, in a group of 8 with an odd count, flips the one weight whose flip
//! costs least: each candidate's group is rounded again with that weight's target negated, and
//! the smallest rise in weighted error wins. The step search first negates, as ggml does, the
//! weight of least w·x² in such a group. (GPTQ's rule, which cannot go back on a rounded weight,
//! is in `compress/grid_columns.rs`.)

use std::sync::OnceLock;

use super::grid::{Lut, IQ2_LEVELS, IQ3XXS_LEVELS, ODD_LEVELS};
use super::kgrid::{KGRID_256, KGRID_2BIT_1024, KGRID_2BIT_512, KGRID_512};

/// The most weights a point covers (the IQ2 grids' groups of 8).
pub const MAX_GROUP: usize = 8;

/// IQ3_XXS, IQ2_XS: groups of 8 weights share a sign parity.
pub const OCTET: usize = 8;

/// The most points of a grid (IQ2_S), in 64-bit words of a point set.
const MAX_WORDS: usize = 1024 / 64;

/// One of ggml's vector grids and how its blocks store signs and scales.
pub struct IqGrid {
    /// The GGUF type, for messages.
    name: &'static str,
    kgrid: &'static [u16],
    /// Weights per point.
    pub group: usize,
    /// Bits of one magnitude index in a kgrid entry.
    bits: usize,
    /// Magnitude indices a point uses: 0…magnitudes − 1.
    magnitudes: u8,
    /// Weights per sub-block (one scale code each).
    pub sub: usize,
    /// How many distinct distances an off-grid pattern's neighbour list spans (ggml's `nwant`).
    shells: usize,
    /// The block's levels: the grid's bytes with a sign, code 8 + m for magnitude index m.
    pub lut: Lut,
    /// LUT units per odd-lattice unit: a grid step is s / unit.
    pub unit: f32,
    /// Groups of 8 weights have an even count of negatives (IQ3_XXS, IQ2_XS).
    pub even_signs: bool,
    /// The step search's candidates map max|x| to top + stride·k, |k| ≤ search (ggml's ranges:
    /// 2·kMaxQ − 1 and its `is` loop).
    top: f32,
    stride: f32,
    search: i32,
    tables: OnceLock<Tables>,
}

pub static IQ3S: IqGrid = IqGrid {
    name: "IQ3_S",
    kgrid: &KGRID_512,
    group: 4,
    bits: 3,
    magnitudes: 8,
    sub: 32,
    shells: 3,
    lut: &ODD_LEVELS,
    unit: 1.0,
    even_signs: false,
    top: 15.0,
    stride: 0.2,
    search: 9,
    tables: OnceLock::new(),
};

pub static IQ3XXS: IqGrid = IqGrid {
    name: "IQ3_XXS",
    kgrid: &KGRID_256,
    group: 4,
    bits: 3,
    magnitudes: 8,
    sub: 32,
    shells: 2,
    lut: &IQ3XXS_LEVELS,
    unit: 4.0,
    even_signs: true,
    top: 15.0,
    stride: 0.2,
    search: 15,
    tables: OnceLock::new(),
};

pub static IQ2S: IqGrid = IqGrid {
    name: "IQ2_S",
    kgrid: &KGRID_2BIT_1024,
    group: 8,
    bits: 2,
    magnitudes: 3,
    sub: 16,
    shells: 1,
    lut: &IQ2_LEVELS,
    unit: 8.0,
    even_signs: false,
    top: 5.0,
    stride: 0.1,
    search: 9,
    tables: OnceLock::new(),
};

pub static IQ2XS: IqGrid = IqGrid {
    name: "IQ2_XS",
    kgrid: &KGRID_2BIT_512,
    group: 8,
    bits: 2,
    magnitudes: 3,
    sub: 16,
    shells: 2,
    lut: &IQ2_LEVELS,
    unit: 8.0,
    even_signs: true,
    top: 5.0,
    stride: 0.1,
    search: 9,
    tables: OnceLock::new(),
};

/// A set of points, one bit each.
type PointSet = [u64; MAX_WORDS];

struct Tables {
    /// Each point's magnitude indices (the first `group` used).
    points: Vec<[u8; MAX_GROUP]>,
    /// Per pattern of magnitude indices, its point (or −1).
    index: Vec<i16>,
    /// Per pattern off the grid whose indices are all below `magnitudes`, its candidate points.
    neighbours: Vec<Vec<u16>>,
    /// Per position and magnitude index (position · 8 + m), the points with that magnitude there.
    agree: Vec<PointSet>,
    /// Per magnitude index, its value in steps s.
    level: [f32; 8],
}

impl Tables {
    fn new(g: &IqGrid) -> Self {
        let n = g.group;
        let patterns = 1usize << (g.bits * n);
        let digit = |u: usize, i: usize| (u >> (g.bits * i)) & ((1 << g.bits) - 1);
        let mut points = vec![[0u8; MAX_GROUP]; g.kgrid.len()];
        let mut index = vec![-1i16; patterns];
        let mut agree = vec![[0u64; MAX_WORDS]; MAX_GROUP * 8];
        for (k, &p) in g.kgrid.iter().enumerate() {
            for i in 0..n {
                points[k][i] = digit(p as usize, i) as u8;
                agree[i * 8 + points[k][i] as usize][k / 64] |= 1 << (k % 64);
            }
            index[p as usize] = k as i16;
        }
        let neighbours = (0..patterns)
            .map(|u| {
                if index[u] >= 0 || (0..n).any(|i| digit(u, i) >= g.magnitudes as usize) {
                    return Vec::new();
                }
                let at: Vec<i32> = (0..n).map(|i| 2 * digit(u, i) as i32 + 1).collect();
                let mut d2: Vec<(i32, u16)> = points
                    .iter()
                    .enumerate()
                    .map(|(k, p)| {
                        (p[..n].iter().zip(&at).map(|(&m, &a)| (2 * m as i32 + 1 - a).pow(2)).sum(), k as u16)
                    })
                    .collect();
                d2.sort_unstable();
                let mut distinct = 0;
                let mut last = -1;
                d2.into_iter()
                    .take_while(|&(d, _)| {
                        if d != last {
                            distinct += 1;
                            last = d;
                        }
                        distinct <= g.shells
                    })
                    .map(|(_, k)| k)
                    .collect()
            })
            .collect();
        let level = std::array::from_fn(|m| g.lut[8 + m] as f32 / g.unit);
        Tables { points, index, neighbours, agree, level }
    }

    /// Σ w (x − s·level(m))² over the positions given (x may be negative: a flipped sign).
    #[inline]
    fn error(&self, xa: &[f32], w: &[f32], s: f32, m: &[u8]) -> f32 {
        xa.iter().zip(w).zip(m).map(|((&x, &w), &m)| w * (x - s * self.level[m as usize]).powi(2)).sum()
    }

    /// Per position i in `positions` and magnitude index m < `magnitudes`, w_i·(x_i − s·level(m))²,
    /// each computed as [`Tables::error`] computes its terms: a point's error is the sum, in
    /// position order, of its entries — the same bits, with one term per position and magnitude
    /// instead of one per position and candidate point.
    #[inline]
    fn terms(
        &self,
        xa: &[f32],
        w: &[f32],
        s: f32,
        magnitudes: u8,
        positions: impl Iterator<Item = usize>,
    ) -> [[f32; 8]; MAX_GROUP] {
        let mut e = [[0f32; 8]; MAX_GROUP];
        for i in positions {
            for m in 0..magnitudes as usize {
                e[i][m] = w[i] * (xa[i] - s * self.level[m]).powi(2);
            }
        }
        e
    }

    /// The first point of `list` of least `error` (point 0 when none is below +∞).
    #[inline(always)]
    fn first_least(&self, list: &[u16], error: impl Fn(&[u8; MAX_GROUP]) -> f32) -> usize {
        let mut best = (f32::INFINITY, 0usize);
        for &k in list {
            let e = error(&self.points[k as usize]);
            if e < best.0 {
                best = (e, k as usize);
            }
        }
        best.1
    }

    /// The value of code `c` at step `s`.
    #[inline]
    fn value(&self, c: u8, s: f32) -> f32 {
        let (m, negative) = magnitude(c);
        let v = s * self.level[m as usize];
        if negative {
            -v
        } else {
            v
        }
    }
}

/// The code of a weight `x` with magnitude index `m`: its sign (x ≥ 0 positive, as ggml) and m.
#[inline]
pub fn code(x: f32, m: u8) -> u8 {
    if x >= 0.0 {
        8 + m
    } else {
        7 - m
    }
}

/// The code of magnitude index `m` with the sign given.
#[inline]
pub fn signed_code(negative: bool, m: u8) -> u8 {
    if negative {
        7 - m
    } else {
        8 + m
    }
}

/// The magnitude index and sign (true: negative) of a code.
#[inline]
pub fn magnitude(c: u8) -> (u8, bool) {
    if c >= 8 {
        (c - 8, false)
    } else {
        (7 - c, true)
    }
}

impl IqGrid {
    fn tables(&self) -> &Tables {
        self.tables.get_or_init(|| Tables::new(self))
    }

    /// The pattern of magnitude indices `m` (first lowest).
    fn pattern(&self, m: &[u8]) -> usize {
        m.iter().enumerate().fold(0, |a, (i, &v)| a | (v as usize) << (self.bits * i))
    }

    /// The magnitude index nearest |x|/s on the odd lattice (ggml's choice for every grid).
    #[inline]
    fn nearest(&self, xa: f32, s: f32) -> u8 {
        super::grid::round_half_even(0.5 * (xa / s - 1.0)).clamp(0.0, (self.magnitudes - 1) as f32) as u8
    }

    /// The value of magnitude index `m` in steps s.
    pub fn level(&self, m: u8) -> f32 {
        self.tables().level[m as usize]
    }

    /// The point for one group of targets `xa` (|x|; negative where a sign is flipped) with
    /// weights `w` at step `s` > 0: the nearest pattern if it is a point, else the neighbour of
    /// least error, its error summed position by position either directly or, for neighbour
    /// lists longer than a position's magnitudes, from the group's [`Tables::terms`] (the same
    /// bits either way).
    pub fn best_point(&self, xa: &[f32], w: &[f32], s: f32) -> usize {
        // The IQ2 grids' groups of 8 unrolled (their step fits measured 1.15x faster so; the same
        // form for groups of 4 measured 1.1x slower than this loop).
        if self.group == 8 {
            return self.best_point_of::<8>(
                xa[..8].try_into().expect("a group of 8"),
                w[..8].try_into().expect("a group of 8"),
                s,
            );
        }
        let t = self.tables();
        let n = self.group;
        let mut m = [0u8; MAX_GROUP];
        for i in 0..n {
            m[i] = self.nearest(xa[i], s);
        }
        let u = self.pattern(&m[..n]);
        if t.index[u] >= 0 {
            return t.index[u] as usize;
        }
        let list = &t.neighbours[u];
        if list.len() <= self.magnitudes as usize {
            return t.first_least(list, |pt| t.error(xa, w, s, &pt[..n]));
        }
        let terms = t.terms(xa, w, s, self.magnitudes, 0..n);
        t.first_least(list, |pt| (0..n).map(|i| terms[i][pt[i] as usize]).sum())
    }

    /// [`IqGrid::best_point`] for groups of `N`, unrolled.
    fn best_point_of<const N: usize>(&self, xa: &[f32; N], w: &[f32; N], s: f32) -> usize {
        let t = self.tables();
        let mut u = 0;
        for i in 0..N {
            u |= (self.nearest(xa[i], s) as usize) << (self.bits * i);
        }
        if t.index[u] >= 0 {
            return t.index[u] as usize;
        }
        let list = &t.neighbours[u];
        if list.len() <= self.magnitudes as usize {
            return t.first_least(list, |pt| {
                let mut e = -0.0f32;
                for i in 0..N {
                    e += w[i] * (xa[i] - s * t.level[pt[i] as usize]).powi(2);
                }
                e
            });
        }
        let terms = t.terms(xa, w, s, self.magnitudes, 0..N);
        t.first_least(list, |pt| {
            let mut e = -0.0f32;
            for i in 0..N {
                e += terms[i][pt[i] as usize];
            }
            e
        })
    }

    /// The magnitude index of position `p` of a group whose positions in `known` (a bit mask, p
    /// not among them) took the magnitudes `m` has there: the point that agrees with them and
    /// best fits `xa`/`w` at the other positions (this one's target and estimates of the rest).
    pub fn constrained_magnitude(
        &self,
        known: usize,
        m: &[u8; MAX_GROUP],
        xa: &[f32; MAX_GROUP],
        w: &[f32; MAX_GROUP],
        p: usize,
        s: f32,
    ) -> u8 {
        if known == 0 {
            return self.tables().points[self.best_point(&xa[..self.group], &w[..self.group], s)][p];
        }
        match self.group {
            4 => self.constrained_of::<4>(known, m, xa, w, p, s),
            _ => self.constrained_of::<8>(known, m, xa, w, p, s),
        }
    }

    /// [`IqGrid::constrained_magnitude`] for groups of `N`, `known` not empty: the points that
    /// agree with the known positions (a bit set), each scored by the terms of the other
    /// positions (a known position's terms are zero, and adding zero changes no sum).
    fn constrained_of<const N: usize>(
        &self,
        known: usize,
        m: &[u8; MAX_GROUP],
        xa: &[f32; MAX_GROUP],
        w: &[f32; MAX_GROUP],
        p: usize,
        s: f32,
    ) -> u8 {
        let t = self.tables();
        let words = self.kgrid.len().div_ceil(64);
        let mut set: PointSet = [u64::MAX; MAX_WORDS];
        for i in (0..N).filter(|i| known >> i & 1 == 1) {
            for (a, b) in set[..words].iter_mut().zip(&t.agree[i * 8 + m[i] as usize]) {
                *a &= b;
            }
        }
        let terms = t.terms(xa, w, s, self.magnitudes, (0..N).filter(|i| known >> i & 1 == 0));
        let mut best = (f32::INFINITY, 0u8);
        for (word, &bits) in set[..words].iter().enumerate() {
            let mut bits = bits;
            while bits != 0 {
                let k = 64 * word + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let pt = &t.points[k];
                let mut e = -0.0f32;
                for i in 0..N {
                    e += terms[i][pt[i] as usize];
                }
                if e < best.0 {
                    best = (e, pt[p]);
                }
            }
        }
        best.1
    }

    /// Codes of one sub-block `x` (weights `w`) at step `s`, by round to nearest point per group
    /// (and, with even signs, the cheapest sign flip per group of 8 with an odd count of negatives).
    pub fn round_sub_block(&self, x: &[f32], w: &[f32], s: f32, codes: &mut [u8]) {
        let t = self.tables();
        let n = self.group;
        for ((x, w), c) in x.chunks(n).zip(w.chunks(n)).zip(codes.chunks_mut(n)) {
            let mut xa = [0f32; MAX_GROUP];
            for i in 0..n {
                xa[i] = x[i].abs();
            }
            let pt = if s > 0.0 { t.points[self.best_point(&xa[..n], w, s)] } else { [0; MAX_GROUP] };
            for i in 0..n {
                c[i] = code(x[i], pt[i]);
            }
        }
        if self.even_signs {
            for ((x, w), c) in x.chunks(OCTET).zip(w.chunks(OCTET)).zip(codes.chunks_mut(OCTET)) {
                self.even_out(x, w, s, c);
            }
        }
    }

    /// One group of 8 rounded with every weight's own sign (`c`): if its count of negatives is
    /// odd, the weight whose flip raises the weighted error least flips, its group rounded again
    /// for the negated target (the first of equals).
    fn even_out(&self, x: &[f32], w: &[f32], s: f32, c: &mut [u8]) {
        if c.iter().filter(|&&c| magnitude(c).1).count() % 2 == 0 {
            return;
        }
        let t = self.tables();
        let n = self.group;
        let mut best = (f32::INFINITY, 0usize, [0u8; MAX_GROUP]);
        for i in 0..c.len() {
            let g0 = i - i % n;
            let mut xa = [0f32; MAX_GROUP];
            let mut now = [0u8; MAX_GROUP];
            for k in 0..n {
                xa[k] = x[g0 + k].abs();
                now[k] = magnitude(c[g0 + k]).0;
            }
            let mut flipped = xa;
            flipped[i % n] = -flipped[i % n];
            let wg = &w[g0..g0 + n];
            let pt = if s > 0.0 { t.points[self.best_point(&flipped[..n], wg, s)] } else { [0; MAX_GROUP] };
            let rise = t.error(&flipped[..n], wg, s, &pt[..n]) - t.error(&xa[..n], wg, s, &now[..n]);
            if rise < best.0 {
                best = (rise, i, pt);
            }
        }
        let (_, i, pt) = best;
        let g0 = i - i % n;
        for k in 0..n {
            c[g0 + k] = signed_code(magnitude(c[g0 + k]).1 ^ (g0 + k == i), pt[k]);
        }
    }

    /// The targets the step is fitted to: |x|, with even signs ggml's sign flip (the least w·x²
    /// of a group of 8 with an odd count of negatives negated).
    fn targets(&self, x: &[f32], w: &[f32]) -> Vec<f32> {
        let mut xa: Vec<f32> = x.iter().map(|v| v.abs()).collect();
        if self.even_signs {
            for ((xa, x), w) in xa.chunks_mut(OCTET).zip(x.chunks(OCTET)).zip(w.chunks(OCTET)) {
                if x.iter().filter(|&&v| v < 0.0).count() % 2 == 1 {
                    let (mut imin, mut min) = (0, w[0] * x[0] * x[0]);
                    for i in 1..x.len() {
                        let a = w[i] * x[i] * x[i];
                        if a < min {
                            (imin, min) = (i, a);
                        }
                    }
                    xa[imin] = -xa[imin];
                }
            }
        }
        xa
    }

    /// Weighted error of sub-block `x` rounded at step `s`.
    pub fn sub_error(&self, x: &[f32], w: &[f32], s: f32) -> f32 {
        let mut c = [0u8; 32];
        let c = &mut c[..x.len()];
        self.round_sub_block(x, w, s, c);
        let t = self.tables();
        x.iter().zip(w).zip(&*c).map(|((&x, &w), &c)| w * (x - t.value(c, s)).powi(2)).sum()
    }

    /// The step of one sub-block (ggml's search): candidates mapping max|x| near the top
    /// magnitude, each scored by its least-squares step over the points it rounds to; the best
    /// is rounded again and refitted once.
    pub fn fit_step(&self, x: &[f32], w: &[f32]) -> f32 {
        let t = self.tables();
        let n = self.group;
        let xa = self.targets(x, w);
        let max = xa.iter().copied().fold(0f32, f32::max);
        if max == 0.0 {
            return 0.0;
        }
        let refit = |s: f32| -> (f32, f32) {
            let (mut sqx, mut sqq) = (0f32, 0f32);
            for (xa, w) in xa.chunks(n).zip(w.chunks(n)) {
                let pt = &t.points[self.best_point(xa, w, s)];
                for i in 0..n {
                    let q = t.level[pt[i] as usize];
                    sqx += w[i] * xa[i] * q;
                    sqq += w[i] * q * q;
                }
            }
            (sqx, sqq)
        };
        let (mut best, mut step) = (0f32, max / self.top);
        for k in -self.search..=self.search {
            let (sqx, sqq) = refit(max / (self.top + self.stride * k as f32));
            if sqq > 0.0 && sqx > 0.0 && sqx * sqx > best * sqq {
                step = sqx / sqq;
                best = step * sqx;
            }
        }
        let (sqx, sqq) = refit(step);
        if sqq > 0.0 && sqx > 0.0 {
            sqx / sqq
        } else {
            step
        }
    }

    /// The point index of a group's codes (which must be a point).
    pub fn point_of(&self, codes: &[u8]) -> u16 {
        let mut m = [0u8; MAX_GROUP];
        for i in 0..self.group {
            m[i] = magnitude(codes[i]).0;
        }
        let u = self.pattern(&m[..self.group]);
        let k = self.tables().index.get(u).copied().unwrap_or(-1);
        assert!(k >= 0, "{} codes {:?} are not a point of the grid", self.name, &m[..self.group]);
        k as u16
    }

    /// The magnitude indices of point `k` (the first `group` used).
    pub fn point(&self, k: usize) -> [u8; MAX_GROUP] {
        self.tables().points[k]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ggml's `iq3xxs_grid` (ggml-common.h): each point's four bytes, first weight lowest.
    const IQ3XXS_GRID: [u32; 256] = [
        0x04040404, 0x04040414, 0x04040424, 0x04040c0c, 0x04040c1c, 0x04040c3e, 0x04041404, 0x04041414, 0x04041c0c,
        0x04042414, 0x04043e1c, 0x04043e2c, 0x040c040c, 0x040c041c, 0x040c0c04, 0x040c0c14, 0x040c140c, 0x040c142c,
        0x040c1c04, 0x040c1c14, 0x040c240c, 0x040c2c24, 0x040c3e04, 0x04140404, 0x04140414, 0x04140424, 0x04140c0c,
        0x04141404, 0x04141414, 0x04141c0c, 0x04141c1c, 0x04141c3e, 0x04142c0c, 0x04142c3e, 0x04143e2c, 0x041c040c,
        0x041c043e, 0x041c0c04, 0x041c0c14, 0x041c142c, 0x041c3e04, 0x04240c1c, 0x04241c3e, 0x04242424, 0x04242c3e,
        0x04243e1c, 0x04243e2c, 0x042c040c, 0x042c043e, 0x042c1c14, 0x042c2c14, 0x04341c2c, 0x04343424, 0x043e0c04,
        0x043e0c24, 0x043e0c34, 0x043e241c, 0x043e340c, 0x0c04040c, 0x0c04041c, 0x0c040c04, 0x0c040c14, 0x0c04140c,
        0x0c04141c, 0x0c041c04, 0x0c041c14, 0x0c041c24, 0x0c04243e, 0x0c042c04, 0x0c0c0404, 0x0c0c0414, 0x0c0c0c0c,
        0x0c0c1404, 0x0c0c1414, 0x0c14040c, 0x0c14041c, 0x0c140c04, 0x0c140c14, 0x0c14140c, 0x0c141c04, 0x0c143e14,
        0x0c1c0404, 0x0c1c0414, 0x0c1c1404, 0x0c1c1c0c, 0x0c1c2434, 0x0c1c3434, 0x0c24040c, 0x0c24042c, 0x0c242c04,
        0x0c2c1404, 0x0c2c1424, 0x0c2c2434, 0x0c2c3e0c, 0x0c34042c, 0x0c3e1414, 0x0c3e2404, 0x14040404, 0x14040414,
        0x14040c0c, 0x14040c1c, 0x14041404, 0x14041414, 0x14041434, 0x14041c0c, 0x14042414, 0x140c040c, 0x140c041c,
        0x140c042c, 0x140c0c04, 0x140c0c14, 0x140c140c, 0x140c1c04, 0x140c341c, 0x140c343e, 0x140c3e04, 0x14140404,
        0x14140414, 0x14140c0c, 0x14140c3e, 0x14141404, 0x14141414, 0x14141c3e, 0x14142404, 0x14142c2c, 0x141c040c,
        0x141c0c04, 0x141c0c24, 0x141c3e04, 0x141c3e24, 0x14241c2c, 0x14242c1c, 0x142c041c, 0x142c143e, 0x142c240c,
        0x142c3e24, 0x143e040c, 0x143e041c, 0x143e0c34, 0x143e242c, 0x1c04040c, 0x1c040c04, 0x1c040c14, 0x1c04140c,
        0x1c04141c, 0x1c042c04, 0x1c04342c, 0x1c043e14, 0x1c0c0404, 0x1c0c0414, 0x1c0c1404, 0x1c0c1c0c, 0x1c0c2424,
        0x1c0c2434, 0x1c14040c, 0x1c14041c, 0x1c140c04, 0x1c14142c, 0x1c142c14, 0x1c143e14, 0x1c1c0c0c, 0x1c1c1c1c,
        0x1c241c04, 0x1c24243e, 0x1c243e14, 0x1c2c0404, 0x1c2c0434, 0x1c2c1414, 0x1c2c2c2c, 0x1c340c24, 0x1c341c34,
        0x1c34341c, 0x1c3e1c1c, 0x1c3e3404, 0x24040424, 0x24040c3e, 0x24041c2c, 0x24041c3e, 0x24042c1c, 0x24042c3e,
        0x240c3e24, 0x24141404, 0x24141c3e, 0x24142404, 0x24143404, 0x24143434, 0x241c043e, 0x241c242c, 0x24240424,
        0x24242c0c, 0x24243424, 0x242c142c, 0x242c241c, 0x242c3e04, 0x243e042c, 0x243e0c04, 0x243e0c14, 0x243e1c04,
        0x2c040c14, 0x2c04240c, 0x2c043e04, 0x2c0c0404, 0x2c0c0434, 0x2c0c1434, 0x2c0c2c2c, 0x2c140c24, 0x2c141c14,
        0x2c143e14, 0x2c1c0414, 0x2c1c2c1c, 0x2c240c04, 0x2c24141c, 0x2c24143e, 0x2c243e14, 0x2c2c0414, 0x2c2c1c0c,
        0x2c342c04, 0x2c3e1424, 0x2c3e2414, 0x34041424, 0x34042424, 0x34042434, 0x34043424, 0x340c140c, 0x340c340c,
        0x34140c3e, 0x34143424, 0x341c1c04, 0x341c1c34, 0x34242424, 0x342c042c, 0x342c2c14, 0x34341c1c, 0x343e041c,
        0x343e140c, 0x3e04041c, 0x3e04042c, 0x3e04043e, 0x3e040c04, 0x3e041c14, 0x3e042c14, 0x3e0c1434, 0x3e0c2404,
        0x3e140c14, 0x3e14242c, 0x3e142c14, 0x3e1c0404, 0x3e1c0c2c, 0x3e1c1c1c, 0x3e1c3404, 0x3e24140c, 0x3e24240c,
        0x3e2c0404, 0x3e2c0414, 0x3e2c1424, 0x3e341c04,
    ];

    /// A point's bytes as ggml's grid tables hold them: the block's level of each magnitude.
    fn grid_word(g: &IqGrid, k: usize) -> u64 {
        g.point(k)[..g.group]
            .iter()
            .enumerate()
            .fold(0, |a, (i, &m)| a | (g.lut[8 + m as usize] as u8 as u64) << (8 * i))
    }

    const GRIDS: [&IqGrid; 4] = [&IQ3S, &IQ3XXS, &IQ2S, &IQ2XS];

    #[test]
    fn the_tables_are_ggmls() {
        for (g, n) in [(&IQ3S, 512), (&IQ3XXS, 256), (&IQ2S, 1024), (&IQ2XS, 512)] {
            let t = g.tables();
            assert_eq!(t.index.iter().filter(|&&k| k >= 0).count(), n, "{}", g.name);
            // Every pattern off the grid that round to nearest can give has neighbours.
            let mut off = 0;
            for u in 0..t.index.len() {
                let valid = (0..g.group).all(|i| (u >> (g.bits * i)) & ((1 << g.bits) - 1) < g.magnitudes as usize);
                assert_eq!(!t.neighbours[u].is_empty(), valid && t.index[u] < 0, "{} pattern {u}", g.name);
                off += (valid && t.index[u] < 0) as usize;
            }
            assert_eq!(off + n, (g.magnitudes as usize).pow(g.group as u32), "{}", g.name);
            // Per position, the points split by their magnitude there.
            for i in 0..g.group {
                let count: u32 = (0..8).map(|m| t.agree[i * 8 + m].iter().map(|w| w.count_ones()).sum::<u32>()).sum();
                assert_eq!(count as usize, n, "{} position {i}", g.name);
            }
        }
        // ggml's iq3s_grid[1] = 0x01010103 (magnitudes 1, 0, 0, 0), [511] = 0x0f0f0101.
        assert_eq!(IQ3S.point(1)[..4], [1, 0, 0, 0]);
        assert_eq!((grid_word(&IQ3S, 1), grid_word(&IQ3S, 511)), (0x01010103, 0x0f0f0101));
        // IQ3_XXS's points, decoded from kgrid_256 with its levels (the top one 62), are
        // iq3xxs_grid; its levels are 4·(2m + 1) but the top, 4·15.5.
        for k in 0..256 {
            assert_eq!(grid_word(&IQ3XXS, k), IQ3XXS_GRID[k] as u64, "point {k}");
        }
        assert_eq!(IQ3XXS.tables().level, [1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0, 15.5]);
        assert_eq!(IQ3S.tables().level, [1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0, 15.0]);
        // The IQ2 grids' bytes 0x08, 0x19, 0x2b: ggml's iq2xs_grid and iq2s_grid both run from
        // 0x0808080808080808, 0x080808080808082b to 0x2b2b2b2b2b2b2b2b (Python gguf's decoders,
        // tests/decoders.rs, check every point).
        assert_eq!((grid_word(&IQ2XS, 1), grid_word(&IQ2XS, 511)), (0x080808080808082b, 0x2b2b2b2b2b2b2b2b));
        assert_eq!((grid_word(&IQ2S, 1), grid_word(&IQ2S, 1023)), (0x080808080808082b, 0x2b2b2b2b2b2b2b2b));
        assert_eq!(IQ2XS.tables().level[..3], [1.0, 3.125, 5.375]);
    }

    #[test]
    fn points_on_the_grid_round_to_themselves() {
        let s = 0.01f32;
        for g in GRIDS {
            let n = g.kgrid.len();
            for k in [0, 1, 77, n / 2 + 3, n - 1] {
                // Two groups of 8 weights on the point, signs alternating: an even count of negatives.
                let m = g.point(k);
                let x: Vec<f32> =
                    (0..16).map(|i| if i % 2 == 0 { 1.0 } else { -1.0 } * s * g.level(m[i % g.group])).collect();
                let mut c = [0u8; 16];
                g.round_sub_block(&x, &[1.0; 16], s, &mut c);
                for h in c.chunks(g.group) {
                    assert_eq!(g.point_of(h) as usize, k, "{}", g.name);
                }
                for i in 0..16 {
                    assert_eq!(g.tables().value(c[i], s), x[i], "{} point {k} weight {i}", g.name);
                }
            }
        }
    }

    /// IQ3_XXS and IQ2_XS: a group of 8 with one negative weight flips the sign whose flip costs
    /// least — the smallest weight, unless its importance makes another one cheaper.
    #[test]
    fn an_odd_count_of_negatives_flips_the_cheapest_sign() {
        let negatives = |c: &[u8]| -> Vec<usize> { (0..c.len()).filter(|&i| magnitude(c[i]).1).collect() };
        let x = [-1.0f32, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.1];
        for g in [&IQ3XXS, &IQ2XS] {
            let mut c = [0u8; 8];
            g.round_sub_block(&x, &[1.0; 8], 1.0, &mut c);
            assert_eq!(negatives(&c), [0, 7], "{}", g.name);
            // Every weight rounds to magnitude 1: the flipped 0.1 costs (0.1 + 1)² − (0.1 − 1)².
            assert!(c.iter().all(|&c| magnitude(c).0 == 0));
            let e: f32 = x.iter().zip(&c).map(|(&x, &c)| (x - g.tables().value(c, 1.0)).powi(2)).sum();
            assert!((e - (0.64 + 1.21)).abs() < 1e-5, "{e}");
            assert_eq!(g.sub_error(&x, &[1.0; 8], 1.0), e);
            // Heavy weight on the smallest: the next smallest flips instead.
            g.round_sub_block(&x, &[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 100.0], 1.0, &mut c);
            assert_eq!(negatives(&c), [0, 6], "{}", g.name);
            // An even count is left alone.
            let even = [-1.0f32, -1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.1];
            g.round_sub_block(&even, &[1.0; 8], 1.0, &mut c);
            assert_eq!(negatives(&c), [0, 1]);
            // A zero step still gives an even count (the block decodes to zeros either way).
            g.round_sub_block(&x, &[1.0; 8], 0.0, &mut c);
            assert_eq!(negatives(&c).len() % 2, 0);
        }
        // IQ3_S and IQ2_S keep every sign.
        for g in [&IQ3S, &IQ2S] {
            let mut c = [0u8; 8];
            g.round_sub_block(&x, &[1.0; 8], 1.0, &mut c);
            assert_eq!(negatives(&c), [0], "{}", g.name);
        }
    }

    /// The flip taken is the cheapest of the eight, each scored with its group rounded again
    /// for the flipped target (which may move the group to another point).
    #[test]
    fn the_flip_taken_is_the_cheapest_of_the_eight() {
        for (g, scale) in [(&IQ3XXS, 16.0f32), (&IQ2XS, 6.0)] {
            let t = g.tables();
            let n = g.group;
            let mut rng = crate::stats::Rng::new(11);
            let mut odd = 0;
            for _ in 0..1000 {
                let x: [f32; 8] = std::array::from_fn(|_| (rng.uniform() as f32 - 0.5) * scale);
                let w: [f32; 8] = std::array::from_fn(|_| 0.5 + rng.uniform() as f32);
                let mut c = [0u8; 8];
                g.round_sub_block(&x, &w, 1.0, &mut c);
                assert_eq!(c.iter().filter(|&&c| magnitude(c).1).count() % 2, 0);
                let err = |c: &[u8]| -> f32 { (0..8).map(|i| w[i] * (x[i] - t.value(c[i], 1.0)).powi(2)).sum() };
                assert_eq!(g.sub_error(&x, &w, 1.0), err(&c));
                if x.iter().filter(|&&v| v < 0.0).count() % 2 == 0 {
                    continue;
                }
                odd += 1;
                for i in 0..8 {
                    let target: [f32; 8] = std::array::from_fn(|j| if j == i { -x[j].abs() } else { x[j].abs() });
                    let mut alt = [0u8; 8];
                    for h in 0..8 / n {
                        let pt = t.points[g.best_point(&target[n * h..n * h + n], &w[n * h..n * h + n], 1.0)];
                        for k in 0..n {
                            alt[n * h + k] = signed_code((x[n * h + k] < 0.0) ^ (n * h + k == i), pt[k]);
                        }
                    }
                    assert!(
                        err(&c) <= err(&alt) * (1.0 + 1e-6),
                        "{} flip {i}: {} against {}",
                        g.name,
                        err(&c),
                        err(&alt)
                    );
                }
            }
            assert!(odd > 300, "{odd}");
        }
    }

    #[test]
    fn constrained_choices_stay_on_the_grid_in_any_order() {
        let mut rng = crate::stats::Rng::new(3);
        for g in GRIDS {
            let n = g.group;
            let top = 2.0 * g.magnitudes as f32;
            for trial in 0..2000 {
                let mut xa = [0f32; MAX_GROUP];
                for i in 0..n {
                    xa[i] = rng.uniform() as f32 * top * if i == trial % (n + 1) { -1.0 } else { 1.0 };
                }
                let w = [1.0f32; MAX_GROUP];
                let order: Vec<usize> = match trial % 3 {
                    0 => (0..n).collect(),
                    1 => (0..n).rev().collect(),
                    _ => (0..n).map(|i| (3 * i + 1) % n).collect(),
                };
                let (mut known, mut m) = (0usize, [0u8; MAX_GROUP]);
                for p in order {
                    m[p] = g.constrained_magnitude(known, &m, &xa, &w, p, 1.0);
                    known |= 1 << p;
                }
                let codes: Vec<u8> = m[..n].iter().map(|&m| code(1.0, m)).collect();
                g.point_of(&codes);
            }
        }
    }

    /// The bit sets give what a scan of every point gives: the best agreeing point's magnitude.
    #[test]
    fn a_constrained_choice_is_the_best_agreeing_point() {
        let mut rng = crate::stats::Rng::new(8);
        for g in GRIDS {
            let (n, t) = (g.group, g.tables());
            for _ in 0..300 {
                let xa: [f32; MAX_GROUP] = std::array::from_fn(|_| rng.uniform() as f32 * 2.0 * g.magnitudes as f32);
                let w: [f32; MAX_GROUP] = std::array::from_fn(|_| 0.5 + rng.uniform() as f32);
                let known = (rng.uniform() * ((1 << n) - 1) as f64) as usize | 1;
                let p = (0..n).find(|i| known >> i & 1 == 0).unwrap_or(0);
                let known = known & !(1 << p);
                let k0 = (rng.uniform() * g.kgrid.len() as f64) as usize;
                let m = t.points[k0];
                let scan = t
                    .points
                    .iter()
                    .filter(|pt| (0..n).all(|i| known >> i & 1 == 0 || pt[i] == m[i]))
                    .map(|pt| {
                        (
                            (0..n)
                                .filter(|i| known >> i & 1 == 0)
                                .map(|i| w[i] * (xa[i] - t.level[pt[i] as usize]).powi(2))
                                .sum::<f32>(),
                            pt[p],
                        )
                    })
                    .fold((f32::INFINITY, 0u8), |a, b| if b.0 < a.0 { b } else { a });
                assert_eq!(g.constrained_magnitude(known, &m, &xa, &w, p, 1.0), scan.1, "{}", g.name);
            }
        }
    }
}
