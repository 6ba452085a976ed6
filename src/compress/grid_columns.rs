//! GPTQ onto GGUF grids: a [`ColumnQuantizer`] whose groups are a GGUF type's blocks (32 or
//! 256 input columns of each row). When GPTQ reaches a block's first column, each row's grid is
//! chosen from the block's current, error-updated weights with imatrix-weighted scale searches;
//! every column is then rounded onto it and the codes are kept, so the result packs into exactly
//! the bytes llama.cpp reads.
//!
//! The vector grids (IQ3_S, IQ3_XXS: groups of 4 columns; IQ2_S, IQ2_XS: groups of 8) round
//! their groups onto the grid's points one column at a time, in GPTQ's order: each weight among
//! the points that agree with its group's weights already rounded
//! ([`IqGrid::constrained_magnitude`]); the group's weights not yet rounded are scored at their
//! values when the grid was chosen (on IQ2_XS GPTQ, scoring them at the values of the codes
//! round to nearest gave them then, as first written, had a mean KL 4% and a p99 8% higher).
//!
//! IQ3_XXS's and IQ2_XS's groups of 8 must have an even count of negative weights, and GPTQ cannot go back
//! on a weight it has rounded (its error is already spread over the columns after it). So each
//! weight, as it is rounded, takes its own sign unless the group of 8 looks odd — the signs of
//! its weights already rounded, its own, and those of the weights still to come as they were
//! when the grid was chosen (round to nearest's codes, less the one sign it flipped) — and this
//! weight is the cheapest of those still to come to flip, by ggml's measure w·x² (the rest at
//! their round-to-nearest magnitudes). The last weight of a group to be rounded settles the
//! parity whatever it costs. A weight that takes the other sign is rounded for its negated
//! target (on the grid, the least magnitude its group's points allow, near enough).

use rayon::prelude::*;

use super::gptq::ColumnQuantizer;
use crate::ggml::codec::{block_codes, choose, pack};
use crate::ggml::grid::{row_sigma2, weights_of, Grid};
use crate::ggml::iq::{magnitude, signed_code, IqGrid, MAX_GROUP, OCTET};
use crate::ggml::types::QuantType;

pub struct GgufColumns<'a> {
    t: QuantType,
    rows: usize,
    cols: usize,
    /// imatrix column means (None: uniform importance).
    imp: Option<&'a [f32]>,
    /// Per row, σ² = mean w² of the original row (llama.cpp's weighting uses it).
    sigma2: Vec<f32>,
    /// Per row and block, the chosen grid: rows × (cols / block).
    grids: Vec<Grid>,
    /// Per row and column, the code: row-major (rows, cols). On the vector grids a code not yet
    /// rounded by GPTQ — round to nearest's, from when the grid was chosen — is marked
    /// [`TENTATIVE`] (and [`FLIPPED`] where that rounding gave it the other sign).
    codes: Vec<u8>,
    /// IQ3_S, IQ3_XXS, IQ2_S, IQ2_XS: the grid whose groups of 4 or 8 round together.
    vector: Option<&'static IqGrid>,
    /// Vector grids: each weight's value when its block's grid was chosen.
    estimates: Vec<f32>,
}

/// The flag of a tentative code.
const TENTATIVE: u8 = 0x80;
/// IQ3_XXS, IQ2_XS: a tentative code whose sign is not its weight's (round to nearest's parity flip).
const FLIPPED: u8 = 0x40;
/// The code under the flags.
const CODE: u8 = 0x0F;

impl<'a> GgufColumns<'a> {
    /// For a row-major (rows, cols) weight `w` (read once for σ²).
    pub fn new(t: QuantType, w: &[f32], rows: usize, cols: usize, imp: Option<&'a [f32]>) -> Self {
        assert!(t.is_quantized() && t.fits(cols), "{t} does not tile rows of {cols}");
        let sigma2 = w.chunks(cols).map(row_sigma2).collect();
        let nb = cols / t.block_size();
        GgufColumns {
            t,
            rows,
            cols,
            imp,
            sigma2,
            grids: vec![Grid::new(32, 16); rows * nb],
            codes: vec![0; rows * cols],
            vector: t.vector_grid(),
            estimates: if t.vector_grid().is_some() { vec![0.0; rows * cols] } else { Vec::new() },
        }
    }

