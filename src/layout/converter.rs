//! A Hugging Face folder as llama.cpp's `convert_hf_to_gguf.py` writes it, so that a folder
//! becomes a GGUF in one step: the metadata (`general.*`, the architecture's hyper-parameters,
//! the tokenizer from `tokenizer.json`, `tokenizer_config.json` and `config.json`) and the
//! tensor list in the converter's order, names and layouts (llama's q/k rows permuted for
//! llama.cpp's RoPE), each with the type the converter gives it at `--outtype f16`: F32 for
//! vectors and norms, F16 for matrices.
//!
//! The naming keys (`general.name`, `version`, `organization`, `finetune`, `basename`,
//! `size_label`) are those the converter reads in config.json's `_name_or_path` and in the
//! folder's name as given (a link not followed), checked against the parameter count.
//!
//! Intended differences from the converter: a model card (README.md's YAML front matter) is
//! not read, so the keys the converter takes from it (`license`, `tags`, `languages`,
//! `base_model.*`, `datasets.*`, and any naming key a card sets) are not written; a folder
//! given as `.` or `..` is named as the folder it is (the converter names it `` or `..`).

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use super::LayoutError;
use crate::ggml::types::QuantType;
use crate::model::config::Config;
use crate::model::gguf_file::Value;
use crate::model::hf::weight_files;
use crate::model::{TensorId, Tokenizer};

/// GGUF `tokenizer.ggml.token_type` values.
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;

/// The text whose token ids identify a pre-tokenizer (`get_vocab_base_pre` in the converter).
const CHKTXT: &str = "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u{200d}🌫️ (multiple emojis concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL";

/// sha256 of the ids of [`CHKTXT`] → llama.cpp's pre-tokenizer name: the converter's table, in
/// its order (where a hash appears twice the later name wins, as there), restricted to the names
/// our GGUF loader runs ([`crate::model::tokenizer::PRE_TOKENIZERS`]).
const KNOWN_PRE: [(&str, &str); 23] = [
    ("1431a23e583c97432bc230bff598d103ddb5a1f89960c8f1d1051aaa944d0b35", "minerva-7b"), // sapienzanlp/Minerva-7B-base-v1.0
    ("d4540891389ea895b53b399da6ac824becc30f2fba0e9ddbb98f92e55ca0e97c", "qwen2"),      // Qwen/Qwen3-Embedding-0.6B
    ("0fe1cf6eda062318a1af7270f3331a85c539a01778ff948e24388e949c5282f4", "gpt-2"),      // evilfreelancer/ruGPT3XL
    ("9e454714343b69b99b71795c1d27a68c2a1d15dab111f4d353109f966af29da7", "lfm2"),       // LiquidAI/LFM2.5-8B-A1B
    ("0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5", "llama-bpe"),  // meta-llama/Meta-Llama-3-8B
    ("9d032fcbd5501f4a38150912590928bfb36091efb5df11b8e2124b0390e3fb1e", "falcon3"),    // tiiuae/Falcon3-7B-Base
    ("b6dc8df998e1cfbdc4eac8243701a65afe638679230920b50d6f17d81c098166", "mpt"),        // mosaicml/mpt-7b
    ("35d91631860c815f952d711435f48d356ebac988362536bed955d43bfa436e34", "starcoder"),  // bigcode/starcoder2-3b
    ("3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454", "gpt-2"),      // openai-community/gpt2
    ("6221ad2852e85ce96f791f476e0b390cf9b474c9e3d1362f53a24a06dc8220ff", "refact"),     // smallcloudai/Refact-1_6-base
    ("9c2227e4dd922002fb81bde4fc02b0483ca4f12911410dee2255e4987644e3f8", "command-r"), // CohereForAI/c4ai-command-r-v01
    ("e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea", "qwen2"),     // Qwen/Qwen1.5-7B
    ("b6dc8df998e1cfbdc4eac8243701a65afe638679230920b50d6f17d81c098166", "olmo"),      // allenai/OLMo-1.7-7B-hf
    ("a8594e3edff7c29c003940395316294b2c623e09894deebbc65f33f1515df79e", "dbrx"),      // databricks/dbrx-base
    ("c136ed14d01c2745d4f60a9596ae66800e2b61fa45643e72436041855ad4089d", "smaug-bpe"), // abacusai/Smaug-Llama-3-70B-Instruct
    ("7b3e7548e4308f52a76e8229e4e6cc831195d0d1df43aed21ac6c93da05fec5f", "codeshell"), // WisdomShell/CodeShell-7B
    ("855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249", "smollm"),    // HuggingFaceTB/SmolLM-135M
    ("4e2b24cc4770243d65a2c9ec19770a72f08cffc161adbb73fcbb6b7dd45a0aae", "exaone"), // LGAI-EXAONE/EXAONE-3.0-7.8B-Instruct
    ("fcace8b9cac38ce847670c970cd5892031a753a1ef381abd1d9af00f713da085", "phi-2"),  // microsoft/phi-2
    ("8b5a93ed704057481f240da0be7e7dca721d7f8f4755263b6807227a2cbeae65", "roberta-bpe"), // sentence-transformers/stsb-roberta-base
    ("b3f499bb4255f8ca19fccd664443283318f2fd2414d5e0b040fbdd0cc195d6c5", "deepseek-r1-qwen"), // deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B
    ("0e9433cbbb161f89e264eb32e8e64bfe69e834973ffca5d41d3948a604a3e2a3", "pixtral"), // mistral-community/pixtral-12b
    ("169bf0296a13c4d9b7672313f749eb36501d931022de052aad6e36f2bf34dd51", "lfm2"),    // LiquidAI/LFM2.5-350M
];

/// One tensor of the GGUF a folder becomes: its GGUF name, ggml shape (row width first) and the
/// type the converter writes it in.
#[derive(Debug, Clone)]
pub struct HfTensor {
    pub name: String,
    pub ne: Vec<u64>,
    pub qtype: QuantType,
}

fn invalid(path: &Path, what: impl std::fmt::Display) -> LayoutError {
    LayoutError::Invalid(format!("{}: {what}", path.display()))
}

fn read_json(path: &Path) -> Result<Json, LayoutError> {
    let text = std::fs::read_to_string(path).map_err(|e| invalid(path, e))?;
    serde_json::from_str(&text).map_err(|e| invalid(path, format!("invalid JSON: {e}")))
}

fn read_json_opt(path: &Path) -> Result<Option<Json>, LayoutError> {
    if path.is_file() {
        read_json(path).map(Some)
    } else {
        Ok(None)
    }
}

