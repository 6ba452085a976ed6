//! Writing a model as a Hugging Face folder that `transformers` loads: `config.json`,
//! `generation_config.json`, the weights in f16 or bf16 (`model.safetensors`, or shards
//! `model-0000K-of-0000N.safetensors` with `model.safetensors.index.json` past a size),
//! `tokenizer.json` and `tokenizer_config.json` (chat template kept). From a Hugging Face source
//! its config.json (RoPE scaling and all) and tokenizer files are carried over; from a GGUF
//! source they are made from its metadata. The folder is assembled under a temporary name and
//! renamed into place when complete.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Tensor};
use serde_json::{json, Value as Json};

use crate::compress::compressed::Compressed;
use crate::compress::encoded::Encoded;
use crate::ggml::codec::dequantize;
use crate::ggml::types::QuantType;
use crate::model::config::{Config, RopeLayout};
use crate::model::gguf_file::{GgufFile, Value};
use crate::model::kernels::with_f32;
use crate::model::store::Store;
use crate::model::{
    block_linears, block_tensors, rope, Format, Model, Source, Streamed, Suffix, TensorId, TensorKind, Tokenizer,
};

use crate::temp::TempPath;

/// How the folder is written.
#[derive(Debug, Clone, Copy)]
pub struct HfOptions {
    /// F16 or BF16.
    pub dtype: DType,
    /// The most bytes of weights in one safetensors file (transformers' `max_shard_size`).
    pub shard_bytes: u64,
}

impl Default for HfOptions {
    fn default() -> Self {
        HfOptions { dtype: DType::F16, shard_bytes: 5_000_000_000 }
    }
}

/// GGUF llama files store q and k rows interleaved per head (pairs 2i, 2i+1 rotate together);
/// Hugging Face's layout pairs i with i + head_dim/2. Reorders the rows of a (heads·hd, in) matrix.
fn interleaved_to_half_split(w: &Tensor, n_heads: usize, head_dim: usize) -> candle_core::Result<Tensor> {
    let src = with_f32(w, <[f32]>::to_vec).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let order = rope::invert(&rope::interleaved_order(n_heads, head_dim));
    Tensor::from_vec(rope::permute_rows(&src, &order), w.dims2()?, w.device())
}

fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::BF16 => "bfloat16",
        _ => "float16",
    }
}

/// The special tokens of a GGUF source: key (bos, eos, unk, pad) → (id, text); add_bos/add_eos;
/// the chat template; sampling defaults.
struct GgufTokenizerFacts {
    specials: BTreeMap<&'static str, (u32, String)>,
    add_space_prefix: Option<bool>,
    add_bos: Option<bool>,
    add_eos: Option<bool>,
    chat_template: Option<String>,
    sampling: serde_json::Map<String, Json>,
}

fn gguf_facts(path: &Path) -> anyhow::Result<GgufTokenizerFacts> {
    let (g, _) = GgufFile::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let md: HashMap<&str, &Value> = g.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tokens: Vec<String> = match md.get("tokenizer.ggml.tokens") {
        Some(Value::Array(a)) => {
            a.iter().map(|v| if let Value::String(s) = v { s.clone() } else { String::new() }).collect()
        }
        _ => Vec::new(),
    };
    let id = |k: &str| match md.get(k) {
        Some(Value::U32(x)) => Some(*x),
        Some(Value::I32(x)) => u32::try_from(*x).ok(),
        _ => None,
    };
    let mut specials = BTreeMap::new();
    for (name, key) in
        [("bos", "bos_token_id"), ("eos", "eos_token_id"), ("unk", "unknown_token_id"), ("pad", "padding_token_id")]
    {
        if let Some(i) = id(&format!("tokenizer.ggml.{key}")) {
            if let Some(t) = tokens.get(i as usize) {
                specials.insert(name, (i, t.clone()));
            }
        }
    }
    let flag = |k: &str| match md.get(k) {
        Some(Value::Bool(b)) => Some(*b),
        _ => None,
    };
    let chat_template = match md.get("tokenizer.chat_template") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let mut sampling = serde_json::Map::new();
    for (gguf, hf) in [
        ("top_k", "top_k"),
        ("top_p", "top_p"),
        ("min_p", "min_p"),
        ("temp", "temperature"),
        ("penalty_repeat", "repetition_penalty"),
    ] {
        match md.get(format!("general.sampling.{gguf}").as_str()) {
            Some(Value::F32(x)) => {
                sampling.insert(hf.into(), json!(*x as f64));
            }
            Some(Value::I32(x)) => {
                sampling.insert(hf.into(), json!(*x));
            }
            _ => {}
        }
    }
    Ok(GgufTokenizerFacts {
        specials,
        add_space_prefix: flag("tokenizer.ggml.add_space_prefix"),
        add_bos: flag("tokenizer.ggml.add_bos_token"),
        add_eos: flag("tokenizer.ggml.add_eos_token"),
        chat_template,
        sampling,
    })
}

