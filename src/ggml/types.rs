//! The tensor types a GGUF file can hold that we read and write, with ggml's numbering and block
//! sizes (`ggml/src/ggml-common.h`, `enum ggml_type`).

use std::fmt;

/// A GGUF tensor type. Quantized types store rows as blocks of 32 (legacy, IQ4_NL) or 256
/// (k-quants, IQ4_XS, IQ3_S, IQ3_XXS, IQ2_S, IQ2_XS) weights; a row must be a whole number of blocks.
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

/// Every type, unquantized first.
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
    pub fn ggml_id(self) -> u32 {
        use QuantType::*;
        match self {
            F32 => 0,
            F16 => 1,
            Q4_0 => 2,
            Q4_1 => 3,
            Q5_0 => 6,
            Q5_1 => 7,
            Q8_0 => 8,
            Q2K => 10,
            Q3K => 11,
            Q4K => 12,
            Q5K => 13,
            Q6K => 14,
            IQ4NL => 20,
            IQ4XS => 23,
            IQ3S => 21,
            IQ3XXS => 18,
            IQ2XS => 17,
            IQ2S => 22,
            BF16 => 30,
        }
    }

    pub fn from_ggml_id(id: u32) -> Option<Self> {
        ALL_TYPES.into_iter().find(|t| t.ggml_id() == id)
    }

    /// The GGUF spelling ("Q4_K", "IQ4_NL").
    pub fn name(self) -> &'static str {
        use QuantType::*;
        match self {
            F32 => "F32",
            F16 => "F16",
            BF16 => "BF16",
            Q4_0 => "Q4_0",
            Q4_1 => "Q4_1",
            Q5_0 => "Q5_0",
            Q5_1 => "Q5_1",
            Q8_0 => "Q8_0",
            Q2K => "Q2_K",
            Q3K => "Q3_K",
            Q4K => "Q4_K",
            Q5K => "Q5_K",
            Q6K => "Q6_K",
            IQ4NL => "IQ4_NL",
            IQ4XS => "IQ4_XS",
            IQ3S => "IQ3_S",
            IQ3XXS => "IQ3_XXS",
            IQ2S => "IQ2_S",
            IQ2XS => "IQ2_XS",
        }
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
    pub fn block_size(self) -> usize {
        use QuantType::*;
        match self {
            F32 | F16 | BF16 => 1,
            Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | IQ4NL => 32,
            Q2K | Q3K | Q4K | Q5K | Q6K | IQ4XS | IQ3S | IQ3XXS | IQ2S | IQ2XS => 256,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        use QuantType::*;
        match self {
            F32 => 4,
            F16 | BF16 => 2,
            Q4_0 | IQ4NL => 18,
            Q4_1 => 20,
            Q5_0 => 22,
            Q5_1 => 24,
            Q8_0 => 34,
            IQ4XS => 136,
            IQ3S => 110,
            IQ3XXS => 98,
            IQ2S => 82,
            IQ2XS => 74,
            Q2K => 84,
            Q3K => 110,
            Q4K => 144,
            Q5K => 176,
            Q6K => 210,
        }
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

    pub fn is_quantized(self) -> bool {
        self.block_size() > 1
    }

    /// The type llama-quantize substitutes when a row does not fit a k-quant's 256-wide blocks
    /// (`tensor_type_fallback` in llama.cpp's `src/llama-quant.cpp`, the version vendored in
    /// llama-cpp-python 0.3.36); the 32-wide types are kept.
    pub fn row_fallback(self) -> Self {
        use QuantType::*;
        match self {
            Q2K | Q3K => Q4_0,
            IQ4XS | IQ3S | IQ3XXS | IQ2S | IQ2XS => IQ4NL,
            Q4K => Q5_0,
            Q5K => Q5_1,
            Q6K => Q8_0,
            t => t,
        }
    }

    /// This type if a row of `cols` fits it, else llama-quantize's fall-back (if that fits).
    pub fn for_row_width(self, cols: usize) -> Option<Self> {
        if self.fits(cols) {
            Some(self)
        } else {
            Some(self.row_fallback()).filter(|t| t.fits(cols))
        }
    }
}

impl fmt::Display for QuantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
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
            assert_eq!(QuantType::from_ggml_id(t.ggml_id()), Some(t));
        }
        assert_eq!(QuantType::from_name("q4_k"), Some(QuantType::Q4K));
        assert_eq!(QuantType::from_name("Q4K"), None);
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
    }
}
