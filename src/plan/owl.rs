//! OWL (Yin et al. 2024, "Outlier Weighed Layerwise Sparsity"): blocks with more outliers are
//! pruned less. A block's outlier ratio D_i is the share of its linears' Wanda scores
//! |W_jk|·‖X_k‖₂ above M times their mean ([`outlier_ratio`], M = 5); its share of weights kept
//! is (1 − S) + 2λ·(D̂_i − mean D̂) with D̂ the ratios scaled to [0, 1], so the shares kept
//! average 1 − S and span at most 2λ (λ = 0.08, the paper's setting for LLaMA at 70%).

use crate::calib::moments::BlockMoments;
use crate::compress::prune::wanda_norms;
use crate::importance::outliers::outlier_ratio;
use crate::model::kernels::with_f32;
use crate::model::{BlockOpts, Model, Result};

use super::fitness::Probe;

/// OWL's λ: half the span of the blocks' shares kept.
pub const LAMBDA: f64 = 0.08;

/// Every block's outlier ratio D_i, with the column norms ‖X_k‖₂ of its linears' inputs measured
/// on the probe's windows `which` (the original model's states entering the block).
pub fn outlier_ratios(model: &Model, probe: &Probe, which: &[usize]) -> Result<Vec<f64>> {
    model
        .blocks
        .iter()
        .enumerate()
        .map(|(i, block)| {
            let mut moments = BlockMoments::new(block);
            for &w in which {
                block.forward(
                    &probe.state(w, i)?,
                    &model.config,
                    &probe.positions,
                    BlockOpts::default(),
                    &mut moments,
                )?;
            }
            let linears = block.linears();
            let weights: Vec<Vec<f32>> =
                linears.iter().map(|l| with_f32(&l.weight, <[f32]>::to_vec)).collect::<Result<_>>()?;
            let norms: Vec<Vec<f32>> = linears
                .iter()
                .map(|l| wanda_norms(&moments.of(&l.name).expect("every linear has an input group").sum_sq()))
                .collect();
            let pairs: Vec<(&[f32], &[f32])> =
                weights.iter().zip(&norms).map(|(w, n)| (w.as_slice(), n.as_slice())).collect();
            Ok(outlier_ratio(&pairs))
        })
        .collect()
}

/// The blocks' sparsities for a mean sparsity `target`: 1 − [(1 − target) + 2λ·(D̂_i − mean D̂)].
/// Equal ratios give every block `target`.
pub fn block_sparsities(ratios: &[f64], target: f64, lambda: f64) -> Vec<f64> {
    let (lo, hi) = ratios.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    let scaled: Vec<f64> = ratios.iter().map(|&d| if hi > lo { (d - lo) / (hi - lo) } else { 0.0 }).collect();
    let mean = scaled.iter().sum::<f64>() / scaled.len().max(1) as f64;
    scaled.iter().map(|&d| target - 2.0 * lambda * (d - mean)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outlier_rich_blocks_are_pruned_less_and_the_mean_is_kept() {
        // Ratios 0.01, 0.03, 0.02: scaled 0, 1, 0.5 (mean 0.5); shares kept 0.3 + 0.16·(−0.5, 0.5, 0).
        let s = block_sparsities(&[0.01, 0.03, 0.02], 0.7, 0.08);
        for (got, want) in s.iter().zip([0.78, 0.62, 0.70]) {
            assert!((got - want).abs() < 1e-12, "{s:?}");
        }
        assert!((s.iter().sum::<f64>() / 3.0 - 0.7).abs() < 1e-12);
        assert_eq!(block_sparsities(&[0.5, 0.5], 0.6, 0.08), vec![0.6, 0.6]);
    }
}
