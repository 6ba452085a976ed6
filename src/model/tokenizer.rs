//! Tokenizers: Hugging Face `tokenizer.json`, or byte-level BPE rebuilt from GGUF metadata
//! (`tokenizer.ggml.*`) so that ids equal those of the checkpoint's own tokenizer.
//!
//! llama.cpp names the pre-tokenizer in `tokenizer.ggml.pre`; the regular expressions below are the
//! ones `llama-vocab.cpp` uses for each name, written as the matching `tokenizer.json` would.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::Value;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::NormalizerWrapper;
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior};

use super::{ModelError, Result};

/// Qwen2's pre-tokenizer pattern (single digits).
pub(crate) const QWEN2_PATTERN: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3's pre-tokenizer pattern (digits in groups of up to three).
pub(crate) const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// How llama.cpp splits text before BPE, by the group its pre-tokenizer name belongs to
/// (src/llama-vocab.cpp).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pre {
    /// GPT-2's regular expression.
    Gpt2,
    /// Every digit alone, then GPT-2's expression (StarCoder, SmolLM).
    Digits,
    /// Qwen2's expression (single digits).
    Qwen2,
    /// Llama 3's expression (digits by three), whole words looked up before merging.
    Llama3,
    /// Llama 3's expression with merges applied to every word (smaug-bpe, dbrx).
    Llama3Merges,
}

/// The `tokenizer.ggml.pre` names we run and their groups, as llama.cpp groups them.
pub(crate) const PRE_TOKENIZERS: [(&str, Pre); 22] = [
    ("gpt-2", Pre::Gpt2),
    ("phi-2", Pre::Gpt2),
    ("mpt", Pre::Gpt2),
    ("olmo", Pre::Gpt2),
    ("roberta-bpe", Pre::Gpt2),
    ("smollm", Pre::Digits),
    ("starcoder", Pre::Digits),
    ("refact", Pre::Digits),
    ("command-r", Pre::Digits),
    ("codeshell", Pre::Digits),
    ("exaone", Pre::Digits),
    ("minerva-7b", Pre::Digits),
    ("qwen2", Pre::Qwen2),
    ("deepseek-r1-qwen", Pre::Qwen2),
    ("llama3", Pre::Llama3),
    ("llama-v3", Pre::Llama3),
    ("llama-bpe", Pre::Llama3),
    ("falcon3", Pre::Llama3),
    ("pixtral", Pre::Llama3),
    ("lfm2", Pre::Llama3),
    ("smaug-bpe", Pre::Llama3Merges),
    ("dbrx", Pre::Llama3Merges),
];

/// The group of a `tokenizer.ggml.pre` name.
pub(crate) fn pre_kind(name: &str) -> Option<Pre> {
    PRE_TOKENIZERS.iter().find(|(n, _)| *n == name).map(|&(_, k)| k)
}

/// GGUF `tokenizer.ggml.token_type` values.
const TOKEN_TYPE_NORMAL: i32 = 1;
const TOKEN_TYPE_UNKNOWN: i32 = 2;
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// Tokens past those asked for that [`Tokenizer::encode_prefix`] tokenizes before its cut.
pub const PREFIX_MARGIN: usize = 1024;

#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokenizer({} tokens)", self.inner.get_vocab_size(true))
    }
}

fn tok_err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer(e.to_string())
}

/// A metadata value of the wrong type, without the backtrace candle may attach.
fn value_err(e: candle_core::Error) -> ModelError {
    ModelError::Tokenizer(crate::model::candle_message(&e))
}

