//! The tensor types a GGUF file can hold that we read and write, and what the code asks of them:
//! every property is read from the type's row of traits (`traits.rs`, as ggml's
//! `type_traits[]`). Adding a type is adding a variant here and its row there.

use std::fmt;
use std::str::FromStr;

/// A GGUF tensor type. Quantized types store rows as blocks of 32 (legacy, IQ4_NL) or 256
/// (k-quants, IQ4_XS, IQ3_S, IQ3_XXS, IQ2_S, IQ2_XS) weights; a row must be a whole number of blocks.
/// The variants are in the traits table's order: a type's row is `TRAITS[t as usize]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuantType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    IQ4NL,
    IQ4XS,
    IQ3S,
    IQ3XXS,
    IQ2S,
    IQ2XS,
}

/// Every type, unquantized first (the enum's order).
pub const ALL_TYPES: [QuantType; 19] = [
    QuantType::F32,
    QuantType::F16,
    QuantType::BF16,
    QuantType::Q4_0,
    QuantType::Q4_1,
    QuantType::Q5_0,
    QuantType::Q5_1,
    QuantType::Q8_0,
    QuantType::Q2K,
    QuantType::Q3K,
    QuantType::Q4K,
    QuantType::Q5K,
    QuantType::Q6K,
    QuantType::IQ4NL,
    QuantType::IQ4XS,
    QuantType::IQ3S,
    QuantType::IQ3XXS,
    QuantType::IQ2S,
    QuantType::IQ2XS,
];

/// The quantized types we encode, from fewest to most bits per weight.
pub const QUANTIZED_TYPES: [QuantType; 16] = [
    QuantType::IQ2XS,
    QuantType::IQ2S,
    QuantType::Q2K,
    QuantType::IQ3XXS,
    QuantType::Q3K,
    QuantType::IQ3S,
    QuantType::IQ4XS,
    QuantType::Q4K,
    QuantType::Q4_0,
    QuantType::IQ4NL,
    QuantType::Q4_1,
    QuantType::Q5K,
    QuantType::Q5_0,
    QuantType::Q5_1,
    QuantType::Q6K,
    QuantType::Q8_0,
];

impl QuantType {
    /// ggml's `enum ggml_type` value, stored in GGUF tensor infos.
    #[inline]
    pub fn ggml_id(self) -> u32 {
        self.traits().ggml_id
    }

    pub fn from_ggml_id(id: u32) -> Option<Self> {
        ALL_TYPES.into_iter().find(|t| t.ggml_id() == id)
    }

    /// llama.cpp's `general.file_type` (LLAMA_FTYPE_MOSTLY_*) for a model mostly of this type.
    #[inline]
    pub fn ftype(self) -> u32 {
        self.traits().ftype
    }

    /// The GGUF spelling ("Q4_K", "IQ4_NL").
    #[inline]
    pub fn name(self) -> &'static str {
        self.traits().name
    }

    /// Parses a type name, case-insensitively ("q4_k", "Q4_K").
    pub fn from_name(s: &str) -> Option<Self> {
        ALL_TYPES.into_iter().find(|t| t.name().eq_ignore_ascii_case(s.trim()))
    }

    /// Parses a type name, with an error that lists the known ones.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::from_name(s).ok_or_else(|| {
            let known: Vec<&str> = ALL_TYPES.iter().map(|t| t.name()).collect();
            format!("unknown tensor type '{s}' (known: {})", known.join(", "))
        })
    }

    /// Weights per block.
    #[inline]
    pub fn block_size(self) -> usize {
        self.traits().block_size
    }

    /// Bytes per block.
    #[inline]
    pub fn block_bytes(self) -> usize {
        self.traits().block_bytes
    }

    /// Bytes taken by `n` weights (a whole number of blocks).
    pub fn bytes(self, n: usize) -> usize {
        n / self.block_size() * self.block_bytes()
    }

    /// Bits per weight, scales included.
    pub fn bits_per_weight(self) -> f64 {
        8.0 * self.block_bytes() as f64 / self.block_size() as f64
    }

    /// Whether rows of `cols` weights are a whole number of this type's blocks.
    pub fn fits(self, cols: usize) -> bool {
        cols > 0 && cols.is_multiple_of(self.block_size())
    }

    #[inline]
    pub fn is_quantized(self) -> bool {
        self.traits().is_quantized
    }

    /// The type llama-quantize substitutes when a row does not fit this type's blocks
    /// (its row's `row_fallback`).
    pub fn row_fallback(self) -> Self {
        self.traits().row_fallback
    }

    /// This type if a row of `cols` fits it, else llama-quantize's fall-back (if that fits).
    pub fn for_row_width(self, cols: usize) -> Option<Self> {
        if self.fits(cols) {
            Some(self)
        } else {
            Some(self.row_fallback()).filter(|t| t.fits(cols))
        }
    }

    /// Whether a types database built without a menu holds this type as a level.
    pub fn default_level(self) -> bool {
        self.traits().default_level
    }

    /// The level a single-type plan takes for this type where the database does not hold it.
    pub fn stand_in(self) -> Option<Self> {
        self.traits().stand_in
    }
}

impl fmt::Display for QuantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for QuantType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

