//! EvoPress's layer database: every plannable tensor compressed once at every level it may
//! take, so that a search only swaps finished variants in and out.
//!
//! Two kinds of level ([`Kind`]). Types: the GGUF types the tensor's row width allows (k-quants
//! only where rows are a multiple of 256); Q4_0 is left out, as IQ4_NL costs the same bytes with
//! a non-uniform grid and lower error. Sparsity: the blocks' linears pruned by SparseGPT at every
//! share of [`SPARSITY_LEVELS`], kept in F16. Linears are compressed on the original model's
//! inputs (one forward per block, not sequential: the variants must not depend on each other);
//! types by GPTQ onto their GGUF grid (imatrix-weighted grids, as `triage compress --method
//! gptq`). The token embedding and a separate output matrix take types too, without calibrated
//! rounding, as in `triage compress`.
//!
//! The database is cached on disk as a GGUF file keyed by the model's and the calibration
//! text's sha256, the kind and the settings, so a second budget on the same model costs only
//! the search.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use crate::ggml::codec::{dequantize, quantize};
use crate::compress::gptq::{GptqOptions, Sparsity};
use crate::compress::pipeline::{compress_linear, importance, relative_output_error, sparsegpt_of, CompressOptions, Factors, Method, Pruner};
use crate::compress::plan::{plannable_tensors, TensorSpec};
use crate::ggml::types::{allowed_types, QuantType};
use crate::data::Windows;
use crate::importance::hessian::BlockMoments;
use crate::model::gguf_file::{self, GgufFile, OutTensor, Value};
use crate::model::kernels::with_f32;
use crate::model::runner::{Runner, StateLimits};
use crate::model::{BlockOpts, Model, ModelError, Result};

/// Bumped whenever the way variants are made changes, so old cache files are not reused.
const DATABASE_VERSION: u32 = 1;

/// What a database's levels are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Every GGUF type a tensor's rows allow, for every plannable tensor.
    Types,
    /// The blocks' linears at every share of [`SPARSITY_LEVELS`] (SparseGPT), in F16.
    Sparsity,
}

/// The shares of a sparsity database, sparsest (cheapest) first. 0.9 is the sparsest a tensor
/// may go in a searched plan.
pub const SPARSITY_LEVELS: [f32; 10] = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0];

/// The variants a linear with rows of `cols` gets in a database of `kind`, cheapest first.
fn specs(kind: Kind, cols: usize) -> Vec<TensorSpec> {
    match kind {
        Kind::Types => levels(cols).into_iter().map(|t| TensorSpec { qtype: t, sparsity: None }).collect(),
        Kind::Sparsity => SPARSITY_LEVELS.iter().map(|&p| TensorSpec { qtype: QuantType::F16, sparsity: (p > 0.0).then_some(Sparsity::Unstructured(p)) }).collect(),
    }
}

/// The share of each row a level prunes (0 for a quantized level).
fn share(spec: &TensorSpec) -> f32 {
    match spec.sparsity {
        Some(Sparsity::Unstructured(p)) => p,
        _ => 0.0,
    }
}

/// The tensors a database of `kind` holds, with their (rows, cols).
pub fn database_tensors(model: &Model, kind: Kind) -> BTreeMap<String, (usize, usize)> {
    plannable_tensors(&model.config)
        .into_iter()
        .filter(|(name, (_, cols))| match kind {
            Kind::Types => !levels(*cols).is_empty(),
            Kind::Sparsity => name.starts_with("blk."),
        })
        .collect()
}

/// The levels a tensor with rows of `cols` may take, cheapest first.
pub fn levels(cols: usize) -> Vec<QuantType> {
    let mut l: Vec<QuantType> = allowed_types(cols).into_iter().filter(|&t| t != QuantType::Q4_0).collect();
    l.sort_by(|a, b| a.bits_per_weight().total_cmp(&b.bits_per_weight()).then(a.ggml_id().cmp(&b.ggml_id())));
    l
}

/// One compressed version of one tensor.
#[derive(Debug, Clone)]
pub struct Variant {
    pub qtype: QuantType,
    /// The share of each row pruned (0 in a types database).
    pub sparsity: f32,
    pub bytes: Vec<u8>,
    /// ‖(W − Ŵ)X‖/‖WX‖ on the calibration inputs (linears); ‖W − Ŵ‖/‖W‖ (embedding, output).
    pub rel_error: f64,
}

#[derive(Debug, Clone)]
pub struct TensorVariants {
    pub rows: usize,
    pub cols: usize,
    /// Cheapest first.
    pub variants: Vec<Variant>,
}

