//! Bit-exact GGUF block encoders and decoders by type (layouts of `ggml/src/ggml-common.h`): each
//! reads the type's row ([`super::traits`]) and calls the block functions it names
//! ([`super::blocks`]).
//!
//! Encoding is split in three so that GPTQ can round between the steps: [`choose`] picks one
//! block's grid (scales) from its weights and their importance, [`Grid::code`] rounds a weight,
//! [`pack`] writes the codes and scales as ggml's bytes. [`decode_block`] reads every type we write.

use rayon::prelude::*;

use super::blocks::{asymmetric, iq4_nl, iq4_xs, kquant_asymmetric, kquant_symmetric, symmetric, vector_grid};
use super::grid::{row_weights, Grid};
use super::traits::Encoder;
use super::types::QuantType;

/// Chooses the grid of one block of `t` for weights `x` with importance `w`: the type's
/// encoder family ([`Encoder`]) with its row's parameters.
pub fn choose(t: QuantType, x: &[f32], w: &[f32]) -> Grid {
    debug_assert_eq!(x.len(), t.block_size());
    match t.traits().encoder {
        Encoder::Symmetric { levels, fitted } => symmetric(levels, fitted, x, w),
        Encoder::Asymmetric { levels } => asymmetric(levels, x, w),
        Encoder::Iq4Nl => iq4_nl(x, w),
        Encoder::Iq4Xs => iq4_xs(x, w),
        Encoder::Vector(q) => vector_grid(q, x, w),
        Encoder::KAsymmetric { sub, levels, code_max } => kquant_asymmetric(sub, levels, code_max, x, w),
        Encoder::KSymmetric { levels, codes, code_offset } => kquant_symmetric(levels, codes, code_offset, x, w),
        Encoder::Plain(_) => unreachable!("{t} is not a block type"),
    }
}

/// The codes of one block on grid `g`: each weight's nearest level, except on the vector grids
/// (IQ3_S, IQ3_XXS, IQ2_S, IQ2_XS), whose groups of 4 or 8 round to a grid point together.
pub fn block_codes(t: QuantType, g: &Grid, x: &[f32], w: &[f32], codes: &mut [u8]) {
    if let Some(q) = t.vector_grid() {
        for j in 0..256 / q.sub {
            let r = j * q.sub..(j + 1) * q.sub;
            q.round_sub_block(&x[r.clone()], &w[r.clone()], g.step[j] * q.unit, &mut codes[r]);
        }
    } else {
        for (i, (c, &v)) in codes.iter_mut().zip(x).enumerate() {
            *c = g.code(i, v);
        }
    }
}

/// Writes one block of `t` with grid `g` and codes (one per weight) into `out` (block_bytes long):
/// the packer of `t`'s row.
pub fn pack(t: QuantType, g: &Grid, c: &[u8], out: &mut [u8]) {
    debug_assert_eq!(out.len(), t.block_bytes());
    let Some(pack) = t.traits().pack else { unreachable!("{t} is not a block type") };
    pack(g, c, out)
}

/// Decodes one block of `t` (ggml's `dequantize_row_*` arithmetic): the decoder of `t`'s row.
pub fn decode_block(t: QuantType, b: &[u8], y: &mut [f32]) {
    (t.traits().to_float)(b, y)
}

/// Decodes a whole tensor of `n` weights stored as `t`.
pub fn dequantize(t: QuantType, bytes: &[u8], n: usize) -> Vec<f32> {
    let (bs, bb, to_float) = (t.block_size(), t.block_bytes(), t.traits().to_float);
    let mut y = vec![0f32; n];
    if bs == 1 {
        y.iter_mut().zip(bytes.chunks(bb)).for_each(|(o, b)| to_float(b, std::slice::from_mut(o)));
    } else {
        y.par_chunks_mut(bs).zip(bytes.par_chunks(bb)).for_each(|(o, b)| to_float(b, o));
    }
    y
}

/// Encodes an unquantized type: the writer of `t`'s row.
pub fn encode_plain(t: QuantType, w: &[f32]) -> Vec<u8> {
    match t.traits().encoder {
        Encoder::Plain(from_float) => from_float(w),
        _ => unreachable!("{t} is a block type"),
    }
}