/// The tensor names and shapes of the folder's safetensors, shard by shard (the shards sorted),
/// each shard's tensors in the order of their data.
fn safetensors_headers(dir: &Path) -> Result<Vec<(String, Vec<u64>)>, LayoutError> {
    let files: Vec<PathBuf> = weight_files(dir).map_err(|e| LayoutError::Invalid(e.to_string()))?;
    let mut out = Vec::new();
    for f in files {
        let mut file = std::fs::File::open(&f).map_err(|e| invalid(&f, e))?;
        let mut n = [0u8; 8];
        file.read_exact(&mut n).map_err(|e| invalid(&f, e))?;
        let n = u64::from_le_bytes(n);
        if n > 100 << 20 {
            return Err(invalid(&f, format!("a safetensors header of {n} bytes")));
        }
        let mut header = vec![0u8; n as usize];
        file.read_exact(&mut header).map_err(|e| invalid(&f, e))?;
        let header: BTreeMap<String, Json> =
            serde_json::from_slice(&header).map_err(|e| invalid(&f, format!("safetensors header: {e}")))?;
        let mut tensors: Vec<(u64, String, Vec<u64>)> = Vec::new();
        for (name, info) in header {
            if name == "__metadata__" {
                continue;
            }
            let shape = info
                .get("shape")
                .and_then(Json::as_array)
                .map(|s| s.iter().map(Json::as_u64).collect::<Option<Vec<u64>>>());
            let begin = info.get("data_offsets").and_then(|o| o.get(0)).and_then(Json::as_u64);
            match (shape, begin) {
                (Some(Some(shape)), Some(begin)) => tensors.push((begin, name, shape)),
                _ => return Err(invalid(&f, format!("tensor '{name}' has no shape or data offsets"))),
            }
        }
        tensors.sort();
        out.extend(tensors.into_iter().map(|(_, name, shape)| (name, shape)));
    }
    Ok(out)
}

/// The GGUF's tensors: `rope_freqs.weight` first when the model has llama3 RoPE scaling, then
/// every tensor the model uses in the order of the folder's safetensors.
pub fn tensors(dir: &Path, config: &Config) -> Result<Vec<HfTensor>, LayoutError> {
    let mut out = Vec::new();
    match (&config.rope_freq_factors, &config.rope_long_factors) {
        (Some(short), Some(long)) => {
            out.push(HfTensor {
                name: "rope_factors_long.weight".into(),
                ne: vec![long.len() as u64],
                qtype: QuantType::F32,
            });
            out.push(HfTensor {
                name: "rope_factors_short.weight".into(),
                ne: vec![short.len() as u64],
                qtype: QuantType::F32,
            });
        }
        (Some(f), None) => {
            out.push(HfTensor { name: "rope_freqs.weight".into(), ne: vec![f.len() as u64], qtype: QuantType::F32 })
        }
        _ => {}
    }
    for (hf, shape) in safetensors_headers(dir)? {
        let Some(id) = TensorId::from_hf(config.arch, &hf) else { continue };
        if id == TensorId::OUTPUT && config.tie_word_embeddings {
            continue;
        }
        let mut ne: Vec<u64> = shape.iter().rev().copied().collect();
        if id == TensorId::TOKEN_EMBD && config.arch.facts().converter_trims_embedding && ne.len() == 2 {
            // The converter drops Gemma 3's embedding rows beyond its vocabulary.
            ne[1] = ne[1].min(gemma3_n_vocab(dir, config)? as u64);
        }
        let qtype = if ne.len() <= 1 || id.is_norm_weight() { QuantType::F32 } else { QuantType::F16 };
        out.push(HfTensor { name: id.to_string(), ne, qtype });
    }
    Ok(out)
}

/// The vocabulary the converter keeps of a Gemma 3 folder: with a SentencePiece model, the
/// configuration's (config.json, its class's default where it says none), else tokenizer.json's
/// vocabulary and added tokens.
fn gemma3_n_vocab(dir: &Path, config: &Config) -> Result<usize, LayoutError> {
    if dir.join("tokenizer.model").is_file() {
        return Ok(config.vocab_size);
    }
    let tj = read_json(&dir.join("tokenizer.json"))?;
    let count =
        |v: Option<&Json>| v.map_or(0, |v| v.as_object().map_or_else(|| v.as_array().map_or(0, Vec::len), |o| o.len()));
    Ok(count(tj.get("model").and_then(|m| m.get("vocab"))) + count(tj.get("added_tokens")))
}

