//! The parser families and their seed files: the test fixtures, and imatrix files and plans made
//! by our own writers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::mutate::{damage_payload, mutate, mutate_or_damage, Layout, Rng, Seed};
use super::{valid, Family, Loaded};
use crate::calib::imatrix::{Imatrix, ImatrixEntry};
use crate::compress::plan::Plan;
use crate::ggml::codec::{dequantize, quantize};
use crate::ggml::types::ALL_TYPES;
use crate::model::config::HfConfig;
use crate::model::gguf_file::GgufFile;
use crate::model::kernels::with_f32;
use crate::model::tensor_id::gguf_block;
use crate::model::{gguf, hf, tensor_by_name, Model, Tokenizer};
use crate::plan::database::{database_tensors, levels, saved_block, Database, Kind, TensorVariants, Variant};
use crate::plan::evo::{parse_state, SearchState};
use crate::plan::sealed::seal;
use crate::plan::sensitivity::parse_cache;

/// A short text to tokenize with every tokenizer that loads.
const TEXT: &str = "The nation is at peace, 1861–1865; naïve café <|endoftext|> 12345.";

const GGUF_FIXTURES: [&str; 4] = ["tiny-llama.gguf", "tiny-qwen2.gguf", "tiny-gemma3.gguf", "tiny-phi3.gguf"];

/// Files of the Hugging Face fixtures to damage, by folder.
const HF_FILES: [(&str, &str); 10] = [
    ("tiny-llama", "config.json"),
    ("tiny-gemma3", "config.json"),
    ("tiny-phi3", "config.json"),
    ("tiny-gemma3-vl", "config.json"),
    ("tiny-llama", "tokenizer.json"),
    ("tiny-llama", "model.safetensors"),
    ("tiny-qwen2", "model.safetensors"),
    ("tiny-llama-sharded", "model.safetensors.index.json"),
    ("tiny-llama-sharded", "model-00001-of-00003.safetensors"),
    ("tiny-llama-sharded", "model-00003-of-00003.safetensors"),
];

/// Files of the Hugging Face fixtures to damage before writing a GGUF from the folder (the
/// metadata and tokenizer as llama.cpp's converter writes them).
const HF_GGUF_FILES: [(&str, &str); 10] = [
    ("tiny-llama", "tokenizer.json"),
    ("tiny-gemma2", "config.json"),
    ("tiny-phi3", "tokenizer_config.json"),
    ("tiny-gemma3-vl", "config.json"),
    ("tiny-llama", "tokenizer_config.json"),
    ("tiny-llama", "generation_config.json"),
    ("tiny-qwen3", "config.json"),
    ("tiny-spm", "tokenizer.model"),
    ("tiny-spm", "tokenizer_config.json"),
    ("tiny-llama-sharded", "model-00002-of-00003.safetensors"),
];

