//! One-shot choices of the weights to prune: magnitude and Wanda (Sun et al. 2023). Into a float
//! type the chosen weights are zeroed and the rest kept as they are; under GPTQ onto a quantized
//! type they are a fixed mask ([`super::gptq::Mask::Fixed`]) whose error the kept weights absorb
//! as they are rounded. SparseGPT, which chooses as it updates, is [`super::gptq::gptq`] with a
//! [`Sparsity`] ([`super::gptq::Mask::Chosen`]).
//!
//! Both compare weights within each output row (Wanda's comparison group; we use the same one
//! for magnitude so the two differ only in the score): unstructured prunes the lowest-scoring
//! share of each row, N:M the N lowest of every M consecutive weights of a row.

use rayon::prelude::*;

use super::gptq::Sparsity;

/// The weights with the smallest |w_ij|·norm_j in each row of a row-major (rows, cols) matrix,
/// row-major like `w`; `col_norm` = None scores by |w| alone (magnitude pruning). Under GPTQ
/// they are a fixed mask: zero while the weights kept absorb their error.
pub fn prune_mask(w: &[f32], cols: usize, col_norm: Option<&[f32]>, sparsity: Sparsity) -> Vec<bool> {
    let mut mask = vec![false; w.len()];
    mask.par_chunks_mut(cols).zip(w.par_chunks(cols)).for_each(|(mask, row)| {
        let score: Vec<f32> = match col_norm {
            None => row.iter().map(|x| x.abs()).collect(),
            Some(n) => row.iter().zip(n).map(|(x, &nj)| x.abs() * nj).collect(),
        };
        match sparsity {
            Sparsity::Unstructured(p) => {
                let k = (cols as f32 * p) as usize;
                let mut idx: Vec<usize> = (0..cols).collect();
                if k > 0 {
                    idx.select_nth_unstable_by(k - 1, |&a, &b| score[a].total_cmp(&score[b]));
                    for &i in &idx[..k] {
                        mask[i] = true;
                    }
                }
            }
            Sparsity::NofM(n, m) => {
                for g0 in (0..cols).step_by(m) {
                    let g1 = (g0 + m).min(cols);
                    let mut idx: Vec<usize> = (g0..g1).collect();
                    idx.sort_by(|&a, &b| score[a].total_cmp(&score[b]));
                    for &i in idx.iter().take(n) {
                        mask[i] = true;
                    }
                }
            }
        }
    });
    mask
}

/// Wanda's column norms ‖X_j‖₂ from the imatrix sums Σ_t x_tj².
pub fn wanda_norms(sum_sq: &[f32]) -> Vec<f32> {
    sum_sq.iter().map(|s| s.max(0.0).sqrt()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `w` with the weights [`prune_mask`] picks zeroed.
    fn prune(w: &mut [f32], cols: usize, col_norm: Option<&[f32]>, sparsity: Sparsity) {
        let mask = prune_mask(w, cols, col_norm, sparsity);
        w.iter_mut().zip(mask).filter(|(_, m)| *m).for_each(|(x, _)| *x = 0.0);
    }

    #[test]
    fn magnitude_prunes_the_smallest_of_each_row() {
        let mut w = vec![1.0, -4.0, 0.5, 3.0, /* row 2 */ -0.1, 0.2, 5.0, -6.0];
        prune(&mut w, 4, None, Sparsity::Unstructured(0.5));
        assert_eq!(w, vec![0.0, -4.0, 0.0, 3.0, 0.0, 0.0, 5.0, -6.0]);
    }

    #[test]
    fn wanda_weighs_by_the_input_norm() {
        // |w| favours column 0, the input norm favours column 1.
        let mut w = vec![2.0, 1.0];
        prune(&mut w, 2, Some(&[0.1, 10.0]), Sparsity::Unstructured(0.5));
        assert_eq!(w, vec![0.0, 1.0]);
    }

    #[test]
    fn two_of_four() {
        let mut w = vec![1.0, 2.0, 3.0, 4.0, 8.0, 7.0, 6.0, 5.0];
        prune(&mut w, 8, None, Sparsity::NofM(2, 4));
        assert_eq!(w, vec![0.0, 0.0, 3.0, 4.0, 8.0, 7.0, 0.0, 0.0]);
    }
}