impl Tokenizer {
    /// Reads a Hugging Face `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let json = std::fs::read(path).map_err(|error| ModelError::Io { path: path.to_path_buf(), error })?;
        Self::from_json(path, &json)
    }

    /// Parses the text of a `tokenizer.json`; `path` names it in errors. The text is parsed as
    /// JSON first: `tokenizers` panics on a syntax error inside the decoder's object, never on a
    /// parsed value.
    pub fn from_json(path: &Path, json: &[u8]) -> Result<Self> {
        let err = |e: serde_json::Error| ModelError::Tokenizer(format!("{}: {e}", path.display()));
        let value: serde_json::Value = serde_json::from_slice(json).map_err(err)?;
        let inner = serde_json::from_value(value).map_err(err)?;
        Ok(Tokenizer { inner })
    }

    /// Refuses a vocabulary with ids the model's embedding has no row for.
    pub fn check_ids(&self, vocab_size: usize) -> Result<()> {
        match self.inner.get_vocab(true).into_iter().max_by_key(|&(_, id)| id) {
            Some((token, id)) if id as usize >= vocab_size => Err(ModelError::Tokenizer(format!(
                "token {token:?} has id {id}, beyond the model's vocabulary of {vocab_size}"
            ))),
            _ => Ok(()),
        }
    }

    /// Rebuilds the tokenizer described by GGUF metadata: byte-level BPE (`gpt2`) with the
    /// pre-tokenizers of [`PRE_TOKENIZERS`], or SentencePiece (`llama`).
    pub fn from_gguf(md: &HashMap<String, Value>) -> Result<Self> {
        let model = get_str(md, "tokenizer.ggml.model")?;
        match model.as_str() {
            "gpt2" => Self::bpe_from_gguf(md),
            "llama" => Self::spm_from_gguf(md),
            _ => Err(ModelError::Tokenizer(format!(
                "GGUF tokenizer model '{model}' is not supported (byte-level BPE 'gpt2', SentencePiece 'llama')"
            ))),
        }
    }

    /// llama.cpp's SentencePiece tokenizer (Llama 2, Mistral, Phi-3): a space before the text
    /// (unless `add_space_prefix` is false) and spaces as '▁', then the adjacent pair whose
    /// concatenation is the vocabulary's highest-scored token merged first, again and again;
    /// characters that end up outside the vocabulary fall back to their bytes (`<0xXX>`).
    /// Built as `transformers` builds it from a SentencePiece model: BPE whose merges are every
    /// split of every token into two tokens, ranked by the token's score.
    fn spm_from_gguf(md: &HashMap<String, Value>) -> Result<Self> {
        let tokens = get_array(md, "tokenizer.ggml.tokens")?
            .iter()
            .map(|v| v.to_string().cloned().map_err(value_err))
            .collect::<Result<Vec<String>>>()?;
        let scores: Vec<f32> = get_array(md, "tokenizer.ggml.scores")?
            .iter()
            .map(|v| v.to_f32().map_err(value_err))
            .collect::<Result<_>>()?;
        if scores.len() != tokens.len() {
            return Err(ModelError::Tokenizer(format!("{} scores for {} tokens", scores.len(), tokens.len())));
        }
        let types = token_types(md, tokens.len())?;
        let add_space_prefix = match md.get("tokenizer.ggml.add_space_prefix") {
            Some(v) => v.to_bool().map_err(value_err)?,
            None => true,
        };
        Self::sentencepiece(&tokens, &scores, &types, add_space_prefix)
    }

    /// The tokenizer of a SentencePiece model file (`tokenizer.model`), as llama.cpp runs it
    /// once converted (a space before the text).
    pub fn from_sentencepiece_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|error| ModelError::Io { path: path.to_path_buf(), error })?;
        Self::from_sentencepiece_bytes(path, &bytes)
    }

    /// The tokenizer of the SentencePiece model `bytes`; `path` names it in errors.
    pub fn from_sentencepiece_bytes(path: &Path, bytes: &[u8]) -> Result<Self> {
        let pieces = super::sentencepiece::parse(path, bytes)?;
        let tokens: Vec<String> = pieces.iter().map(|p| p.text.clone()).collect();
        let scores: Vec<f32> = pieces.iter().map(|p| p.score).collect();
        let types: Vec<i32> = pieces.iter().map(|p| p.kind).collect();
        Self::sentencepiece(&tokens, &scores, &types, super::sentencepiece::add_dummy_prefix(bytes))
    }

    /// SentencePiece from its tokens, scores and GGUF token types.
    fn sentencepiece(tokens: &[String], scores: &[f32], types: &[i32], add_space_prefix: bool) -> Result<Self> {
        let ids: HashMap<&str, u32> = tokens.iter().enumerate().map(|(i, t)| (t.as_str(), i as u32)).collect();
        // Every split of every token into two tokens; by the token's score, highest first (the
        // sort is stable, so equal scores keep the order of the token's id, then the halves').
        let mut merges: Vec<(f32, u32, u32, u32)> = Vec::new();
        for (id, t) in tokens.iter().enumerate() {
            let mut local: Vec<(u32, u32)> = t
                .char_indices()
                .skip(1)
                .filter_map(|(at, _)| Some((*ids.get(&t[..at])?, *ids.get(&t[at..])?)))
                .collect();
            local.sort();
            merges.extend(local.into_iter().map(|(l, r)| (scores[id], id as u32, l, r)));
        }
        merges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let merges: Vec<(String, String)> =
            merges.into_iter().map(|(_, _, l, r)| (tokens[l as usize].clone(), tokens[r as usize].clone())).collect();
        let vocab: tokenizers::models::bpe::Vocab =
            tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        let mut builder = BPE::builder().vocab_and_merges(vocab, merges).byte_fallback(true);
        if let Some(unk) = types.iter().position(|&t| t == TOKEN_TYPE_UNKNOWN) {
            builder = builder.unk_token(tokens[unk].clone());
        }
        let bpe = builder.build().map_err(tok_err)?;
        let mut normalizers: Vec<NormalizerWrapper> = Vec::new();
        if add_space_prefix {
            normalizers.push(Prepend::new("\u{2581}".into()).into());
        }
        normalizers.push(Replace::new(" ", "\u{2581}").map_err(tok_err)?.into());
        let mut inner = tokenizers::Tokenizer::new(bpe);
        inner.with_normalizer(Some(NormalizerSequence::new(normalizers))).map_err(tok_err)?;
        let mut decoders: Vec<DecoderWrapper> = vec![
            Replace::new("\u{2581}", " ").map_err(tok_err)?.into(),
            ByteFallback::new().into(),
            Fuse::new().into(),
        ];
        if add_space_prefix {
            decoders.push(Strip::new(' ', 1, 0).into());
        }
        inner.with_decoder(Some(DecoderSequence::new(decoders)));
        add_typed_tokens(&mut inner, tokens, types)?;
        Ok(Tokenizer { inner })
    }

    fn bpe_from_gguf(md: &HashMap<String, Value>) -> Result<Self> {
        let pre = match md.get("tokenizer.ggml.pre") {
            Some(v) => v.to_string().map_err(value_err)?.clone(),
            None => "default".to_string(),
        };
        let tokens = get_array(md, "tokenizer.ggml.tokens")?
            .iter()
            .map(|v| v.to_string().cloned().map_err(value_err))
            .collect::<Result<Vec<String>>>()?;
        let merges = get_array(md, "tokenizer.ggml.merges")?
            .iter()
            .map(|v| {
                let m = v.to_string().map_err(value_err)?;
                // llama.cpp splits at the first space after the first character.
                let first = m.chars().next().map_or(0, char::len_utf8);
                let at = m[first..].find(' ').map(|p| p + first);
                match at {
                    Some(p) => Ok((m[..p].to_string(), m[p + 1..].to_string())),
                    None => Err(ModelError::Tokenizer(format!("malformed merge '{m}'"))),
                }
            })
            .collect::<Result<Vec<(String, String)>>>()?;
        let types = token_types(md, tokens.len())?;
        let vocab: tokenizers::models::bpe::Vocab =
            tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        let kind = pre_kind(&pre).ok_or_else(|| {
            ModelError::Tokenizer(format!(
                "GGUF pre-tokenizer '{pre}' is not supported (supported: {})",
                PRE_TOKENIZERS.map(|(n, _)| n).join(", ")
            ))
        })?;
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .ignore_merges(kind == Pre::Llama3)
            .build()
            .map_err(tok_err)?;
        let byte_level = |use_regex| ByteLevel::new(false, false, use_regex);
        let split = |pattern: &str| -> Result<PreTokenizerWrapper> {
            let s = Split::new(SplitPattern::Regex(pattern.into()), SplitDelimiterBehavior::Isolated, false)
                .map_err(tok_err)?;
            Ok(s.into())
        };
        let pre_tokenizer: PreTokenizerWrapper = match kind {
            Pre::Gpt2 => byte_level(true).into(),
            Pre::Digits => Sequence::new(vec![Digits::new(true).into(), byte_level(true).into()]).into(),
            Pre::Qwen2 => Sequence::new(vec![split(QWEN2_PATTERN)?, byte_level(false).into()]).into(),
            Pre::Llama3 | Pre::Llama3Merges => {
                Sequence::new(vec![split(LLAMA3_PATTERN)?, byte_level(false).into()]).into()
            }
        };
        let mut inner = tokenizers::Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(pre_tokenizer));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        add_typed_tokens(&mut inner, &tokens, &types)?;
        Ok(Tokenizer { inner })
    }

    /// Token ids of `text`, with no special tokens added (the perplexity protocol).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode_fast(text, false).map_err(tok_err)?;
        Ok(enc.get_ids().to_vec())
    }

    /// The first `n` token ids of `text` (all, if it has fewer) as [`Tokenizer::encode`] gives
    /// them, from a prefix of the text only: a long text's whole encoding takes hundreds of
    /// megabytes (5 MB of text: 0.4 GB) where a few windows need a few kilobytes of it. The
    /// prefix ends at a line break and is grown until it gives [`PREFIX_MARGIN`] tokens past the
    /// `n`th: a tokenizer merges within words, so the tokens near the cut may differ from the
    /// whole text's, never those far before it.
    pub fn encode_prefix(&self, text: &str, n: usize) -> Result<Vec<u32>> {
        // Bytes per token of English text are about 4; start at twice that.
        let mut len = n.saturating_add(PREFIX_MARGIN).saturating_mul(8);
        while len < text.len() {
            // A line break's byte never occurs inside a multi-byte character.
            let cut = text.as_bytes()[len..].iter().position(|&b| b == b'\n').map_or(text.len(), |i| len + i + 1);
            let mut ids = self.encode(&text[..cut])?;
            if ids.len() >= n + PREFIX_MARGIN || cut == text.len() {
                ids.truncate(n);
                return Ok(ids);
            }
            len = len.saturating_mul(2);
        }
        let mut ids = self.encode(text)?;
        ids.truncate(n);
        Ok(ids)
    }

    /// Token ids of `text` with the special tokens the tokenizer's post-processor adds (what
    /// `transformers`' `tokenizer.encode(text)` gives).
    pub fn encode_with_special(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode_fast(text, true).map_err(tok_err)?;
        Ok(enc.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, false).map_err(tok_err)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The first difference between this tokenizer and `other`, in words, naming them `names`
    /// (this one's, the other's); None when they agree. Compared: the token of every id both
    /// hold, and which of those ids are special tokens — what makes two models' logits
    /// comparable position by position (equal vocabulary sizes alone do not). Ids only one
    /// holds are not compared: a GGUF lists added tokens (Phi-3's `<|end|>`, padding) that the
    /// folder's `tokenizer.model` lacks, and text tokenized by one cannot reach them.
    pub fn first_difference(&self, other: &Tokenizer, names: (&str, &str)) -> Option<String> {
        let mut a: Vec<(u32, String)> = self.inner.get_vocab(true).into_iter().map(|(s, id)| (id, s)).collect();
        a.sort();
        let b: HashMap<u32, String> = other.inner.get_vocab(true).into_iter().map(|(s, id)| (id, s)).collect();
        if let Some((id, x, y)) = a.iter().find_map(|(id, x)| b.get(id).filter(|y| *y != x).map(|y| (id, x, y))) {
            return Some(format!("token {id} is {x:?} in {}, {y:?} in {}", names.0, names.1));
        }
        // The unknown token is left out: formats type it differently (a GGUF's may be a control
        // token where the SentencePiece file's is "unknown"), and byte fall-back keeps text
        // from ever mapping to it.
        let unknown = |t: &Tokenizer| match t.inner.get_model() {
            tokenizers::ModelWrapper::BPE(b) => b.unk_token.as_ref().and_then(|u| t.inner.token_to_id(u)),
            _ => None,
        };
        let unknowns = [unknown(self), unknown(other)];
        let special = |t: &Tokenizer| {
            let mut v: Vec<u32> = t
                .inner
                .get_added_tokens_decoder()
                .into_iter()
                .filter(|(id, t)| {
                    t.special
                        && !unknowns.contains(&Some(*id))
                        && b.contains_key(id)
                        && a.binary_search_by_key(id, |(i, _)| *i).is_ok()
                })
                .map(|(id, _)| id)
                .collect();
            v.sort();
            v
        };
        let (sa, sb) = (special(self), special(other));
        let id = sa.iter().filter(|id| !sb.contains(id)).chain(sb.iter().filter(|id| !sa.contains(id))).min()?;
        let token = &b[id];
        let (is, not) = if sa.contains(id) { names } else { (names.1, names.0) };
        Some(format!("token {id} ({token:?}) is a special token in {is}, not in {not}"))
    }

    /// The tokenizer as a Hugging Face `tokenizer.json`.
    pub fn to_json(&self) -> Result<String> {
        self.inner.to_string(true).map_err(tok_err)
    }
}