/// Every family, seeded from the fixtures in `fixtures` (`tests/fixtures`); scratch files go
/// under a fresh folder of `scratch`, removed when the families are dropped.
pub fn families(fixtures: &Path, scratch: &Path) -> Result<Vec<Family>, String> {
    let aliases = super::cli::aliases_family(scratch)?;
    let scratch = Arc::new(Scratch::new(scratch)?);
    let read = |p: PathBuf| std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()));
    let gguf_seeds = GGUF_FIXTURES
        .iter()
        .map(|f| Ok(Seed::new(f, read(fixtures.join(f))?, Layout::Gguf)))
        .collect::<Result<Vec<_>, String>>()?;
    let json_seeds = |file: &str| -> Result<Vec<Seed>, String> {
        ["tiny-llama", "tiny-qwen2"]
            .iter()
            .map(|d| Ok(Seed::new(&format!("{d}/{file}"), read(fixtures.join(d).join(file))?, Layout::Json)))
            .collect()
    };
    let model = Arc::new(Model::load(&fixtures.join("tiny-llama.gguf")).map_err(|e| e.to_string())?);
    let caches = [
        database_family("database-cache", mutate, &model, &scratch)?,
        database_family("database-payload", damage_payload, &model, &scratch)?,
        partial_block_family(&model, scratch.clone())?,
        sensitivity_family(&model)?,
        search_state_family(),
    ];
    let mut all = vec![
        Family {
            name: "gguf-header",
            seeds: gguf_seeds.clone(),
            input: mutate,
            check: Box::new(|_, b| GgufFile::from_bytes(b).map(valid).map_err(|e| e.to_string())),
        },
        Family {
            name: "gguf-model",
            seeds: gguf_seeds,
            input: mutate,
            check: Box::new(|_, b| load_gguf(b).map(valid)),
        },
        Family {
            name: "config-json",
            seeds: json_seeds("config.json")?,
            input: mutate,
            check: Box::new(|_, b| load_config(b).map(valid)),
        },
        Family {
            name: "tokenizer-json",
            seeds: json_seeds("tokenizer.json")?,
            input: mutate,
            check: Box::new(|_, b| load_tokenizer(b).map(valid)),
        },
        hf_folder("hf-folder", &HF_FILES, load_folder, fixtures, scratch.clone())?,
        hf_folder("hf-gguf-metadata", &HF_GGUF_FILES, gguf_metadata, fixtures, scratch.clone())?,
        Family {
            name: "sentencepiece-model",
            seeds: vec![Seed::new(
                "tiny-spm/tokenizer.model",
                read(fixtures.join("tiny-spm/tokenizer.model"))?,
                Layout::Raw,
            )],
            input: mutate,
            check: Box::new(|_, b| load_sentencepiece(b).map(valid)),
        },
        Family {
            name: "plan-json",
            seeds: vec![plan_seed()],
            input: mutate,
            check: Box::new(move |_, b| read_plan(&model, b).map(valid)),
        },
        imatrix_family("imatrix-dat", &scratch, false)?,
        imatrix_family("imatrix-gguf", &scratch, true)?,
        Family {
            name: "tensor-decode",
            seeds: decode_seeds(),
            input: random_blocks,
            check: Box::new(|s, b| decode(s, b).map(valid)),
        },
    ];
    all.extend(caches);
    all.extend([aliases, super::cli::numbers_family()]);
    Ok(all)
}

/// The key the cache families' seeds are made and read with.
const CACHE_KEY: &str = "fuzz";

/// A layer database of the tiny llama's tensors named with `prefix` (every tensor at every
/// level its rows allow, by round-to-nearest, each level's error its own) in the format
/// `triage plan` caches.
fn tiny_database(model: &Model, block: Option<usize>) -> Result<Database, String> {
    let mut tensors = BTreeMap::new();
    for (name, (rows, cols)) in database_tensors(&model.config, Kind::Types, None)
        .into_iter()
        .filter(|(n, _)| block.is_none_or(|b| gguf_block(n) == Some(b)))
    {
        let w = tensor_by_name(model, &name).ok_or_else(|| format!("no tensor {name}"))?;
        let w = with_f32(w, <[f32]>::to_vec).map_err(|e| e.to_string())?;
        let variants = levels(cols, None)
            .into_iter()
            .enumerate()
            .map(|(l, t)| Variant::in_memory(t, 0.0, quantize(t, &w, cols, None), 0.5 / (l + 1) as f64))
            .collect();
        tensors.insert(name, TensorVariants { rows, cols, variants, drawn: None });
    }
    Ok(Database::new(CACHE_KEY.into(), tensors))
}

/// Whether `loaded` holds what `seed` does — the same tensors, shapes, levels, errors and
/// bytes — else what differs first, as [`Loaded`].
fn same_database(loaded: &Database, seed: &Database) -> Result<Loaded, String> {
    if !loaded.tensors.keys().eq(seed.tensors.keys()) {
        return Ok(Loaded::Damaged("other tensors".into()));
    }
    for (name, tv) in &seed.tensors {
        let got = &loaded.tensors[name];
        if (got.rows, got.cols, got.variants.len()) != (tv.rows, tv.cols, tv.variants.len()) {
            return Ok(Loaded::Damaged(format!("{name}: another shape or number of levels")));
        }
        for (level, (a, b)) in got.variants.iter().zip(&tv.variants).enumerate() {
            let bytes = |db: &Database| db.bytes(name, level).map(|b| b.into_owned()).map_err(|e| e.to_string());
            if (a.qtype, a.sparsity, a.rel_error) != (b.qtype, b.sparsity, b.rel_error)
                || bytes(loaded)? != bytes(seed)?
            {
                return Ok(Loaded::Damaged(format!("{name} level {level} loaded with other bytes or error")));
            }
        }
    }
    Ok(Loaded::Valid)
}

