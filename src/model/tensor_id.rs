//! One name for a tensor: its kind (llama.cpp's `LLM_TENSOR_*`), the block (and expert) it
//! belongs to, and whether it is a weight or a bias. Every GGUF name (`blk.3.attn_q.weight`) and
//! Hugging Face name (`model.layers.3.self_attn.q_proj.weight`) is read and written here, from
//! one table (`NAMES`); the rest of the crate asks a [`TensorId`] what a name means.

use std::fmt;

use super::capture::Sublayer;
use super::config::Arch;

/// What a tensor is, as llama.cpp's `LLM_TENSOR_*` enum names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TensorKind {
    TokenEmbd,
    OutputNorm,
    Output,
    AttnNorm,
    AttnQ,
    AttnK,
    AttnV,
    /// q, k and v in one linear (Phi-3), q's rows first.
    AttnQkv,
    AttnOutput,
    AttnQNorm,
    AttnKNorm,
    /// The norm on the attention's output (Gemma 2/3).
    AttnPostNorm,
    FfnNorm,
    FfnGate,
    /// Up — or, in Phi-3, gate and up in one linear, gate's rows first.
    FfnUp,
    FfnDown,
    /// The norm on the MLP's output (Gemma 2/3).
    FfnPostNorm,
}

/// What a tensor of a kind holds: its weight or its bias (the name's last part).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Suffix {
    Weight,
    Bias,
}

/// One tensor of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId {
    /// The block it belongs to; None for the model's own tensors (embedding, output, final norm).
    pub block: Option<usize>,
    pub kind: TensorKind,
    /// The expert of a mixture-of-experts block (`blk.N.ffn_up.E.weight` in GGUF).
    pub expert: Option<usize>,
    pub suffix: Suffix,
}

/// One row of the name table: a kind's GGUF name part, its Hugging Face name part, and the
/// architectures whose checkpoints use that Hugging Face part (empty: every architecture without
/// a row of its own for the kind).
struct Names {
    kind: TensorKind,
    gguf: &'static str,
    hf: &'static str,
    archs: &'static [Arch],
}

const fn row(kind: TensorKind, gguf: &'static str, hf: &'static str) -> Names {
    Names { kind, gguf, hf, archs: &[] }
}

const fn only(archs: &'static [Arch], kind: TensorKind, gguf: &'static str, hf: &'static str) -> Names {
    Names { kind, gguf, hf, archs }
}

const GEMMA: &[Arch] = &[Arch::Gemma2, Arch::Gemma3];

/// The names of every kind: llama.cpp's GGUF names (the same in every architecture) and the
/// Hugging Face names, `blk.N.<gguf>.<suffix>` ↔ `model.layers.N.<hf>.<suffix>` in blocks and
/// `<gguf>.<suffix>` ↔ `<hf>.<suffix>` outside them. An architecture's own rows come before
/// llama's for the same kind.
const NAMES: &[Names] = &[
    row(TensorKind::TokenEmbd, "token_embd", "model.embed_tokens"),
    row(TensorKind::OutputNorm, "output_norm", "model.norm"),
    row(TensorKind::Output, "output", "lm_head"),
    row(TensorKind::AttnNorm, "attn_norm", "input_layernorm"),
    row(TensorKind::AttnQ, "attn_q", "self_attn.q_proj"),
    row(TensorKind::AttnK, "attn_k", "self_attn.k_proj"),
    row(TensorKind::AttnV, "attn_v", "self_attn.v_proj"),
    only(&[Arch::Phi3], TensorKind::AttnQkv, "attn_qkv", "self_attn.qkv_proj"),
    row(TensorKind::AttnOutput, "attn_output", "self_attn.o_proj"),
    row(TensorKind::AttnQNorm, "attn_q_norm", "self_attn.q_norm"),
    row(TensorKind::AttnKNorm, "attn_k_norm", "self_attn.k_norm"),
    only(GEMMA, TensorKind::AttnPostNorm, "post_attention_norm", "post_attention_layernorm"),
    only(GEMMA, TensorKind::FfnNorm, "ffn_norm", "pre_feedforward_layernorm"),
    row(TensorKind::FfnNorm, "ffn_norm", "post_attention_layernorm"),
    row(TensorKind::FfnGate, "ffn_gate", "mlp.gate_proj"),
    only(&[Arch::Phi3], TensorKind::FfnUp, "ffn_up", "mlp.gate_up_proj"),
    row(TensorKind::FfnUp, "ffn_up", "mlp.up_proj"),
    row(TensorKind::FfnDown, "ffn_down", "mlp.down_proj"),
    only(GEMMA, TensorKind::FfnPostNorm, "post_ffw_norm", "post_feedforward_layernorm"),
];

