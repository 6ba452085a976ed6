//! Loading llama.cpp GGUF files: metadata → [`Config`], every tensor dequantized to f32,
//! the tokenizer rebuilt from `tokenizer.ggml.*`.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek};
use std::path::Path;

use candle_core::{Device, Tensor};

use super::config::{Arch, Config, GgufOptional, RopeLayout};
use super::gguf_file::{GgufError, GgufFile, Value};
use super::store::Store;
use super::{assemble, in_file, Format, Model, ModelError, Result, Source, TensorId, Tokenizer};
use crate::ggml::codec::dequantize;

/// The model error for a GGUF header that `path` could not give.
fn header_error(path: &Path, e: GgufError) -> ModelError {
    match e {
        GgufError::Format(reason) if reason.starts_with("no 'GGUF' magic") => ModelError::NotAModel {
            path: path.to_path_buf(),
            reason: "neither a GGUF file (no 'GGUF' magic) nor a Hugging Face model folder".into(),
        },
        GgufError::Format(reason) => ModelError::Gguf { path: path.to_path_buf(), reason },
        GgufError::Io(error) => ModelError::Io { path: path.to_path_buf(), error },
    }
}

/// A metadata integer of any integer type; negative values are errors, not huge sizes.
fn md_u64(md: &HashMap<String, Value>, key: &str) -> Result<Option<u64>> {
    let Some(v) = md.get(key) else { return Ok(None) };
    let signed = |x: i64| {
        u64::try_from(x)
            .map_err(|_| ModelError::InvalidConfig(format!("metadata '{key}' is {x}, a size cannot be negative")))
    };
    match *v {
        Value::U8(x) => Ok(x.into()),
        Value::U16(x) => Ok(x.into()),
        Value::U32(x) => Ok(x.into()),
        Value::U64(x) => Ok(x),
        Value::I8(x) => signed(x.into()),
        Value::I16(x) => signed(x.into()),
        Value::I32(x) => signed(x.into()),
        Value::I64(x) => signed(x),
        _ => Err(ModelError::InvalidConfig(format!("metadata '{key}' is not an integer"))),
    }
    .map(Some)
}

fn md_f64(md: &HashMap<String, Value>, key: &str) -> Result<Option<f64>> {
    md.get(key)
        .map(|v| {
            v.to_f32().map(f64::from).or_else(|_| v.to_f64()).map_err(|e| {
                ModelError::InvalidConfig(format!("metadata '{key}': {}", crate::model::candle_message(&e)))
            })
        })
        .transpose()
}

fn require<T>(v: Option<T>, key: &str) -> Result<T> {
    v.ok_or_else(|| ModelError::MissingMetadata(key.to_string()))
}

