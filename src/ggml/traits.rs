//! One row of traits per GGUF type, as ggml's `type_traits[]`: ggml's numbering and block sizes
//! (`ggml/src/ggml-common.h`, `enum ggml_type`), llama.cpp's file-type number, the layer
//! database's policy for the type, and its encoder family, decoder and packer (the block
//! functions of [`super::blocks`]).

use super::blocks;
use super::grid::Grid;
use super::iq::{self, IqGrid};
use super::types::QuantType;

/// How a type's blocks are encoded: the grid family [`blocks::choose`] fits, with its parameters.
#[derive(Clone, Copy)]
pub enum Encoder {
    /// F32, F16, BF16: each weight written as it is; the function writes a row's bytes.
    Plain(fn(&[f32]) -> Vec<u8>),
    /// Q4_0, Q5_0, Q8_0: one f16 scale s per block of 32, values s·(q − levels/2) for q in
    /// [0, levels). `fitted`: s is the weighted least-squares fit; else s = max|x|/(levels/2 − 1),
    /// the importance ignored (llama.cpp's Q8_0).
    Symmetric { levels: u32, fitted: bool },
    /// Q4_1, Q5_1: f16 scale and min per block of 32, values s·q + m for q in [0, levels).
    Asymmetric { levels: u32 },
    /// IQ4_NL: one f16 scale per block of 32 on the non-linear levels `kvalues_iq4nl`.
    Iq4Nl,
    /// IQ4_XS: IQ4_NL's levels on eight sub-blocks of 32, each with a 6-bit scale code.
    Iq4Xs,
    /// Q2_K, Q4_K, Q5_K: sub-blocks of `sub` weights s·q − m, q in [0, levels), with unsigned
    /// scale and min codes up to `code_max` times the block's f16 `d` and `dmin`.
    KAsymmetric { sub: usize, levels: u32, code_max: i32 },
    /// Q3_K, Q6_K: sub-blocks of 16, s·q with q in [−levels/2, levels/2); signed scale codes in
    /// `codes` times the block's f16 `d`, stored plus `code_offset` (Q3_K's 6 bits; Q6_K's int8).
    KSymmetric { levels: u32, codes: (i32, i32), code_offset: i32 },
    /// IQ3_S, IQ3_XXS, IQ2_S, IQ2_XS: groups of 4 or 8 weights rounded together to a point of
    /// the type's grid.
    Vector(&'static IqGrid),
}

/// One type's row: everything the code asks of a type.
pub struct TypeTraits {
    pub qtype: QuantType,
    /// The GGUF spelling ("Q4_K", "IQ4_NL").
    pub name: &'static str,
    /// ggml's `enum ggml_type` value, stored in GGUF tensor infos.
    pub ggml_id: u32,
    /// llama.cpp's `general.file_type` (`enum llama_ftype`, LLAMA_FTYPE_MOSTLY_*) for a model
    /// mostly of this type.
    pub ftype: u32,
    /// Weights per block.
    pub block_size: usize,
    /// Bytes per block.
    pub block_bytes: usize,
    pub is_quantized: bool,
    /// The type llama-quantize substitutes when a row does not fit a k-quant's 256-wide blocks
    /// (`tensor_type_fallback` in llama.cpp's `src/llama-quant.cpp`, the version vendored in
    /// llama-cpp-python 0.3.36); the 32-wide types keep themselves.
    pub row_fallback: QuantType,
    /// Whether a types database built without a `--types` menu holds this type as a level.
    pub default_level: bool,
    /// The level a single-type plan takes for this type where the database does not hold it:
    /// a type of the same size.
    pub stand_in: Option<QuantType>,
    /// How blocks are encoded ([`blocks::choose`], [`blocks::encode_plain`]).
    pub encoder: Encoder,
    /// Decodes one block (ggml's `to_float`, its `dequantize_row_*` arithmetic).
    pub to_float: fn(&[u8], &mut [f32]),
    /// Writes one block from its grid and codes ([`blocks::pack`]); None for the unquantized types.
    pub pack: Option<fn(&Grid, &[u8], &mut [u8])>,
}

/// Every type's row, in the enum's order.
#[rustfmt::skip]
pub static TRAITS: [TypeTraits; 19] = {
    use Encoder::*;
    use QuantType::*;
    [
        TypeTraits {
            qtype: F32, name: "F32", ggml_id: 0, ftype: 0, block_size: 1, block_bytes: 4, is_quantized: false,
            row_fallback: F32, default_level: false, stand_in: None,
            encoder: Plain(blocks::encode_f32), to_float: blocks::decode_f32, pack: None,
        },
        TypeTraits {
            qtype: F16, name: "F16", ggml_id: 1, ftype: 1, block_size: 1, block_bytes: 2, is_quantized: false,
            row_fallback: F16, default_level: false, stand_in: None,
            encoder: Plain(blocks::encode_f16), to_float: blocks::decode_f16, pack: None,
        },
        TypeTraits {
            qtype: BF16, name: "BF16", ggml_id: 30, ftype: 32, block_size: 1, block_bytes: 2, is_quantized: false,
            row_fallback: BF16, default_level: false, stand_in: None,
            encoder: Plain(blocks::encode_bf16), to_float: blocks::decode_bf16, pack: None,
        },
        // Held by a types database only where a menu names it; elsewhere IQ4_NL, of the same
        // size, stands in for it.
        TypeTraits {
            qtype: Q4_0, name: "Q4_0", ggml_id: 2, ftype: 2, block_size: 32, block_bytes: 18, is_quantized: true,
            row_fallback: Q4_0, default_level: false, stand_in: Some(IQ4NL),
            encoder: Symmetric { levels: 16, fitted: true }, to_float: blocks::decode_q4_0, pack: Some(blocks::pack_q4_0),
        },
        TypeTraits {
            qtype: Q4_1, name: "Q4_1", ggml_id: 3, ftype: 3, block_size: 32, block_bytes: 20, is_quantized: true,
            row_fallback: Q4_1, default_level: true, stand_in: None,
            encoder: Asymmetric { levels: 16 }, to_float: blocks::decode_q4_1, pack: Some(blocks::pack_q4_1),
        },
        TypeTraits {
            qtype: Q5_0, name: "Q5_0", ggml_id: 6, ftype: 8, block_size: 32, block_bytes: 22, is_quantized: true,
            row_fallback: Q5_0, default_level: true, stand_in: None,
            encoder: Symmetric { levels: 32, fitted: true }, to_float: blocks::decode_q5_0, pack: Some(blocks::pack_q5_0),
        },
        TypeTraits {
            qtype: Q5_1, name: "Q5_1", ggml_id: 7, ftype: 9, block_size: 32, block_bytes: 24, is_quantized: true,
            row_fallback: Q5_1, default_level: true, stand_in: None,
            encoder: Asymmetric { levels: 32 }, to_float: blocks::decode_q5_1, pack: Some(blocks::pack_q5_1),
        },
        TypeTraits {
            qtype: Q8_0, name: "Q8_0", ggml_id: 8, ftype: 7, block_size: 32, block_bytes: 34, is_quantized: true,
            row_fallback: Q8_0, default_level: true, stand_in: None,
            encoder: Symmetric { levels: 256, fitted: false }, to_float: blocks::decode_q8_0, pack: Some(blocks::pack_q8_0),
        },
        TypeTraits {
            qtype: Q2K, name: "Q2_K", ggml_id: 10, ftype: 10, block_size: 256, block_bytes: 84, is_quantized: true,
            row_fallback: Q4_0, default_level: true, stand_in: None,
            encoder: KAsymmetric { sub: 16, levels: 4, code_max: 15 }, to_float: blocks::decode_q2_k, pack: Some(blocks::pack_q2_k),
        },
        // The file types of the k-quants are llama.cpp's _M mixes (Q3_K_M, Q4_K_M, Q5_K_M).
        TypeTraits {
            qtype: Q3K, name: "Q3_K", ggml_id: 11, ftype: 12, block_size: 256, block_bytes: 110, is_quantized: true,
            row_fallback: Q4_0, default_level: true, stand_in: None,
            encoder: KSymmetric { levels: 8, codes: (-32, 31), code_offset: 32 }, to_float: blocks::decode_q3_k, pack: Some(blocks::pack_q3_k),
        },
        TypeTraits {
            qtype: Q4K, name: "Q4_K", ggml_id: 12, ftype: 15, block_size: 256, block_bytes: 144, is_quantized: true,
            row_fallback: Q5_0, default_level: true, stand_in: None,
            encoder: KAsymmetric { sub: 32, levels: 16, code_max: 63 }, to_float: blocks::decode_q4_k, pack: Some(blocks::pack_q4_k),
        },
        TypeTraits {
            qtype: Q5K, name: "Q5_K", ggml_id: 13, ftype: 17, block_size: 256, block_bytes: 176, is_quantized: true,
            row_fallback: Q5_1, default_level: true, stand_in: None,
            encoder: KAsymmetric { sub: 32, levels: 32, code_max: 63 }, to_float: blocks::decode_q5_k, pack: Some(blocks::pack_q5_k),
        },
        TypeTraits {
            qtype: Q6K, name: "Q6_K", ggml_id: 14, ftype: 18, block_size: 256, block_bytes: 210, is_quantized: true,
            row_fallback: Q8_0, default_level: true, stand_in: None,
            encoder: KSymmetric { levels: 64, codes: (-128, 127), code_offset: 0 }, to_float: blocks::decode_q6_k, pack: Some(blocks::pack_q6_k),
        },
        // IQ4_NL's block is laid out as Q4_0's: the f16 scale, then 32 nibbles.
        TypeTraits {
            qtype: IQ4NL, name: "IQ4_NL", ggml_id: 20, ftype: 25, block_size: 32, block_bytes: 18, is_quantized: true,
            row_fallback: IQ4NL, default_level: true, stand_in: None,
            encoder: Iq4Nl, to_float: blocks::decode_iq4_nl, pack: Some(blocks::pack_q4_0),
        },
        TypeTraits {
            qtype: IQ4XS, name: "IQ4_XS", ggml_id: 23, ftype: 30, block_size: 256, block_bytes: 136, is_quantized: true,
            row_fallback: IQ4NL, default_level: true, stand_in: None,
            encoder: Iq4Xs, to_float: blocks::decode_iq4_xs, pack: Some(blocks::pack_iq4_xs),
        },
        TypeTraits {
            qtype: IQ3S, name: "IQ3_S", ggml_id: 21, ftype: 26, block_size: 256, block_bytes: 110, is_quantized: true,
            row_fallback: IQ4NL, default_level: true, stand_in: None,
            encoder: Vector(&iq::IQ3S), to_float: blocks::decode_iq3_s, pack: Some(blocks::pack_iq3_s),
        },
        TypeTraits {
            qtype: IQ3XXS, name: "IQ3_XXS", ggml_id: 18, ftype: 23, block_size: 256, block_bytes: 98, is_quantized: true,
            row_fallback: IQ4NL, default_level: true, stand_in: None,
            encoder: Vector(&iq::IQ3XXS), to_float: blocks::decode_iq3_xxs, pack: Some(blocks::pack_iq3_xxs),
        },
        // llama.cpp's IQ2_S file type is a mix of IQ2_XS tensors; IQ2_S tensors are its IQ2_M mix's.
        TypeTraits {
            qtype: IQ2S, name: "IQ2_S", ggml_id: 22, ftype: 29, block_size: 256, block_bytes: 82, is_quantized: true,
            row_fallback: IQ4NL, default_level: true, stand_in: None,
            encoder: Vector(&iq::IQ2S), to_float: blocks::decode_iq2_s, pack: Some(blocks::pack_iq2_s),
        },
        TypeTraits {
            qtype: IQ2XS, name: "IQ2_XS", ggml_id: 17, ftype: 20, block_size: 256, block_bytes: 74, is_quantized: true,
            row_fallback: IQ4NL, default_level: true, stand_in: None,
            encoder: Vector(&iq::IQ2XS), to_float: blocks::decode_iq2_xs, pack: Some(blocks::pack_iq2_xs),
        },
    ]
};

impl QuantType {
    /// This type's row of [`TRAITS`].
    #[inline]
    pub fn traits(self) -> &'static TypeTraits {
        &TRAITS[self as usize]
    }

