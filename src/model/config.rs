//! The hyper-parameters of a decoder-only transformer, whatever file they came from.
//!
//! `Config` is canonical: the GGUF loader fills it from `llama.*` / `qwen2.*` metadata keys and the
//! Hugging Face loader from `config.json` (through [`HfConfig`], whose serde names equal the keys of
//! `config.json`). Everything downstream reads only `Config`.

use serde::Deserialize;

use super::ModelError;

/// The architectures we run. All are pre-norm RMSNorm blocks with gated MLPs and RoPE; what
/// sets them apart is one row of [`ARCHS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Qwen2,
    Qwen3,
    Gemma2,
    Gemma3,
    Phi3,
    SmolLM3,
}

/// The activation of the MLP's gate: `down(act(gate(x)) ⊙ up(x))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// SwiGLU (`silu` in config.json).
    Silu,
    /// GeGLU with the tanh approximation of GELU (`gelu_pytorch_tanh`).
    GeluTanh,
}

impl Activation {
    /// config.json's `hidden_act` / `hidden_activation` name.
    pub fn hf_name(self) -> &'static str {
        match self {
            Activation::Silu => "silu",
            Activation::GeluTanh => "gelu_pytorch_tanh",
        }
    }
}

/// How the GGUF loader reads an optional hyper-parameter of one architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgufOptional {
    /// Not read: the architecture has none.
    Absent,
    /// The key's value, else the default of the architecture's config.json class
    /// ([`HF_DEFAULTS`], under the config.json name), which llama.cpp assumes too.
    OrDefault,
    /// The key's value where it is there and not 0; none otherwise.
    NonZero,
}

/// Everything that distinguishes one architecture: names in each format, the block's extras,
/// and how llama.cpp's converter treats it.
#[derive(Debug)]
pub struct ArchFacts {
    pub arch: Arch,
    /// `general.architecture` in GGUF.
    pub gguf: &'static str,
    /// config.json's `architectures` classes and `model_type`s loaded as this architecture; the
    /// first of each is what we write.
    pub hf_classes: &'static [&'static str],
    pub model_types: &'static [&'static str],
    /// Biases on the q/k/v projections.
    pub qkv_bias: bool,
    /// An RMSNorm over each query and key head before RoPE (`q_norm`, `k_norm`).
    pub qk_norm: bool,
    /// The converter permutes q/k rows so that llama.cpp's RoPE rotates adjacent pairs (else
    /// llama.cpp rotates i with i + d/2, as Hugging Face does).
    pub gguf_rope_interleaved: bool,
    /// Converted by the converter's llama class: `vocab_size` and `rope.dimension_count` keys,
    /// tokenizer_config.json's `add_prefix_space`, BOS off for 49152-token vocabularies.
    pub llama_converter: bool,
    pub activation: Activation,
    /// Gemma: Hugging Face stores each RMSNorm weight as `w` and scales by `1 + w`; GGUF files
    /// (and our models) hold `1 + w`.
    pub norm_plus_one: bool,
    /// Gemma: token embeddings are multiplied by √hidden before the first block.
    pub embed_scale: bool,
    /// Gemma 2/3: an RMSNorm on the attention's and the MLP's outputs before each residual add
    /// (`post_attention_norm`, `post_ffw_norm`).
    pub post_norms: bool,
    /// The sliding-window layers of llama.cpp's default pattern: every `n`-th block is global,
    /// the others windowed (0: llama.cpp runs no window for this architecture).
    pub swa_pattern: usize,
    /// config.json's `tie_word_embeddings` when it does not say.
    pub tied_by_default: bool,
    /// Phi-3: q, k and v are one linear (`attn_qkv`), gate and up one (`ffn_up`, gate's rows
    /// first), in both formats.
    pub fused: bool,
    /// config.json's `sliding_window` (when below the context) covers every block (Mistral,
    /// Phi-3). Where this is false and there is no [`Self::swa_pattern`], a window that
    /// config.json turns on (`use_sliding_window`) is refused.
    pub window_every_block: bool,
    /// GGUF `attention.sliding_window` (llama.cpp runs a window only where `swa_pattern` > 0).
    pub gguf_sliding_window: GgufOptional,
    /// Gemma 2's soft cap on the attention scores (GGUF `attn_logit_softcapping`); config.json's
    /// is refused where this is `Absent`.
    pub attn_softcap: GgufOptional,
    /// The soft cap on the logits (GGUF `final_logit_softcapping`).
    pub final_softcap: GgufOptional,
    /// Gemma 3: the windowed blocks have their own RoPE base (GGUF `rope.freq_base_swa`,
    /// config.json `rope_local_base_freq`; [`HF_DEFAULTS`]' where neither says).
    pub rope_theta_swa: bool,
    /// llama.cpp scales queries by 1/√(hidden/heads) rather than 1/√head_dim in models of this
    /// many blocks (Gemma's 27B, as their `query_pre_attn_scalar` says).
    pub gguf_wide_query_scale_blocks: Option<usize>,
    /// config.json's name for the activation (`hidden_act`; Gemma's `hidden_activation`).
    pub hf_activation_key: &'static str,
    /// config.json states the attention scale as `query_pre_attn_scalar`, written with both
    /// soft caps (null where none).
    pub hf_query_pre_attn_scalar: bool,
    /// config.json keys written `false` when the source does not set them.
    pub hf_false_keys: &'static [&'static str],
    /// Gemma 3: the converter drops the embedding rows beyond the vocabulary.
    pub converter_trims_embedding: bool,
    /// Gemma: the converter writes `add_space_prefix` false for a SentencePiece vocabulary.
    pub converter_spm_no_space_prefix: bool,
    /// Phi-3: the converter keeps a SentencePiece vocabulary's added tokens as written (CONTROL
    /// only when special) and reads tokenizer.json's added tokens too.
    pub converter_added_tokens_as_written: bool,
    /// SmolLM3: every `n`-th block (counting from 1) runs without RoPE, as llama.cpp assumes for
    /// the architecture; config.json lists them (`no_rope_layers`). 0: every block rotates.
    pub nope_interval: usize,
}

