//! Input second moments of linear layers: H = Σ_t x_t x_tᵀ over calibration tokens.
//!
//! One matrix serves several signals: its diagonal is llama.cpp's imatrix (Σ x_j² per input
//! column), √diag is the ‖X_j‖₂ of Wanda/OWL, and tr(ΔW H ΔWᵀ) = ‖ΔW X‖² is GPTQ's layer-wise
//! quantization loss. Linears that read the same input (q/k/v, gate/up) share one matrix.

use candle_core::Tensor;
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use crate::model::kernels::with_f32;
use crate::model::Capture;
use crate::model::{Block, Linear, Result};

/// Σ x xᵀ of one input, with the names of the linears that read it.
#[derive(Debug, Clone)]
pub struct InputMoments {
    /// GGUF names of the linears sharing this input.
    pub linears: Vec<String>,
    /// Input width n.
    pub dim: usize,
    /// Row-major (n, n), the sum over tokens of x xᵀ.
    pub xxt: Vec<f32>,
    /// Tokens accumulated.
    pub n_tokens: usize,
}

/// Multiply-adds above which [`InputMoments::row_block_energies`] samples rows (SmolLM2's largest
/// product, its error curves over ffn_down: 18·576·1536² = 2.4·10¹⁰, exact; Llama-3.1-8B's
/// ffn_down with ΔW: 2·4096·14336² = 1.7·10¹², every 98th row).
pub const EXACT_ENERGY_MACS: usize = 1 << 36;

impl InputMoments {
    pub fn new(linears: Vec<String>, dim: usize) -> Self {
        InputMoments { linears, dim, xxt: vec![0.0; dim * dim], n_tokens: 0 }
    }

    /// Adds the tokens of `x` (…, dim).
    pub fn add(&mut self, x: &Tensor) -> Result<()> {
        let n = self.dim;
        let rows = x.elem_count() / n;
        with_f32(x, |xs| {
            let xm = MatRef::from_row_major_slice(xs, rows, n);
            let dst = MatMut::from_row_major_slice_mut(&mut self.xxt, n, n);
            matmul(dst, Accum::Add, xm.transpose(), xm, 1.0f32, Par::rayon(0));
        })?;
        self.n_tokens += rows;
        Ok(())
    }

    /// Σ_t x_tj² for every input column j (llama.cpp's imatrix, before dividing by the count).
    pub fn sum_sq(&self) -> Vec<f32> {
        (0..self.dim).map(|j| self.xxt[j * self.dim + j]).collect()
    }

    /// ‖W X‖² = tr(W H Wᵀ) for a row-major (rows, dim) matrix `w`.
    pub fn output_energy(&self, w: &[f32]) -> f64 {
        self.row_block_energies(w, w.len() / self.dim)[0]
    }

    /// tr(W_k H W_kᵀ) for each of the matrices W_k of `block_rows` rows stacked in `w`, with one
    /// matrix product for all of them (the quantization error curves stack ~17 of them).
    ///
    /// The product costs rows·n² multiply-adds — on an 8B model's ffn_down more than GPTQ
    /// itself — so past [`EXACT_ENERGY_MACS`] every s-th row of each matrix is used and the sum
    /// scaled to all rows (rows are independent terms of the trace): an estimate, used where
    /// the energies serve as ratios. Below it (every linear of SmolLM2) the sum is exact.
    pub fn row_block_energies(&self, w: &[f32], block_rows: usize) -> Vec<f64> {
        self.energies_with_stride(w, block_rows, self.sample_stride(w.len() / self.dim, block_rows))
    }

    /// [`InputMoments::row_block_energies`] of every row of `w`, however many multiply-adds
    /// (for rows already sampled).
    pub fn row_block_energies_exact(&self, w: &[f32], block_rows: usize) -> Vec<f64> {
        self.energies_with_stride(w, block_rows, 1)
    }