/// The rows that name tensors of `arch`: its own first, then those of every architecture.
fn rows(arch: Arch) -> impl Iterator<Item = &'static Names> {
    let own = NAMES.iter().filter(move |r| r.archs.contains(&arch));
    own.chain(NAMES.iter().filter(|r| r.archs.is_empty()))
}

/// The prefixes under which a vision-language checkpoint keeps its text model, and the text
/// model's own.
const TEXT_MODEL_PREFIXES: [(&str, &str); 3] =
    [("language_model.model.", "model."), ("model.language_model.", "model."), ("language_model.lm_head.", "lm_head.")];

/// A block, expert or other index as a name spells it: decimal digits, no sign, no leading zero.
fn index(s: &str) -> Option<usize> {
    let canonical = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    canonical.then(|| s.parse().ok()).flatten()
}

/// What GGUF names of a block's tensors begin with: `blk.N`.
const BLOCK_PREFIX: &str = "blk";

/// Block `block` as GGUF names spell it (`blk.7`).
pub fn gguf_block_name(block: usize) -> String {
    format!("{BLOCK_PREFIX}.{block}")
}

/// `blk.N.` and the rest of a GGUF name.
fn split_block(name: &str) -> Option<(usize, &str)> {
    let (prefix, rest) = name.split_once('.')?;
    let (block, rest) = rest.split_once('.').filter(|_| prefix == BLOCK_PREFIX)?;
    Some((index(block)?, rest))
}

/// The block of a GGUF tensor name of any kind, one this table knows or not (`blk.7.…` → 7).
pub fn gguf_block(name: &str) -> Option<usize> {
    split_block(name).map(|(b, _)| b)
}

/// A GGUF tensor name of any kind moved to block `block`; None outside blocks.
pub fn gguf_in_block(name: &str, block: usize) -> Option<String> {
    let (_, rest) = split_block(name)?;
    Some(format!("{}.{rest}", gguf_block_name(block)))
}

impl TensorKind {
    /// The kind's part of a GGUF name (`attn_q`).
    pub fn gguf_name(self) -> &'static str {
        NAMES.iter().find(|r| r.kind == self).expect("every kind has a row").gguf
    }

    /// Whether tensors of this kind belong to a block (else to the model).
    pub fn in_block(self) -> bool {
        !matches!(self, TensorKind::TokenEmbd | TensorKind::OutputNorm | TensorKind::Output)
    }

    /// Whether it is a linear of a block (q, k, v, qkv, o, gate, up, down).
    pub fn is_linear(self) -> bool {
        use TensorKind::*;
        matches!(self, AttnQ | AttnK | AttnV | AttnQkv | AttnOutput | FfnGate | FfnUp | FfnDown)
    }

    /// Whether it is one of the attention's input projections (q, k, v, or them fused): the
    /// linears that carry biases where an architecture has them.
    pub fn is_attention_input(self) -> bool {
        matches!(self, TensorKind::AttnQ | TensorKind::AttnK | TensorKind::AttnV | TensorKind::AttnQkv)
    }

    /// Whether it is an RMSNorm weight.
    pub fn is_norm(self) -> bool {
        use TensorKind::*;
        matches!(self, OutputNorm | AttnNorm | AttnQNorm | AttnKNorm | AttnPostNorm | FfnNorm | FfnPostNorm)
    }

    /// The residual branch of a block it belongs to; None outside blocks.
    pub fn sublayer(self) -> Option<Sublayer> {
        use TensorKind::*;
        match self {
            TokenEmbd | OutputNorm | Output => None,
            AttnNorm | AttnQ | AttnK | AttnV | AttnQkv | AttnOutput | AttnQNorm | AttnKNorm | AttnPostNorm => {
                Some(Sublayer::Attention)
            }
            FfnNorm | FfnGate | FfnUp | FfnDown | FfnPostNorm => Some(Sublayer::Mlp),
        }
    }
}

impl Suffix {
    fn name(self) -> &'static str {
        match self {
            Suffix::Weight => "weight",
            Suffix::Bias => "bias",
        }
    }

    fn parse(s: &str) -> Option<Suffix> {
        match s {
            "weight" => Some(Suffix::Weight),
            "bias" => Some(Suffix::Bias),
            _ => None,
        }
    }
}

