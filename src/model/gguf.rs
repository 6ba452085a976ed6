//! Loading llama.cpp GGUF files: metadata → [`Config`], every tensor dequantized to f32,
//! the tokenizer rebuilt from `tokenizer.ggml.*`.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::GgmlDType;
use candle_core::Device;

use super::config::{Arch, Config, RopeLayout};
use super::{assemble, Format, Model, ModelError, Result, Source, Tokenizer};

/// The GGUF spelling of a tensor type ("Q4_K", not candle's "Q4K").
pub fn type_name(t: GgmlDType) -> &'static str {
    match t {
        GgmlDType::F32 => "F32",
        GgmlDType::F16 => "F16",
        GgmlDType::BF16 => "BF16",
        GgmlDType::Q4_0 => "Q4_0",
        GgmlDType::Q4_1 => "Q4_1",
        GgmlDType::Q5_0 => "Q5_0",
        GgmlDType::Q5_1 => "Q5_1",
        GgmlDType::Q8_0 => "Q8_0",
        GgmlDType::Q8_1 => "Q8_1",
        GgmlDType::Q2K => "Q2_K",
        GgmlDType::Q3K => "Q3_K",
        GgmlDType::Q4K => "Q4_K",
        GgmlDType::Q5K => "Q5_K",
        GgmlDType::Q6K => "Q6_K",
        GgmlDType::Q8K => "Q8_K",
    }
}

/// Bytes a tensor of `n_elements` takes when stored as `t`.
pub fn type_bytes(t: GgmlDType, n_elements: usize) -> u64 {
    (n_elements / t.block_size() * t.type_size()) as u64
}

/// Reads the header of a GGUF file and checks that every tensor's data lies inside it.
pub fn read_content(path: &Path) -> Result<(Content, BufReader<File>)> {
    let gguf_err = |reason: String| ModelError::Gguf { path: path.to_path_buf(), reason };
    let file = File::open(path).map_err(|source| ModelError::Io { path: path.to_path_buf(), source })?;
    let file_len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut reader = BufReader::new(file);
    let mut magic = [0u8; 4];
    if reader.read_exact(&mut magic).is_err() || &magic != b"GGUF" {
        return Err(ModelError::NotAModel {
            path: path.to_path_buf(),
            reason: "neither a GGUF file (no 'GGUF' magic) nor a Hugging Face model folder".into(),
        });
    }
    reader.rewind().map_err(|source| ModelError::Io { path: path.to_path_buf(), source })?;
    let content = Content::read(&mut reader).map_err(|e| {
        gguf_err(format!("cannot read the header ({}); the file may be truncated", super::candle_message(&e)))
    })?;
    for (name, info) in &content.tensor_infos {
        let end = content.tensor_data_offset
            + info.offset
            + type_bytes(info.ggml_dtype, info.shape.elem_count());
        if end > file_len {
            return Err(gguf_err(format!(
                "truncated: tensor '{name}' ends at byte {end} but the file has {file_len} bytes"
            )));
        }
    }
    Ok((content, reader))
}

fn md_u64(md: &HashMap<String, Value>, key: &str) -> Result<Option<u64>> {
    md.get(key)
        .map(|v| {
            v.to_u64()
                .or_else(|_| v.to_u32().map(u64::from))
                .or_else(|_| v.to_i32().map(|x| x as u64))
                .map_err(|e| ModelError::InvalidConfig(format!("metadata '{key}': {e}")))
        })
        .transpose()
}

fn md_f64(md: &HashMap<String, Value>, key: &str) -> Result<Option<f64>> {
    md.get(key)
        .map(|v| {
            v.to_f32()
                .map(f64::from)
                .or_else(|_| v.to_f64())
                .map_err(|e| ModelError::InvalidConfig(format!("metadata '{key}': {e}")))
        })
        .transpose()
}

fn require<T>(v: Option<T>, key: &str) -> Result<T> {
    v.ok_or_else(|| ModelError::MissingMetadata(key.to_string()))
}

