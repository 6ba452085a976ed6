//! OWL (Outlier Weighed Layerwise sparsity, Yin et al. 2024): the share of a layer's Wanda scores
//! S_ij = |W_ij| · ‖X_j‖₂ that exceed M times their mean. Layers with more outliers should be
//! pruned less.

/// OWL's threshold multiplier M.
pub const OUTLIER_M: f64 = 5.0;

/// Wanda scores |W_ij| · ‖X_j‖₂ of a row-major matrix, given the column norms ‖X_j‖₂.
pub fn wanda_scores<'a>(w: &'a [f32], col_norms: &'a [f32]) -> impl Iterator<Item = f64> + 'a {
    let cols = col_norms.len();
    w.iter().enumerate().map(move |(i, &x)| (x.abs() * col_norms[i % cols]) as f64)
}

/// Share of scores above `OUTLIER_M` × their mean, over the matrices given as (weights, ‖X_j‖).
pub fn outlier_ratio(layers: &[(&[f32], &[f32])]) -> f64 {
    let (sum, n) =
        layers.iter().fold((0.0, 0usize), |(s, n), (w, c)| (s + wanda_scores(w, c).sum::<f64>(), n + w.len()));
    if n == 0 || sum == 0.0 {
        return 0.0;
    }
    let threshold = OUTLIER_M * sum / n as f64;
    let above: usize = layers.iter().map(|(w, c)| wanda_scores(w, c).filter(|&s| s > threshold).count()).sum();
    above as f64 / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_outlier_among_twenty() {
        // 19 scores of 1 and one of 100: mean 5.95, only the 100 exceeds 5× the mean.
        let mut w = vec![1.0f32; 20];
        w[3] = 100.0;
        let norms = vec![1.0f32; 4];
        assert!((outlier_ratio(&[(&w, &norms)]) - 1.0 / 20.0).abs() < 1e-12);
        // Column norms weight the scores: a large activation column makes its weights outliers.
        let w = vec![1.0f32; 20];
        let mut norms = [1.0f32; 10];
        norms[9] = 50.0;
        assert!((outlier_ratio(&[(&w, &norms)]) - 2.0 / 20.0).abs() < 1e-12);
        assert_eq!(outlier_ratio(&[(&[1.0f32; 8], &[1.0f32; 4])]), 0.0);
    }
}