impl TensorId {
    /// The weight of one of the model's own tensors (`token_embd.weight`).
    pub const fn whole(kind: TensorKind) -> TensorId {
        TensorId { block: None, kind, expert: None, suffix: Suffix::Weight }
    }

    /// The weight of a tensor of block `block` (`blk.N.attn_q.weight`).
    pub const fn block(block: usize, kind: TensorKind) -> TensorId {
        TensorId { block: Some(block), kind, expert: None, suffix: Suffix::Weight }
    }

    pub const TOKEN_EMBD: TensorId = TensorId::whole(TensorKind::TokenEmbd);
    pub const OUTPUT_NORM: TensorId = TensorId::whole(TensorKind::OutputNorm);
    pub const OUTPUT: TensorId = TensorId::whole(TensorKind::Output);

    /// The bias beside this weight.
    pub fn bias(self) -> TensorId {
        TensorId { suffix: Suffix::Bias, ..self }
    }

    /// The same tensor in block `block`.
    pub fn with_block(self, block: usize) -> TensorId {
        TensorId { block: Some(block), ..self }
    }

    /// Whether this is an RMSNorm's weight (Gemma's checkpoints store them less one).
    pub fn is_norm_weight(&self) -> bool {
        self.kind.is_norm() && self.suffix == Suffix::Weight
    }

    /// The tensor a GGUF name names; None for a name that is not one of the name table's in its
    /// canonical spelling (`blk.01.attn_q.weight`, `blk.1`, `token_embd.scale` are none).
    pub fn parse_gguf(name: &str) -> Option<TensorId> {
        let (stem, suffix) = name.rsplit_once('.')?;
        let suffix = Suffix::parse(suffix)?;
        let (block, rest) = match stem.split_once('.') {
            Some((BLOCK_PREFIX, _)) => split_block(stem).map(|(b, rest)| (Some(b), rest))?,
            _ => (None, stem),
        };
        let (part, expert) = match (block, rest.split_once('.')) {
            (Some(_), Some((part, expert))) => (part, Some(index(expert)?)),
            (_, None) => (rest, None),
            (None, Some(_)) => return None,
        };
        let kind = NAMES.iter().find(|r| r.gguf == part)?.kind;
        (kind.in_block() == block.is_some()).then_some(TensorId { block, kind, expert, suffix })
    }

    /// The tensor's name in a Hugging Face checkpoint of `arch`; None where such checkpoints
    /// have no such tensor.
    pub fn hf_name(&self, arch: Arch) -> Option<String> {
        if self.expert.is_some() {
            return None;
        }
        let part = rows(arch).find(|r| r.kind == self.kind)?.hf;
        let suffix = self.suffix.name();
        Some(match self.block {
            Some(b) => format!("model.layers.{b}.{part}.{suffix}"),
            None => format!("{part}.{suffix}"),
        })
    }

    /// The tensor a Hugging Face name of a checkpoint of `arch` names (inverse of
    /// [`TensorId::hf_name`]). A vision-language checkpoint's text model
    /// (`language_model.model.…`, `model.language_model.…`) is named as a text model's.
    pub fn from_hf(arch: Arch, name: &str) -> Option<TensorId> {
        let text =
            TEXT_MODEL_PREFIXES.iter().find_map(|(from, to)| name.strip_prefix(from).map(|rest| format!("{to}{rest}")));
        let name = text.as_deref().unwrap_or(name);
        let (stem, suffix) = name.rsplit_once('.')?;
        let suffix = Suffix::parse(suffix)?;
        let (block, part) = match stem.strip_prefix("model.layers.") {
            Some(rest) => {
                let (block, part) = rest.split_once('.')?;
                (Some(index(block)?), part)
            }
            None => (None, stem),
        };
        let kind = rows(arch).find(|r| r.hf == part && r.kind.in_block() == block.is_some())?.kind;
        Some(TensorId { block, kind, expert: None, suffix })
    }
}