/// The hyper-parameters stored under `<arch>.*`.
pub fn config_from_metadata(content: &Content) -> Result<Config> {
    let md = &content.metadata;
    let arch_name = require(md.get("general.architecture"), "general.architecture")?
        .to_string()
        .map_err(|e| ModelError::InvalidConfig(e.to_string()))?;
    let arch = Arch::from_gguf_name(arch_name)?;
    let key = |k: &str| format!("{arch_name}.{k}");
    let u = |k: &str| -> Result<usize> { Ok(require(md_u64(md, &key(k))?, &key(k))? as usize) };
    let hidden_size = u("embedding_length")?;
    let n_heads = u("attention.head_count")?;
    let n_kv_heads = md_u64(md, &key("attention.head_count_kv"))?.map_or(n_heads, |v| v as usize);
    let head_dim = match md_u64(md, &key("attention.key_length"))? {
        Some(v) => v as usize,
        None => hidden_size / n_heads.max(1),
    };
    let vocab_size = match content.tensor_infos.get("token_embd.weight") {
        Some(info) => info.shape.dims()[0],
        None => return Err(ModelError::MissingTensor("token_embd.weight".into())),
    };
    let rope_freq_factors = if content.tensor_infos.contains_key("rope_freqs.weight") {
        Some(Vec::new()) // filled by the loader once tensors are read
    } else {
        None
    };
    Ok(Config {
        arch,
        vocab_size,
        hidden_size,
        intermediate_size: u("feed_forward_length")?,
        n_layers: u("block_count")?,
        n_heads,
        n_kv_heads,
        head_dim,
        rms_norm_eps: require(
            md_f64(md, &key("attention.layer_norm_rms_epsilon"))?,
            &key("attention.layer_norm_rms_epsilon"),
        )?,
        rope_theta: md_f64(md, &key("rope.freq_base"))?.unwrap_or(10000.0),
        rope_layout: match arch {
            Arch::Llama => RopeLayout::Interleaved,
            Arch::Qwen2 => RopeLayout::HalfSplit,
        },
        rope_freq_factors,
        context_length: u("context_length")?,
        tie_word_embeddings: !content.tensor_infos.contains_key("output.weight"),
    })
}

/// Loads a GGUF file, dequantizing every tensor to f32.
pub fn load(path: &Path) -> Result<Model> {
    let (content, mut reader) = read_content(path)?;
    let mut config = config_from_metadata(&content)?;
    let device = Device::Cpu;
    let gguf_err = |reason: String| ModelError::Gguf { path: path.to_path_buf(), reason };
    let mut read = |name: &str| -> Result<Option<candle_core::Tensor>> {
        if !content.tensor_infos.contains_key(name) {
            return Ok(None);
        }
        let q = content
            .tensor(&mut reader, name, &device)
            .map_err(|e| gguf_err(format!("tensor '{name}': {}", super::candle_message(&e))))?;
        Ok(Some(q.dequantize(&device)?))
    };
    if config.rope_freq_factors.is_some() {
        let f = read("rope_freqs.weight")?.expect("checked above");
        config.rope_freq_factors = Some(f.flatten_all()?.to_vec1::<f32>()?);
    }
    let tokenizer = match content.metadata.get("tokenizer.ggml.model") {
        Some(_) => Some(Tokenizer::from_gguf(&content.metadata)?),
        None => None,
    };
    let mut tensor_types = BTreeMap::new();
    let mut weight_bytes = 0;
    for (name, info) in &content.tensor_infos {
        tensor_types.insert(name.clone(), type_name(info.ggml_dtype).to_string());
        weight_bytes += type_bytes(info.ggml_dtype, info.shape.elem_count());
    }
    let source = Source { path: path.to_path_buf(), format: Format::Gguf, tensor_types, weight_bytes };
    assemble(config, read, tokenizer, source)
}