impl TensorVariants {
    /// The variant's weights as a (rows, cols) f32 tensor.
    pub fn decoded(&self, level: usize) -> Result<Tensor> {
        let v = &self.variants[level];
        let w = dequantize(v.qtype, &v.bytes, self.rows * self.cols);
        Ok(Tensor::from_vec(w, (self.rows, self.cols), &Device::Cpu)?)
    }
}

/// Every plannable tensor's variants, by GGUF name.
#[derive(Debug, Clone)]
pub struct Database {
    pub key: String,
    pub tensors: BTreeMap<String, TensorVariants>,
}

/// What the database depends on besides the model: hashed into its cache key.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub tokens: usize,
    pub ctx: usize,
    pub gptq: GptqOptions,
}

/// The cache key: the program's and the format's versions, model bytes and calibration text
/// ([`super::digest::inputs_digest`]), kind and settings.
pub fn cache_key(inputs: &str, s: &DatabaseSettings, kind: Kind) -> String {
    let kind = match kind {
        Kind::Types => String::new(),
        Kind::Sparsity => format!(" sparsity {SPARSITY_LEVELS:?}"),
    };
    super::digest::short_key(&format!("v{DATABASE_VERSION} triage {}{kind} {inputs} tokens {} ctx {} damp {} act_order {} block {}", env!("CARGO_PKG_VERSION"), s.tokens, s.ctx, s.gptq.damp, s.gptq.act_order, s.gptq.block))
}

/// Builds the database of `kind` (tensors whose rows fit no quantized type are left out of a
/// types database: they keep their source bytes): one forward per block on the original
/// model's inputs, then every linear at every level. `progress(done, total)` counts blocks.
///
/// With a `partial` folder, each block's variants are saved there as the block finishes
/// (`block-N.gguf`), and blocks found there — made for the same key, with the expected
/// tensors and levels — are taken instead of compressed again: an interrupted build resumes
/// where it stopped.
pub fn build(model: &Model, windows: &Windows, settings: &DatabaseSettings, kind: Kind, key: String, partial: Option<&Path>, progress: &mut dyn FnMut(usize, usize)) -> Result<Database> {
    let opts = CompressOptions { method: Method::Gptq, pruner: Pruner::Sparsegpt, sequential: false, gptq: settings.gptq, batch: 4, imatrix: None, state_limits: StateLimits::UNLIMITED };
    // Always f32: the database is cached under a key that says nothing of the machine's memory.
    let mut runner = Runner::new(model, windows, opts.batch, StateLimits::UNLIMITED)?;
    let mut tensors = BTreeMap::new();
    let n = model.blocks.len();
    let all = database_tensors(model, kind);
    for (i, block) in model.blocks.iter().enumerate() {
        progress(i, n + 1);
        let saved = partial.map(|d| d.join(format!("block-{i}.gguf")));
        let prefix = format!("blk.{i}.");
        let expected: BTreeMap<String, (usize, usize)> = all.iter().filter(|(name, _)| name.starts_with(&prefix)).map(|(name, &shape)| (name.clone(), shape)).collect();
        let resumed = saved.as_deref().and_then(|p| Database::load(p, &key).ok().flatten()).filter(|db| mismatch(&db.tensors, &expected, kind).is_none());
        if let Some(db) = resumed {
            eprintln!("resuming the layer database: block {i} was built by an interrupted run");
            tensors.extend(db.tensors);
            runner.step(block, BlockOpts::default())?;
            continue;
        }
        let mut moments = BlockMoments::new(block);
        let next = runner.run(block, BlockOpts::default(), &mut moments, |_, _| {})?;
        let mut done = Database { key: key.clone(), tensors: BTreeMap::new() };
        let mut factors = Factors::default();
        for l in block.linears().into_iter().filter(|l| !specs(kind, l.in_features()).is_empty()) {
            let m = moments.of(&l.name).expect("every linear has an input group");
            let (rows, cols) = (l.out_features(), l.in_features());
            let w = with_f32(&l.weight, <[f32]>::to_vec)?;
            let imp = importance(m, None, &l.name);
            // Every level's GPTQ (or SparseGPT) runs on the same factorization of H: the
            // database's levels share their act-order setting.
            let specs = specs(kind, cols);
            let factor = factors.of(m, opts.gptq, sparsegpt_of(&specs[0], &opts))?;
            let variants = specs
                .into_par_iter()
                .map(|spec| {
                    let (new_w, bytes) = compress_linear(&w, rows, cols, &spec, m, Some(factor), &imp, &opts, &l.name)?;
                    Ok(Variant { qtype: spec.qtype, sparsity: share(&spec), bytes, rel_error: relative_output_error(m, &w, &new_w) })
                })
                .collect::<Result<Vec<_>>>()?;
            done.tensors.insert(l.name.clone(), TensorVariants { rows, cols, variants });
        }
        if let Some(p) = &saved {
            if let Err(e) = done.save(p) {
                eprintln!("warning: could not save block {i} of the layer database at {}: {e}", p.display());
            }
            crate::failpoint::hit("database-block", i + 1);
        }
        tensors.extend(done.tensors);
        runner.advance(next)?;
    }
    drop(runner);
    progress(n, n + 1);
    let unplanned: Vec<(String, (usize, usize))> = database_tensors(model, kind).into_iter().filter(|(name, _)| !name.starts_with("blk.")).collect();
    for (name, (rows, cols)) in unplanned {
        let t = if name == "token_embd.weight" { &model.embed } else { &model.lm_head.as_ref().expect("a separate output").weight };
        let w = with_f32(t, <[f32]>::to_vec)?;
        let norm: f64 = w.iter().map(|&x| (x as f64).powi(2)).sum();
        let variants = levels(cols)
            .into_par_iter()
            .map(|t| {
                let bytes = quantize(t, &w, cols, None);
                let d = dequantize(t, &bytes, w.len());
                let err: f64 = w.iter().zip(&d).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum();
                Variant { qtype: t, sparsity: 0.0, bytes, rel_error: (err / norm.max(f64::MIN_POSITIVE)).sqrt() }
            })
            .collect();
        tensors.insert(name, TensorVariants { rows, cols, variants });
    }
    progress(n + 1, n + 1);
    Ok(Database { key, tensors })
}