/// The GGUF name: `blk.N.<kind>[.E].<suffix>` in a block, `<kind>.<suffix>` outside.
impl fmt::Display for TensorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(b) = self.block {
            write!(f, "{BLOCK_PREFIX}.{b}.")?;
        }
        f.write_str(self.kind.gguf_name())?;
        if let Some(e) = self.expert {
            write!(f, ".{e}")?;
        }
        write!(f, ".{}", self.suffix.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TensorKind::*;

    const ARCHS: [Arch; 7] =
        [Arch::Llama, Arch::Qwen2, Arch::Qwen3, Arch::Gemma2, Arch::Gemma3, Arch::Phi3, Arch::SmolLM3];
    const KINDS: [TensorKind; 17] = [
        TokenEmbd,
        OutputNorm,
        Output,
        AttnNorm,
        AttnQ,
        AttnK,
        AttnV,
        AttnQkv,
        AttnOutput,
        AttnQNorm,
        AttnKNorm,
        AttnPostNorm,
        FfnNorm,
        FfnGate,
        FfnUp,
        FfnDown,
        FfnPostNorm,
    ];

    fn id_of(kind: TensorKind) -> TensorId {
        if kind.in_block() {
            TensorId::block(12, kind)
        } else {
            TensorId::whole(kind)
        }
    }

    #[test]
    fn every_kind_has_one_gguf_name() {
        for kind in KINDS {
            assert!(NAMES.iter().filter(|r| r.kind == kind).all(|r| r.gguf == kind.gguf_name()), "{kind:?}");
            assert_eq!(
                NAMES.iter().filter(|r| r.gguf == kind.gguf_name()).find(|r| r.kind != kind).map(|r| r.kind),
                None
            );
        }
    }

    #[test]
    fn gguf_names_round_trip() {
        for kind in KINDS {
            for id in [id_of(kind), id_of(kind).bias()] {
                assert_eq!(TensorId::parse_gguf(&id.to_string()), Some(id), "{id}");
            }
        }
        let expert = TensorId { expert: Some(3), ..TensorId::block(2, FfnUp) };
        assert_eq!(expert.to_string(), "blk.2.ffn_up.3.weight");
        assert_eq!(TensorId::parse_gguf("blk.2.ffn_up.3.weight"), Some(expert));
        assert_eq!(TensorId::block(7, FfnDown).to_string(), "blk.7.ffn_down.weight");
        assert_eq!(TensorId::block(0, AttnQ).bias().to_string(), "blk.0.attn_q.bias");
        assert_eq!(TensorId::TOKEN_EMBD.to_string(), "token_embd.weight");
        assert_eq!(TensorId::OUTPUT.to_string(), "output.weight");
        assert_eq!(TensorId::OUTPUT_NORM.to_string(), "output_norm.weight");
        assert_eq!(TensorId::block(1, AttnPostNorm).to_string(), "blk.1.post_attention_norm.weight");
        assert_eq!(TensorId::block(1, FfnPostNorm).to_string(), "blk.1.post_ffw_norm.weight");
    }

    #[test]
    fn malformed_gguf_names_are_refused() {
        for bad in [
            "blk.x.attn_q.weight",
            "blk.1",
            "blk.1.attn_q",
            "blk.99999999999999999999.attn_q.weight",
            "blk.01.attn_q.weight",
            "blk.+1.attn_q.weight",
            "blk..attn_q.weight",
            "blk.1.attn_q.scale",
            "blk.1.attn_qq.weight",
            "blk.1.token_embd.weight",
            "blk.1.ffn_up.x.weight",
            "attn_q.weight",
            "token_embd.0.weight",
            "token_embd",
            "rope_freqs.weight",
            "",
            ".weight",
        ] {
            assert_eq!(TensorId::parse_gguf(bad), None, "{bad}");
        }
        assert_eq!(gguf_block("blk.x.attn_q.weight"), None);
        assert_eq!(gguf_block("blk.4.anything"), Some(4));
        assert_eq!(gguf_block("output.weight"), None);
        assert_eq!(gguf_in_block("blk.4.attn_sinks.weight", 2).as_deref(), Some("blk.2.attn_sinks.weight"));
        assert_eq!(gguf_in_block("token_embd.weight", 2), None);
    }

    #[test]
    fn hf_names_round_trip() {
        for arch in ARCHS {
            for kind in KINDS {
                for id in [id_of(kind), id_of(kind).bias()] {
                    if let Some(hf) = id.hf_name(arch) {
                        assert_eq!(TensorId::from_hf(arch, &hf), Some(id), "{arch:?} {hf}");
                    }
                }
            }
        }
        let hf = |arch: Arch, id: TensorId| id.hf_name(arch).unwrap();
        assert_eq!(hf(Arch::Llama, TensorId::TOKEN_EMBD), "model.embed_tokens.weight");
        assert_eq!(hf(Arch::Llama, TensorId::OUTPUT), "lm_head.weight");
        assert_eq!(hf(Arch::Llama, TensorId::OUTPUT_NORM), "model.norm.weight");
        assert_eq!(hf(Arch::Qwen2, TensorId::block(12, AttnQ).bias()), "model.layers.12.self_attn.q_proj.bias");
        assert_eq!(hf(Arch::Llama, TensorId::block(3, FfnDown)), "model.layers.3.mlp.down_proj.weight");
        assert_eq!(hf(Arch::Qwen3, TensorId::block(0, AttnKNorm)), "model.layers.0.self_attn.k_norm.weight");
        // Gemma's post-attention norm is its own; its pre-MLP norm is llama's ffn_norm.
        assert_eq!(hf(Arch::Llama, TensorId::block(1, FfnNorm)), "model.layers.1.post_attention_layernorm.weight");
        assert_eq!(hf(Arch::Gemma3, TensorId::block(1, FfnNorm)), "model.layers.1.pre_feedforward_layernorm.weight");
        assert_eq!(
            hf(Arch::Gemma2, TensorId::block(1, FfnPostNorm)),
            "model.layers.1.post_feedforward_layernorm.weight"
        );
        assert_eq!(
            TensorId::from_hf(Arch::Gemma3, "model.layers.1.post_attention_layernorm.weight"),
            Some(TensorId::block(1, AttnPostNorm))
        );
        assert_eq!(
            TensorId::from_hf(Arch::Llama, "model.layers.1.post_attention_layernorm.weight"),
            Some(TensorId::block(1, FfnNorm))
        );
        // Phi-3's fused linears.
        assert_eq!(hf(Arch::Phi3, TensorId::block(0, AttnQkv)), "model.layers.0.self_attn.qkv_proj.weight");
        assert_eq!(hf(Arch::Phi3, TensorId::block(0, FfnUp)), "model.layers.0.mlp.gate_up_proj.weight");
        assert_eq!(TensorId::block(0, AttnQkv).hf_name(Arch::Llama), None);
        assert_eq!(TensorId::block(0, AttnPostNorm).hf_name(Arch::Qwen3), None);
        assert_eq!(TensorId { expert: Some(0), ..TensorId::block(0, FfnUp) }.hf_name(Arch::Llama), None);
    }

    #[test]
    fn vision_language_checkpoints_name_their_text_model() {
        let q = Some(TensorId::block(2, AttnQ));
        assert_eq!(TensorId::from_hf(Arch::Gemma3, "language_model.model.layers.2.self_attn.q_proj.weight"), q);
        assert_eq!(TensorId::from_hf(Arch::Gemma3, "model.language_model.layers.2.self_attn.q_proj.weight"), q);
        assert_eq!(TensorId::from_hf(Arch::Gemma3, "language_model.lm_head.weight"), Some(TensorId::OUTPUT));
        assert_eq!(TensorId::from_hf(Arch::Gemma3, "vision_tower.encoder.layers.0.mlp.fc1.weight"), None);
    }

    #[test]
    fn malformed_hf_names_are_refused() {
        for bad in [
            "model.layers.x.self_attn.q_proj.weight",
            "model.layers.1",
            "model.layers.99999999999999999999.self_attn.q_proj.weight",
            "model.layers.1.self_attn.q_proj.qweight",
            "model.layers.1.self_attn.rotary_emb.inv_freq",
            "model.layers.1.model.embed_tokens.weight",
            "self_attn.q_proj.weight",
            "model.layers.1.mlp.gate_up_proj.weight",
        ] {
            assert_eq!(TensorId::from_hf(Arch::Llama, bad), None, "{bad}");
        }
    }

    #[test]
    fn predicates() {
        assert!(AttnQkv.is_linear() && FfnDown.is_linear() && !Output.is_linear() && !AttnNorm.is_linear());
        assert!(AttnV.is_attention_input() && AttnQkv.is_attention_input() && !AttnOutput.is_attention_input());
        assert!(OutputNorm.is_norm() && FfnPostNorm.is_norm() && !FfnUp.is_norm());
        assert_eq!(AttnOutput.sublayer(), Some(Sublayer::Attention));
        assert_eq!(FfnGate.sublayer(), Some(Sublayer::Mlp));
        assert_eq!(TokenEmbd.sublayer(), None);
        assert!(KINDS.iter().all(|k| k.in_block() == k.sublayer().is_some()));
    }
}