    /// The tensor's GGUF bytes, rows in order.
    pub fn into_bytes(self) -> Vec<u8> {
        let (bs, bb, nb) = (self.t.block_size(), self.t.block_bytes(), self.cols / self.t.block_size());
        let mut out = vec![0u8; self.rows * nb * bb];
        out.par_chunks_mut(nb * bb).enumerate().for_each(|(r, row_out)| {
            for b in 0..nb {
                let codes = &self.codes[r * self.cols + b * bs..r * self.cols + (b + 1) * bs];
                pack(self.t, &self.grids[r * nb + b], codes, &mut row_out[b * bb..(b + 1) * bb]);
            }
        });
        out
    }
}

impl ColumnQuantizer for GgufColumns<'_> {
    fn group(&self) -> usize {
        self.t.block_size()
    }

    fn choose(&mut self, c0: usize, cols: &[&[f32]]) {
        let (t, nb, bs) = (self.t, self.cols / self.t.block_size(), self.t.block_size());
        let b = c0 / bs;
        let imp = self.imp.map(|m| &m[c0..c0 + bs]);
        let sigma2 = &self.sigma2;
        let grouped = self.vector.is_some();
        let chosen: Vec<(Grid, Vec<u8>, Vec<f32>)> = (0..self.rows)
            .into_par_iter()
            .map(|r| {
                let x: Vec<f32> = cols.iter().map(|c| c[r]).collect();
                let w: Vec<f32> = match imp {
                    None => vec![1.0; bs],
                    Some(m) => weights_of(&x, m, sigma2[r]),
                };
                let g = choose(t, &x, &w);
                let mut tentative = Vec::new();
                if grouped {
                    tentative.resize(bs, 0);
                    block_codes(t, &g, &x, &w, &mut tentative);
                    for (code, &v) in tentative.iter_mut().zip(&x) {
                        let flipped = magnitude(*code).1 != (v < 0.0);
                        *code |= TENTATIVE | if flipped { FLIPPED } else { 0 };
                    }
                }
                (g, tentative, x)
            })
            .collect();
        for (r, (g, tentative, x)) in chosen.into_iter().enumerate() {
            self.grids[r * nb + b] = g;
            self.codes[r * self.cols + c0..][..tentative.len()].copy_from_slice(&tentative);
            if grouped {
                self.estimates[r * self.cols + c0..][..bs].copy_from_slice(&x);
            }
        }
    }

    fn round(&mut self, c: usize, col: &[f32], out: &mut [f32]) {
        let (nb, bs) = (self.cols / self.t.block_size(), self.t.block_size());
        let (b, i) = (c / bs, c % bs);
        if let Some(q) = self.vector {
            let (imp, grids, sigma2, est) = (self.imp, &self.grids, &self.sigma2, &self.estimates);
            let cols = self.cols;
            out.par_iter_mut().zip(col).zip(self.codes.par_chunks_mut(self.cols)).enumerate().for_each(
                |(r, ((o, &x), codes))| {
                    let g = &grids[r * nb + b];
                    let code = grouped_code(
                        q,
                        codes,
                        &est[r * cols..(r + 1) * cols],
                        c,
                        x,
                        g.step[i / g.sub] * q.unit,
                        imp,
                        sigma2[r],
                    );
                    codes[c] = code;
                    *o = g.value(i, code);
                },
            );
            return;
        }
        for (r, (o, &x)) in out.iter_mut().zip(col).enumerate() {
            let g = &self.grids[r * nb + b];
            let code = g.code(i, x);
            self.codes[r * self.cols + c] = code;
            *o = g.value(i, code);
        }
    }
}

/// The importance of a weight of value `v` in column `k`, as the grid's scale search weights it.
fn importance(imp: Option<&[f32]>, k: usize, sigma2: f32, v: f32) -> f32 {
    imp.map_or(1.0, |imp| imp[k].max(0.0) * (sigma2 + v * v).sqrt())
}