/// config.json for a model of configuration `c` made from `source`: the source's own (from a
/// Hugging Face folder) with the sizes and dtype of the written model, or one made from the
/// configuration (from a GGUF).
fn config_json(
    c: &Config,
    source: &Source,
    kept: &[usize],
    opts: &HfOptions,
    facts: Option<&GgufTokenizerFacts>,
) -> anyhow::Result<Json> {
    let (arch, model_type) = (c.arch.facts().hf_classes[0], c.arch.facts().model_types[0]);
    let mut j = match source.format {
        Format::HuggingFace => {
            let p = source.path.join("config.json");
            let j: Json = serde_json::from_str(&std::fs::read_to_string(&p)?)
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            if j.get("text_config").is_some() {
                // A vision-language checkpoint: its text model is what is written, as a text class.
                let mut t = crate::model::hf::config_json(&source.path)?;
                if let Some(o) = t.as_object_mut() {
                    o.retain(|k, _| {
                        ![
                            "text_config",
                            "vision_config",
                            "mm_tokens_per_image",
                            "boi_token_index",
                            "eoi_token_index",
                            "image_token_index",
                        ]
                        .contains(&k.as_str())
                    });
                    o.insert("architectures".into(), json!([arch]));
                    o.insert("model_type".into(), json!(model_type));
                }
                t
            } else {
                j
            }
        }
        // A GGUF keeps these in float32: written as their shortest float32 decimals.
        Format::Gguf => {
            let mut j = json!({
                "architectures": [arch],
                "model_type": model_type,
                "rope_theta": shortest_f32(c.rope_theta),
                "rms_norm_eps": shortest_f32(c.rms_norm_eps),
            });
            let act = c.arch.facts().activation.hf_name();
            j[c.arch.facts().hf_activation_key] = json!(act);
            if c.rope_linear_factor != 1.0 {
                j["rope_scaling"] = json!({"rope_type": "linear", "factor": shortest_f32(c.rope_linear_factor)});
            }
            if let Some(t) = c.rope_theta_swa {
                j["rope_local_base_freq"] = json!(shortest_f32(t));
            }
            if let (Some(short), Some(long)) = (&c.rope_freq_factors, &c.rope_long_factors) {
                let list = |f: &[f32]| f.iter().map(|&x| shortest_f32(x as f64)).collect::<Vec<_>>();
                j["rope_scaling"] = json!({"type": "longrope", "short_factor": list(short), "long_factor": list(long),
                    "attention_factor": shortest_f32(c.rope_attn_factor)});
                j["original_max_position_embeddings"] = json!(c.rope_original_context);
            }
            if c.arch.facts().hf_query_pre_attn_scalar {
                let scalar = shortest_f32(c.attention_scale.powi(-2));
                j["query_pre_attn_scalar"] = if scalar.fract() == 0.0 { json!(scalar as u64) } else { json!(scalar) };
                j["attn_logit_softcapping"] = json!(c.attn_softcap);
                j["final_logit_softcapping"] = json!(c.final_softcap);
            }
            if let Some(w) = c.sliding_window {
                j["sliding_window"] = json!(w);
            }
            j
        }
    };
    let obj = j.as_object_mut().ok_or_else(|| anyhow::anyhow!("config.json is not an object"))?;
    // Per-layer lists (layer_types, …) follow the kept blocks.
    let n_source = obj.get("num_hidden_layers").and_then(Json::as_u64).unwrap_or(0) as usize;
    if n_source != c.n_layers {
        for v in obj.values_mut() {
            if let Json::Array(a) = v {
                if a.len() == n_source {
                    *a = kept.iter().filter_map(|&i| a.get(i).cloned()).collect();
                }
            }
        }
    }
    for (k, v) in [
        ("vocab_size", json!(c.vocab_size)),
        ("hidden_size", json!(c.hidden_size)),
        ("intermediate_size", json!(c.intermediate_size)),
        ("num_hidden_layers", json!(c.n_layers)),
        ("num_attention_heads", json!(c.n_heads)),
        ("num_key_value_heads", json!(c.n_kv_heads)),
        ("head_dim", json!(c.head_dim)),
        ("max_position_embeddings", json!(c.context_length)),
        ("tie_word_embeddings", json!(c.tie_word_embeddings)),
        ("torch_dtype", json!(dtype_name(opts.dtype))),
    ] {
        obj.insert(k.into(), v);
    }
    obj.remove("dtype");
    // Gemma's windowed blocks by name, which also holds after depth pruning.
    if c.arch.facts().swa_pattern > 0 && c.sliding_window.is_some() {
        let types: Vec<&str> =
            (0..c.n_layers).map(|i| if c.is_sliding(i) { "sliding_attention" } else { "full_attention" }).collect();
        obj.insert("layer_types".into(), json!(types));
        if n_source != c.n_layers {
            obj.remove("sliding_window_pattern");
            obj.remove("_sliding_window_pattern");
        }
    }
    if c.arch.facts().nope_interval > 0 {
        obj.insert(
            "no_rope_layers".into(),
            json!(c.nope_layers.iter().map(|&nope| u8::from(!nope)).collect::<Vec<_>>()),
        );
    }
    for &k in c.arch.facts().hf_false_keys {
        obj.entry(k).or_insert(json!(false));
    }
    if let Some(f) = facts {
        for k in ["bos", "eos", "pad"] {
            match f.specials.get(k) {
                Some((id, _)) => {
                    obj.insert(format!("{k}_token_id"), json!(id));
                }
                // No padding token: said, so that a class default (Phi-3's 32000) is not taken.
                None if k == "pad" => {
                    obj.insert("pad_token_id".into(), Json::Null);
                }
                None => {}
            }
        }
    }
    Ok(j)
}