const VARIANT_SEP: char = '#';
/// Separates a sparse variant's type from its share: `name#F16@0.6`.
const SHARE_SEP: char = '@';

impl Database {
    /// Writes the database as a GGUF file (one tensor per variant, `name#TYPE` or
    /// `name#TYPE@share`), atomically.
    pub fn save(&self, path: &Path) -> std::result::Result<(), crate::export::gguf::ExportError> {
        let mut metadata = vec![
            ("general.architecture".to_string(), Value::String("triage-database".into())),
            ("triage.database.key".to_string(), Value::String(self.key.clone())),
        ];
        let mut out = Vec::new();
        for (name, tv) in &self.tensors {
            metadata.push((format!("triage.rel_error.{name}"), Value::Array(tv.variants.iter().map(|v| Value::F64(v.rel_error)).collect())));
            for v in &tv.variants {
                let share = if v.sparsity > 0.0 { format!("{SHARE_SEP}{}", v.sparsity) } else { String::new() };
                out.push(OutTensor {
                    name: format!("{name}{VARIANT_SEP}{}{share}", v.qtype.name()),
                    ne: vec![tv.cols as u64, tv.rows as u64],
                    qtype: v.qtype,
                    data: std::borrow::Cow::Borrowed(&v.bytes),
                });
            }
        }
        crate::export::write_atomic(path, |w| gguf_file::write(w, &metadata, &out).map_err(crate::export::gguf::ExportError::Io))
    }

    /// Reads a cached database: `Ok(None)` when there is none, `Err(why)` when the file cannot
    /// be trusted (unreadable, made for another key, a malformed variant, a non-finite error).
    pub fn load(path: &Path, key: &str) -> std::result::Result<Option<Database>, String> {
        if !path.exists() {
            return Ok(None);
        }
        let mut file = std::io::BufReader::new(std::fs::File::open(path).map_err(|e| e.to_string())?);
        let len = file.get_ref().metadata().map_err(|e| e.to_string())?.len();
        Database::parse(&mut file, len, key).map(Some)
    }

    /// Reads a database of `len` bytes from `r` (see [`Database::load`]).
    pub fn parse<R: std::io::Read + std::io::Seek>(r: &mut R, len: u64, key: &str) -> std::result::Result<Database, String> {
        let g = GgufFile::parse(r, len).map_err(|e| e.to_string())?;
        let file = r;
        match g.get("triage.database.key") {
            Some(Value::String(k)) if k == key => {}
            _ => return Err(format!("it was not made for key {key}")),
        }
        let mut tensors: BTreeMap<String, TensorVariants> = BTreeMap::new();
        for info in &g.tensors {
            let bad = |what: &str| format!("variant '{}': {what}", info.name);
            let (name, tag) = info.name.split_once(VARIANT_SEP).ok_or_else(|| bad("no type tag"))?;
            let sparsity = match tag.split_once(SHARE_SEP) {
                Some((_, p)) => p.parse().map_err(|_| bad("a share that is not a number"))?,
                None => 0.0,
            };
            let qtype = info.qtype().ok_or_else(|| bad("an unknown type"))?;
            let bytes = g.read_data(file, info).map_err(|e| bad(&e.to_string()))?;
            let [cols, rows] = info.ne[..] else { return Err(bad("not two-dimensional")) };
            let (cols, rows) = (cols as usize, rows as usize);
            let tv = tensors.entry(name.to_string()).or_insert_with(|| TensorVariants { rows, cols, variants: Vec::new() });
            if (tv.rows, tv.cols) != (rows, cols) {
                return Err(bad("a shape unlike the tensor's other variants"));
            }
            tv.variants.push(Variant { qtype, sparsity, bytes, rel_error: 0.0 });
        }
        for (name, tv) in &mut tensors {
            let Some(Value::Array(errs)) = g.get(&format!("triage.rel_error.{name}")) else { return Err(format!("no errors for '{name}'")) };
            if errs.len() != tv.variants.len() {
                return Err(format!("{} errors for the {} variants of '{name}'", errs.len(), tv.variants.len()));
            }
            for (v, e) in tv.variants.iter_mut().zip(errs) {
                v.rel_error = match e {
                    Value::F64(x) if x.is_finite() && *x >= 0.0 => *x,
                    _ => return Err(format!("an error of '{name}' is not a finite non-negative F64")),
                };
            }
        }
        Ok(Database { key: key.to_string(), tensors })
    }