/// The code of column `c` of a row whose codes are `codes` (value `x` now, odd-lattice step `s`)
/// on grid `q`: its group's rounded weights fixed, the others scored at their values when the
/// grid was chosen (`est`; negated where round to nearest flipped the sign), all weighted as the
/// grid's scale search weights them; its sign its own, except where
/// the parity rule of IQ3_XXS and IQ2_XS ([`flips`]) gives it the other.
fn grouped_code(
    q: &IqGrid,
    codes: &[u8],
    est: &[f32],
    c: usize,
    x: f32,
    s: f32,
    imp: Option<&[f32]>,
    sigma2: f32,
) -> u8 {
    let flip = q.even_signs && flips(q, codes, c, x, s, imp, sigma2);
    let negative = (x < 0.0) != flip;
    if s <= 0.0 {
        return signed_code(negative, 0);
    }
    let n = q.group;
    let (p, g0) = (c % n, c - c % n);
    let (mut known, mut m, mut xa, mut w) = (0usize, [0u8; MAX_GROUP], [0f32; MAX_GROUP], [1f32; MAX_GROUP]);
    for k in 0..n {
        let code = codes[g0 + k];
        m[k] = magnitude(code & CODE).0;
        if k != p && code & TENTATIVE == 0 {
            known |= 1 << k;
        }
        xa[k] = if k == p {
            if flip {
                -x.abs()
            } else {
                x.abs()
            }
        } else if code & TENTATIVE != 0 {
            if code & FLIPPED != 0 {
                -est[g0 + k].abs()
            } else {
                est[g0 + k].abs()
            }
        } else {
            s * q.level(m[k])
        };
        w[k] = importance(imp, g0 + k, sigma2, xa[k]);
    }
    signed_code(negative, q.constrained_magnitude(known, &m, &xa, &w, p, s))
}

/// IQ3_XXS, IQ2_XS: whether column `c` (value `x` now) takes the sign opposite its own — when its group
/// of 8 looks odd (the signs of the weights already rounded, its own, and the weights still to
/// come as when the grid was chosen) and no weight still to come is cheaper to flip (w·x², those
/// at their tentative magnitudes). The last weight of a group flips whenever the count is odd.
fn flips(q: &IqGrid, codes: &[u8], c: usize, x: f32, s: f32, imp: Option<&[f32]>, sigma2: f32) -> bool {
    let cost = |k: usize, v: f32| importance(imp, k, sigma2, v) * v * v;
    let mut negatives = (x < 0.0) as usize;
    let (mut to_come, mut cheapest_to_come) = (false, f32::INFINITY);
    for k in (c - c % OCTET..).take(OCTET).filter(|&k| k != c) {
        let (m, negative) = magnitude(codes[k] & CODE);
        if codes[k] & TENTATIVE == 0 {
            negatives += negative as usize;
        } else {
            negatives += (negative != (codes[k] & FLIPPED != 0)) as usize;
            to_come = true;
            cheapest_to_come = cheapest_to_come.min(cost(k, s * q.level(m)));
        }
    }
    negatives % 2 == 1 && (!to_come || cost(c, x) <= cheapest_to_come)
}

#[cfg(test)]
mod tests {
    use super::super::gptq::{gptq, GptqOptions};
    use super::*;
    use crate::ggml::codec::dequantize;