const LLAMA_LIKE: ArchFacts = ArchFacts {
    arch: Arch::Llama,
    gguf: "llama",
    hf_classes: &[],
    model_types: &[],
    qkv_bias: false,
    qk_norm: false,
    gguf_rope_interleaved: false,
    llama_converter: false,
    activation: Activation::Silu,
    norm_plus_one: false,
    embed_scale: false,
    post_norms: false,
    swa_pattern: 0,
    tied_by_default: false,
    fused: false,
    window_every_block: false,
    gguf_sliding_window: GgufOptional::Absent,
    attn_softcap: GgufOptional::Absent,
    final_softcap: GgufOptional::Absent,
    rope_theta_swa: false,
    gguf_wide_query_scale_blocks: None,
    hf_activation_key: "hidden_act",
    hf_query_pre_attn_scalar: false,
    hf_false_keys: &[],
    converter_trims_embedding: false,
    converter_spm_no_space_prefix: false,
    converter_added_tokens_as_written: false,
    nope_interval: 0,
};

pub const ARCHS: [ArchFacts; 7] = [
    ArchFacts {
        hf_classes: &["LlamaForCausalLM", "MistralForCausalLM"],
        model_types: &["llama", "mistral"],
        gguf_rope_interleaved: true,
        llama_converter: true,
        window_every_block: true,
        hf_false_keys: &["attention_bias", "mlp_bias"],
        ..LLAMA_LIKE
    },
    ArchFacts {
        arch: Arch::Qwen2,
        gguf: "qwen2",
        hf_classes: &["Qwen2ForCausalLM"],
        model_types: &["qwen2"],
        qkv_bias: true,
        ..LLAMA_LIKE
    },
    ArchFacts {
        arch: Arch::Qwen3,
        gguf: "qwen3",
        hf_classes: &["Qwen3ForCausalLM"],
        model_types: &["qwen3"],
        qk_norm: true,
        ..LLAMA_LIKE
    },
    ArchFacts {
        arch: Arch::Gemma2,
        gguf: "gemma2",
        hf_classes: &["Gemma2ForCausalLM"],
        model_types: &["gemma2"],
        activation: Activation::GeluTanh,
        norm_plus_one: true,
        embed_scale: true,
        post_norms: true,
        swa_pattern: 2,
        tied_by_default: true,
        gguf_sliding_window: GgufOptional::OrDefault,
        attn_softcap: GgufOptional::OrDefault,
        final_softcap: GgufOptional::OrDefault,
        gguf_wide_query_scale_blocks: Some(46),
        hf_activation_key: "hidden_activation",
        hf_query_pre_attn_scalar: true,
        converter_spm_no_space_prefix: true,
        ..LLAMA_LIKE
    },
    ArchFacts {
        arch: Arch::Gemma3,
        gguf: "gemma3",
        // The vision-language class is read for its text model, which is what is written.
        hf_classes: &["Gemma3ForCausalLM", "Gemma3ForConditionalGeneration"],
        model_types: &["gemma3_text", "gemma3"],
        qk_norm: true,
        activation: Activation::GeluTanh,
        norm_plus_one: true,
        embed_scale: true,
        post_norms: true,
        swa_pattern: 6,
        tied_by_default: true,
        gguf_sliding_window: GgufOptional::NonZero,
        final_softcap: GgufOptional::NonZero,
        rope_theta_swa: true,
        gguf_wide_query_scale_blocks: Some(62),
        hf_activation_key: "hidden_activation",
        hf_query_pre_attn_scalar: true,
        converter_trims_embedding: true,
        converter_spm_no_space_prefix: true,
        ..LLAMA_LIKE
    },
    ArchFacts {
        arch: Arch::Phi3,
        gguf: "phi3",
        hf_classes: &["Phi3ForCausalLM"],
        model_types: &["phi3"],
        fused: true,
        window_every_block: true,
        converter_added_tokens_as_written: true,
        ..LLAMA_LIKE
    },
    ArchFacts {
        arch: Arch::SmolLM3,
        gguf: "smollm3",
        hf_classes: &["SmolLM3ForCausalLM"],
        model_types: &["smollm3"],
        // Converted by the converter's llama class, under its own name.
        gguf_rope_interleaved: true,
        llama_converter: true,
        tied_by_default: true,
        nope_interval: 4,
        ..LLAMA_LIKE
    },
];