/// Python's `str.title()`: a cased character is upper-cased after an uncased one, lower-cased
/// after a cased one.
fn title(w: &str) -> String {
    let mut out = String::new();
    let mut prev_cased = false;
    for c in w.chars() {
        let cased = c.is_lowercase() || c.is_uppercase();
        if cased && !prev_cased {
            out.extend(c.to_uppercase());
        } else if cased {
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
        prev_cased = cased;
    }
    out
}

/// The converter's `Metadata.id_to_title`: words of all-lower-case letters titled, except
/// version numbers and words starting with a digit.
fn id_to_title(s: &str) -> String {
    let is_version = |w: &str| {
        w.starts_with(|c: char| c.is_ascii_digit())
            || w.strip_prefix('v').is_some_and(|r| {
                !r.is_empty() && r.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            })
    };
    let is_lower = |w: &str| w.chars().any(char::is_lowercase) && !w.chars().any(char::is_uppercase);
    s.trim()
        .replace('-', " ")
        .split_whitespace()
        .map(|w| if is_lower(w) && !is_version(w) { title(w) } else { w.to_string() })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A part of a model id the converter takes for a version: `(v|iter)?\d+([.]\d+)*`, any case.
fn is_version_part(p: &str) -> bool {
    let l = p.to_ascii_lowercase();
    let rest = l.strip_prefix("iter").or_else(|| l.strip_prefix('v')).unwrap_or(&l);
    rest.split('.').all(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()))
}

/// A part the converter takes for a quantization type: `i?q\d(_\w)*|b?fp?(16|32)`, any case.
fn is_type_part(p: &str) -> bool {
    let l = p.to_lowercase();
    if let Some(r) = l.strip_prefix("iq").or_else(|| l.strip_prefix('q')) {
        let r: Vec<char> = r.chars().collect();
        let word = |c: char| c.is_alphanumeric() || c == '_';
        if r.first().is_some_and(char::is_ascii_digit)
            && r[1..].chunks(2).all(|pair| matches!(pair, ['_', c] if word(*c)))
        {
            return true;
        }
    }
    let r = l.strip_prefix('b').unwrap_or(&l);
    r.strip_prefix('f').is_some_and(|r| matches!(r.strip_prefix('p').unwrap_or(r), "16" | "32"))
}

/// A part the converter takes for a size (not as the first part):
/// `(([A]|\d+[x])?\d+([._]\d+)?[KMBT][\d]?|small|mini|medium|large|x?xl)`, any case.
fn is_size_part(p: &str) -> bool {
    let l = p.to_ascii_lowercase();
    if ["small", "mini", "medium", "large", "xl", "xxl"].contains(&l.as_str()) {
        return true;
    }
    let b = l.as_bytes();
    let digits = |i: usize| b.get(i..).map_or(0, |r| r.iter().take_while(|c| c.is_ascii_digit()).count());
    let mut i = match (b.first(), digits(0)) {
        (Some(b'a'), _) => 1,
        (_, d) if d > 0 && b.get(d) == Some(&b'x') => d + 1,
        _ => 0,
    };
    let d = digits(i);
    if d == 0 {
        return false;
    }
    i += d;
    if matches!(b.get(i), Some(b'.' | b'_')) && digits(i + 1) > 0 {
        i += 1 + digits(i + 1);
    }
    if !matches!(b.get(i), Some(b'k' | b'm' | b'b' | b't')) {
        return false;
    }
    i += 1;
    if b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i == b.len()
}

/// What the converter's `Metadata.get_model_id_components` reads in a model id
/// (`[organization/]name`, the name's parts separated by '-').
#[derive(Debug, Default)]
struct IdComponents {
    /// The id without its organization.
    full_name: String,
    organization: Option<String>,
    basename: Option<String>,
    finetune: Option<String>,
    version: Option<String>,
    size_label: Option<String>,
}

/// The converter's annotations of a part of a model id (a part may have several).
const BASENAME: u8 = 1;
const SIZE_LABEL: u8 = 2;
const FINETUNE: u8 = 4;
const VERSION: u8 = 8;
const QUANT_TYPE: u8 = 16;

/// The converter's `Metadata.get_model_id_components` for the model id `id` of a model of
/// `total_params` parameters: each part annotated (version, quantization type, size, finetune
/// word), a size far from the parameter count taken for a context length (a finetune), the
/// leading unannotated words and versions the basename, later unannotated parts finetunes.
/// Its regular expressions' `\d` is read as ASCII digits here (Python's takes any decimal digit).
fn model_id_components(id: &str, total_params: u64) -> IdComponents {
    if id.contains(' ') {
        // A sentence rather than an id: the name only.
        return IdComponents { full_name: id.to_string(), ..Default::default() };
    }
    let (organization, full_name) = match id.split_once('/') {
        Some((org, name)) => ((!org.starts_with('.')).then(|| org.to_string()), name),
        None => (None, id),
    };
    let mut parts: Vec<String> = full_name.split('-').filter(|p| !p.is_empty()).map(str::to_string).collect();
    let mut types = vec![0u8; parts.len()];
    for (i, part) in parts.iter_mut().enumerate() {
        if is_version_part(part) {
            types[i] |= VERSION;
        } else if is_type_part(part) {
            types[i] |= QUANT_TYPE;
            *part = part.to_uppercase();
        } else if i > 0 && is_size_part(part) {
            let mut p: Vec<char> = part.replace('_', ".").chars().collect();
            let n = p.len();
            if p[n - 1].is_ascii_digit() {
                // bloom-7b1 for 7.1B.
                p = [&p[..n - 2], &['.', p[n - 1], p[n - 2]]].concat();
            }
            let n = p.len();
            if n > 1 && p[n - 2].is_ascii_digit() && "kmbt".contains(p[n - 1]) {
                p[n - 1] = p[n - 1].to_ascii_uppercase();
            }
            if total_params != 0 {
                let scale = " KMBT".find(p[n - 1]).map_or(1e-3, |k| 1000f64.powi(k as i32));
                if let Ok(x) = p[..n - 1].iter().collect::<String>().parse::<f64>() {
                    // Far from the parameter count: a context length.
                    if (x * scale - total_params as f64).abs() > (7 * total_params / 8) as f64 {
                        types[i] |= FINETUNE;
                        p[n - 1] = p[n - 1].to_ascii_lowercase();
                    }
                }
            }
            if types[i] == 0 {
                types[i] |= SIZE_LABEL;
            }
            *part = p.into_iter().collect();
        } else if i > 0 && ["chat", "instruct", "vision", "lora"].iter().any(|w| part.eq_ignore_ascii_case(w)) {
            types[i] |= FINETUNE;
        }
    }
    // Word sizes (mini, xl) are dropped when a size in digits is given.
    if parts.iter().zip(&types).any(|(p, t)| t & SIZE_LABEL != 0 && p.chars().any(|c| c.is_ascii_digit())) {
        for (p, t) in parts.iter().zip(types.iter_mut()) {
            if *t & SIZE_LABEL != 0 && p.chars().all(char::is_alphabetic) {
                *t &= !SIZE_LABEL;
            }
        }
    }
    let mut at_start = true;
    for (p, t) in parts.iter().zip(types.iter_mut()) {
        if at_start && ((*t == 0 && p.starts_with(char::is_alphabetic)) || *t & VERSION != 0) {
            *t |= BASENAME;
        } else {
            at_start = false;
            if *t == 0 {
                *t |= FINETUNE;
            }
        }
    }
    // A trailing version is not part of the basename.
    for t in types.iter_mut().rev() {
        if *t & BASENAME != 0 && t.count_ones() > 1 {
            *t &= !BASENAME;
        } else {
            break;
        }
    }
    let join = |kind: u8, exclude: u8| {
        let mut chosen: Vec<&str> = Vec::new();
        for (p, t) in parts.iter().zip(&types) {
            if t & kind != 0 && t & exclude == 0 && !(kind == SIZE_LABEL && chosen.contains(&p.as_str())) {
                chosen.push(p);
            }
        }
        (!chosen.is_empty()).then(|| chosen.join("-"))
    };
    let size_label = join(SIZE_LABEL, 0);
    let finetune = join(FINETUNE, 0);
    let version = join(VERSION, BASENAME);
    // Too ambiguous for a basename without any of the others.
    let basename = join(BASENAME, 0).filter(|_| size_label.is_some() || finetune.is_some() || version.is_some());
    IdComponents { full_name: full_name.to_string(), organization, basename, finetune, version, size_label }
}

/// The naming keys the converter writes for a folder named `folder` holding a model of
/// `total_params` parameters, in its order (`general.name`, `version`, `organization`,
/// `finetune`, `basename`, `size_label`), each where it finds one: what its
/// `Metadata.apply_metadata_heuristic` reads in config.json's `_name_or_path` (when a model
/// id, at most one '/'), each key not found there from the folder's name; the size label
/// otherwise the parameter count's. (A model card's YAML front matter, read there first, is
/// not read here.)
fn naming(folder: &str, name_or_path: Option<&str>, total_params: u64) -> Vec<(&'static str, String)> {
    let [mut name, mut version, mut organization, mut finetune, mut basename, mut size_label]: [Option<String>; 6] =
        Default::default();
    for id in name_or_path.filter(|p| p.matches('/').count() <= 1).into_iter().chain([folder]) {
        let c = model_id_components(id, total_params);
        name = name.or_else(|| Some(id_to_title(&c.full_name)));
        organization = organization.or_else(|| c.organization.map(|o| id_to_title(&o)));
        basename = basename.or(c.basename);
        finetune = finetune.or(c.finetune);
        version = version.or(c.version);
        size_label = size_label.or(c.size_label);
    }
    let size_label = size_label.or_else(|| (total_params > 0).then(|| self::size_label(total_params)));
    let keys = [
        "general.name",
        "general.version",
        "general.organization",
        "general.finetune",
        "general.basename",
        "general.size_label",
    ];
    keys.into_iter()
        .zip([name, version, organization, finetune, basename, size_label])
        .filter_map(|(k, v)| Some((k, v?)))
        .collect()
}

/// The name of the folder `dir` as given (as the converter takes it, a link not followed),
/// or, for `.` or `..`, of the folder it is.
fn folder_name(dir: &Path) -> String {
    match dir.file_name() {
        Some(n) => n.to_string_lossy().into_owned(),
        None => std::fs::canonicalize(dir)
            .ok()
            .and_then(|d| Some(d.file_name()?.to_string_lossy().into_owned()))
            .unwrap_or_default(),
    }
}

/// The converter's size label: parameters rounded to two significant digits at least.
fn size_label(n: u64) -> String {
    let n = n as f64;
    let (scaled, suffix) = if n > 1e12 {
        (n * 1e-12, "T")
    } else if n > 1e9 {
        (n * 1e-9, "B")
    } else if n > 1e6 {
        (n * 1e-6, "M")
    } else {
        (n * 1e-3, "K")
    };
    let digits = format!("{}", scaled.round_ties_even() as u64).trim_start_matches('0').len();
    let fix = 2usize.saturating_sub(digits);
    format!("{scaled:.fix$}{suffix}")
}

/// The sampling defaults the converter copies from generation_config.json: the GGUF key
/// (`general.sampling.KEY`), the JSON keys it is read from (the first present wins), and whether
/// it is an integer (else a float; `sequence` is a string).
const SAMPLING: [(&str, &[&str], bool); 12] = [
    ("sequence", &["sequence"], false),
    ("top_k", &["top_k"], true),
    ("top_p", &["top_p"], false),
    ("min_p", &["min_p"], false),
    ("xtc_probability", &["xtc_probability"], false),
    ("xtc_threshold", &["xtc_threshold"], false),
    ("temp", &["temperature"], false),
    ("penalty_last_n", &["penalty_last_n"], true),
    ("penalty_repeat", &["penalty_repeat", "repetition_penalty"], false),
    ("mirostat", &["mirostat"], true),
    ("mirostat_tau", &["mirostat_tau"], false),
    ("mirostat_eta", &["mirostat_eta"], false),
];

/// The metadata the converter writes for the folder `dir` (whose model is `config`);
/// `general.file_type` is a place holder the writer fills.
pub fn metadata(dir: &Path, config: &Config, tensors: &[HfTensor]) -> Result<Vec<(String, Value)>, LayoutError> {
    let config_json = crate::model::hf::config_json(dir).map_err(|e| LayoutError::Invalid(e.to_string()))?;
    let arch = config.arch.gguf_name();
    let n_params: u64 = tensors.iter().map(|t| t.ne.iter().product::<u64>()).sum();
    let mut md: Vec<(String, Value)> = vec![("general.architecture".into(), Value::String(arch.into()))];
    if config.rope_long_factors.is_some() {
        // Written with the LongRoPE factor tensors, before the rest of the metadata.
        md.push((format!("{arch}.rope.scaling.attn_factor"), Value::F32(config.rope_attn_factor as f32)));
    }
    md.push(("general.type".into(), Value::String("model".into())));
    // Sampling defaults from generation_config.json (an unreadable one is ignored, as there).
    let generation = read_json_opt(&dir.join("generation_config.json")).ok().flatten().unwrap_or(Json::Null);
    for (key, from, int) in SAMPLING {
        let v = from.iter().find_map(|k| generation.get(k).filter(|v| !v.is_null()));
        match (v, int) {
            (Some(Json::String(s)), _) => md.push((format!("general.sampling.{key}"), Value::String(s.clone()))),
            (Some(v), true) => {
                if let Some(i) = v.as_i64() {
                    md.push((format!("general.sampling.{key}"), Value::I32(i as i32)));
                }
            }
            (Some(v), false) => {
                if let Some(x) = v.as_f64() {
                    md.push((format!("general.sampling.{key}"), Value::F32(x as f32)));
                }
            }
            (None, _) => {}
        }
    }
    // config.json as it is (`config_json` lifts a text_config's keys over its own).
    let raw_config = read_json(&dir.join("config.json"))?;
    for (k, v) in naming(&folder_name(dir), raw_config.get("_name_or_path").and_then(Json::as_str), n_params) {
        md.push((k.into(), Value::String(v)));
    }
    let u32v = |n: usize| Value::U32(n as u32);
    let given = |k: &str| config_json.get(k).is_some_and(|v| !v.is_null());
    // The list of the converter's base class; an architecture's row may make it its own.
    let mut hp: Vec<(&str, Value)> = vec![
        ("block_count", u32v(config.n_layers)),
        ("context_length", u32v(config.context_length)),
        ("embedding_length", u32v(config.hidden_size)),
        ("feed_forward_length", u32v(config.intermediate_size)),
        ("attention.head_count", u32v(config.n_heads)),
    ];
    if given("num_key_value_heads") {
        hp.push(("attention.head_count_kv", u32v(config.n_kv_heads)));
    }
    if config.rope_linear_factor != 1.0 {
        hp.push(("rope.scaling.type", Value::String("linear".into())));
        hp.push(("rope.scaling.factor", Value::F32(config.rope_linear_factor as f32)));
    }
    let rope_theta_given = config_json.get("rope_theta").and_then(Json::as_f64).is_some()
        || config_json
            .get("rope_parameters")
            .and_then(|p| p.get("full_attention").unwrap_or(p).get("rope_theta"))
            .and_then(Json::as_f64)
            .is_some();
    if rope_theta_given {
        hp.push(("rope.freq_base", Value::F32(config.rope_theta as f32)));
    }
    let swa_given = given("rope_local_base_freq")
        || config_json.get("rope_parameters").and_then(|p| p.get("sliding_attention")).is_some();
    if let Some(t) = config.rope_theta_swa.filter(|_| swa_given) {
        hp.push(("rope.freq_base_swa", Value::F32(t as f32)));
    }
    if given("rms_norm_eps") {
        hp.push(("attention.layer_norm_rms_epsilon", Value::F32(config.rms_norm_eps as f32)));
    }
    if given("head_dim") {
        hp.push(("attention.key_length", u32v(config.head_dim)));
        hp.push(("attention.value_length", u32v(config.head_dim)));
    }
    // The file type's place; the writer sets its value.
    hp.push(("", Value::U32(0)));
    for (k, v) in super::archs::converter_hparams(config, &config_json, hp) {
        match k {
            "" => md.push(("general.file_type".into(), v)),
            k => set(&mut md, &format!("{arch}.{k}"), v),
        }
    }
    if config.arch.facts().llama_converter {
        md.push((format!("{arch}.vocab_size"), u32v(config.vocab_size)));
        md.push((format!("{arch}.rope.dimension_count"), u32v(config.head_dim)));
    }
    md.push(("general.quantization_version".into(), Value::U32(2)));
    tokenizer_metadata(dir, config, &config_json, &mut md)?;
    Ok(md)
}

/// Sets `key` to `v`, in place when it is there already (as the converter's writer does).
fn set(md: &mut Vec<(String, Value)>, key: &str, v: Value) {
    match md.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = v,
        None => md.push((key.to_string(), v)),
    }
}