/// `x` rounded to float32, as the float64 of its shortest float32 decimal (1e-5, not
/// 9.999999747378752e-6).
fn shortest_f32(x: f64) -> f64 {
    (x as f32).to_string().parse().unwrap_or(x)
}

/// tokenizer_config.json made from a GGUF source's metadata.
fn tokenizer_config(c: &Config, f: &GgufTokenizerFacts) -> Json {
    let mut j = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "clean_up_tokenization_spaces": false,
        "model_max_length": c.context_length,
        "add_bos_token": f.add_bos.unwrap_or(false),
        "add_eos_token": f.add_eos.unwrap_or(false),
    });
    for k in ["bos", "eos", "unk", "pad"] {
        j[format!("{k}_token")] = f.specials.get(k).map_or(Json::Null, |(_, t)| json!(t));
    }
    if let Some(b) = f.add_space_prefix {
        j["add_prefix_space"] = json!(b);
    }
    if let Some(t) = &f.chat_template {
        j["chat_template"] = json!(t);
    }
    j
}

/// The files of a Hugging Face source carried over as they are (besides config.json and the
/// weights): the tokenizer and generation settings.
const CARRIED: [&str; 8] = [
    "tokenizer.json",
    "tokenizer.model",
    "added_tokens.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
    "generation_config.json",
];

/// What a folder's weights are read from.
pub enum FolderWeights<'a> {
    /// A model in memory: its weights as they stand (removed blocks gone).
    Resident(&'a Model),
    /// A compression of a streamed `source`: its changed tensors encoded (by output GGUF name),
    /// every other tensor read from the source's files as it is written.
    Streamed { source: &'a Streamed, compressed: &'a Compressed },
}

