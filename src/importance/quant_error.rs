//! Local quantization error curves: for each way of quantizing a linear, the relative output
//! error ‖(W − Q(W)) X‖ / ‖W X‖ on the calibration inputs — GPTQ's layer-wise objective, cheap
//! (no downstream forward) and the input of the allocation solvers.

use std::collections::BTreeMap;

use crate::compress::rtn::rtn_asymmetric;
use crate::ggml::codec::round_trip;
use crate::ggml::types::allowed_types;
use crate::model::kernels::non_negative;
use crate::model::{ModelError, Result};

use crate::calib::moments::InputMoments;

/// Group size of the RTN curve.
pub const RTN_GROUP: usize = 32;

/// Relative output errors of `w` (row-major, `moments.dim` columns) for every GGUF type its row
/// width allows and for RTN at 2–8 bits.
///
/// Rows are quantized independently, so where the energies would sample rows (past
/// [`super::hessian::EXACT_ENERGY_MACS`]: an 8B model's linears) only the sampled rows are
/// quantized, and the stack holds only them: an 8B ffn_down's full stack would be 6 GB.
///
/// A non-finite energy (NaN or Inf inputs or weights) is an error naming the linear `name`,
/// not a relative error of 0.
pub fn quant_error_curve(name: &str, w: &[f32], moments: &InputMoments) -> Result<BTreeMap<String, f64>> {
    let cols = moments.dim;
    let all_rows = w.len() / cols;
    let types = allowed_types(cols);
    let stride = moments.sample_stride((1 + types.len() + 7) * all_rows, all_rows);
    let sampled: Vec<f32>;
    let w = if stride == 1 {
        w
    } else {
        sampled = w.chunks(cols).step_by(stride).flatten().copied().collect();
        &sampled
    };
    let rows = w.len() / cols;
    let mut names = Vec::new();
    // W and every ΔW = W − Q(W) stacked, so that one product with H gives all the energies.
    let mut stacked = w.to_vec();
    let mut push = |name: String, q: Vec<f32>| {
        names.push(name);
        stacked.extend(w.iter().zip(&q).map(|(a, b)| a - b));
    };
    for t in types {
        push(t.name().to_string(), round_trip(t, w, cols, None));
    }
    for bits in 2..=8 {
        push(format!("RTN{bits}"), rtn_asymmetric(w, cols, bits, RTN_GROUP));
    }
    // The rows kept are those row_block_energies would sample from the whole stack.
    let energies = moments.row_block_energies_exact(&stacked, rows);
    if let Some(e) = energies.iter().find(|e| !e.is_finite()) {
        return Err(ModelError::NonFiniteOutput(format!(
            "{name}: an output energy (‖W X‖² or ‖ΔW X‖²) on the calibration inputs is not finite ({e}): NaN or Inf weights or inputs, or products past f32's range?"
        )));
    }
    let base = energies[0];
    Ok(names
        .into_iter()
        .zip(&energies[1..])
        .map(|(n, &e)| (n, if base > 0.0 { non_negative(e / base).sqrt() } else { 0.0 }))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn error_falls_with_bits_and_is_relative() {
        let xs: Vec<f32> = (0..200 * 64).map(|i| ((i as f32) * 0.731).sin() * (1.0 + (i % 7) as f32)).collect();
        let x = Tensor::from_vec(xs, (200, 64), &Device::Cpu).unwrap();
        let mut m = InputMoments::new(vec!["w".into()], 64);
        m.add(&x).unwrap();
        let w: Vec<f32> = (0..16 * 64).map(|i| (i * 7919 % 1013) as f32 / 506.0 - 1.0).collect();
        let c = quant_error_curve("w", &w, &m).unwrap();
        assert!(c["RTN2"] > c["RTN4"] && c["RTN4"] > c["RTN8"]);
        assert!(c["Q4_0"] > c["Q8_0"]);
        assert!(!c.contains_key("Q4_K"), "64 columns cannot take k-quants");
        // Scaling W scales both norms: the relative error stays (up to a few f32 rounding ties
        // that land on the other side).
        let w2: Vec<f32> = w.iter().map(|v| v * 10.0).collect();
        let c2 = quant_error_curve("w", &w2, &m).unwrap();
        assert!((c["RTN4"] - c2["RTN4"]).abs() < 0.02 * c["RTN4"], "{} vs {}", c["RTN4"], c2["RTN4"]);
    }
}
