//! How the sparsity database keeps a pruned variant: a bitmask of its nonzero weights
//! (row-major, least significant bit first, padded to whole 16-bit words) followed by those
//! weights in F16, in order. It holds exactly the values of the dense F16 variant — a weight is
//! absent from the mask only when its F16 bits are all zero — in 1 + 16(1 − p) bits per weight
//! for a share p pruned, instead of 16.

use half::f16;

/// The bytes of the mask of `n` weights.
pub fn mask_bytes(n: usize) -> usize {
    n.div_ceil(16) * 2
}

/// Whether `len` bytes can be the packing of `n` weights: the mask and a whole number of F16
/// values, no more than `n`.
pub fn fits(len: usize, n: usize) -> bool {
    len >= mask_bytes(n) && (len - mask_bytes(n)).is_multiple_of(2) && len - mask_bytes(n) <= 2 * n
}

/// Packs a dense F16 encoding (`2n` bytes, little-endian).
pub fn pack(dense: &[u8]) -> Vec<u8> {
    let n = dense.len() / 2;
    let mut out = vec![0u8; mask_bytes(n)];
    for (i, v) in dense.chunks_exact(2).enumerate() {
        if v != [0, 0] {
            out[i / 8] |= 1 << (i % 8);
            out.extend_from_slice(v);
        }
    }
    out
}

/// The `n` weights of a packing, as f32; Err(why) when the bytes are not a packing of `n`.
pub fn unpack(bytes: &[u8], n: usize) -> Result<Vec<f32>, String> {
    if !fits(bytes.len(), n) {
        return Err(format!("{} bytes are not a masked packing of {n} weights", bytes.len()));
    }
    let (mask, values) = bytes.split_at(mask_bytes(n));
    let kept: usize = mask.iter().map(|b| b.count_ones() as usize).sum();
    if kept != values.len() / 2 || mask_padding(mask, n) != 0 {
        return Err(format!("a mask of {kept} weights for {} values", values.len() / 2));
    }
    let mut values = values.chunks_exact(2).map(|v| f16::from_le_bytes([v[0], v[1]]).to_f32());
    Ok((0..n).map(|i| if mask[i / 8] >> (i % 8) & 1 == 1 { values.next().expect("counted") } else { 0.0 }).collect())
}

/// The mask's bits past its `n` weights (zero in a packing).
fn mask_padding(mask: &[u8], n: usize) -> u32 {
    (n..mask.len() * 8).map(|i| (mask[i / 8] >> (i % 8) & 1) as u32).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ggml::codec::{dequantize, quantize};
    use crate::ggml::types::QuantType;

    /// Every weight comes back bit for bit, zeros where they were (−0.0 included, kept as a
    /// value), over lengths that do and do not fill the mask's last word.
    #[test]
    fn packing_returns_the_dense_values() {
        for n in [1usize, 15, 16, 17, 333] {
            let w: Vec<f32> = (0..n)
                .map(|i| match i % 5 {
                    0 | 3 => 0.0,
                    4 => -0.0,
                    _ => (i as f32 - 100.0) * 0.37,
                })
                .collect();
            let dense = quantize(QuantType::F16, &w, n, None);
            let packed = pack(&dense);
            let zeros = w.iter().filter(|x| x.to_bits() == 0).count();
            assert_eq!(packed.len(), mask_bytes(n) + 2 * (n - zeros));
            let back = unpack(&packed, n).unwrap();
            let want = dequantize(QuantType::F16, &dense, n);
            assert_eq!(
                back.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                "n={n}"
            );
        }
    }

    #[test]
    fn malformed_packings_are_refused() {
        let packed = pack(&quantize(QuantType::F16, &[1.0, 0.0, 2.0], 3, None));
        assert!(unpack(&packed[..packed.len() - 2], 3).is_err(), "a value missing");
        assert!(unpack(&packed[..1], 3).is_err(), "a short mask");
        let mut padded = packed.clone();
        padded[1] |= 0x80;
        padded.extend_from_slice(&[0, 0x3c]);
        assert!(unpack(&padded, 3).is_err(), "a bit set past the weights");
        assert!(!fits(packed.len() + 1, 3));
    }
}