impl FolderWeights<'_> {
    /// The written model's configuration, the source's description and its tokenizer.
    fn parts(&self) -> (&Config, &Source, Option<&Tokenizer>) {
        match self {
            FolderWeights::Resident(m) => (&m.config, &m.source, m.tokenizer.as_ref()),
            FolderWeights::Streamed { source, compressed } => {
                (&compressed.config, &source.source, source.tokenizer.as_ref())
            }
        }
    }

    /// Every tensor of the written model by GGUF name (output numbering), with its shape and
    /// where its values come from.
    fn tensors(&self) -> Vec<(TensorId, Vec<usize>, Data<'_>)> {
        match self {
            FolderWeights::Resident(m) => {
                let mut t: Vec<(TensorId, &Tensor)> =
                    vec![(TensorId::TOKEN_EMBD, &m.embed), (TensorId::OUTPUT_NORM, &m.final_norm)];
                if let Some(l) = &m.lm_head {
                    t.push((TensorId::OUTPUT, &l.weight));
                }
                for b in &m.blocks {
                    let id = |kind| TensorId::block(b.index, kind);
                    for (kind, w) in b.norms() {
                        t.push((id(kind), w));
                    }
                    for ((kind, _, _), l) in block_linears(&m.config).into_iter().zip(b.linears()) {
                        t.push((id(kind), &l.weight));
                        if let Some(bias) = &l.bias {
                            t.push((id(kind).bias(), bias));
                        }
                    }
                }
                t.into_iter().map(|(n, w)| (n, w.dims().to_vec(), Data::Tensor(w))).collect()
            }
            FolderWeights::Streamed { source, compressed } => {
                let c = &source.config;
                let (v, h) = (c.vocab_size, c.hidden_size);
                // (name in the output, in the source, shape)
                let mut t = vec![
                    (TensorId::TOKEN_EMBD, TensorId::TOKEN_EMBD, vec![v, h]),
                    (TensorId::OUTPUT_NORM, TensorId::OUTPUT_NORM, vec![h]),
                ];
                if !c.tie_word_embeddings {
                    t.push((TensorId::OUTPUT, TensorId::OUTPUT, vec![v, h]));
                }
                for (out, &src) in compressed.kept_blocks.iter().enumerate() {
                    for (id, shape) in block_tensors(c, src) {
                        t.push((id.with_block(out), id, shape));
                    }
                }
                t.into_iter()
                    .map(|(out, src, shape)| {
                        let name = out.to_string();
                        let data = match compressed.encoded.qtype(&name) {
                            Some(q) => Data::Encoded(&compressed.encoded, name, q),
                            None => Data::Stored(&source.store, src.to_string()),
                        };
                        (out, shape, data)
                    })
                    .collect()
            }
        }
    }
}