/// An added token of tokenizer.json.
struct Added {
    id: u32,
    content: String,
    special: bool,
}

/// The converter's `does_token_look_special`.
fn looks_special(t: &str) -> bool {
    matches!(t, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (t.starts_with("<|") && t.ends_with("|>"))
        || (t.starts_with("<｜") && t.ends_with("｜>"))
        || (t.starts_with("<unused") && t.ends_with('>'))
}

fn tokenizer_metadata(
    dir: &Path,
    config: &Config,
    config_json: &Json,
    md: &mut Vec<(String, Value)>,
) -> Result<(), LayoutError> {
    let tok_path = dir.join("tokenizer.json");
    let spm_path = dir.join("tokenizer.model");
    let tc = read_json_opt(&dir.join("tokenizer_config.json"))?;
    if config.arch.facts().llama_converter {
        if let Some(b) = tc.as_ref().and_then(|c| c.get("add_prefix_space")).and_then(Json::as_bool) {
            md.push(("tokenizer.ggml.add_space_prefix".into(), Value::Bool(b)));
        }
    }
    // The converter takes a SentencePiece model first, where there is one.
    if spm_path.is_file() {
        let tj = read_json_opt(&tok_path)?;
        sentencepiece_vocab(dir, config, tc.as_ref(), md)?;
        special_vocab(dir, tj.as_ref(), tc, config_json, Some(config.vocab_size), md)?;
        if config.arch.facts().converter_spm_no_space_prefix {
            // Gemma's SentencePiece prepends no space.
            set(md, "tokenizer.ggml.add_space_prefix", Value::Bool(false));
        }
        return finish_vocab(config, md);
    }
    if !tok_path.is_file() {
        return Err(invalid(
            dir,
            "GGUF output needs the tokenizer: the folder has neither tokenizer.json nor tokenizer.model",
        ));
    }
    let tj = read_json(&tok_path)?;
    let model = tj.get("model").ok_or_else(|| invalid(&tok_path, "no \"model\""))?;
    if model.get("type").and_then(Json::as_str) != Some("BPE") {
        return Err(invalid(&tok_path, format!("tokenizer model {} is not supported for GGUF output (byte-level BPE, or SentencePiece from tokenizer.model)", model.get("type").unwrap_or(&Json::Null))));
    }
    let byte_fallback = model.get("byte_fallback").and_then(Json::as_bool).unwrap_or(false);
    if byte_fallback {
        // The converter would write every score as -1000, which llama.cpp's SentencePiece
        // tokenizer cannot rank merges by: refused rather than written wrong.
        return Err(invalid(&tok_path, "a SentencePiece-style BPE (byte_fallback) needs its tokenizer.model for GGUF output: the scores llama.cpp merges by are there, not in tokenizer.json"));
    }
    // Tokens and their types, as the converter's get_vocab_base.
    let vocab =
        model.get("vocab").and_then(Json::as_object).ok_or_else(|| invalid(&tok_path, "the BPE model has no vocab"))?;
    let added: Vec<Added> = tj
        .get("added_tokens")
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| {
                    Some(Added {
                        id: t.get("id")?.as_u64()? as u32,
                        content: t.get("content")?.as_str()?.to_string(),
                        special: t.get("special").and_then(Json::as_bool).unwrap_or(false),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let mut by_id: HashMap<u32, String> =
        vocab.iter().filter_map(|(t, id)| Some((id.as_u64()? as u32, t.clone()))).collect();
    let mut added_by_id: HashMap<u32, &Added> = HashMap::new();
    for a in &added {
        by_id.insert(a.id, a.content.clone());
        added_by_id.insert(a.id, a);
    }
    if let Some(max) = by_id.keys().max().filter(|&&m| m as usize >= config.vocab_size) {
        return Err(invalid(
            &tok_path,
            format!("token id {max} is beyond the model's vocabulary of {}", config.vocab_size),
        ));
    }
    let added_content: HashMap<&str, u32> = added.iter().map(|a| (a.content.as_str(), a.id)).collect();
    let mut tokens = Vec::with_capacity(config.vocab_size);
    let mut types = Vec::with_capacity(config.vocab_size);
    for i in 0..config.vocab_size as u32 {
        match by_id.get(&i) {
            None => {
                tokens.push(Value::String(format!("[PAD{i}]")));
                types.push(Value::I32(UNUSED));
            }
            Some(t) if added_content.contains_key(t.as_str()) => {
                if added_by_id.get(&i).is_some_and(|a| a.special) || looks_special(t) {
                    tokens.push(Value::String(t.clone()));
                    types.push(Value::I32(CONTROL));
                } else {
                    tokens.push(Value::String(t.replace('\u{2581}', " ")));
                    types.push(Value::I32(USER_DEFINED));
                }
            }
            Some(t) => {
                tokens.push(Value::String(t.clone()));
                types.push(Value::I32(NORMAL));
            }
        }
    }
    md.push(("tokenizer.ggml.model".into(), Value::String("gpt2".into())));
    md.push(("tokenizer.ggml.pre".into(), Value::String(pre_tokenizer(&tok_path, &tj)?)));
    md.push(("tokenizer.ggml.tokens".into(), Value::Array(tokens)));
    md.push(("tokenizer.ggml.token_type".into(), Value::Array(types)));
    special_vocab(dir, Some(&tj), tc, config_json, None, md)?;
    finish_vocab(config, md)
}

/// The converter's llama class turns BOS off for 49152-token vocabularies (granite, SmolLM).
fn finish_vocab(config: &Config, md: &mut Vec<(String, Value)>) -> Result<(), LayoutError> {
    if config.arch.facts().llama_converter && config.vocab_size == 49152 {
        set(md, "tokenizer.ggml.add_bos_token", Value::Bool(false));
    }
    Ok(())
}

/// The converter's `_create_vocab_sentencepiece`: the pieces of tokenizer.model with their
/// scores and types (user-defined pieces stay normal, as there), `[PADn]` up to the model's
/// vocabulary, then added_tokens.json and tokenizer_config.json's added_tokens_decoder over them.
fn sentencepiece_vocab(
    dir: &Path,
    config: &Config,
    tc: Option<&Json>,
    md: &mut Vec<(String, Value)>,
) -> Result<(), LayoutError> {
    use crate::model::sentencepiece as sp;
    let pieces = sp::read(&dir.join("tokenizer.model")).map_err(|e| LayoutError::Invalid(e.to_string()))?;
    let n = config.vocab_size;
    let mut tokens: Vec<String> = (0..n).map(|i| format!("[PAD{i}]")).collect();
    let mut scores: Vec<f32> = vec![-10000.0; n];
    let mut types: Vec<i32> = vec![sp::UNUSED; n];
    for (i, p) in pieces.iter().enumerate().take(n) {
        tokens[i] = p.text.clone();
        scores[i] = p.score;
        types[i] = match p.kind {
            sp::UNKNOWN | sp::CONTROL | sp::UNUSED | sp::BYTE => p.kind,
            _ => sp::NORMAL,
        };
    }
    if let Some(added) = read_json_opt(&dir.join("added_tokens.json"))?.as_ref().and_then(Json::as_object) {
        for (t, id) in added {
            if let Some(id) = id.as_u64().map(|i| i as usize).filter(|&i| i < n) {
                tokens[id] = t.clone();
                scores[id] = -1000.0;
                types[id] = sp::USER_DEFINED;
            }
        }
    }
    // The converter's Phi-3 class: added tokens kept as written, CONTROL only when special, and
    // tokenizer.json's added tokens too.
    let phi3 = config.arch.facts().converter_added_tokens_as_written;
    let mut add = |id: usize, data: &Json| {
        let Some(content) = data.get("content").and_then(Json::as_str).filter(|_| id < n) else { return };
        let special = data.get("special").and_then(Json::as_bool).unwrap_or(false);
        if special || (!phi3 && looks_special(content)) {
            types[id] = sp::CONTROL;
            tokens[id] = content.to_string();
        } else {
            types[id] = sp::USER_DEFINED;
            tokens[id] = if phi3 { content.to_string() } else { content.replace('\u{2581}', " ") };
        }
        scores[id] = -1000.0;
    };
    if let Some(decoder) = tc.and_then(|c| c.get("added_tokens_decoder")).and_then(Json::as_object) {
        for (id, data) in decoder {
            if let Ok(id) = id.parse::<usize>() {
                add(id, data);
            }
        }
    }
    if phi3 {
        let tj = read_json_opt(&dir.join("tokenizer.json"))?;
        for data in tj.as_ref().and_then(|t| t.get("added_tokens")).and_then(Json::as_array).into_iter().flatten() {
            if let Some(id) = data.get("id").and_then(Json::as_u64) {
                add(id as usize, data);
            }
        }
    }
    md.push(("tokenizer.ggml.model".into(), Value::String("llama".into())));
    md.push(("tokenizer.ggml.pre".into(), Value::String("default".into())));
    md.push(("tokenizer.ggml.tokens".into(), Value::Array(tokens.into_iter().map(Value::String).collect())));
    md.push(("tokenizer.ggml.scores".into(), Value::Array(scores.into_iter().map(Value::F32).collect())));
    md.push(("tokenizer.ggml.token_type".into(), Value::Array(types.into_iter().map(Value::I32).collect())));
    Ok(())
}

/// llama.cpp's name for the folder's pre-tokenizer: by the hash of the ids of [`CHKTXT`] as the
/// converter finds it, else by the shape of tokenizer.json's pre-tokenizer.
fn pre_tokenizer(tok_path: &Path, tj: &Json) -> Result<String, LayoutError> {
    let tok = Tokenizer::from_file(tok_path).map_err(|e| LayoutError::Invalid(e.to_string()))?;
    let ids = tok.encode_with_special(CHKTXT).map_err(|e| LayoutError::Invalid(e.to_string()))?;
    let text = format!("[{}]", ids.iter().map(u32::to_string).collect::<Vec<_>>().join(", "));
    let hash = format!("{:x}", Sha256::digest(text.as_bytes()));
    if let Some((_, name)) = KNOWN_PRE.iter().rev().find(|(h, _)| *h == hash) {
        return Ok(name.to_string());
    }
    let pre = tj.get("pre_tokenizer").unwrap_or(&Json::Null);
    let kind = |p: &Json| p.get("type").and_then(Json::as_str).unwrap_or("").to_string();
    let byte_level = |p: &Json, regex: bool| {
        kind(p) == "ByteLevel" && p.get("use_regex").and_then(Json::as_bool).unwrap_or(true) == regex
    };
    let split = |p: &Json, pattern: &str| {
        kind(p) == "Split" && p.get("pattern").and_then(|x| x.get("Regex")).and_then(Json::as_str) == Some(pattern)
    };
    let seq: Vec<Json> = match kind(pre).as_str() {
        "Sequence" => pre.get("pretokenizers").and_then(Json::as_array).cloned().unwrap_or_default(),
        _ => vec![pre.clone()],
    };
    let name = match seq.as_slice() {
        [b] if byte_level(b, true) => Some("gpt-2"),
        [d, b]
            if kind(d) == "Digits"
                && d.get("individual_digits").and_then(Json::as_bool) == Some(true)
                && byte_level(b, true) =>
        {
            Some("smollm")
        }
        [s, b] if split(s, crate::model::tokenizer::QWEN2_PATTERN) && byte_level(b, false) => Some("qwen2"),
        [s, b] if split(s, crate::model::tokenizer::LLAMA3_PATTERN) && byte_level(b, false) => Some("llama-bpe"),
        _ => None,
    };
    name.map(str::to_string).ok_or_else(|| {
        invalid(tok_path, format!("unknown pre-tokenizer (its llama.cpp hash is {hash}); supported: the published vocabularies of {}, and tokenizer.json pre-tokenizers shaped as theirs", crate::model::tokenizer::PRE_TOKENIZERS.map(|(n, _)| n).join(", ")))
    })
}

/// The converter's `SpecialVocab`: merges (byte-level BPE: `n_vocab` None), special token ids
/// (below `n_vocab` when given), add_*_token flags, chat template. `tj` is tokenizer.json.
fn special_vocab(
    dir: &Path,
    tj: Option<&Json>,
    tc: Option<Json>,
    config_json: &Json,
    n_vocab: Option<usize>,
    md: &mut Vec<(String, Value)>,
) -> Result<(), LayoutError> {
    let tok_path = dir.join("tokenizer.json");
    let empty = Json::Null;
    let tj = tj.unwrap_or(&empty);
    let load_merges = n_vocab.is_none();
    let merges: Vec<Value> =
        match tj.get("model").and_then(|m| m.get("merges")).and_then(Json::as_array).filter(|_| load_merges) {
            Some(m) => m
                .iter()
                .map(|x| match x {
                    Json::String(s) => Ok(Value::String(s.clone())),
                    Json::Array(p) if p.len() == 2 => {
                        let part = |j: &Json| {
                            j.as_str()
                                .map(|s| s.chars().map(|c| if c == ' ' { '\u{120}' } else { c }).collect::<String>())
                        };
                        match (part(&p[0]), part(&p[1])) {
                            (Some(a), Some(b)) => Ok(Value::String(format!("{a} {b}"))),
                            _ => Err(invalid(&tok_path, "a merge that is not two strings")),
                        }
                    }
                    _ => Err(invalid(&tok_path, "unknown merges format")),
                })
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
    if load_merges {
        if merges.is_empty() {
            return Err(invalid(&tok_path, "the BPE model has no merges"));
        }
        md.push(("tokenizer.ggml.merges".into(), Value::Array(merges)));
    }
    let added: Vec<(String, u32)> = tj
        .get("added_tokens")
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| Some((t.get("content")?.as_str()?.to_string(), t.get("id")?.as_u64()? as u32)))
                .collect()
        })
        .unwrap_or_default();
    let mut types: Vec<&str> = vec!["bos", "eos", "unk", "sep", "pad", "cls", "mask"];
    let mut tc = tc;
    let mut add: Vec<(String, bool)> = Vec::new();
    let set_add = |add: &mut Vec<(String, bool)>, typ: &str, v: bool, overwrite: bool| match add
        .iter_mut()
        .find(|(t, _)| t == typ)
    {
        Some(slot) if overwrite => slot.1 = v,
        Some(_) => {}
        None => add.push((typ.to_string(), v)),
    };
    let tc_str = |tc: &Option<Json>, key: &str| -> Option<String> {
        tc.as_ref()?.get(key).and_then(|e| match e {
            Json::String(s) => Some(s.clone()),
            Json::Object(o) => o.get("content").and_then(Json::as_str).map(str::to_string),
            _ => None,
        })
    };
    let mut special_bos = tc_str(&tc, "bos_token");
    let mut special_cls = tc_str(&tc, "cls_token");
    let mut special_eos = tc_str(&tc, "eos_token");
    let special_sep = tc_str(&tc, "sep_token");
    let tc_set = |tc: &mut Option<Json>, key: &str, v: &str| {
        if let Some(Json::Object(o)) = tc.as_mut() {
            o.insert(key.into(), Json::String(v.into()));
        }
    };
    if special_bos.is_none() && special_cls.is_some() && tc.is_some() {
        special_bos = special_cls.clone();
        tc_set(&mut tc, "bos_token", special_bos.as_deref().unwrap_or_default());
    }
    if special_eos.is_none() && special_sep.is_some() && tc.is_some() {
        special_eos = special_sep.clone();
        tc_set(&mut tc, "eos_token", special_eos.as_deref().unwrap_or_default());
    }
    if let Some(pp) = tj.get("post_processor").filter(|p| !p.is_null()) {
        let procs: Vec<Json> = match pp.get("processors").and_then(Json::as_array) {
            Some(list) => list.clone(),
            None => vec![pp.clone()],
        };
        for p in procs {
            match p.get("type").and_then(Json::as_str) {
                Some("ByteLevel") => {
                    set_add(&mut add, "bos", false, false);
                    set_add(&mut add, "eos", false, false);
                }
                Some("RobertaProcessing") => {
                    for t in ["bos", "eos", "sep"] {
                        set_add(&mut add, t, true, true);
                    }
                }
                Some("TemplateProcessing") => {
                    let id_of = |x: Option<&Json>| {
                        x.and_then(|e| e.get("SpecialToken"))
                            .and_then(|s| s.get("id"))
                            .and_then(Json::as_str)
                            .map(str::to_string)
                    };
                    let single = p.get("single").and_then(Json::as_array).cloned().unwrap_or_default();
                    if single.len() > 1 {
                        if let Some(first) = id_of(single.first()) {
                            if tc.is_none() {
                                special_bos = Some(first.clone());
                            } else if Some(&first) != special_bos.as_ref() && Some(&first) != special_cls.as_ref() {
                                if special_bos.is_none() {
                                    special_bos = Some(first.clone());
                                    tc_set(&mut tc, "bos_token", &first);
                                }
                                if special_cls.is_none() {
                                    special_cls = Some(first.clone());
                                    tc_set(&mut tc, "cls_token", &first);
                                }
                            }
                            let is_bos = Some(&first) == special_bos.as_ref() || Some(&first) == special_cls.as_ref();
                            set_add(&mut add, "bos", is_bos, true);
                        }
                        if let Some(last) = id_of(single.last()) {
                            if tc.is_none() {
                                special_eos = Some(last.clone());
                            } else if Some(&last) != special_eos.as_ref() {
                                if !types.contains(&"eot") {
                                    types.push("eot");
                                    if let Some(e) = special_eos.clone() {
                                        tc_set(&mut tc, "eot_token", &e);
                                    }
                                }
                                special_eos = Some(last.clone());
                                tc_set(&mut tc, "eos_token", &last);
                            }
                            set_add(&mut add, "eos", true, true);
                        }
                    }
                    if let Some(pair) = p.get("pair").and_then(Json::as_array).filter(|p| !p.is_empty()) {
                        let first = id_of(single.first()).filter(|_| single.len() > 1);
                        let last = id_of(single.last()).filter(|_| single.len() > 1);
                        let start = usize::from(first.is_some() && id_of(pair.first()) == first);
                        let stop =
                            if last.is_some() && id_of(pair.last()) == last { pair.len() - 1 } else { pair.len() };
                        let inner = if start < stop { &pair[start..stop] } else { &[][..] };
                        let seq = |x: Option<&Json>| {
                            x.and_then(|e| e.get("Sequence"))
                                .and_then(|s| s.get("id"))
                                .and_then(Json::as_str)
                                .map(str::to_string)
                        };
                        if inner.len() > 2
                            && seq(inner.first()).as_deref() == Some("A")
                            && seq(inner.last()).as_deref() == Some("B")
                        {
                            let middle = &inner[1..inner.len() - 1];
                            let is_sep = |x: Option<String>| x.is_some() && (x == special_sep || x == special_eos);
                            let mut add_sep = false;
                            if let Some(e) = id_of(middle.first()) {
                                add_sep = is_sep(Some(e)) && last.is_none();
                            }
                            if middle.len() == 2 && is_sep(id_of(middle.get(1))) {
                                add_sep = true;
                            }
                            set_add(&mut add, "sep", add_sep, true);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let mut ids: Vec<(String, u32)> = Vec::new();
    let mut set_id = |typ: &str, id: Option<u32>| {
        if let Some(id) = id.filter(|&i| n_vocab.is_none_or(|n| (i as usize) < n)) {
            if !ids.iter().any(|(t, _)| t == typ) {
                ids.push((typ.to_string(), id));
            }
        }
    };
    let mut chat_template: Option<String> = None;
    if tc.is_some() {
        let jinja = dir.join("chat_template.jinja");
        let alt = if jinja.is_file() {
            Some(std::fs::read_to_string(&jinja).map_err(|e| invalid(&jinja, e))?)
        } else {
            read_json_opt(&dir.join("chat_template.json"))?
                .and_then(|j| j.get("chat_template").and_then(Json::as_str).map(str::to_string))
        };
        chat_template =
            tc.as_ref().and_then(|c| c.get("chat_template")).and_then(Json::as_str).map(str::to_string).or(alt);
        for typ in &types {
            if let Some(b) = tc.as_ref().and_then(|c| c.get(format!("add_{typ}_token"))).and_then(Json::as_bool) {
                set_add(&mut add, typ, b, false);
            }
            if let Some(content) = tc_str(&tc, &format!("{typ}_token")) {
                set_id(typ, added.iter().find(|(c, _)| *c == content).map(|(_, id)| *id));
            }
        }
    }
    for typ in &types {
        let v = config_json.get(format!("{typ}_token_id"));
        set_id(typ, v.and_then(Json::as_u64).map(|x| x as u32));
    }
    // The GGUF keys of the special tokens (gguf-py's writer has none for cls, nor add_* flags
    // beyond bos, eos and sep: those are skipped, as the converter skips them).
    let id_key = |typ: &str| match typ {
        "bos" => Some("tokenizer.ggml.bos_token_id"),
        "eos" => Some("tokenizer.ggml.eos_token_id"),
        "unk" => Some("tokenizer.ggml.unknown_token_id"),
        "sep" => Some("tokenizer.ggml.seperator_token_id"),
        "pad" => Some("tokenizer.ggml.padding_token_id"),
        "mask" => Some("tokenizer.ggml.mask_token_id"),
        "eot" => Some("tokenizer.ggml.eot_token_id"),
        "eom" => Some("tokenizer.ggml.eom_token_id"),
        _ => None,
    };
    for (typ, id) in ids {
        if let Some(k) = id_key(&typ) {
            md.push((k.into(), Value::U32(id)));
        }
    }
    for (typ, b) in add.into_iter().filter(|(t, _)| matches!(t.as_str(), "bos" | "eos" | "sep")) {
        md.push((format!("tokenizer.ggml.add_{typ}_token"), Value::Bool(b)));
    }
    if let Some(t) = chat_template {
        md.push(("tokenizer.chat_template".into(), Value::String(t)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_hash_names_a_pre_tokenizer_we_run() {
        for (_, name) in KNOWN_PRE {
            assert!(crate::model::tokenizer::pre_kind(name).is_some(), "{name}");
        }
    }

    #[test]
    fn names_are_titled_as_the_converter_titles_them() {
        assert_eq!(id_to_title("tiny-llama"), "Tiny Llama");
        assert_eq!(id_to_title("SmolLM2-135M-Instruct"), "SmolLM2 135M Instruct");
        assert_eq!(id_to_title("llama-3b-v1.2"), "Llama 3b v1.2");
        assert_eq!(title("qwen2b"), "Qwen2B");
    }

    #[test]
    fn naming_keys_are_the_converters() {
        // (folder name, config.json's `_name_or_path`, total parameters, [name, version,
        // organization, finetune, basename, size_label]): the converter's keys, as
        // scripts/make_name_expectations.py prints them from gguf-py.
        #[rustfmt::skip]
        let cases: [(&str, Option<&str>, u64, [Option<&str>; 6]); 34] = [
            ("qwen2.5-coder-0.5b-instruct", None, 494032768, [Some("Qwen2.5 Coder 0.5b Instruct"), None, None, Some("instruct"), Some("qwen2.5-coder"), Some("0.5B")]),
            ("gemma3-270m", None, 268098176, [Some("Gemma3 270m"), None, None, None, Some("gemma3"), Some("270M")]),
            ("SmolLM2-135M-Instruct", None, 134515008, [Some("SmolLM2 135M Instruct"), None, None, Some("Instruct"), Some("SmolLM2"), Some("135M")]),
            ("Llama-3.2-1B-Instruct", None, 1235814432, [Some("Llama 3.2 1B Instruct"), None, None, Some("Instruct"), Some("Llama-3.2"), Some("1B")]),
            ("Mistral-7B-Instruct-v0.3", None, 7248023552, [Some("Mistral 7B Instruct v0.3"), Some("v0.3"), None, Some("Instruct"), Some("Mistral"), Some("7B")]),
            ("Qwen3-0.6B", None, 596049920, [Some("Qwen3 0.6B"), None, None, None, Some("Qwen3"), Some("0.6B")]),
            ("phi-3-mini-4k-instruct", None, 3821079552, [Some("Phi 3 Mini 4k Instruct"), None, None, Some("4k-instruct"), Some("phi-3"), Some("mini")]),
            ("tiny-llama", None, 167880, [Some("Tiny Llama"), None, None, None, None, Some("168K")]),
            ("gemma-2-2b-it", None, 2614341888, [Some("Gemma 2 2b It"), None, None, Some("it"), Some("gemma-2"), Some("2B")]),
            ("Meta-Llama-3.1-8B-Instruct", None, 8030261312, [Some("Meta Llama 3.1 8B Instruct"), None, None, Some("Instruct"), Some("Meta-Llama-3.1"), Some("8B")]),
            ("Qwen2.5-7B-Instruct-1M", None, 7615616512, [Some("Qwen2.5 7B Instruct 1M"), None, None, Some("Instruct-1m"), Some("Qwen2.5"), Some("7B")]),
            ("model", None, 1000000, [Some("Model"), None, None, None, None, Some("1000K")]),
            ("qwen2.5-coder-0.5b-instruct", None, 167880, [Some("Qwen2.5 Coder 0.5b Instruct"), None, None, Some("0.5b-instruct"), Some("qwen2.5-coder"), Some("168K")]),
            ("gemma3-270m", None, 560000, [Some("Gemma3 270m"), None, None, Some("270m"), Some("gemma3"), Some("560K")]),
            ("Mixtral-8x7B-Instruct-v0.1", None, 46702792704, [Some("Mixtral 8x7B Instruct v0.1"), Some("v0.1"), None, Some("Instruct"), Some("Mixtral"), Some("8x7B")]),
            ("Qwen3-30B-A3B", None, 30532122624, [Some("Qwen3 30B A3B"), None, None, None, Some("Qwen3"), Some("30B-A3B")]),
            ("bloom-7b1", None, 7069016064, [Some("Bloom 7b1"), None, None, None, Some("bloom"), Some("7.1B")]),
            ("stablelm-2-zephyr-1_6b", None, 1644515328, [Some("Stablelm 2 Zephyr 1_6b"), None, None, None, Some("stablelm-2-zephyr"), Some("1.6B")]),
            ("Yi-1.5-34B-Chat-16K", None, 34388917248, [Some("Yi 1.5 34B Chat 16K"), None, None, Some("Chat-16k"), Some("Yi-1.5"), Some("34B")]),
            ("Llama-2-7b-chat-hf", None, 6738415616, [Some("Llama 2 7b Chat Hf"), None, None, Some("chat-hf"), Some("Llama-2"), Some("7B")]),
            ("TinyLlama-1.1B-Chat-v1.0", None, 1100048384, [Some("TinyLlama 1.1B Chat v1.0"), Some("v1.0"), None, Some("Chat"), Some("TinyLlama"), Some("1.1B")]),
            ("Phi-3.5-mini-instruct", None, 3821079552, [Some("Phi 3.5 Mini Instruct"), None, None, Some("instruct"), Some("Phi-3.5"), Some("mini")]),
            ("Meta-Llama-3-8B-Instruct-Q4_K_M", None, 8030261248, [Some("Meta Llama 3 8B Instruct Q4_K_M"), None, None, Some("Instruct"), Some("Meta-Llama-3"), Some("8B")]),
            ("OLMo-2-1124-7B-bf16", None, 7298617344, [Some("OLMo 2 1124 7B Bf16"), None, None, None, Some("OLMo-2-1124"), Some("7B")]),
            ("t5-v1_1-xxl", None, 11000000000, [Some("T5 V1_1 Xxl"), None, None, None, Some("t5-v1_1"), Some("xxl")]),
            ("falcon-7b-iter100--lora", None, 7000000000, [Some("Falcon 7b Iter100 Lora"), Some("iter100"), None, Some("lora"), Some("falcon"), Some("7B")]),
            ("3b-model", None, 3000000000, [Some("3b Model"), None, None, Some("3b-model"), None, Some("3.0B")]),
            ("c4ai-command-r-v01", None, 34980831232, [Some("C4Ai Command R v01"), Some("v01"), None, None, Some("c4ai-command-r"), Some("35B")]),
            ("checkpoint-1000", None, 494032768, [Some("Checkpoint 1000"), Some("1000"), None, None, Some("checkpoint"), Some("494M")]),
            ("snapshot", Some("Qwen/Qwen2.5-Coder-0.5B-Instruct"), 494032768, [Some("Qwen2.5 Coder 0.5B Instruct"), None, Some("Qwen"), Some("Instruct"), Some("Qwen2.5-Coder"), Some("0.5B")]),
            ("my-finetune-v2", Some("HuggingFaceTB/SmolLM2-135M"), 134515008, [Some("SmolLM2 135M"), Some("v2"), Some("HuggingFaceTB"), None, Some("SmolLM2"), Some("135M")]),
            ("tiny-qwen2", Some("./local-1B"), 167880, [Some("Local 1B"), None, None, Some("1b"), Some("local"), Some("168K")]),
            ("tiny-qwen2", Some("my cool-model v2"), 167880, [Some("My Cool Model v2"), None, None, None, None, Some("168K")]),
            ("tiny-qwen2", Some("/data/runs/out"), 167880, [Some("Tiny Qwen2"), None, None, None, None, Some("168K")]),
        ];
        let keys = [
            "general.name",
            "general.version",
            "general.organization",
            "general.finetune",
            "general.basename",
            "general.size_label",
        ];
        for (folder, name_or_path, total, want) in cases {
            let want: Vec<(&str, String)> =
                keys.into_iter().zip(want).filter_map(|(k, v)| Some((k, v?.to_string()))).collect();
            assert_eq!(naming(folder, name_or_path, total), want, "{folder} ({name_or_path:?}, {total} parameters)");
        }
    }

    #[test]
    fn model_id_parts_are_annotated_as_the_converter_annotates_them() {
        assert!(
            is_version_part("v0.3")
                && is_version_part("ITER100")
                && is_version_part("3.2")
                && !is_version_part("v")
                && !is_version_part("3.")
                && !is_version_part("v1b")
        );
        assert!(
            is_type_part("Q4_K_M")
                && is_type_part("iq2")
                && is_type_part("bf16")
                && is_type_part("FP32")
                && !is_type_part("iq2_xs")
                && !is_type_part("q40")
                && !is_type_part("qwen2")
        );
        assert!(
            is_size_part("8x7B")
                && is_size_part("A3B")
                && is_size_part("7b1")
                && is_size_part("1_6b")
                && is_size_part("XXL")
                && !is_size_part("7b12")
                && !is_size_part("x7b")
                && !is_size_part("1.b")
        );
    }

    #[test]
    fn size_labels_round_as_the_converter_does() {
        assert_eq!(size_label(167_880), "168K");
        assert_eq!(size_label(134_515_008), "135M");
        assert_eq!(size_label(1_235_814_400), "1.2B");
        assert_eq!(size_label(8_030_261_248), "8.0B");
    }
}