impl Arch {
    pub fn facts(self) -> &'static ArchFacts {
        ARCHS.iter().find(|f| f.arch == self).expect("every architecture has a row")
    }

    /// The architecture name as GGUF's `general.architecture` spells it.
    pub fn gguf_name(self) -> &'static str {
        self.facts().gguf
    }

    pub fn from_gguf_name(name: &str) -> Result<Self, ModelError> {
        ARCHS.iter().find(|f| f.gguf == name).map(|f| f.arch).ok_or_else(|| {
            ModelError::UnsupportedArchitecture(format!(
                "GGUF architecture '{name}' (supported: {})",
                ARCHS.iter().map(|f| f.gguf).collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// The architecture of a config.json `architectures` class or `model_type`.
    pub fn from_hf_name(name: &str) -> Result<Self, ModelError> {
        ARCHS.iter().find(|f| f.hf_classes.contains(&name) || f.model_types.contains(&name)).map(|f| f.arch).ok_or_else(
            || {
                ModelError::UnsupportedArchitecture(format!(
                    "config.json architecture '{name}' (supported: {})",
                    ARCHS.iter().flat_map(|f| f.hf_classes.iter().copied()).collect::<Vec<_>>().join(", ")
                ))
            },
        )
    }

    /// What this architecture's config.json class takes for `key` when config.json leaves it
    /// out ([`HF_DEFAULTS`] of the first `model_type`).
    pub fn hf_default(self, key: &str) -> Option<f64> {
        let model_type = self.facts().model_types.first()?;
        let (_, defaults) = HF_DEFAULTS.iter().find(|(t, _)| t == model_type)?;
        defaults.iter().find(|(k, _)| *k == key).map(|&(_, v)| v).filter(|v| !v.is_nan())
    }

    /// Whether q/k/v projections carry biases.
    pub fn qkv_bias(self) -> bool {
        self.facts().qkv_bias
    }
}

/// Values of [`HF_DEFAULTS`] that transformers derives from others: `num_key_value_heads` from
/// `num_attention_heads`, `head_dim` from `hidden_size / num_attention_heads`.
pub const DERIVED: f64 = f64::NAN;

/// What transformers' (5.24) configuration class of each `model_type` takes for the keys we read
/// when config.json leaves them out — llama.cpp's converter reads config.json through it, so
/// these also decide which keys it writes. (Gemma 3's vision-language checkpoints give only
/// what differs from these.)
pub const HF_DEFAULTS: [(&str, &[(&str, f64)]); 8] = [
    (
        "llama",
        &[
            ("vocab_size", 32000.0),
            ("hidden_size", 4096.0),
            ("intermediate_size", 11008.0),
            ("num_hidden_layers", 32.0),
            ("num_attention_heads", 32.0),
            ("num_key_value_heads", DERIVED),
            ("head_dim", DERIVED),
            ("max_position_embeddings", 2048.0),
            ("rms_norm_eps", 1e-6),
            ("rope_theta", 10000.0),
        ],
    ),
    (
        "mistral",
        &[
            ("vocab_size", 32000.0),
            ("hidden_size", 4096.0),
            ("intermediate_size", 14336.0),
            ("num_hidden_layers", 32.0),
            ("num_attention_heads", 32.0),
            ("num_key_value_heads", 8.0),
            ("head_dim", DERIVED),
            ("max_position_embeddings", 131072.0),
            ("rms_norm_eps", 1e-6),
            ("sliding_window", 4096.0),
            ("rope_theta", 10000.0),
        ],
    ),
    (
        "qwen2",
        &[
            ("vocab_size", 151936.0),
            ("hidden_size", 4096.0),
            ("intermediate_size", 22016.0),
            ("num_hidden_layers", 32.0),
            ("num_attention_heads", 32.0),
            ("num_key_value_heads", 32.0),
            ("max_position_embeddings", 32768.0),
            ("rms_norm_eps", 1e-6),
            ("rope_theta", 10000.0),
        ],
    ),
    (
        "qwen3",
        &[
            ("vocab_size", 151936.0),
            ("hidden_size", 4096.0),
            ("intermediate_size", 22016.0),
            ("num_hidden_layers", 32.0),
            ("num_attention_heads", 32.0),
            ("num_key_value_heads", 32.0),
            ("head_dim", 128.0),
            ("max_position_embeddings", 32768.0),
            ("rms_norm_eps", 1e-6),
            ("rope_theta", 10000.0),
        ],
    ),
    (
        "gemma2",
        &[
            ("vocab_size", 256000.0),
            ("hidden_size", 2304.0),
            ("intermediate_size", 9216.0),
            ("num_hidden_layers", 26.0),
            ("num_attention_heads", 8.0),
            ("num_key_value_heads", 4.0),
            ("head_dim", 256.0),
            ("max_position_embeddings", 8192.0),
            ("rms_norm_eps", 1e-6),
            ("sliding_window", 4096.0),
            ("query_pre_attn_scalar", 256.0),
            ("attn_logit_softcapping", 50.0),
            ("final_logit_softcapping", 30.0),
            ("rope_theta", 10000.0),
        ],
    ),
    (
        "gemma3_text",
        &[
            ("vocab_size", 262208.0),
            ("hidden_size", 2304.0),
            ("intermediate_size", 9216.0),
            ("num_hidden_layers", 26.0),
            ("num_attention_heads", 8.0),
            ("num_key_value_heads", 4.0),
            ("head_dim", 256.0),
            ("max_position_embeddings", 131072.0),
            ("rms_norm_eps", 1e-6),
            ("sliding_window", 4096.0),
            ("query_pre_attn_scalar", 256.0),
            ("rope_theta", 1_000_000.0),
            ("rope_local_base_freq", 10000.0),
        ],
    ),
    (
        "phi3",
        &[
            ("vocab_size", 32064.0),
            ("hidden_size", 3072.0),
            ("intermediate_size", 8192.0),
            ("num_hidden_layers", 32.0),
            ("num_attention_heads", 32.0),
            ("num_key_value_heads", DERIVED),
            ("max_position_embeddings", 4096.0),
            ("rms_norm_eps", 1e-5),
            ("rope_theta", 10000.0),
        ],
    ),
    (
        "smollm3",
        &[
            ("vocab_size", 128256.0),
            ("hidden_size", 2048.0),
            ("intermediate_size", 11008.0),
            ("num_hidden_layers", 36.0),
            ("num_attention_heads", 16.0),
            ("num_key_value_heads", 4.0),
            ("max_position_embeddings", 32768.0),
            ("rms_norm_eps", 1e-6),
            ("rope_theta", 2_000_000.0),
        ],
    ),
];

/// `json` (a config.json) with the defaults of its `model_type` filled in where it says nothing.
/// RoPE keys are filled only when the file keeps RoPE in neither form (`rope_parameters`).
pub fn with_hf_defaults(json: &mut serde_json::Value) {
    let model_type = json.get("model_type").and_then(serde_json::Value::as_str).unwrap_or("").to_string();
    let Some(defaults) = HF_DEFAULTS.iter().find(|(t, _)| *t == model_type).map(|(_, d)| *d) else { return };
    let Some(obj) = json.as_object_mut() else { return };
    let has_parameters = obj.get("rope_parameters").is_some_and(|p| p.is_object());
    for &(k, v) in defaults {
        if obj.contains_key(k) || (has_parameters && k.starts_with("rope_")) {
            continue;
        }
        let n = |k: &str| obj.get(k).and_then(serde_json::Value::as_u64);
        let v = match (k, v.is_nan()) {
            ("num_key_value_heads", true) => n("num_attention_heads").map(|h| h as f64),
            ("head_dim", true) => {
                n("hidden_size").zip(n("num_attention_heads")).filter(|(_, h)| *h > 0).map(|(d, h)| (d / h) as f64)
            }
            _ => Some(v),
        };
        if let Some(v) = v {
            obj.insert(
                k.into(),
                if v.fract() == 0.0 && v.abs() < 1e15 { serde_json::json!(v as u64) } else { serde_json::json!(v) },
            );
        }
    }
}

/// llama3-style RoPE frequency scaling ("rope_type": "llama3" in config.json).
#[derive(Debug, Clone, PartialEq)]
pub struct Llama3RopeScaling {
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub original_max_position_embeddings: usize,
}

/// How RoPE pairs the dimensions of a head.
///
/// Hugging Face checkpoints rotate dimension `i` with `i + d/2` (half-split, "NeoX" style).
/// llama.cpp's converter permutes the rows of llama's Q and K so that it can rotate adjacent pairs
/// `(2i, 2i+1)` instead; qwen2 GGUFs keep the half-split layout. We run weights as stored and
/// remember which layout they are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeLayout {
    HalfSplit,
    Interleaved,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub arch: Arch,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_layout: RopeLayout,
    /// Per-frequency divisors of the RoPE angle (llama3 scaling, GGUF `rope_freqs.weight`; or
    /// LongRoPE's short factors, `rope_factors_short.weight`).
    pub rope_freq_factors: Option<Vec<f32>>,
    /// LongRoPE (Phi-3): the divisors for sequences longer than `rope_original_context`
    /// (`rope_factors_long.weight`), and the factor on cos and sin at every length.
    pub rope_long_factors: Option<Vec<f32>>,
    pub rope_original_context: usize,
    pub rope_attn_factor: f64,
    /// The longest context the model was trained for.
    pub context_length: usize,
    pub tie_word_embeddings: bool,
    /// The sliding window (Mistral, Gemma): in a windowed block each token attends to this many
    /// tokens, itself included.
    pub sliding_window: Option<usize>,
    /// Which blocks are windowed (Gemma's interleaving); empty: every block (Mistral).
    pub sliding_layers: Vec<bool>,
    /// The RoPE base of the windowed blocks where it differs from `rope_theta` (Gemma 3).
    pub rope_theta_swa: Option<f64>,
    /// The blocks that run without RoPE (SmolLM3's NoPE blocks); empty: none.
    pub nope_layers: Vec<bool>,
    /// Linear RoPE scaling of the global blocks: positions are divided by it (1: none).
    pub rope_linear_factor: f64,
    /// The factor on q·kᵀ before the softmax: 1/√head_dim unless the model sets its own
    /// (Gemma's `query_pre_attn_scalar`).
    pub attention_scale: f64,
    /// Gemma 2's soft caps, `c · tanh(x / c)`, on the attention scores and on the logits.
    pub attn_softcap: Option<f64>,
    pub final_softcap: Option<f64>,
}

/// The largest size of any one dimension (vocabulary, hidden, intermediate, heads, head
/// dimension): far beyond any model, small enough that products of two stay exact.
pub const MAX_DIM: usize = 1 << 24;
/// The most blocks a model may have.
pub const MAX_LAYERS: usize = 1 << 12;

impl Config {
    /// The number of parameters of every tensor a model of this configuration runs (the
    /// embedding and head counted once when tied): what [`super::Model::n_params`] counts, without
    /// the tensors.
    pub fn n_params(&self) -> usize {
        let (h, hd) = (self.hidden_size, self.head_dim);
        let facts = self.arch.facts();
        let block: usize = super::block_linears(self)
            .iter()
            .map(|&(kind, rows, cols)| {
                rows * cols + if self.arch.qkv_bias() && kind.is_attention_input() { rows } else { 0 }
            })
            .sum::<usize>()
            + 2 * h
            + if facts.qk_norm { 2 * hd } else { 0 }
            + if facts.post_norms { 2 * h } else { 0 };
        let embeddings = self.vocab_size * h * if self.tie_word_embeddings { 1 } else { 2 };
        self.n_layers * block + embeddings + h
    }

    /// Whether block `i` attends through the sliding window.
    pub fn is_sliding(&self, i: usize) -> bool {
        self.sliding_window.is_some() && self.sliding_layers.get(i).copied().unwrap_or(self.sliding_layers.is_empty())
    }

    /// The window of block `i`, if it has one.
    pub fn window(&self, i: usize) -> Option<usize> {
        self.sliding_window.filter(|_| self.is_sliding(i))
    }

    /// Whether block `i` rotates its queries and keys.
    pub fn rotates(&self, i: usize) -> bool {
        !self.nope_layers.get(i).copied().unwrap_or(false)
    }

    /// The NoPE flags of `n` blocks when every `interval`-th block runs without RoPE (0: none
    /// does, no flags).
    pub fn nope_pattern(interval: usize, n: usize) -> Vec<bool> {
        if interval == 0 {
            return Vec::new();
        }
        (0..n).map(|i| (i + 1) % interval == 0).collect()
    }

    /// Keeps the per-block facts of the blocks in `kept` (after depth pruning).
    pub fn keep_blocks(&mut self, kept: &[usize]) {
        if !self.sliding_layers.is_empty() {
            self.sliding_layers = kept.iter().map(|&i| self.sliding_layers[i]).collect();
        }
        if !self.nope_layers.is_empty() {
            self.nope_layers = kept.iter().map(|&i| self.nope_layers[i]).collect();
        }
        self.n_layers = kept.len();
    }

    /// The sliding-window flags of `n` blocks when every `p`-th block is global (0: none is).
    pub fn sliding_pattern(p: usize, n: usize) -> Vec<bool> {
        (0..n).map(|i| p == 0 || i % p < p - 1).collect()
    }

    /// The flags of llama.cpp's default pattern for this architecture, for `n` blocks.
    pub fn default_sliding_layers(arch: Arch, n: usize) -> Vec<bool> {
        Config::sliding_pattern(arch.facts().swa_pattern, n)
    }

    /// Checks every size against its bounds, the weight shapes for overflow, and the relations
    /// between sizes that the forward pass relies on.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |msg: String| Err(ModelError::InvalidConfig(msg));
        if self.n_layers == 0 || self.hidden_size == 0 || self.vocab_size == 0 {
            return bad(format!(
                "empty model: {} layers, hidden size {}, vocabulary {}",
                self.n_layers, self.hidden_size, self.vocab_size
            ));
        }
        if self.n_layers > MAX_LAYERS {
            return bad(format!("{} layers (at most {MAX_LAYERS} are supported)", self.n_layers));
        }
        self.check_dims()?;
        if self.n_heads == 0 || self.n_kv_heads == 0 || !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return bad(format!("{} attention heads cannot share {} key/value heads", self.n_heads, self.n_kv_heads));
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(2) {
            return bad(format!("head dimension {} is zero or odd; RoPE needs pairs", self.head_dim));
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps >= 0.0) {
            return bad(format!("RMSNorm epsilon {} is not a finite non-negative number", self.rms_norm_eps));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return bad(format!("RoPE base {} is not a finite positive number", self.rope_theta));
        }
        if !self.sliding_layers.is_empty() && self.sliding_layers.len() != self.n_layers {
            return bad(format!("{} sliding-window flags for {} layers", self.sliding_layers.len(), self.n_layers));
        }
        if self.sliding_window == Some(0) {
            return bad("sliding window of 0 tokens".into());
        }
        if !self.nope_layers.is_empty() && self.nope_layers.len() != self.n_layers {
            return bad(format!("{} NoPE flags for {} layers", self.nope_layers.len(), self.n_layers));
        }
        let positive = [
            ("RoPE base of the windowed layers", self.rope_theta_swa),
            ("linear RoPE factor", Some(self.rope_linear_factor)),
            ("attention scale", Some(self.attention_scale)),
            ("attention soft cap", self.attn_softcap),
            ("final logit soft cap", self.final_softcap),
        ];
        for (what, v) in positive {
            if let Some(v) = v.filter(|v| !(v.is_finite() && *v > 0.0)) {
                return bad(format!("{what} {v} is not a finite positive number"));
            }
        }
        if let Some(f) = self.rope_long_factors.as_ref().filter(|f| f.len() != self.head_dim / 2) {
            return bad(format!("{} long RoPE factors for head dimension {}", f.len(), self.head_dim));
        }
        if !(self.rope_attn_factor.is_finite() && self.rope_attn_factor > 0.0) {
            return bad(format!("RoPE attention factor {} is not a finite positive number", self.rope_attn_factor));
        }
        if let Some(f) = &self.rope_freq_factors {
            if f.len() != self.head_dim / 2 {
                return bad(format!("{} RoPE frequency factors for head dimension {}", f.len(), self.head_dim));
            }
            if let Some(x) = f.iter().find(|x| !(x.is_finite() && **x > 0.0)) {
                return bad(format!("RoPE frequency factor {x} is not a finite positive number"));
            }
        }
        Ok(())
    }

    /// Every dimension at most [`MAX_DIM`], every weight shape's product without overflow.
    fn check_dims(&self) -> Result<(), ModelError> {
        let dims = [
            ("vocabulary size", self.vocab_size),
            ("hidden size", self.hidden_size),
            ("intermediate size", self.intermediate_size),
            ("attention heads", self.n_heads),
            ("key/value heads", self.n_kv_heads),
            ("head dimension", self.head_dim),
            ("context length", self.context_length),
        ];
        for (what, n) in dims {
            if n == 0 || n > MAX_DIM {
                return Err(ModelError::InvalidConfig(format!("{what} {n} is outside 1..={MAX_DIM}")));
            }
        }
        let products = [
            ("vocabulary × hidden size", self.vocab_size, self.hidden_size),
            ("intermediate × hidden size", self.intermediate_size, self.hidden_size),
            ("attention heads × head dimension", self.n_heads, self.head_dim),
        ];
        for (what, a, b) in products {
            if a.checked_mul(b).is_none_or(|n| n as u64 > super::gguf_file::MAX_TENSOR_ELEMENTS) {
                return Err(ModelError::InvalidConfig(format!("{what} = {a} × {b} is too large")));
            }
        }
        Ok(())
    }
}

/// The keys of a Hugging Face `config.json` that we read.
#[derive(Debug, Clone, Deserialize)]
pub struct HfConfig {
    #[serde(default)]
    pub architectures: Vec<String>,
    #[serde(default)]
    pub model_type: Option<String>,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// Absent in transformers 5's files, which keep it in `rope_parameters`.
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    /// transformers 5: `{"rope_theta", "rope_type", …}` in place of rope_theta and rope_scaling.
    #[serde(default)]
    pub rope_parameters: Option<serde_json::Value>,
    #[serde(default = "default_ctx")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub tie_word_embeddings: Option<bool>,
    #[serde(default)]
    pub use_sliding_window: bool,
    #[serde(default)]
    pub sliding_window: Option<serde_json::Value>,
    #[serde(default)]
    pub hidden_act: Option<String>,
    /// Gemma's name for `hidden_act`.
    #[serde(default)]
    pub hidden_activation: Option<String>,
    #[serde(default)]
    pub query_pre_attn_scalar: Option<f64>,
    #[serde(default)]
    pub attn_logit_softcapping: Option<f64>,
    #[serde(default)]
    pub final_logit_softcapping: Option<f64>,
    /// transformers 5: `"sliding_attention"` or `"full_attention"` per block.
    #[serde(default)]
    pub layer_types: Option<Vec<String>>,
    /// Gemma 3 before transformers 5: every n-th block global.
    #[serde(default)]
    pub sliding_window_pattern: Option<usize>,
    /// Gemma 3 before transformers 5: the RoPE base of the windowed blocks.
    #[serde(default)]
    pub rope_local_base_freq: Option<f64>,
    /// Phi-3: the context LongRoPE's short factors were trained for.
    #[serde(default)]
    pub original_max_position_embeddings: Option<usize>,
    #[serde(default)]
    pub partial_rotary_factor: Option<f64>,
    /// SmolLM3: 1 for each block that rotates, 0 for a NoPE block.
    #[serde(default)]
    pub no_rope_layers: Option<Vec<i64>>,
    /// SmolLM3: every n-th block is NoPE where `no_rope_layers` is not given.
    #[serde(default)]
    pub no_rope_layer_interval: Option<usize>,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_ctx() -> usize {
    2048
}

impl HfConfig {
    pub fn into_config(self) -> Result<Config, ModelError> {
        let arch_name = self.architectures.first().cloned().or_else(|| self.model_type.clone()).unwrap_or_default();
        let arch = Arch::from_hf_name(&arch_name)?;
        let facts = arch.facts();
        if let Some(act) = self.hidden_activation.as_ref().or(self.hidden_act.as_ref()) {
            if act != facts.activation.hf_name() {
                return Err(ModelError::UnsupportedArchitecture(format!(
                    "{} with activation '{act}' (only {} is supported)",
                    arch.gguf_name(),
                    facts.activation.hf_name()
                )));
            }
        }
        if (self.attention_bias && !arch.qkv_bias()) || self.mlp_bias {
            return Err(ModelError::UnsupportedArchitecture(format!(
                "{} with attention_bias or mlp_bias",
                arch.gguf_name()
            )));
        }
        let n = self.num_hidden_layers;
        // Per-block facts are sized by the block count: bounded before anything is.
        if n > MAX_LAYERS {
            return Err(ModelError::InvalidConfig(format!("{n} layers (at most {MAX_LAYERS} are supported)")));
        }
        // Mistral's sliding window covers every block; Gemma's the blocks of its pattern; Qwen's,
        // which covers some blocks by another rule, is refused.
        let window = self.sliding_window.as_ref().and_then(|v| v.as_u64()).map(|w| w as usize);
        let (sliding_window, sliding_layers) = match (facts.swa_pattern, facts.window_every_block) {
            (0, false) if self.use_sliding_window && window.is_some() => {
                return Err(ModelError::UnsupportedArchitecture(format!(
                    "{} with sliding-window attention",
                    arch.gguf_name()
                )));
            }
            (0, true) => (window.filter(|&w| w < self.max_position_embeddings), Vec::new()),
            (p, _) if p > 0 => {
                let layers = match (&self.layer_types, self.sliding_window_pattern) {
                    (Some(types), _) => {
                        if types.len() != n {
                            return Err(ModelError::InvalidConfig(format!(
                                "{} layer_types for {n} layers",
                                types.len()
                            )));
                        }
                        types
                            .iter()
                            .map(|t| match t.as_str() {
                                "sliding_attention" => Ok(true),
                                "full_attention" => Ok(false),
                                other => Err(ModelError::UnsupportedArchitecture(format!("layer type '{other}'"))),
                            })
                            .collect::<Result<Vec<bool>, _>>()?
                    }
                    (None, Some(p)) if p > 0 => Config::sliding_pattern(p, n),
                    (None, _) => Config::default_sliding_layers(arch, n),
                };
                (window, layers)
            }
            _ => (None, Vec::new()),
        };
        if sliding_window == Some(0) {
            return Err(ModelError::InvalidConfig("sliding_window is 0".into()));
        }
        let nope_layers = match (&self.no_rope_layers, facts.nope_interval) {
            (_, 0) => Vec::new(),
            (Some(flags), _) if flags.len() < n => {
                return Err(ModelError::InvalidConfig(format!("{} no_rope_layers for {n} layers", flags.len())));
            }
            (Some(flags), _) => flags[..n].iter().map(|&f| f == 0).collect(),
            (None, interval) => Config::nope_pattern(self.no_rope_layer_interval.unwrap_or(interval), n),
        };
        let head_dim = self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads.max(1));
        // transformers 5 keeps RoPE in `rope_parameters`, per layer type where they differ.
        let params = self.rope_parameters.as_ref().filter(|p| p.is_object());
        let global = params.map(|p| p.get("full_attention").unwrap_or(p));
        let theta_of =
            |p: Option<&serde_json::Value>| p.and_then(|p| p.get("rope_theta")).and_then(serde_json::Value::as_f64);
        let rope_theta = self.rope_theta.or_else(|| theta_of(global)).unwrap_or(10000.0);
        let rope_theta_swa = facts.rope_theta_swa.then(|| {
            self.rope_local_base_freq
                .or_else(|| theta_of(params.and_then(|p| p.get("sliding_attention"))))
                .or_else(|| arch.hf_default("rope_local_base_freq"))
                .unwrap_or(10000.0)
        });
        // transformers 5 states "rope_type": "default" for plain RoPE; anything else is scaling.
        let scaling = self.rope_scaling.as_ref().filter(|v| !v.is_null()).or_else(|| {
            global.filter(|p| p.get("rope_type").and_then(serde_json::Value::as_str).is_some_and(|t| t != "default"))
        });
        let scaling_kind =
            scaling.and_then(|v| v.get("rope_type").or_else(|| v.get("type"))).and_then(serde_json::Value::as_str);
        if let Some(p) = self
            .partial_rotary_factor
            .or_else(|| global.and_then(|g| g.get("partial_rotary_factor")).and_then(serde_json::Value::as_f64))
        {
            if p != 1.0 {
                return Err(ModelError::UnsupportedArchitecture(format!(
                    "partial_rotary_factor {p} (RoPE over part of each head)"
                )));
            }
        }
        let rope_linear_factor = match scaling_kind {
            Some("linear") => scaling
                .and_then(|v| v.get("factor"))
                .and_then(serde_json::Value::as_f64)
                .ok_or_else(|| ModelError::InvalidConfig("linear rope scaling without a numeric 'factor'".into()))?,
            _ => 1.0,
        };
        let mut config = Config {
            arch,
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            n_layers: n,
            n_heads: self.num_attention_heads,
            n_kv_heads: self.num_key_value_heads.unwrap_or(self.num_attention_heads),
            head_dim,
            rms_norm_eps: self.rms_norm_eps,
            rope_theta,
            rope_layout: RopeLayout::HalfSplit,
            rope_freq_factors: None,
            rope_long_factors: None,
            rope_original_context: 0,
            rope_attn_factor: 1.0,
            context_length: self.max_position_embeddings,
            tie_word_embeddings: self.tie_word_embeddings.unwrap_or(facts.tied_by_default),
            sliding_window,
            sliding_layers,
            rope_theta_swa,
            nope_layers,
            rope_linear_factor,
            attention_scale: self.query_pre_attn_scalar.unwrap_or(head_dim as f64).powf(-0.5),
            attn_softcap: self.attn_logit_softcapping.filter(|_| facts.attn_softcap != GgufOptional::Absent),
            final_softcap: self.final_logit_softcapping,
        };
        if self.attn_logit_softcapping.is_some() && facts.attn_softcap == GgufOptional::Absent {
            return Err(ModelError::UnsupportedArchitecture(format!(
                "{} with attn_logit_softcapping",
                arch.gguf_name()
            )));
        }
        if let (Some(v), Some("longrope" | "su")) = (scaling, scaling_kind) {
            let original = self
                .original_max_position_embeddings
                .or_else(|| {
                    v.get("original_max_position_embeddings").and_then(serde_json::Value::as_u64).map(|n| n as usize)
                })
                .ok_or_else(|| ModelError::InvalidConfig("LongRoPE without original_max_position_embeddings".into()))?;
            let factors = |k: &str| -> Result<Vec<f32>, ModelError> {
                v.get(k)
                    .and_then(serde_json::Value::as_array)
                    .and_then(|a| a.iter().map(|x| x.as_f64().map(|x| x as f32)).collect::<Option<Vec<f32>>>())
                    .ok_or_else(|| ModelError::InvalidConfig(format!("LongRoPE without a numeric list '{k}'")))
            };
            // transformers' `_compute_longrope_parameters`, as llama.cpp's converter computes it.
            let scale = self.max_position_embeddings as f64 / original as f64;
            config.rope_attn_factor = match v.get("attention_factor").and_then(serde_json::Value::as_f64) {
                Some(a) => a,
                None if scale > 1.0 => (1.0 + scale.ln() / (original as f64).ln()).sqrt(),
                None => 1.0,
            };
            config.rope_freq_factors = Some(factors("short_factor")?);
            config.rope_long_factors = Some(factors("long_factor")?);
            config.rope_original_context = original;
            config.validate()?;
            return Ok(config);
        }
        let scaling = scaling.filter(|_| scaling_kind != Some("linear"));
        // The sizes are checked before the factors, whose count the head dimension sets.
        config.validate()?;
        if let Some(v) = scaling {
            config.rope_freq_factors = Some(llama3_freq_factors(v, head_dim, rope_theta)?);
            config.validate()?;
        }
        Ok(config)
    }
}

/// The per-frequency divisors of llama3 RoPE scaling, as `transformers`' `_compute_llama3_parameters`
/// and llama.cpp's converter (`rope_freqs.weight`) compute them.
pub fn llama3_freq_factors(scaling: &serde_json::Value, head_dim: usize, theta: f64) -> Result<Vec<f32>, ModelError> {
    let kind = scaling.get("rope_type").or_else(|| scaling.get("type")).and_then(|v| v.as_str()).unwrap_or("");
    if kind == "default" {
        return Ok(vec![1.0; head_dim / 2]);
    }
    if kind != "llama3" {
        return Err(ModelError::UnsupportedArchitecture(format!(
            "rope_scaling type '{kind}' (supported: llama3, linear, longrope)"
        )));
    }
    let num = |k: &str| {
        scaling
            .get(k)
            .and_then(|v| v.as_f64())
            .ok_or_else(|| ModelError::InvalidConfig(format!("rope_scaling lacks numeric '{k}'")))
    };
    let s = Llama3RopeScaling {
        factor: num("factor")?,
        low_freq_factor: num("low_freq_factor")?,
        high_freq_factor: num("high_freq_factor")?,
        original_max_position_embeddings: num("original_max_position_embeddings")? as usize,
    };
    // In float32, step by step as llama.cpp's converter computes `rope_freqs.weight` (torch
    // float32 tensors against Python floats), so that a folder's factors are the bytes the
    // converter writes.
    let old_ctx = s.original_max_position_embeddings as f64;
    let low_freq_wavelen = old_ctx / s.low_freq_factor;
    let high_freq_wavelen = old_ctx / s.high_freq_factor;
    let (factor, low, high) = (s.factor as f32, s.low_freq_factor as f32, s.high_freq_factor as f32);
    Ok((0..head_dim / 2)
        .map(|i| {
            let freq = 1.0f32 / (theta as f32).powf((2 * i) as f32 / head_dim as f32);
            let wavelen = (2.0 * std::f64::consts::PI) as f32 / freq;
            if f64::from(wavelen) < high_freq_wavelen {
                1.0
            } else if f64::from(wavelen) > low_freq_wavelen {
                factor
            } else {
                let smooth = (old_ctx as f32 / wavelen - low) / (high - low);
                1.0 / ((1.0 - smooth) / factor + smooth)
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama3_factors_keep_high_frequencies_and_divide_low_ones() {
        let s = serde_json::json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 64});
        let f = llama3_freq_factors(&s, 16, 10000.0).unwrap();
        // inv_freq_0 = 1: wavelength 2π < 16 → untouched.
        assert_eq!(f[0], 1.0);
        // inv_freq_7 = 10000^(-14/16): wavelength ≈ 19 869 > 64 → divided by the factor.
        assert!((f[7] - 8.0).abs() < 1e-6);
        // In between the factor is interpolated, strictly between 1 and 8.
        assert!(f.iter().any(|&x| x > 1.0 && x < 8.0));
    }

    #[test]
    fn transformers5_rope_parameters_give_theta_and_scaling() {
        let base = serde_json::json!({"architectures": ["LlamaForCausalLM"], "vocab_size": 10, "hidden_size": 16,
            "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2});
        let with = |extra: serde_json::Value| {
            let mut v = base.clone();
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            serde_json::from_value::<HfConfig>(v).unwrap().into_config().unwrap()
        };
        let c = with(serde_json::json!({"rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"}}));
        assert_eq!((c.rope_theta, c.rope_freq_factors.is_none()), (100000.0, true));
        assert_eq!(with(serde_json::json!({})).rope_theta, 10000.0);
        assert_eq!(
            with(serde_json::json!({"rope_theta": 500.0, "rope_parameters": {"rope_theta": 7.0}})).rope_theta,
            500.0
        );
        let l3 =
            with(serde_json::json!({"rope_parameters": {"rope_theta": 10000.0, "rope_type": "llama3", "factor": 8.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64}}));
        assert!(l3.rope_freq_factors.is_some());
    }
}