    /// A xorshift stream of values in [−1, 1), in steps of 1/`half`.
    fn xorshift(seed: u32, half: u32) -> impl FnMut() -> f32 {
        let mut s = seed;
        move || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % (2 * half)) as f32 / half as f32 - 1.0
        }
    }

    /// XXᵀ of `n` inputs of `cols` channels: channel j is noise·u + share(j)·c, c common to the input.
    fn moments(
        rnd: &mut impl FnMut() -> f32,
        n: usize,
        cols: usize,
        noise: f32,
        share: impl Fn(usize) -> f32,
    ) -> Vec<f32> {
        let mut x = vec![0f32; n * cols];
        for t in 0..n {
            let common = rnd();
            for j in 0..cols {
                x[t * cols + j] = rnd() * noise + common * share(j);
            }
        }
        let mut xxt = vec![0f32; cols * cols];
        for t in 0..n {
            let xt = &x[t * cols..(t + 1) * cols];
            for i in 0..cols {
                for j in 0..cols {
                    xxt[i * cols + j] += xt[i] * xt[j];
                }
            }
        }
        xxt
    }

    #[test]
    fn gptq_on_a_gguf_grid_packs_to_the_weights_it_computed_and_beats_nearest_rounding() {
        let (rows, cols, n) = (8, 256, 512);
        let mut rnd = xorshift(99, 5_000);
        let xxt = moments(&mut rnd, n, cols, 0.3, |j| 1.0 + (j % 5) as f32 * 0.3);
        let imp: Vec<f32> = (0..cols).map(|j| xxt[j * cols + j] / n as f32).collect();
        let w: Vec<f32> = (0..rows * cols).map(|_| rnd() * 0.05).collect();
        let energy = |q: &[f32]| -> f64 {
            let mut e = 0f64;
            for r in 0..rows {
                for i in 0..cols {
                    let di = (w[r * cols + i] - q[r * cols + i]) as f64;
                    for j in 0..cols {
                        e += di * xxt[i * cols + j] as f64 * (w[r * cols + j] - q[r * cols + j]) as f64;
                    }
                }
            }
            e
        };
        let types = [
            QuantType::Q3K,
            QuantType::Q4K,
            QuantType::Q4_0,
            QuantType::IQ4NL,
            QuantType::IQ4XS,
            QuantType::IQ3S,
            QuantType::IQ3XXS,
            QuantType::IQ2S,
            QuantType::IQ2XS,
        ];
        for (t, act_order) in types.into_iter().flat_map(|t| [(t, false), (t, true)]) {
            let mut q = w.clone();
            let mut cq = GgufColumns::new(t, &w, rows, cols, Some(&imp));
            gptq(
                &mut q,
                rows,
                cols,
                &xxt,
                n,
                Some(&mut cq),
                None,
                GptqOptions { act_order, ..GptqOptions::default() },
                "t",
            )
            .unwrap();
            let bytes = cq.into_bytes();
            let decoded = dequantize(t, &bytes, rows * cols);
            for (a, b) in q.iter().zip(&decoded) {
                assert!((a - b).abs() <= 1e-6 * a.abs().max(1e-4), "{t}: {a} vs {b}");
            }
            let nearest = dequantize(t, &crate::ggml::codec::quantize(t, &w, cols, Some(&imp)), rows * cols);
            let (e_gptq, e_near) = (energy(&decoded), energy(&nearest));
            assert!(e_gptq < 0.9 * e_near, "{t}: gptq {e_gptq} nearest {e_near}");
        }
    }

    /// FNV-1a of bytes: a fingerprint for the pinned encodings below.
    fn fnv(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
    }

    /// The vector grids' searches are the slowest part of a layer database; whatever makes them
    /// faster must keep every byte. These fingerprints are the encodings' (round to nearest, and
    /// GPTQ with and without act-order) of one seeded layer, as the exhaustive searches gave them.
    #[test]
    fn vector_grid_encodings_keep_their_bytes() {
        let (rows, cols, n) = (48, 512, 384);
        let mut rnd = xorshift(7, 10_000);
        let xxt = moments(&mut rnd, n, cols, 0.5, |j| 0.5 + (j % 7) as f32 * 0.2);
        let imp: Vec<f32> = (0..cols).map(|j| xxt[j * cols + j] / n as f32).collect();
        // Heavy-tailed weights, as trained layers have: some groups reach the grids' outer points.
        let w: Vec<f32> = (0..rows * cols)
            .map(|_| {
                let v = rnd();
                v * v * v * 0.08 + rnd() * 0.01
            })
            .collect();
        let types =
            [QuantType::IQ4NL, QuantType::IQ4XS, QuantType::IQ3S, QuantType::IQ3XXS, QuantType::IQ2S, QuantType::IQ2XS];
        let mut got = Vec::new();
        for t in types {
            let mut prints = vec![fnv(&crate::ggml::codec::quantize(t, &w, cols, Some(&imp)))];
            for act_order in [false, true] {
                let mut q = w.clone();
                let mut cq = GgufColumns::new(t, &w, rows, cols, Some(&imp));
                gptq(
                    &mut q,
                    rows,
                    cols,
                    &xxt,
                    n,
                    Some(&mut cq),
                    None,
                    GptqOptions { act_order, ..GptqOptions::default() },
                    "t",
                )
                .unwrap();
                prints.push(fnv(&cq.into_bytes()));
            }
            got.push((t.name(), prints));
        }
        for ((name, prints), (want_name, want)) in got.iter().zip(PINNED) {
            assert_eq!(*name, want_name);
            assert_eq!(prints[..], want[..], "{name}: fingerprints (nearest, gptq, gptq act-order) changed");
        }
    }

    const PINNED: [(&str, [u64; 3]); 6] = [
        ("IQ4_NL", [14183577438460728711, 9274667100410297640, 10643523996150219143]),
        ("IQ4_XS", [2349560836908168942, 15167028186963726603, 15369570013145379795]),
        ("IQ3_S", [5296834077063436987, 12328602141701906451, 7751024899967938101]),
        ("IQ3_XXS", [17388378255959147721, 6109831509937648776, 1918158048222591745]),
        ("IQ2_S", [11157975406496924504, 669110733979551608, 11731601536030061956]),
        ("IQ2_XS", [15863400886427580617, 17765471885606259520, 14118600709327471297]),
    ];
}