/// The layer-database cache, damaged by `input`: read, then checked against the model's
/// tensors and levels, as `triage plan` does before it trusts a cached database; what loads
/// must be what was saved.
fn database_family(
    name: &'static str,
    input: fn(&Seed, &mut Rng) -> Vec<u8>,
    model: &Arc<Model>,
    scratch: &Scratch,
) -> Result<Family, String> {
    let path = scratch.0.join(format!("{name}.gguf"));
    let saved = tiny_database(model, None)?;
    saved.save(&path).map_err(|e| e.to_string())?;
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let model = Arc::clone(model);
    let check = move |_: usize, b: &[u8]| {
        let db = Database::parse(&mut std::io::Cursor::new(b), b.len() as u64, CACHE_KEY)?;
        db.mismatch(&model.config, Kind::Types, None).map_or(Ok(()), Err)?;
        same_database(&db, &saved)
    };
    Ok(Family { name, seeds: vec![Seed::new("database.gguf", bytes, Layout::Gguf)], input, check: Box::new(check) })
}

/// A block saved by an interrupted database build (`block-0.gguf` of a `.partial` folder),
/// damaged in its header or its data, written to a file and read as a resumed build does.
fn partial_block_family(model: &Model, scratch: Arc<Scratch>) -> Result<Family, String> {
    let saved = tiny_database(model, Some(0))?;
    let path = scratch.0.join("block-0.gguf");
    saved.save(&path).map_err(|e| e.to_string())?;
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let expected: BTreeMap<String, (usize, usize)> =
        saved.tensors.iter().map(|(n, tv)| (n.clone(), (tv.rows, tv.cols))).collect();
    let check = move |_: usize, b: &[u8]| {
        let file = scratch.0.join(format!("block-{}.gguf", rayon::current_thread_index().unwrap_or(usize::MAX)));
        std::fs::write(&file, b).map_err(|e| e.to_string())?;
        match saved_block(&file, CACHE_KEY, &expected, Kind::Types, None)? {
            Some(db) => same_database(&db, &saved),
            None => Err("no block was found".into()),
        }
    };
    Ok(Family {
        name: "partial-block",
        seeds: vec![Seed::new("block-0.gguf", bytes, Layout::Gguf)],
        input: mutate_or_damage,
        check: Box::new(check),
    })
}

/// The sensitivity cache (tensor name → ΔKL) of the tiny llama's database; what loads must be
/// what was saved.
fn sensitivity_family(model: &Model) -> Result<Family, String> {
    let db = tiny_database(model, None)?;
    let dkl: BTreeMap<String, f64> =
        db.tensors.keys().enumerate().map(|(i, k)| (k.clone(), 0.0125 * (i + 1) as f64)).collect();
    let text = seal(&dkl).into_bytes();
    let check = move |_: usize, b: &[u8]| {
        let read = parse_cache(std::str::from_utf8(b).map_err(|e| e.to_string())?, &db)?;
        Ok(if read.iter().eq(dkl.values()) { Loaded::Valid } else { Loaded::Damaged("other ΔKL".into()) })
    };
    Ok(Family {
        name: "sensitivity-cache",
        seeds: vec![Seed::new("sensitivity.json", text, Layout::Json)],
        input: mutate_or_damage,
        check: Box::new(check),
    })
}