    /// Why this database cannot serve `model` as a database of `kind` (None: it can).
    pub fn mismatch(&self, model: &Model, kind: Kind) -> Option<String> {
        mismatch(&self.tensors, &database_tensors(model, kind), kind)
    }

}

/// Why `tensors` are not a database of `kind` for the `expected` tensors and shapes (None:
/// they are): every expected tensor, with its shape and exactly the levels the code makes, in
/// order, each variant of its type's size.
fn mismatch(tensors: &BTreeMap<String, TensorVariants>, expected: &BTreeMap<String, (usize, usize)>, kind: Kind) -> Option<String> {
    if !tensors.keys().eq(expected.keys()) {
        return Some(format!("it holds {} tensors, {} are expected", tensors.len(), expected.len()));
    }
    for (name, &(rows, cols)) in expected {
        let tv = &tensors[name];
        if (tv.rows, tv.cols) != (rows, cols) {
            return Some(format!("'{name}' is {}×{}, the model's is {rows}×{cols}", tv.rows, tv.cols));
        }
        let want: Vec<(QuantType, f32)> = if name.starts_with("blk.") {
            specs(kind, cols).iter().map(|s| (s.qtype, share(s))).collect()
        } else {
            levels(cols).into_iter().map(|t| (t, 0.0)).collect()
        };
        let have: Vec<(QuantType, f32)> = tv.variants.iter().map(|v| (v.qtype, v.sparsity)).collect();
        if have != want {
            return Some(format!("'{name}' has levels {have:?}, the code makes {want:?}"));
        }
        if let Some(v) = tv.variants.iter().find(|v| v.bytes.len() != v.qtype.bytes(rows * cols)) {
            return Some(format!("a {} variant of '{name}' has {} bytes", v.qtype, v.bytes.len()));
        }
    }
    None
}

/// Where cached databases live: $TRIAGE_CACHE, else $XDG_CACHE_HOME/triage, else ~/.cache/triage.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("TRIAGE_CACHE") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("triage"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("triage"))
}

/// The cached database for `key` in `dir`, or a freshly built one (saved there when `dir` is given).
pub fn load_or_build(
    model: &Model,
    windows: &Windows,
    settings: &DatabaseSettings,
    kind: Kind,
    key: String,
    dir: Option<&Path>,
    progress: &mut dyn FnMut(usize, usize),
) -> std::result::Result<(Database, bool), ModelError> {
    let path = dir.map(|d| d.join(format!("database-{key}.gguf")));
    if let Some(p) = path.as_deref() {
        let checked = Database::load(p, &key).and_then(|db| match db.as_ref().and_then(|db| db.mismatch(model, kind)) {
            Some(why) => Err(why),
            None => Ok(db),
        });
        match checked {
            Ok(Some(db)) => return Ok((db, true)),
            Ok(None) => {}
            Err(why) => eprintln!("warning: the cached layer database {} is not used ({why}); rebuilding it", p.display()),
        }
    }
    // Blocks finished by an interrupted build of the same key wait in the partial folder.
    // A cache that cannot be written only costs time next run.
    let partial = dir.map(|d| d.join(format!("database-{key}.partial"))).filter(|p| std::fs::create_dir_all(p).is_ok());
    let db = build(model, windows, settings, kind, key, partial.as_deref(), progress)?;
    if let Some(p) = &path {
        match db.save(p) {
            Ok(()) => {
                if let Some(d) = &partial {
                    let _ = std::fs::remove_dir_all(d);
                }
            }
            Err(e) => eprintln!("warning: could not cache the layer database at {}: {e}", p.display()),
        }
    }
    Ok((db, false))
}
