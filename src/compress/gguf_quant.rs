//! GGUF quantization types: which ones a tensor can take, and their round trip through
//! candle's encoders (llama.cpp's reference rounding, no imatrix).

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

use crate::model::Result;

/// The quantized GGUF types we encode, from fewest to most bits.
pub const GGUF_TYPES: [GgmlDType; 10] = [
    GgmlDType::Q2K,
    GgmlDType::Q3K,
    GgmlDType::Q4_0,
    GgmlDType::Q4_1,
    GgmlDType::Q4K,
    GgmlDType::Q5_0,
    GgmlDType::Q5_1,
    GgmlDType::Q5K,
    GgmlDType::Q6K,
    GgmlDType::Q8_0,
];

/// The types whose blocks tile a row of `cols` weights: k-quants need multiples of 256,
/// the 32-element block types multiples of 32.
pub fn allowed_types(cols: usize) -> Vec<GgmlDType> {
    GGUF_TYPES.iter().copied().filter(|t| cols.is_multiple_of(t.block_size())).collect()
}

/// Encodes a row-major (rows, cols) matrix as `dtype` and decodes it back.
pub fn round_trip(w: &[f32], rows: usize, cols: usize, dtype: GgmlDType) -> Result<Vec<f32>> {
    let t = Tensor::from_slice(w, (rows, cols), &Device::Cpu)?;
    let q = QTensor::quantize(&t, dtype)?;
    Ok(q.dequantize(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_width_decides_the_types() {
        assert_eq!(allowed_types(576).len(), 5); // SmolLM2's hidden size: no k-quant fits
        assert_eq!(allowed_types(1536).len(), 10);
        assert!(allowed_types(48).is_empty());
    }

    #[test]
    fn more_bits_give_smaller_round_trip_error() {
        let w: Vec<f32> = (0..4 * 256).map(|i| (i * 7919 % 1013) as f32 / 506.0 - 1.0).collect();
        let err = |t| {
            let q = round_trip(&w, 4, 256, t).unwrap();
            w.iter().zip(&q).map(|(a, b)| (a - b).powi(2)).sum::<f32>()
        };
        assert!(err(GgmlDType::Q2K) > err(GgmlDType::Q4K));
        assert!(err(GgmlDType::Q4_0) > err(GgmlDType::Q8_0));
        // 8-bit steps of ~1/127 over [−1, 1]: noise ≈ step²/12 per weight, far below the signal.
        let energy: f32 = w.iter().map(|x| x * x).sum();
        assert!(err(GgmlDType::Q8_0) < 1e-4 * energy);
    }
}