/// Writes a model to the folder `path` (created; must not exist or be empty); `kept` are the
/// source's blocks it keeps (per-layer lists of a source config.json follow them).
pub fn write_folder(path: &Path, weights: &FolderWeights, kept: &[usize], opts: &HfOptions) -> anyhow::Result<()> {
    let (c, source, tokenizer) = weights.parts();
    let from_hf = source.format == Format::HuggingFace;
    if c.rope_freq_factors.is_some() && c.rope_long_factors.is_none() && !from_hf {
        anyhow::bail!("this GGUF model uses llama3 RoPE scaling, whose parameters a GGUF does not keep (only their factors); write a .gguf instead");
    }
    let facts = if from_hf { None } else { Some(gguf_facts(&source.path)?) };
    // Each tensor is recorded with where its values are and what turns them into the folder's;
    // it is read and converted only when its bytes are written.
    let mut tensors: BTreeMap<String, Pending> = BTreeMap::new();
    // Gemma's checkpoints store each norm weight less one.
    let plus_one = c.arch.facts().norm_plus_one;
    let permute = c.rope_layout == RopeLayout::Interleaved;
    for (id, shape, data) in weights.tensors() {
        let name = id.hf_name(c.arch).ok_or_else(|| anyhow::anyhow!("no Hugging Face name for {id}"))?;
        let minus_one = plus_one && id.is_norm_weight();
        let heads = match (permute, id.kind, id.suffix) {
            (true, TensorKind::AttnQ, Suffix::Weight) => Some((c.n_heads, c.head_dim)),
            (true, TensorKind::AttnK, Suffix::Weight) => Some((c.n_kv_heads, c.head_dim)),
            _ => None,
        };
        tensors.insert(name, Pending { data, shape, minus_one, heads });
    }
    let tmp = TempPath::new(path);
    let dir = tmp.path();
    std::fs::create_dir_all(dir)?;
    let write_json = |name: &str, j: &Json| std::fs::write(dir.join(name), serde_json::to_string_pretty(j)? + "\n");
    write_json("config.json", &config_json(c, source, kept, opts, facts.as_ref())?)?;
    match &facts {
        None => {
            for f in CARRIED {
                let from = source.path.join(f);
                if from.is_file() {
                    std::fs::copy(&from, dir.join(f))?;
                }
            }
        }
        Some(f) => {
            let tokenizer =
                tokenizer.ok_or_else(|| anyhow::anyhow!("{} carries no tokenizer", source.path.display()))?;
            std::fs::write(dir.join("tokenizer.json"), tokenizer.to_json()?)?;
            write_json("tokenizer_config.json", &tokenizer_config(c, f))?;
            let mut g = serde_json::Map::new();
            for k in ["bos", "eos", "pad"] {
                if let Some((id, _)) = f.specials.get(k) {
                    g.insert(format!("{k}_token_id"), json!(id));
                }
            }
            g.extend(f.sampling.clone());
            if f.sampling.contains_key("temperature") || f.sampling.contains_key("top_p") {
                g.insert("do_sample".into(), json!(true));
            }
            write_json("generation_config.json", &Json::Object(g))?;
        }
    }
    write_weights(dir, tensors, opts)?;
    if path.exists() {
        std::fs::remove_dir(path)?; // empty: checked before compressing
    }
    tmp.persist(path)?;
    Ok(())
}

/// Where a tensor's values are: a tensor in memory, a tensor of a streamed model's files (GGUF
/// name), or a compression's encoded bytes (output GGUF name, its type).
enum Data<'a> {
    Tensor(&'a Tensor),
    Stored(&'a Store, String),
    Encoded(&'a Encoded, String, QuantType),
}

/// Bytes of f32 values converted at once when a matrix is written a chunk of rows at a time.
const CHUNK_BYTES: usize = 64 << 20;

/// A tensor of the folder before it is written: its values, less one (Gemma's norms), q/k rows
/// reordered to Hugging Face's RoPE layout (heads, head_dim).
struct Pending<'a> {
    data: Data<'a>,
    shape: Vec<usize>,
    minus_one: bool,
    heads: Option<(usize, usize)>,
}

impl Pending<'_> {
    /// Rows `rows` of the tensor as f32 (the whole tensor, in its shape, for all rows).
    fn rows(&self, rows: std::ops::Range<usize>) -> anyhow::Result<Tensor> {
        let row_len: usize = self.shape.iter().skip(1).product();
        let whole = rows.start == 0 && rows.end == self.shape[0];
        let mut shape = self.shape.clone();
        shape[0] = rows.len();
        Ok(match &self.data {
            Data::Tensor(t) if whole => (*t).clone(),
            Data::Tensor(t) => t.narrow(0, rows.start, rows.len())?,
            Data::Stored(store, name) if whole => {
                store.tensor(name)?.ok_or_else(|| anyhow::anyhow!("the source has no tensor {name}"))?
            }
            Data::Stored(store, name) => store.rows(name, rows)?,
            Data::Encoded(encoded, name, q) => {
                let rb = q.bytes(row_len);
                let bytes = encoded
                    .range(name, rows.start * rb..rows.end * rb)?
                    .ok_or_else(|| anyhow::anyhow!("no encoded bytes for {name}"))?;
                Tensor::from_vec(dequantize(*q, &bytes, rows.len() * row_len), shape, &candle_core::Device::Cpu)?
            }
        })
    }

    /// Writes the tensor's bytes in `dtype` (little-endian) to `w`: a matrix that needs no
    /// reordering a chunk of rows at a time, anything else whole.
    fn write(&self, w: &mut impl std::io::Write, dtype: DType) -> anyhow::Result<()> {
        let n = self.shape[0];
        let row_len: usize = self.shape.iter().skip(1).product();
        let chunk = if self.heads.is_none() && !self.minus_one && self.shape.len() == 2 {
            (CHUNK_BYTES / (4 * row_len).max(1)).max(1)
        } else {
            n.max(1)
        };
        for start in (0..n).step_by(chunk) {
            let mut t = self.rows(start..(start + chunk).min(n))?;
            if let Some((h, hd)) = self.heads {
                t = interleaved_to_half_split(&t, h, hd)?;
            }
            if self.minus_one {
                t = (t - 1.0)?;
            }
            let t = t.to_dtype(dtype)?.flatten_all()?;
            let bytes: Vec<u8> = match dtype {
                DType::BF16 => t.to_vec1::<half::bf16>()?.iter().flat_map(|x| x.to_le_bytes()).collect(),
                _ => t.to_vec1::<half::f16>()?.iter().flat_map(|x| x.to_le_bytes()).collect(),
            };
            w.write_all(&bytes)?;
        }
        Ok(())
    }

    fn len(&self, dtype: DType) -> u64 {
        (self.shape.iter().product::<usize>() * dtype.size_in_bytes()) as u64
    }
}

