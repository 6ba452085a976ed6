//! GPTQ onto GGUF grids: a [`ColumnQuantizer`] whose groups are a GGUF type's blocks (32 or
//! 256 input columns of each row). When GPTQ reaches a block's first column, each row's grid is
//! chosen from the block's current, error-updated weights with imatrix-weighted scale searches;
//! every column is then rounded onto it and the codes are kept, so the result packs into exactly
//! the bytes llama.cpp reads. IQ3_S rounds groups of four columns onto its grid's points one
//! column at a time, in GPTQ's order: each weight among the points that agree with its group's
//! weights already rounded ([`iq3s::constrained_magnitude`]); the group's weights not yet
//! rounded are scored at the codes round to nearest gave them when the grid was chosen.

use rayon::prelude::*;

use crate::ggml::codec::{block_codes, choose, pack};
use super::gptq::ColumnQuantizer;
use crate::ggml::grid::{row_sigma2, weights_of, Grid};
use crate::ggml::iq3s;
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
    /// Per row and column, the code: row-major (rows, cols). IQ3_S marks a code not yet
    /// rounded by GPTQ — round to nearest's, from when the grid was chosen — with [`TENTATIVE`].
    codes: Vec<u8>,
}

/// IQ3_S: the flag of a tentative code.
const TENTATIVE: u8 = 0x80;

impl<'a> GgufColumns<'a> {
    /// For a row-major (rows, cols) weight `w` (read once for σ²).
    pub fn new(t: QuantType, w: &[f32], rows: usize, cols: usize, imp: Option<&'a [f32]>) -> Self {
        assert!(t.is_quantized() && t.fits(cols), "{t} does not tile rows of {cols}");
        let sigma2 = w.chunks(cols).map(row_sigma2).collect();
        let nb = cols / t.block_size();
        GgufColumns { t, rows, cols, imp, sigma2, grids: vec![Grid::new(32, 16); rows * nb], codes: vec![0; rows * cols] }
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
        let grouped = t == QuantType::IQ3S;
        let chosen: Vec<(Grid, Vec<u8>)> = (0..self.rows)
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
                }
                (g, tentative)
            })
            .collect();
        for (r, (g, tentative)) in chosen.into_iter().enumerate() {
            self.grids[r * nb + b] = g;
            for (k, code) in tentative.into_iter().enumerate() {
                self.codes[r * self.cols + c0 + k] = code | TENTATIVE;
            }
        }
    }

    fn round(&mut self, c: usize, col: &[f32], out: &mut [f32]) {
        let (nb, bs) = (self.cols / self.t.block_size(), self.t.block_size());
        let (b, i) = (c / bs, c % bs);
        if self.t == QuantType::IQ3S {
            let (imp, grids, sigma2) = (self.imp, &self.grids, &self.sigma2);
            out.par_iter_mut().zip(col).zip(self.codes.par_chunks_mut(self.cols)).enumerate().for_each(|(r, ((o, &x), codes))| {
                let g = &grids[r * nb + b];
                let code = grouped_code(codes, c, x, g.step[i / g.sub], imp, sigma2[r]);
                codes[c] = code;
                *o = g.value(i, code);
            });
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

/// IQ3_S: the code of column `c` of a row whose codes are `codes` (value `x` now, step `s`): its
/// group's rounded weights fixed, the others scored at their tentative codes' values, all
/// weighted as the grid's scale search weights them.
fn grouped_code(codes: &[u8], c: usize, x: f32, s: f32, imp: Option<&[f32]>, sigma2: f32) -> u8 {
    if s <= 0.0 {
        return iq3s::code(x, 0);
    }
    let (p, g0) = (c % iq3s::GROUP, c - c % iq3s::GROUP);
    let (mut known, mut m, mut xa, mut w) = (0usize, [0u8; iq3s::GROUP], [0f32; iq3s::GROUP], [1f32; iq3s::GROUP]);
    for k in 0..iq3s::GROUP {
        let code = codes[g0 + k];
        m[k] = iq3s::magnitude(code & !TENTATIVE).0;
        if k != p && code & TENTATIVE == 0 {
            known |= 1 << k;
        }
        xa[k] = if k == p { x.abs() } else { s * (2 * m[k] + 1) as f32 };
        if let Some(imp) = imp {
            w[k] = imp[g0 + k].max(0.0) * (sigma2 + xa[k] * xa[k]).sqrt();
        }
    }
    iq3s::code(x, iq3s::constrained_magnitude(known, &m, &xa, &w, p, s))
}

#[cfg(test)]
mod tests {
    use crate::ggml::codec::dequantize;
    use super::super::gptq::{gptq, GptqOptions};
    use super::*;

    #[test]
    fn gptq_on_a_gguf_grid_packs_to_the_weights_it_computed_and_beats_nearest_rounding() {
        let (rows, cols, n) = (8, 256, 512);
        let mut s = 99u32;
        let mut rnd = || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 10_000) as f32 / 5_000.0 - 1.0
        };
        let mut x = vec![0f32; n * cols];
        for t in 0..n {
            let common = rnd();
            for j in 0..cols {
                x[t * cols + j] = rnd() * 0.3 + common * (1.0 + (j % 5) as f32 * 0.3);
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
        let types = [QuantType::Q3K, QuantType::Q4K, QuantType::Q4_0, QuantType::IQ4NL, QuantType::IQ4XS, QuantType::IQ3S];
        for (t, act_order) in types.into_iter().flat_map(|t| [(t, false), (t, true)]) {
            let mut q = w.clone();
            let mut cq = GgufColumns::new(t, &w, rows, cols, Some(&imp));
            gptq(&mut q, rows, cols, &xxt, n, Some(&mut cq), None, GptqOptions { act_order, ..GptqOptions::default() }, "t").unwrap();
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
}