/// A saved EvoPress state (`search-KEY.json`) as `--resume` reads it; what loads must be what
/// was saved.
fn search_state_family() -> Family {
    let state = SearchState {
        generation: 17,
        rng: 0x9E37_79B9_7F4A_7C15,
        parent: vec![3, 0, 5, 2, 2, 7, 1, 4, 6, 0, 3],
        parent_fit: 0.031_25,
    };
    let text = seal(&state).into_bytes();
    let check = move |_: usize, b: &[u8]| {
        let read = parse_state(std::str::from_utf8(b).map_err(|e| e.to_string())?)?;
        Ok(if read == state { Loaded::Valid } else { Loaded::Damaged(format!("{read:?}")) })
    };
    Family {
        name: "search-state",
        seeds: vec![Seed::new("search.json", text, Layout::Json)],
        input: mutate_or_damage,
        check: Box::new(check),
    }
}

/// A scratch folder, removed with everything in it when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(parent: &Path) -> Result<Scratch, String> {
        static MADE: AtomicUsize = AtomicUsize::new(0);
        let dir = parent.join(format!("triage-fuzz-{}-{}", std::process::id(), MADE.fetch_add(1, Ordering::Relaxed)));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn load_gguf(b: &[u8]) -> Result<(), String> {
    let model = gguf::load_bytes(Path::new("fuzz.gguf"), b).map_err(|e| e.to_string())?;
    model.tokenizer.as_ref().map_or(Ok(()), use_tokenizer)
}

fn use_tokenizer(t: &Tokenizer) -> Result<(), String> {
    let ids = t.encode(TEXT).map_err(|e| e.to_string())?;
    t.decode(&ids).map(drop).map_err(|e| e.to_string())
}

fn load_config(b: &[u8]) -> Result<(), String> {
    let c: HfConfig = serde_json::from_slice(b).map_err(|e| format!("invalid config.json: {e}"))?;
    c.into_config().map(drop).map_err(|e| e.to_string())
}

fn load_tokenizer(b: &[u8]) -> Result<(), String> {
    let t = Tokenizer::from_json(Path::new("tokenizer.json"), b).map_err(|e| e.to_string())?;
    t.check_ids(300).map_err(|e| e.to_string())?;
    use_tokenizer(&t)
}

fn load_folder(folder: &Path) -> Result<(), String> {
    hf::load(folder).map_err(|e| e.to_string()).and_then(|m| m.tokenizer.as_ref().map_or(Ok(()), use_tokenizer))
}

/// What a GGUF written from the folder starts from: its metadata, tokenizer and tensor list.
fn gguf_metadata(folder: &Path) -> Result<(), String> {
    crate::layout::check_source(folder).map_err(|e| e.to_string())
}

fn load_sentencepiece(b: &[u8]) -> Result<(), String> {
    let t = Tokenizer::from_sentencepiece_bytes(Path::new("tokenizer.model"), b).map_err(|e| e.to_string())?;
    use_tokenizer(&t)
}

/// Whole Hugging Face folders, one of `files` damaged, then `check`ed: each worker thread works
/// on its own copy of the fixture folders, writing the damaged file in and the original back
/// after the case.
fn hf_folder(
    name: &'static str,
    files: &'static [(&'static str, &'static str)],
    check: fn(&Path) -> Result<(), String>,
    fixtures: &Path,
    scratch: Arc<Scratch>,
) -> Result<Family, String> {
    let mut seeds = Vec::new();
    for &(dir, file) in files {
        let bytes = std::fs::read(fixtures.join(dir).join(file)).map_err(|e| format!("{dir}/{file}: {e}"))?;
        let layout = if file.ends_with(".json") {
            Layout::Json
        } else if file.ends_with(".safetensors") {
            Layout::Safetensors
        } else {
            Layout::Raw
        };
        seeds.push(Seed::new(&format!("{dir}/{file}"), bytes, layout));
    }
    let originals: Vec<Vec<u8>> = seeds.iter().map(|s| s.bytes.clone()).collect();
    let fixtures = fixtures.to_path_buf();
    let run = move |s: usize, b: &[u8]| -> Result<Loaded, String> {
        let (dir, file) = files[s];
        let worker = scratch.0.join(format!("{name}-{}", rayon::current_thread_index().unwrap_or(usize::MAX)));
        let folder = worker.join(dir);
        if !folder.exists() {
            copy_folder(&fixtures.join(dir), &folder).map_err(|e| format!("setting up {}: {e}", folder.display()))?;
        }
        std::fs::write(folder.join(file), b).map_err(|e| e.to_string())?;
        let result = check(&folder);
        std::fs::write(folder.join(file), &originals[s]).map_err(|e| e.to_string())?;
        result.map(valid)
    };
    Ok(Family { name, seeds, input: mutate, check: Box::new(run) })
}