    /// The point grid of this type, if its row encodes onto one (IQ3_S, IQ3_XXS, IQ2_S, IQ2_XS).
    pub fn vector_grid(self) -> Option<&'static IqGrid> {
        match self.traits().encoder {
            Encoder::Vector(q) => Some(q),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ggml::types::{ALL_TYPES, QUANTIZED_TYPES};

    #[test]
    fn the_rows_are_in_the_enums_order() {
        assert_eq!(TRAITS.len(), ALL_TYPES.len());
        for (i, (r, t)) in TRAITS.iter().zip(ALL_TYPES).enumerate() {
            assert_eq!((r.qtype, t as usize), (t, i), "{}", r.name);
            assert_eq!(r.is_quantized, r.block_size > 1, "{t}");
            assert_eq!(matches!(r.encoder, Encoder::Plain(_)), !r.is_quantized, "{t}");
            assert_eq!(r.pack.is_some(), r.is_quantized, "{t}");
        }
        // QUANTIZED_TYPES: every quantized type once, by bits per weight.
        let mut q: Vec<QuantType> = ALL_TYPES.into_iter().filter(|t| t.is_quantized()).collect();
        q.sort_by(|a, b| a.bits_per_weight().total_cmp(&b.bits_per_weight()));
        assert_eq!(q.len(), QUANTIZED_TYPES.len());
        assert!(QUANTIZED_TYPES.windows(2).all(|p| p[0].bits_per_weight() <= p[1].bits_per_weight()));
        assert!(q.iter().all(|t| QUANTIZED_TYPES.contains(t)));
        // A fall-back is a 32-wide type that keeps itself; a stand-in costs the same.
        for t in QUANTIZED_TYPES {
            let f = t.row_fallback();
            assert!(f.is_quantized() && f.block_size() == 32 && f.row_fallback() == f, "{t}");
            assert!(
                t.stand_in().is_none_or(|s| s.bits_per_weight() == t.bits_per_weight() && s.default_level()),
                "{t}"
            );
        }
    }
}