/// The hyper-parameters stored under `<arch>.*`.
pub fn config_from_metadata(gguf: &GgufFile, md: &HashMap<String, Value>) -> Result<Config> {
    let arch_name = require(md.get("general.architecture"), "general.architecture")?
        .to_string()
        .map_err(|e| ModelError::InvalidConfig(e.to_string()))?;
    let arch = Arch::from_gguf_name(arch_name)?;
    let key = |k: &str| format!("{arch_name}.{k}");
    let u = |k: &str| -> Result<usize> { Ok(require(md_u64(md, &key(k))?, &key(k))? as usize) };
    let n_layers = u("block_count")?;
    if n_layers > gguf.tensors.len() {
        return Err(ModelError::InvalidConfig(format!(
            "{} is {n_layers}, but the file holds only {} tensors",
            key("block_count"),
            gguf.tensors.len()
        )));
    }
    let hidden_size = u("embedding_length")?;
    let n_heads = u("attention.head_count")?;
    let n_kv_heads = md_u64(md, &key("attention.head_count_kv"))?.map_or(n_heads, |v| v as usize);
    let head_dim = match md_u64(md, &key("attention.key_length"))? {
        Some(v) => v as usize,
        None => hidden_size / n_heads.max(1),
    };
    let embd = TensorId::TOKEN_EMBD.to_string();
    let vocab_size = match gguf.tensor(&embd) {
        Some(info) if info.ne.len() == 2 => info.shape()[0],
        Some(info) => return Err(ModelError::InvalidConfig(format!("{embd} has {} dimensions, not 2", info.ne.len()))),
        None => return Err(ModelError::MissingTensor(embd)),
    };
    // Filled by the loader once tensors are read.
    let rope_freq_factors = (gguf.tensor("rope_freqs.weight").is_some()
        || gguf.tensor("rope_factors_short.weight").is_some())
    .then(Vec::new);
    let rope_long_factors = gguf.tensor("rope_factors_long.weight").is_some().then(Vec::new);
    let facts = arch.facts();
    // An optional key as the architecture's row says: its value, else its config.json class's
    // default (which llama.cpp assumes too), or none where 0 or absent.
    // (`k` is read only where the row has it, as an integer where `integer`.)
    let optional = |k: &str, how: GgufOptional, hf_key: &str, integer: bool| -> Result<Option<f64>> {
        if how == GgufOptional::Absent {
            return Ok(None);
        }
        let v = if integer { md_u64(md, &key(k))?.map(|v| v as f64) } else { md_f64(md, &key(k))? };
        Ok(match how {
            GgufOptional::OrDefault => v.or_else(|| arch.hf_default(hf_key)),
            _ => v.filter(|&v| v != 0.0),
        })
    };
    // Gemma's sliding window covers llama.cpp's default pattern of blocks unless the file
    // lists its own (`attention.sliding_window_pattern`, an array of booleans).
    let sliding_window =
        optional("attention.sliding_window", facts.gguf_sliding_window, "sliding_window", true)?.map(|w| w as usize);
    let sliding_layers = match md.get(&key("attention.sliding_window_pattern")) {
        Some(Value::Array(flags)) if sliding_window.is_some() => flags
            .iter()
            .map(|f| match f {
                Value::Bool(b) => Ok(*b),
                _ => Err(ModelError::InvalidConfig(format!(
                    "{} holds a non-boolean",
                    key("attention.sliding_window_pattern")
                ))),
            })
            .collect::<Result<Vec<bool>>>()?,
        Some(_) if sliding_window.is_some() => {
            // A number: every n-th block global (0: all windowed).
            let p = require(
                md_u64(md, &key("attention.sliding_window_pattern"))?,
                &key("attention.sliding_window_pattern"),
            )? as usize;
            Config::sliding_pattern(p, n_layers)
        }
        _ if sliding_window.is_some() => Config::default_sliding_layers(arch, n_layers),
        _ => Vec::new(),
    };
    let rope_linear_factor = match md.get(&key("rope.scaling.type")).map(|v| v.to_string().map(String::as_str)) {
        Some(Ok("linear")) => require(md_f64(md, &key("rope.scaling.factor"))?, &key("rope.scaling.factor"))?,
        // LongRoPE is given by its factor tensors.
        Some(Ok("none" | "longrope")) | None => 1.0,
        Some(Ok(other)) => return Err(ModelError::UnsupportedArchitecture(format!("RoPE scaling type '{other}'"))),
        Some(Err(e)) => return Err(ModelError::InvalidConfig(format!("{}: {e}", key("rope.scaling.type")))),
    };
    // llama.cpp's Gemma scales queries by 1/√head_dim, except in its 27B models (46 blocks for Gemma 2, 62 for Gemma 3)
    // by 1/√(hidden/heads), as their `query_pre_attn_scalar` says.
    let gemma_27b = facts.gguf_wide_query_scale_blocks == Some(n_layers);
    let attention_scale = if gemma_27b { (hidden_size / n_heads.max(1)) as f64 } else { head_dim as f64 }.powf(-0.5);
    Ok(Config {
        arch,
        vocab_size,
        hidden_size,
        intermediate_size: u("feed_forward_length")?,
        n_layers,
        n_heads,
        n_kv_heads,
        head_dim,
        rms_norm_eps: require(
            md_f64(md, &key("attention.layer_norm_rms_epsilon"))?,
            &key("attention.layer_norm_rms_epsilon"),
        )?,
        rope_theta: md_f64(md, &key("rope.freq_base"))?.unwrap_or(10000.0),
        rope_layout: if facts.gguf_rope_interleaved { RopeLayout::Interleaved } else { RopeLayout::HalfSplit },
        rope_freq_factors,
        rope_long_factors,
        rope_original_context: md_u64(md, &key("rope.scaling.original_context_length"))?.map_or(0, |n| n as usize),
        rope_attn_factor: md_f64(md, &key("rope.scaling.attn_factor"))?.unwrap_or(1.0),
        context_length: u("context_length")?,
        tie_word_embeddings: gguf.tensor(&TensorId::OUTPUT.to_string()).is_none(),
        sliding_window,
        sliding_layers,
        rope_theta_swa: if facts.rope_theta_swa && sliding_window.is_some() {
            optional("rope.freq_base_swa", GgufOptional::OrDefault, "rope_local_base_freq", false)?
        } else {
            None
        },
        // llama.cpp's fixed interval: the file has no key for it.
        nope_layers: Config::nope_pattern(facts.nope_interval, n_layers),
        rope_linear_factor,
        attention_scale,
        // llama.cpp's defaults: Gemma 2 caps at 50 and 30 unless told, Gemma 3 not at all.
        attn_softcap: optional("attn_logit_softcapping", facts.attn_softcap, "attn_logit_softcapping", false)?,
        final_softcap: optional("final_logit_softcapping", facts.final_softcap, "final_logit_softcapping", false)?,
    })
}