/// `tokenizer.ggml.token_type`, every token normal when absent.
fn token_types(md: &HashMap<String, Value>, n: usize) -> Result<Vec<i32>> {
    let types: Vec<i32> = match md.get("tokenizer.ggml.token_type") {
        Some(v) => {
            v.to_vec().map_err(value_err)?.iter().map(|t| t.to_i32().map_err(value_err)).collect::<Result<_>>()?
        }
        None => vec![TOKEN_TYPE_NORMAL; n],
    };
    if types.len() != n {
        return Err(ModelError::Tokenizer(format!("{} token types for {n} tokens", types.len())));
    }
    Ok(types)
}

/// Control tokens as special added tokens, user-defined ones as plain added tokens: matched
/// whole in the text before the model splits it, as llama.cpp does.
fn add_typed_tokens(inner: &mut tokenizers::Tokenizer, tokens: &[String], types: &[i32]) -> Result<()> {
    let added = |ty: i32, special: bool| {
        tokens
            .iter()
            .zip(types)
            .filter(move |(_, &t)| t == ty)
            .map(move |(tok, _)| AddedToken::from(tok.clone(), special))
            .collect::<Vec<_>>()
    };
    inner.add_special_tokens(added(TOKEN_TYPE_CONTROL, true)).map_err(tok_err)?;
    inner.add_tokens(added(TOKEN_TYPE_USER_DEFINED, false)).map_err(tok_err)?;
    Ok(())
}

fn get_str<'a>(md: &'a HashMap<String, Value>, key: &str) -> Result<&'a String> {
    md.get(key).ok_or_else(|| ModelError::MissingMetadata(key.into()))?.to_string().map_err(tok_err)
}

fn get_array<'a>(md: &'a HashMap<String, Value>, key: &str) -> Result<&'a Vec<Value>> {
    md.get(key).ok_or_else(|| ModelError::MissingMetadata(key.into()))?.to_vec().map_err(tok_err)
}
