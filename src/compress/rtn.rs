//! Round-to-nearest quantization: the baseline every other quantizer is compared with.

use crate::ggml::grid::round_half_even;

/// Asymmetric round-to-nearest of a row-major (rows, cols) matrix in groups of `group` consecutive
/// columns of a row, to `bits` bits: each group gets scale = (max − min)/(2^bits − 1) and
/// zero point min, and every weight becomes min + scale · round((w − min)/scale).
/// Returns the dequantized weights. A trailing group narrower than `group` is handled the same way.
pub fn rtn_asymmetric(w: &[f32], cols: usize, bits: u32, group: usize) -> Vec<f32> {
    assert!((1..=16).contains(&bits) && group > 0 && cols > 0);
    let levels = ((1u32 << bits) - 1) as f32;
    let mut out = Vec::with_capacity(w.len());
    for row in w.chunks(cols) {
        for g in row.chunks(group) {
            let (lo, hi) = g.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
            let scale = (hi - lo) / levels;
            if scale == 0.0 {
                out.extend_from_slice(g);
                continue;
            }
            out.extend(g.iter().map(|&x| lo + scale * round_half_even((x - lo) / scale).clamp(0.0, levels)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_bits_on_a_hand_computed_group() {
        // min 0, max 3, 2 bits → scale 1: values snap to 0, 1, 2, 3.
        let w = [0.0, 0.4, 1.6, 3.0];
        assert_eq!(rtn_asymmetric(&w, 4, 2, 4), vec![0.0, 0.0, 2.0, 3.0]);
    }

    #[test]
    fn error_is_at_most_half_a_step_and_shrinks_with_bits() {
        let w: Vec<f32> = (0..640).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * (1.0 + (i % 5) as f32)).collect();
        let mut prev = f32::INFINITY;
        for bits in 2..=8 {
            let q = rtn_asymmetric(&w, 64, bits, 32);
            let err: f32 = w.iter().zip(&q).map(|(a, b)| (a - b).powi(2)).sum();
            assert!(err < prev, "{bits} bits: {err} not below {prev}");
            prev = err;
            for (gw, gq) in w.chunks(32).zip(q.chunks(32)) {
                let (lo, hi) = gw.iter().fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
                let half = (hi - lo) / ((1u32 << bits) - 1) as f32 / 2.0;
                assert!(gw.iter().zip(gq).all(|(a, b)| (a - b).abs() <= half * 1.0001));
            }
        }
    }

    #[test]
    fn rounding_without_libm() {
        assert_eq!([0.4f32, 0.6, 2.5, 3.5, 254.7].map(round_half_even), [0.0, 1.0, 2.0, 4.0, 255.0]);
    }

    #[test]
    fn constant_groups_are_exact() {
        assert_eq!(rtn_asymmetric(&[0.5; 8], 8, 3, 4), vec![0.5; 8]);
    }
}