/// Quantized types whose blocks tile a row of `cols` weights.
pub fn allowed_types(cols: usize) -> Vec<QuantType> {
    QUANTIZED_TYPES.into_iter().filter(|t| t.fits(cols)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids_round_trip() {
        for t in ALL_TYPES {
            assert_eq!(QuantType::from_name(t.name()), Some(t));
            assert_eq!(t.name().parse::<QuantType>(), Ok(t));
            assert_eq!(QuantType::from_ggml_id(t.ggml_id()), Some(t));
        }
        assert_eq!(QuantType::from_name("q4_k"), Some(QuantType::Q4K));
        assert_eq!(QuantType::from_name("Q4K"), None);
        assert!(QuantType::parse("Q4K").unwrap_err().contains("known: F32, F16, BF16, Q4_0"));
    }

    #[test]
    fn row_width_decides_the_types() {
        assert_eq!(allowed_types(576).len(), 6); // SmolLM2's hidden size: no k-quant fits
        assert_eq!(allowed_types(1536).len(), 16);
        assert_eq!(QuantType::IQ4XS.for_row_width(576), Some(QuantType::IQ4NL));
        assert_eq!(QuantType::IQ3XXS.for_row_width(576), Some(QuantType::IQ4NL));
        assert_eq!(QuantType::IQ3XXS.for_row_width(1536), Some(QuantType::IQ3XXS));
        assert!(allowed_types(48).is_empty());
        assert_eq!(QuantType::Q4K.for_row_width(576), Some(QuantType::Q5_0));
        assert_eq!(QuantType::Q3K.for_row_width(576), Some(QuantType::Q4_0));
        assert_eq!(QuantType::Q3K.for_row_width(1536), Some(QuantType::Q3K));
        assert_eq!(QuantType::Q4K.for_row_width(48), None);
    }

    #[test]
    fn the_database_levels_leave_out_only_q4_0_which_iq4_nl_stands_in_for() {
        let left_out: Vec<QuantType> = QUANTIZED_TYPES.into_iter().filter(|t| !t.default_level()).collect();
        assert_eq!(left_out, [QuantType::Q4_0]);
        assert_eq!(QuantType::Q4_0.stand_in(), Some(QuantType::IQ4NL));
        assert!(ALL_TYPES.iter().all(|&t| t == QuantType::Q4_0 || t.stand_in().is_none()));
    }

    #[test]
    fn sizes_match_ggml() {
        assert_eq!(QuantType::Q4K.bits_per_weight(), 4.5);
        assert_eq!(QuantType::Q3K.bits_per_weight(), 3.4375);
        assert_eq!(QuantType::Q6K.bits_per_weight(), 6.5625);
        assert_eq!(QuantType::Q8_0.bytes(64), 68);
        assert_eq!(QuantType::IQ4XS.bits_per_weight(), 4.25);
        assert_eq!(QuantType::IQ3S.bits_per_weight(), 3.4375);
        assert_eq!(QuantType::IQ3XXS.bits_per_weight(), 3.0625);
        assert_eq!(QuantType::IQ3XXS.ggml_id(), 18);
        assert_eq!((QuantType::IQ2S.bits_per_weight(), QuantType::IQ2S.ggml_id()), (2.5625, 22));
        assert_eq!((QuantType::IQ2XS.bits_per_weight(), QuantType::IQ2XS.ggml_id()), (2.3125, 17));
        assert_eq!(QuantType::IQ2XS.for_row_width(576), Some(QuantType::IQ4NL));
        // ggml's `type_traits[]` (ggml.c: blck_size, type_size), `enum ggml_type` (ggml.h) and
        // llama.cpp's `enum llama_ftype` (llama.h; the k-quants as their _M mixes, IQ2_S as
        // IQ2_M), written out apart from the rows.
        let ggml: [(&str, usize, usize, u32, u32); 19] = [
            ("F32", 1, 4, 0, 0),
            ("F16", 1, 2, 1, 1),
            ("BF16", 1, 2, 30, 32),
            ("Q4_0", 32, 18, 2, 2),
            ("Q4_1", 32, 20, 3, 3),
            ("Q5_0", 32, 22, 6, 8),
            ("Q5_1", 32, 24, 7, 9),
            ("Q8_0", 32, 34, 8, 7),
            ("Q2_K", 256, 84, 10, 10),
            ("Q3_K", 256, 110, 11, 12),
            ("Q4_K", 256, 144, 12, 15),
            ("Q5_K", 256, 176, 13, 17),
            ("Q6_K", 256, 210, 14, 18),
            ("IQ4_NL", 32, 18, 20, 25),
            ("IQ4_XS", 256, 136, 23, 30),
            ("IQ3_S", 256, 110, 21, 26),
            ("IQ3_XXS", 256, 98, 18, 23),
            ("IQ2_S", 256, 82, 22, 29),
            ("IQ2_XS", 256, 74, 17, 20),
        ];
        for (name, block_size, block_bytes, ggml_id, ftype) in ggml {
            let t = QuantType::from_name(name).unwrap();
            assert_eq!(
                (t.name(), t.block_size(), t.block_bytes(), t.ggml_id(), t.ftype()),
                (name, block_size, block_bytes, ggml_id, ftype)
            );
        }
    }
}