/// Round-to-nearest encoding of one row onto `t` with grids chosen under `imp` (an imatrix
/// column mean per weight; None = uniform). Appends the bytes to `out`, returns the decoded row.
pub fn quantize_row(t: QuantType, row: &[f32], imp: Option<&[f32]>, out: &mut Vec<u8>) -> Vec<f32> {
    let w = row_weights(row, imp);
    let bs = t.block_size();
    let mut codes = vec![0u8; bs];
    let mut y = Vec::with_capacity(row.len());
    for (x, wb) in row.chunks(bs).zip(w.chunks(bs)) {
        let g = choose(t, x, wb);
        block_codes(t, &g, x, wb, &mut codes);
        y.extend(codes.iter().enumerate().map(|(i, &c)| g.value(i, c)));
        let at = out.len();
        out.resize(at + t.block_bytes(), 0);
        pack(t, &g, &codes, &mut out[at..]);
    }
    y
}

/// Encodes a row-major matrix as `t` and decodes it back.
pub fn round_trip(t: QuantType, w: &[f32], cols: usize, imp: Option<&[f32]>) -> Vec<f32> {
    dequantize(t, &quantize(t, w, cols, imp), w.len())
}

/// Round-to-nearest encoding of a row-major (rows, cols) matrix, rows in parallel.
pub fn quantize(t: QuantType, w: &[f32], cols: usize, imp: Option<&[f32]>) -> Vec<u8> {
    if !t.is_quantized() {
        return encode_plain(t, w);
    }
    let rows: Vec<Vec<u8>> = w
        .par_chunks(cols)
        .map(|row| {
            let mut out = Vec::with_capacity(t.bytes(cols));
            quantize_row(t, row, imp, &mut out);
            out
        })
        .collect();
    rows.concat()
}

#[cfg(test)]
mod tests {
    use super::super::grid::IQ3XXS_LEVELS;
    use super::super::iq;
    use super::super::types::QUANTIZED_TYPES;
    use super::*;
    use half::f16;

    fn h(x: f32) -> f16 {
        f16::from_f32(x)
    }
    use candle_core::quantized::{GgmlDType, QStorage, QTensor};
    use candle_core::Device;

