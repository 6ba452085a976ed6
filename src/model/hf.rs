//! Loading Hugging Face folders: `config.json`, `model.safetensors` (or shards listed in
//! `model.safetensors.index.json`) in f32/f16/bf16, and `tokenizer.json` (or, without one, the
//! SentencePiece `tokenizer.model`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::config::{Config, HfConfig};
use super::store::{Safetensors, Store};
use super::{assemble, in_file, Format, Model, ModelError, Result, Source, TensorId, Tokenizer};

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |error| ModelError::Io { path: path.to_path_buf(), error }
}

/// The safetensors files of a folder: the shards of the index, or `model.safetensors`.
pub(crate) fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let text = std::fs::read_to_string(&index).map_err(io_err(&index))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| ModelError::NotAModel { path: index.clone(), reason: format!("invalid JSON: {e}") })?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| ModelError::NotAModel { path: index.clone(), reason: "no 'weight_map' object".into() })?;
        let mut files = map.values().map(|v| shard_path(dir, &index, v)).collect::<Result<Vec<PathBuf>>>()?;
        if files.is_empty() {
            return Err(ModelError::NotAModel { path: index, reason: "the weight map lists no shards".into() });
        }
        files.sort();
        files.dedup();
        return Ok(files);
    }
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    Err(ModelError::NotAModel {
        path: dir.to_path_buf(),
        reason: "no model.safetensors or model.safetensors.index.json".into(),
    })
}

/// The path of a shard named in the index: a plain file name inside the folder, never a path
/// that leaves it (`../x`, `/abs`, `sub/x`).
fn shard_path(dir: &Path, index: &Path, name: &serde_json::Value) -> Result<PathBuf> {
    let bad = |reason: String| ModelError::NotAModel { path: index.to_path_buf(), reason };
    let name = name.as_str().ok_or_else(|| bad(format!("the weight map gives a shard as {name}, not a file name")))?;
    let mut parts = Path::new(name).components();
    match (parts.next(), parts.next()) {
        (Some(std::path::Component::Normal(f)), None) if f == name => Ok(dir.join(f)),
        _ => Err(bad(format!("shard '{name}' is not a file name inside the model folder"))),
    }
}

/// Loads a Hugging Face folder; errors name the folder (or the file within it).
pub fn load(dir: &Path) -> Result<Model> {
    load_folder(dir).map_err(in_file(dir))
}

/// The folder's config.json as transformers and llama.cpp's converter read it: a
/// vision-language checkpoint's `text_config` merged over its top level (the text model is what
/// we run and write), the configuration class's defaults where it says nothing.
pub fn config_json(dir: &Path) -> Result<serde_json::Value> {
    let config_path = dir.join("config.json");
    if !config_path.exists() {
        return Err(ModelError::NotAModel {
            path: dir.to_path_buf(),
            reason: "a model folder needs config.json".into(),
        });
    }
    let text = std::fs::read_to_string(&config_path).map_err(io_err(&config_path))?;
    let mut json: serde_json::Value = serde_json::from_str(&text).map_err(|e| ModelError::NotAModel {
        path: config_path.clone(),
        reason: format!("invalid config.json: {e}"),
    })?;
    if let Some(obj) = json.as_object_mut() {
        if let Some(serde_json::Value::Object(text)) = obj.get("text_config").cloned() {
            obj.extend(text);
        }
    }
    super::config::with_hf_defaults(&mut json);
    Ok(json)
}

/// The configuration of the folder `dir`, from its config.json.
pub fn read_config(dir: &Path) -> Result<super::Config> {
    let json = config_json(dir)?;
    let bad = |reason: String| ModelError::NotAModel { path: dir.join("config.json"), reason };
    let hf: HfConfig = serde_json::from_value(json).map_err(|e| bad(format!("invalid config.json: {e}")))?;
    hf.into_config().map_err(in_file(dir))
}

fn load_folder(dir: &Path) -> Result<Model> {
    let (config, store, tokenizer, source) = open_folder(dir)?;
    assemble(config, |name| store.tensor(name), tokenizer, source)
}

/// A Hugging Face folder opened for streaming: its configuration and tokenizer read, its
/// tensors left in the memory-mapped safetensors files.
pub(crate) fn open_dir(dir: &Path) -> Result<(Config, Option<Tokenizer>, Source, Store)> {
    let (config, store, tokenizer, source) = open_folder(dir).map_err(in_file(dir))?;
    Ok((config, tokenizer, source, store))
}

/// The folder's configuration, its tensors' store, its tokenizer and its description.
fn open_folder(dir: &Path) -> Result<(super::Config, Store, Option<Tokenizer>, Source)> {
    let config = read_config(dir)?;
    let files = weight_files(dir)?;
    for f in &files {
        if !f.exists() {
            return Err(ModelError::Io {
                path: f.clone(),
                error: std::io::Error::new(std::io::ErrorKind::NotFound, "shard listed in the index is missing"),
            });
        }
    }
    let st = Safetensors::open(&files)?;
    let n_tensors = st.entries.len();
    if config.n_layers > n_tensors {
        return Err(ModelError::InvalidConfig(format!(
            "num_hidden_layers is {}, but the safetensors hold only {n_tensors} tensors",
            config.n_layers
        )));
    }
    let mut tensor_types = BTreeMap::new();
    let mut weight_bytes = 0u64;
    // The files' name of every tensor we run, by its GGUF name.
    let mut stored: BTreeMap<String, String> = BTreeMap::new();
    for (name, e) in &st.entries {
        let Some(gguf) = TensorId::from_hf(config.arch, name).map(|id| id.to_string()) else { continue };
        tensor_types.insert(gguf.clone(), e.dtype.clone());
        weight_bytes += e.len;
        stored.insert(gguf, name.clone());
    }
    // Gemma's norms scale by 1 + w; we hold 1 + w, as llama.cpp's files do.
    let store = Store::safetensors(dir, st, stored, config.arch.facts().norm_plus_one);
    let tok_path = dir.join("tokenizer.json");
    let spm_path = dir.join("tokenizer.model");
    let tokenizer = if tok_path.exists() {
        Some(Tokenizer::from_file(&tok_path)?)
    } else if spm_path.exists() {
        Some(Tokenizer::from_sentencepiece_file(&spm_path)?)
    } else {
        None
    };
    let source = Source { path: dir.to_path_buf(), format: Format::HuggingFace, tensor_types, weight_bytes };
    Ok((config, store, tokenizer, source))
}