/// Loads a GGUF file, dequantizing every tensor to f32.
pub fn load(path: &Path) -> Result<Model> {
    let io = |error| ModelError::Io { path: path.to_path_buf(), error };
    let file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    load_from(path, &mut BufReader::new(file), len).map_err(in_file(path))
}

/// Loads a GGUF file held in memory; `path` names it in errors and in the model's source.
pub fn load_bytes(path: &Path, bytes: &[u8]) -> Result<Model> {
    load_from(path, &mut Cursor::new(bytes), bytes.len() as u64).map_err(in_file(path))
}

/// Loads the `len`-byte GGUF that `file` reads from its start.
fn load_from<R: Read + Seek>(path: &Path, file: &mut R, len: u64) -> Result<Model> {
    let gguf = GgufFile::parse(file, len).map_err(|e| header_error(path, e))?;
    let gguf_err = |reason: String| ModelError::Gguf { path: path.to_path_buf(), reason };
    let mut read = |name: &str| -> Result<Option<Tensor>> {
        let Some(info) = gguf.tensor(name) else { return Ok(None) };
        let bytes = gguf.read_data(file, info).map_err(|e| gguf_err(format!("tensor '{name}': {e}")))?;
        let qtype = info.qtype().expect("the header reader checked every type");
        let values = dequantize(qtype, &bytes, info.n_elements() as usize);
        Ok(Some(Tensor::from_vec(values, info.shape(), &Device::Cpu)?))
    };
    let (config, tokenizer, source) = describe(path, &gguf, &mut read)?;
    assemble(config, read, tokenizer, source)
}

/// A GGUF file opened for streaming: its header read, its tensors left in the file.
pub(crate) fn open_file(path: &Path) -> Result<(Config, Option<Tokenizer>, Source, Store)> {
    let (gguf, file) = GgufFile::read(path).map_err(|e| header_error(path, e)).map_err(in_file(path))?;
    let store = Store::gguf(path, file, gguf.clone());
    let (config, tokenizer, source) = describe(path, &gguf, |name| store.tensor(name)).map_err(in_file(path))?;
    Ok((config, tokenizer, source, store))
}

/// What a GGUF header says besides its tensors: the configuration (its RoPE factors read with
/// `read`), the tokenizer, and the source's description.
fn describe(
    path: &Path,
    gguf: &GgufFile,
    mut read: impl FnMut(&str) -> Result<Option<Tensor>>,
) -> Result<(Config, Option<Tokenizer>, Source)> {
    let md: HashMap<String, Value> = gguf.metadata.iter().cloned().collect();
    let mut config = config_from_metadata(gguf, &md)?;
    let mut factors = |name: &str| -> Result<Option<Vec<f32>>> {
        read(name)?.map(|f| Ok(f.flatten_all()?.to_vec1::<f32>()?)).transpose()
    };
    if config.rope_freq_factors.is_some() {
        config.rope_freq_factors = factors("rope_freqs.weight")?.or(factors("rope_factors_short.weight")?);
    }
    if config.rope_long_factors.is_some() {
        config.rope_long_factors = factors("rope_factors_long.weight")?;
    }
    let tokenizer = match md.get("tokenizer.ggml.model") {
        Some(_) => Some(Tokenizer::from_gguf(&md)?),
        None => None,
    };
    let mut tensor_types = BTreeMap::new();
    let mut weight_bytes = 0;
    for info in &gguf.tensors {
        let qtype = info.qtype().expect("the header reader checked every type");
        tensor_types.insert(info.name.clone(), qtype.name().to_string());
        weight_bytes += qtype.bytes(info.n_elements() as usize) as u64;
    }
    let source = Source { path: path.to_path_buf(), format: Format::Gguf, tensor_types, weight_bytes };
    Ok((config, tokenizer, source))
}