    fn weights(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).max(1);
        (0..n)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                let u = (s % 10_000) as f32 / 10_000.0 - 0.5;
                // a few outliers, like real weight rows
                if i % 97 == 3 {
                    8.0 * u
                } else {
                    u * 0.1
                }
            })
            .collect()
    }

    fn candle_type(t: QuantType) -> Option<GgmlDType> {
        use QuantType::*;
        Some(match t {
            Q4_0 => GgmlDType::Q4_0,
            Q4_1 => GgmlDType::Q4_1,
            Q5_0 => GgmlDType::Q5_0,
            Q5_1 => GgmlDType::Q5_1,
            Q8_0 => GgmlDType::Q8_0,
            Q2K => GgmlDType::Q2K,
            Q3K => GgmlDType::Q3K,
            Q4K => GgmlDType::Q4K,
            Q5K => GgmlDType::Q5K,
            Q6K => GgmlDType::Q6K,
            _ => return None,
        })
    }

    /// Our bytes, decoded by candle (llama.cpp's decoders), equal the grid values we rounded to.
    #[test]
    fn encoded_blocks_decode_to_the_grid_values_in_candle_and_in_our_decoder() {
        let (rows, cols) = (3, 512);
        let w = weights(rows * cols, 7);
        let imp: Vec<f32> = (0..cols).map(|j| 1.0 + (j % 13) as f32).collect();
        for t in QUANTIZED_TYPES {
            let mut bytes = Vec::new();
            let mut ours = Vec::new();
            for row in w.chunks(cols) {
                ours.extend(quantize_row(t, row, Some(&imp), &mut bytes));
            }
            assert_eq!(bytes.len(), t.bytes(rows * cols), "{t}");
            let decoded = dequantize(t, &bytes, rows * cols);
            for (i, (a, b)) in ours.iter().zip(&decoded).enumerate() {
                assert!((a - b).abs() <= 1e-6 * a.abs().max(1e-3), "{t} weight {i}: grid {a} decoded {b}");
            }
            if let Some(ct) = candle_type(t) {
                let storage = QStorage::from_data(std::borrow::Cow::Borrowed(&bytes), &Device::Cpu, ct).unwrap();
                let q = QTensor::new(storage, (rows, cols)).unwrap();
                let theirs = q.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
                assert_eq!(theirs, decoded, "{t}: candle decodes our bytes differently");
            }
        }
    }

    /// Our encoders are at least as accurate as llama.cpp's reference rounding (candle's port)
    /// without an imatrix, per type.
    #[test]
    fn round_trip_error_is_no_worse_than_the_reference_encoder() {
        let (rows, cols) = (8, 512);
        let w = weights(rows * cols, 11);
        for t in QUANTIZED_TYPES {
            let Some(ct) = candle_type(t) else { continue };
            let ours = dequantize(t, &quantize(t, &w, cols, None), rows * cols);
            let tensor = candle_core::Tensor::from_slice(&w, (rows, cols), &Device::Cpu).unwrap();
            let theirs = QTensor::quantize(&tensor, ct)
                .unwrap()
                .dequantize(&Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let err = |y: &[f32]| w.iter().zip(y).map(|(a, b)| (a - b).powi(2)).sum::<f32>();
            let (e_ours, e_ref) = (err(&ours), err(&theirs));
            assert!(e_ours <= 1.02 * e_ref, "{t}: ours {e_ours} reference {e_ref}");
        }
    }

    /// A block made of IQ3_XXS's values (every sub-block with its top magnitude, its scale code,
    /// random points and signs with an even count per 8) rounds to itself, and its bytes are
    /// ggml's layout: d, a point index per group of 4, per sub-block 4×7 sign bits and the
    /// scale code in the top 4 bits.
    #[test]
    fn an_iq3_xxs_block_of_its_own_values_encodes_to_itself_in_ggmls_layout() {
        let q = &iq::IQ3XXS;
        let d = h(1.0 / 64.0);
        let sc = [15u32, 9, 15, 4, 12, 15, 7, 10];
        let mut rng = crate::stats::Rng::new(5);
        // Point 5 is ggml's 0x04040c3e: magnitudes 7 (62), 1, 0, 0.
        let points: Vec<usize> =
            (0..64).map(|k| if k % 8 == 0 { 5 } else { (rng.uniform() * 256.0) as usize }).collect();
        let mut x = vec![0f32; 256];
        let mut aux = [0u32; 8];
        for j in 0..8 {
            aux[j] = sc[j] << 28;
            let db = d.to_f32() * (0.5 + sc[j] as f32) * 0.5;
            for l in 0..4 {
                let mut signs = 0u32;
                for i in 0..8 {
                    let negative = if i < 7 { rng.uniform() < 0.5 } else { signs.count_ones() % 2 == 1 };
                    signs |= (negative as u32) << i;
                    let at = 32 * j + 8 * l + i;
                    let v = db * IQ3XXS_LEVELS[8 + q.point(points[at / 4])[at % 4] as usize] as f32;
                    x[at] = if negative { -v } else { v };
                }
                aux[j] |= (signs & 127) << (7 * l);
            }
        }
        let b = quantize(QuantType::IQ3XXS, &x, 256, None);
        assert_eq!(b.len(), 98);
        assert_eq!(dequantize(QuantType::IQ3XXS, &b, 256), x);
        assert_eq!(b[..2], d.to_le_bytes());
        for k in 0..64 {
            assert_eq!(b[2 + k] as usize, points[k], "group {k}");
        }
        for j in 0..8 {
            assert_eq!(
                u32::from_le_bytes([b[66 + 4 * j], b[67 + 4 * j], b[68 + 4 * j], b[69 + 4 * j]]),
                aux[j],
                "sub-block {j}"
            );
        }
    }

    #[test]
    fn more_bits_give_smaller_error() {
        let w = weights(4 * 256, 3);
        let err = |t| {
            let y = dequantize(t, &quantize(t, &w, 256, None), w.len());
            w.iter().zip(&y).map(|(a, b)| (a - b).powi(2)).sum::<f32>()
        };
        use QuantType::*;
        assert!(err(Q2K) > err(Q3K));
        assert!(err(Q3K) > err(Q4K));
        assert!(err(Q4K) > err(Q5K));
        assert!(err(Q5K) > err(Q6K));
        assert!(err(Q4_0) > err(Q8_0));
        assert!(err(Q4_0) > err(Q5_0));
        assert!(err(IQ3XXS) > err(IQ3S));
        assert!(err(IQ2XS) > err(IQ2S));
        assert!(err(IQ2S) > err(IQ3XXS));
    }

    #[test]
    fn all_zero_blocks_encode_to_zero() {
        for t in QUANTIZED_TYPES {
            let w = vec![0f32; 256];
            let y = dequantize(t, &quantize(t, &w, 256, None), 256);
            assert!(y.iter().all(|&v| v == 0.0), "{t}");
        }
    }
}
