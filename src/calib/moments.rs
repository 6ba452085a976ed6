//! Input second moments of linear layers: H = Σ_t x_t x_tᵀ over calibration tokens.
//!
//! One matrix serves several signals: its diagonal is llama.cpp's imatrix (Σ x_j² per input
//! column), √diag is the ‖X_j‖₂ of Wanda/OWL, and tr(ΔW H ΔWᵀ) = ‖ΔW X‖² is GPTQ's layer-wise
//! quantization loss. Linears that read the same input (q/k/v, gate/up) share one matrix.

use candle_core::Tensor;
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use super::token_weights::TokenWeights;
use crate::model::capture::Probs;
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

    /// Adds the tokens of `x` (…, dim), token t weighted by `w[t]`: Σ_t w_t x_t x_tᵀ, as the
    /// product of the rows scaled by √w_t.
    pub fn add_weighted(&mut self, x: &Tensor, w: &[f32]) -> Result<()> {
        let n = self.dim;
        let rows = x.elem_count() / n;
        assert_eq!(w.len(), rows, "one weight per token");
        let scaled: Vec<f32> = with_f32(x, |xs| {
            xs.chunks_exact(n).zip(w).flat_map(|(r, &wt)| r.iter().map(move |v| v * wt.sqrt())).collect()
        })?;
        let xm = MatRef::from_row_major_slice(&scaled, rows, n);
        let dst = MatMut::from_row_major_slice_mut(&mut self.xxt, n, n);
        matmul(dst, Accum::Add, xm.transpose(), xm, 1.0f32, Par::rayon(0));
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
/// gathered as a [`Capture`] while the block runs, each token weighted as `weights` says.
#[derive(Debug, Clone)]
pub struct BlockMoments {
    pub groups: Vec<InputMoments>,
    weights: TokenWeights,
    /// The current batch's token weights, once known.
    current: Option<Vec<f32>>,
    /// Inputs that came before their batch's weights (q/k/v, read before the attention that
    /// weighs them runs): (the first linear's name, the input).
    pending: Vec<(String, Tensor)>,
}

impl BlockMoments {
    /// Every token alike.
    pub fn new(block: &Block) -> Self {
        Self::weighted(block, TokenWeights::Equal)
    }

    pub fn weighted(block: &Block, weights: TokenWeights) -> Self {
        let group =
            |ls: &[&Linear]| InputMoments::new(ls.iter().map(|l| l.name.clone()).collect(), ls[0].in_features());
        let (a, m) = (&block.attn, &block.mlp);
        fn all(ls: &[Linear]) -> Vec<&Linear> {
            ls.iter().collect()
        }
        BlockMoments {
            groups: vec![group(&all(&a.qkv)), group(&[&a.o]), group(&all(&m.gate_up)), group(&[&m.down])],
            weights,
            current: None,
            pending: Vec::new(),
        }
    }

    /// The moments of the input of linear `name`.
    pub fn of(&self, name: &str) -> Option<&InputMoments> {
        self.groups.iter().find(|m| m.linears.iter().any(|l| l == name))
    }

    /// Adds input `x` of `linears`, every token alike.
    pub fn add(&mut self, linears: &[&Linear], x: &Tensor) -> Result<()> {
        self.add_to(&linears[0].name, x, None)
    }

    fn add_to(&mut self, first: &str, x: &Tensor, w: Option<&[f32]>) -> Result<()> {
        if let Some(m) = self.groups.iter_mut().find(|m| m.linears[0] == first) {
            match w {
                Some(w) => m.add_weighted(x, w)?,
                None => m.add(x)?,
            }
        }
        Ok(())
    }

    /// Adds the inputs held for the current batch's weights: weighted by `w`, or alike (None:
    /// the batch gave no weights, its attention sublayer skipped).
    fn flush(&mut self, w: Option<&[f32]>) -> Result<()> {
        for (first, x) in std::mem::take(&mut self.pending) {
            self.add_to(&first, &x, w)?;
        }
        Ok(())
    }
}

impl Capture for BlockMoments {
    fn block_input(&mut self, _block: usize, x: &Tensor) -> Result<()> {
        self.current = match self.weights {
            TokenWeights::Actnorm => Some(self.weights.of_norms(x)?),
            _ => None,
        };
        Ok(())
    }

    fn linear_input(&mut self, _block: usize, linears: &[&Linear], x: &Tensor) -> Result<()> {
        match (self.weights, self.current.take()) {
            (TokenWeights::Equal, _) => self.add(linears, x),
            (_, Some(w)) => {
                let r = self.add_to(&linears[0].name, x, Some(&w));
                self.current = Some(w);
                r
            }
            (_, None) => {
                self.pending.push((linears[0].name.clone(), x.clone()));
                Ok(())
            }
        }
    }

    fn wants_attention(&self, _block: usize) -> Probs {
        if self.weights.from_attention() {
            Probs::Received
        } else {
            Probs::None
        }
    }

    fn attention_probs(&mut self, _block: usize, probs: &Tensor) -> Result<()> {
        let w = self.weights.of_attention(probs)?;
        self.flush(Some(&w))?;
        self.current = Some(w);
        Ok(())
    }

    fn block_output(&mut self, _block: usize, _x: &Tensor) -> Result<()> {
        self.flush(None)?;
        self.current = None;
        Ok(())
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
        // Weights (2, 0, 1): 2·[[1,2],[2,4]] + [[0,0],[0,16]] = [[2, 4], [4, 24]].
        let mut w = InputMoments::new(vec!["a".into()], 2);
        w.add_weighted(&x, &[2., 0., 1.]).unwrap();
        assert!(w.xxt.iter().zip([2., 4., 4., 24.]).all(|(a, b)| (a - b).abs() < 1e-5), "{:?}", w.xxt);
        assert_eq!(w.n_tokens, 3);
    }

    /// What a block shows: its attention probabilities and every linear input.
    #[derive(Default)]
    struct Seen {
        probs: Vec<Tensor>,
        inputs: Vec<(String, Tensor)>,
    }

    impl Capture for Seen {
        fn linear_input(&mut self, _block: usize, linears: &[&Linear], x: &Tensor) -> Result<()> {
            self.inputs.push((linears[0].name.clone(), x.clone()));
            Ok(())
        }
        fn wants_attention(&self, _block: usize) -> Probs {
            Probs::Full
        }
        fn attention_probs(&mut self, _block: usize, probs: &Tensor) -> Result<()> {
            self.probs.push(probs.clone());
            Ok(())
        }
    }

    #[test]
    fn attention_weighted_moments_weigh_every_input_of_the_batch_by_its_attention() {
        use crate::calib::runner::{Runner, StateLimits};
        use crate::calib::Windows;
        use crate::model::BlockOpts;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-llama");
        let model = crate::model::Model::load(&dir).unwrap();
        let ids: Vec<u32> = (0..64).map(|i| (i * 13 % 100) as u32).collect();
        let runner = Runner::new(&model, &Windows::new(&ids, 16, None).unwrap(), 2, StateLimits::UNLIMITED).unwrap();
        let block = &model.blocks[1];
        for weights in [TokenWeights::Attention, TokenWeights::AttentionMild] {
            // By hand: each batch's weights from its attention, every input of the batch
            // (q/k/v's too, which come before the attention) weighted by them.
            let mut want = BlockMoments::new(block);
            for j in 0..runner.n_batches() {
                let mut seen = Seen::default();
                block
                    .forward(
                        &runner.state(j).unwrap(),
                        &runner.config,
                        &runner.positions,
                        BlockOpts::default(),
                        &mut seen,
                    )
                    .unwrap();
                let w = weights.of_attention(&seen.probs[0].sum(2).unwrap()).unwrap();
                assert!(w.iter().any(|&x| (x - 1.0).abs() > 0.1), "the weights tilt");
                for (first, x) in &seen.inputs {
                    want.add_to(first, x, Some(&w)).unwrap();
                }
            }
            let mut got = BlockMoments::weighted(block, weights);
            runner.run(block, BlockOpts::default(), &mut got, |_, _| {}).unwrap();
            for (g, w) in got.groups.iter().zip(&want.groups) {
                assert_eq!(g.n_tokens, 64);
                assert_eq!(g.xxt, w.xxt, "{:?} {}", weights, g.linears[0]);
            }
            // Without its attention sublayer a block gives no weights: the MLP's inputs count alike.
            let mut skipped = BlockMoments::weighted(block, weights);
            let opts = BlockOpts { skip_attention: true, skip_mlp: false };
            runner.run(block, opts, &mut skipped, |_, _| {}).unwrap();
            let mut alike = BlockMoments::new(block);
            runner.run(block, opts, &mut alike, |_, _| {}).unwrap();
            assert_eq!(skipped.groups[2].xxt, alike.groups[2].xxt);
            assert_eq!(skipped.groups[2].n_tokens, 64);
        }
    }
}