    fn energies_with_stride(&self, w: &[f32], block_rows: usize, stride: usize) -> Vec<f64> {
        let n = self.dim;
        let picked: Vec<usize> = (0..w.len() / n).filter(|r| (r % block_rows).is_multiple_of(stride)).collect();
        let sampled: std::borrow::Cow<[f32]> = if stride == 1 {
            std::borrow::Cow::Borrowed(w)
        } else {
            std::borrow::Cow::Owned(picked.iter().flat_map(|&r| &w[r * n..(r + 1) * n]).copied().collect())
        };
        let rows = sampled.len() / n;
        let mut wh = vec![0f32; rows * n];
        let wm = MatRef::from_row_major_slice(&sampled, rows, n);
        let hm = MatRef::from_row_major_slice(&self.xxt, n, n);
        matmul(MatMut::from_row_major_slice_mut(&mut wh, rows, n), Accum::Replace, wm, hm, 1.0f32, Par::rayon(0));
        let per_row: Vec<f64> = sampled
            .chunks(n)
            .zip(wh.chunks(n))
            .map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x * y) as f64).sum())
            .collect();
        let per_block = block_rows.div_ceil(stride);
        let scale = block_rows as f64 / per_block as f64;
        per_row.chunks(per_block).map(|c| c.iter().sum::<f64>() * if stride == 1 { 1.0 } else { scale }).collect()
    }

    /// The row stride [`InputMoments::row_block_energies`] samples `rows` rows, in matrices of
    /// `block_rows`, with (1: every row).
    pub fn sample_stride(&self, rows: usize, block_rows: usize) -> usize {
        (rows * self.dim * self.dim).div_ceil(EXACT_ENERGY_MACS).clamp(1, block_rows.max(1))
    }
}

/// The input moments of one block's four linear inputs (q/k/v, attn_output, gate/up, ffn_down),
/// gathered as a [`Capture`] while the block runs.
#[derive(Debug, Clone)]
pub struct BlockMoments {
    pub groups: Vec<InputMoments>,
}

impl BlockMoments {
    pub fn new(block: &Block) -> Self {
        let group =
            |ls: &[&Linear]| InputMoments::new(ls.iter().map(|l| l.name.clone()).collect(), ls[0].in_features());
        let (a, m) = (&block.attn, &block.mlp);
        fn all(ls: &[Linear]) -> Vec<&Linear> {
            ls.iter().collect()
        }
        BlockMoments { groups: vec![group(&all(&a.qkv)), group(&[&a.o]), group(&all(&m.gate_up)), group(&[&m.down])] }
    }

    /// The moments of the input of linear `name`.
    pub fn of(&self, name: &str) -> Option<&InputMoments> {
        self.groups.iter().find(|m| m.linears.iter().any(|l| l == name))
    }

    pub fn add(&mut self, linears: &[&Linear], x: &Tensor) -> Result<()> {
        if let Some(m) = self.groups.iter_mut().find(|m| m.linears[0] == linears[0].name) {
            m.add(x)?;
        }
        Ok(())
    }
}

impl Capture for BlockMoments {
    fn linear_input(&mut self, _block: usize, linears: &[&Linear], x: &Tensor) -> Result<()> {
        self.add(linears, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn moments_and_output_energy_match_a_direct_computation() {
        // X: 3 tokens × 2 columns.
        let x = Tensor::new(&[[1f32, 2.], [3., -1.], [0., 4.]], &Device::Cpu).unwrap();
        let mut m = InputMoments::new(vec!["a".into()], 2);
        m.add(&x).unwrap();
        // XᵀX = [[10, -1], [-1, 21]].
        assert_eq!(m.xxt, vec![10., -1., -1., 21.]);
        assert_eq!(m.sum_sq(), vec![10., 21.]);
        assert_eq!(m.n_tokens, 3);
        // W = [[1, 1]]: WX = (3, 2, 4), ‖WX‖² = 29 = 10 − 2 + 21.
        assert!((m.output_energy(&[1., 1.]) - 29.0).abs() < 1e-9);
    }
}