/// The weights as one `model.safetensors`, or, past `opts.shard_bytes`, as shards filled in name
/// order with `model.safetensors.index.json` naming each tensor's shard. Each file's header is
/// written first (every shape and offset is known), then one tensor at a time, made and
/// converted just before it is written: the folder's weights are never all in memory.
fn write_weights(dir: &Path, tensors: BTreeMap<String, Pending>, opts: &HfOptions) -> anyhow::Result<()> {
    let total: u64 = tensors.values().map(|t| t.len(opts.dtype)).sum();
    let mut shards: Vec<Vec<(String, Pending)>> = vec![Vec::new()];
    let mut filled = 0u64;
    for (name, t) in tensors {
        let b = t.len(opts.dtype);
        if filled > 0 && filled + b > opts.shard_bytes {
            shards.push(Vec::new());
            filled = 0;
        }
        filled += b;
        shards.last_mut().expect("one shard at least").push((name, t));
    }
    let n = shards.len();
    if n == 1 {
        return write_safetensors(&dir.join("model.safetensors"), &shards[0], opts.dtype);
    }
    let mut weight_map = BTreeMap::new();
    for (k, shard) in shards.iter().enumerate() {
        let file = format!("model-{:05}-of-{n:05}.safetensors", k + 1);
        for (name, _) in shard {
            weight_map.insert(name.clone(), file.clone());
        }
        write_safetensors(&dir.join(&file), shard, opts.dtype)?;
    }
    let index = json!({ "metadata": { "total_size": total }, "weight_map": weight_map });
    std::fs::write(dir.join("model.safetensors.index.json"), serde_json::to_string_pretty(&index)? + "\n")?;
    Ok(())
}

/// One safetensors file: the header (u64 length, JSON padded with spaces to a multiple of 8
/// bytes, as the `safetensors` library writes it), then the tensors in the given order.
fn write_safetensors(path: &Path, tensors: &[(String, Pending)], dtype: DType) -> anyhow::Result<()> {
    use std::io::Write;
    let code = if dtype == DType::BF16 { "BF16" } else { "F16" };
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), json!({ "format": "pt" }));
    let mut at = 0u64;
    for (name, t) in tensors {
        let end = at + t.len(dtype);
        header.insert(name.clone(), json!({ "dtype": code, "shape": t.shape, "data_offsets": [at, end] }));
        at = end;
    }
    let mut text = serde_json::to_string(&Json::Object(header))?;
    while text.len() % 8 != 0 {
        text.push(' ');
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    f.write_all(&(text.len() as u64).to_le_bytes())?;
    f.write_all(text.as_bytes())?;
    for (_, t) in tensors {
        t.write(&mut f, dtype)?;
    }
    f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(())
}
