//! GPTQ onto GGUF grids: a [`ColumnQuantizer`] whose groups are a GGUF type's blocks (32 or
//! 256 input columns of each row). When GPTQ reaches a block's first column, each row's grid is
//! chosen from the block's current, error-updated weights with imatrix-weighted scale searches;
//! every column is then rounded onto it and the codes are kept, so the result packs into exactly
//! the bytes llama.cpp reads.

use rayon::prelude::*;

use crate::ggml::codec::{choose, pack};
use super::gptq::ColumnQuantizer;
use crate::ggml::grid::{row_sigma2, weights_of, Grid};
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
    /// Per row and column, the code: row-major (rows, cols).
    codes: Vec<u8>,
}

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
        let chosen: Vec<Grid> = (0..self.rows)
            .into_par_iter()
            .map(|r| {
                let x: Vec<f32> = cols.iter().map(|c| c[r]).collect();
                let w: Vec<f32> = match imp {
                    None => vec![1.0; bs],
                    Some(m) => weights_of(&x, m, sigma2[r]),
                };
                choose(t, &x, &w)
            })
            .collect();
        for (r, g) in chosen.into_iter().enumerate() {
            self.grids[r * nb + b] = g;
        }
    }

    fn round(&mut self, c: usize, col: &[f32], out: &mut [f32]) {
        let (nb, bs) = (self.cols / self.t.block_size(), self.t.block_size());
        let (b, i) = (c / bs, c % bs);
        for (r, (o, &x)) in out.iter_mut().zip(col).enumerate() {
            let g = &self.grids[r * nb + b];
            let code = g.code(i, x);
            self.codes[r * self.cols + c] = code;
            *o = g.value(i, code);
        }
    }
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
        for t in [QuantType::Q3K, QuantType::Q4K, QuantType::Q4_0, QuantType::IQ4NL] {
            let mut q = w.clone();
            let mut cq = GgufColumns::new(t, &w, rows, cols, Some(&imp));
            gptq(&mut q, rows, cols, &xxt, n, Some(&mut cq), None, GptqOptions::default(), "t").unwrap();
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