fn copy_folder(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        std::fs::copy(e.path(), to.join(e.file_name()))?;
    }
    Ok(())
}

/// A plan for the tiny llama using every key a plan can hold, report keys included.
fn plan_seed() -> Seed {
    let plan = serde_json::json!({
        "tensors": {
            "blk.0.attn_q.weight": "Q8_0",
            "blk.0.ffn_down.weight": {"type": "Q4_0", "sparsity": 0.5},
            "blk.1.attn_k.weight": {"type": "Q8_0", "sparsity": "2:4"},
            "token_embd.weight": {"type": "F16"}
        },
        "drop_blocks": [2], "drop_attention": [1], "drop_mlp": [0],
        "budget": "bpw=6", "solver": "evo", "predicted": {"bytes": 1000, "bits_per_weight": 6.0},
        "timings": {"total_s": 1.5}, "search_fitness": 0.01
    });
    Seed::new("plan.json", serde_json::to_vec_pretty(&plan).expect("serialisable"), Layout::Json)
}

fn read_plan(model: &Model, b: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(b).map_err(|e| format!("not UTF-8: {e}"))?;
    Plan::from_json(text, &model.config).map(drop)
}

/// Imatrix files written by our own writer (GGUF or `.dat`) for two of the tiny llama's linears.
fn imatrix_family(name: &'static str, scratch: &Scratch, gguf: bool) -> Result<Family, String> {
    let mut entries = BTreeMap::new();
    entries.insert(
        "blk.0.attn_q.weight".to_string(),
        ImatrixEntry { in_sum2: (0..64).map(|i| i as f32 * 0.25).collect(), count: 512.0 },
    );
    entries.insert("blk.0.ffn_down.weight".to_string(), ImatrixEntry { in_sum2: vec![1.5; 160], count: 512.0 });
    let m = Imatrix { entries, datasets: vec!["calib.txt".into()], chunk_count: 2, chunk_size: 256 };
    let path = scratch.0.join(if gguf { "imatrix.gguf" } else { "imatrix.dat" });
    if gguf { m.write_gguf(&path) } else { m.write_dat(&path) }.map_err(|e| e.to_string())?;
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let layout = if gguf { Layout::Gguf } else { Layout::ImatrixDat };
    let check = |_: usize, b: &[u8]| Imatrix::from_bytes(Path::new("imatrix"), b).map(valid).map_err(|e| e.to_string());
    Ok(Family { name, seeds: vec![Seed::new(name, bytes, layout)], input: mutate, check: Box::new(check) })
}

/// One block of each type we decode; cases are random bytes of a whole number of such blocks.
fn decode_seeds() -> Vec<Seed> {
    ALL_TYPES.iter().map(|t| Seed::new(t.name(), vec![0; t.block_bytes()], Layout::Raw)).collect()
}

fn random_blocks(seed: &Seed, rng: &mut Rng) -> Vec<u8> {
    let n = seed.bytes.len() * (1 + rng.below(16));
    (0..n).map(|_| rng.next_u64() as u8).collect()
}

fn decode(s: usize, b: &[u8]) -> Result<(), String> {
    let t = ALL_TYPES[s];
    let n = b.len() / t.block_bytes() * t.block_size();
    let y = dequantize(t, b, n);
    if y.len() != n {
        return Err(format!("{t}: decoded {} values of {n}", y.len()));
    }
    Ok(())
}
