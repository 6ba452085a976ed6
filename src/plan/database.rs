//! EvoPress's layer database: every plannable tensor compressed once at every level it may
//! take, so that a search only swaps finished variants in and out.
//!
//! Levels are the GGUF types the tensor's row width allows (k-quants only where rows are a
//! multiple of 256). Q4_0 is left out: IQ4_NL costs the same bytes with a non-uniform grid and
//! lower error. Linears are quantized by GPTQ onto their GGUF grid (imatrix-weighted grids, as
//! `triage compress --method gptq`) on the original model's inputs (one forward per block, not
//! sequential: the variants must not depend on each other). The token embedding and a separate
//! output matrix have no calibrated rounding, as in `triage compress`.
//!
//! The database is cached on disk as a GGUF file keyed by the model's and the calibration
//! text's sha256 and the settings, so a second budget on the same model costs only the search.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::compress::codec::{dequantize, quantize};
use crate::compress::gptq::GptqOptions;
use crate::compress::pipeline::{compress_linear, importance, relative_output_error, CompressOptions, Method, Pruner};
use crate::compress::plan::{plannable_tensors, TensorSpec};
use crate::compress::types::{allowed_types, QuantType};
use crate::data::Windows;
use crate::importance::hessian::BlockMoments;
use crate::model::gguf_file::{self, GgufFile, OutTensor, Value};
use crate::model::kernels::with_f32;
use crate::model::{BlockOpts, Model, ModelError, Result};

/// Bumped whenever the way variants are made changes, so old cache files are not reused.
const DATABASE_VERSION: u32 = 1;

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

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:x}", h.finalize()))
}

/// The cache key: model bytes, calibration text and settings.
pub fn cache_key(model: &Path, calib: &Path, s: &DatabaseSettings) -> std::io::Result<String> {
    let m = if model.is_dir() {
        // A Hugging Face folder: its weights and config.
        let mut names: Vec<PathBuf> = std::fs::read_dir(model)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|e| e == "safetensors" || e == "json")).collect();
        names.sort();
        names.iter().map(|p| sha256_file(p)).collect::<std::io::Result<Vec<_>>>()?.join("")
    } else {
        sha256_file(model)?
    };
    let c = sha256_file(calib)?;
    let settings = format!("v{DATABASE_VERSION} model {m} calib {c} tokens {} ctx {} damp {} act_order {} block {}", s.tokens, s.ctx, s.gptq.damp, s.gptq.act_order, s.gptq.block);
    Ok(format!("{:x}", Sha256::digest(settings.as_bytes()))[..24].to_string())
}

/// Builds the database (tensors whose rows fit no quantized type are left out: they keep their
/// source bytes): one forward per block on the original model's inputs, then every
/// linear at every level. `progress(done, total)` counts blocks.
pub fn build(model: &Model, windows: &Windows, settings: &DatabaseSettings, key: String, progress: &mut dyn FnMut(usize, usize)) -> Result<Database> {
    let opts = CompressOptions { method: Method::Gptq, pruner: Pruner::Sparsegpt, sequential: false, gptq: settings.gptq, batch: 4, imatrix: None };
    let ctx = windows.ctx;
    let positions = model.positions(ctx)?;
    let mut hidden: Vec<Tensor> = windows
        .windows
        .chunks(opts.batch)
        .map(|c| {
            let flat: Vec<u32> = c.iter().flatten().copied().collect();
            model.embed(&Tensor::from_vec(flat, (c.len(), ctx), &Device::Cpu)?)
        })
        .collect::<Result<_>>()?;
    let mut tensors = BTreeMap::new();
    let n = model.blocks.len();
    for (i, block) in model.blocks.iter().enumerate() {
        progress(i, n + 1);
        let mut moments = BlockMoments::new(block);
        let mut next = Vec::with_capacity(hidden.len());
        for h in &hidden {
            next.push(block.forward(h, &model.config, &positions, BlockOpts::default(), &mut moments)?);
        }
        for l in block.linears().into_iter().filter(|l| !levels(l.in_features()).is_empty()) {
            let m = moments.of(&l.name).expect("every linear has an input group");
            let (rows, cols) = (l.out_features(), l.in_features());
            let w = with_f32(&l.weight, <[f32]>::to_vec)?;
            let imp = importance(m, None, &l.name);
            let variants = levels(cols)
                .into_par_iter()
                .map(|t| {
                    let spec = TensorSpec { qtype: t, sparsity: None };
                    let (new_w, bytes) = compress_linear(&w, rows, cols, &spec, m, &imp, &opts, &l.name)?;
                    Ok(Variant { qtype: t, bytes, rel_error: relative_output_error(m, &w, &new_w) })
                })
                .collect::<Result<Vec<_>>>()?;
            tensors.insert(l.name.clone(), TensorVariants { rows, cols, variants });
        }
        hidden = next;
    }
    drop(hidden);
    progress(n, n + 1);
    let unplanned: Vec<(String, (usize, usize))> =
        plannable_tensors(model).into_iter().filter(|(name, (_, cols))| !name.starts_with("blk.") && !levels(*cols).is_empty()).collect();
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
                Variant { qtype: t, bytes, rel_error: (err / norm.max(f64::MIN_POSITIVE)).sqrt() }
            })
            .collect();
        tensors.insert(name, TensorVariants { rows, cols, variants });
    }
    progress(n + 1, n + 1);
    Ok(Database { key, tensors })
}

const VARIANT_SEP: char = '#';

impl Database {
    /// Writes the database as a GGUF file (one tensor per variant, `name#TYPE`), atomically.
    pub fn save(&self, path: &Path) -> std::result::Result<(), crate::export::gguf::ExportError> {
        let mut metadata = vec![
            ("general.architecture".to_string(), Value::String("triage-database".into())),
            ("triage.database.key".to_string(), Value::String(self.key.clone())),
        ];
        let mut out = Vec::new();
        for (name, tv) in &self.tensors {
            metadata.push((format!("triage.rel_error.{name}"), Value::Array(tv.variants.iter().map(|v| Value::F64(v.rel_error)).collect())));
            for v in &tv.variants {
                out.push(OutTensor {
                    name: format!("{name}{VARIANT_SEP}{}", v.qtype.name()),
                    ne: vec![tv.cols as u64, tv.rows as u64],
                    qtype: v.qtype,
                    data: std::borrow::Cow::Borrowed(&v.bytes),
                });
            }
        }
        crate::export::write_atomic(path, |w| gguf_file::write(w, &metadata, &out).map_err(crate::export::gguf::ExportError::Io))
    }

    /// Reads a cached database; None when the file is missing, unreadable or made for another key.
    pub fn load(path: &Path, key: &str) -> Option<Database> {
        let (g, mut file) = GgufFile::read(path).ok()?;
        match g.get("triage.database.key") {
            Some(Value::String(k)) if k == key => {}
            _ => return None,
        }
        let mut tensors: BTreeMap<String, TensorVariants> = BTreeMap::new();
        for info in &g.tensors {
            let (name, _) = info.name.split_once(VARIANT_SEP)?;
            let qtype = info.qtype()?;
            let bytes = g.read_data(&mut file, info).ok()?;
            let (cols, rows) = (info.ne[0] as usize, *info.ne.get(1)? as usize);
            let tv = tensors.entry(name.to_string()).or_insert_with(|| TensorVariants { rows, cols, variants: Vec::new() });
            tv.variants.push(Variant { qtype, bytes, rel_error: 0.0 });
        }
        for (name, tv) in &mut tensors {
            let Some(Value::Array(errs)) = g.get(&format!("triage.rel_error.{name}")) else { return None };
            if errs.len() != tv.variants.len() {
                return None;
            }
            for (v, e) in tv.variants.iter_mut().zip(errs) {
                v.rel_error = match e {
                    Value::F64(x) => *x,
                    _ => return None,
                };
            }
        }
        Some(Database { key: key.to_string(), tensors })
    }
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
    key: String,
    dir: Option<&Path>,
    progress: &mut dyn FnMut(usize, usize),
) -> std::result::Result<(Database, bool), ModelError> {
    let path = dir.map(|d| d.join(format!("database-{key}.gguf")));
    if let Some(db) = path.as_deref().and_then(|p| Database::load(p, &key)) {
        if db.tensors.len() == plannable_tensors(model).values().filter(|&&(_, cols)| !levels(cols).is_empty()).count() {
            return Ok((db, true));
        }
    }
    let db = build(model, windows, settings, key, progress)?;
    if let (Some(d), Some(p)) = (dir, &path) {
        // A cache that cannot be written only costs time next run.
        if std::fs::create_dir_all(d).is_ok() {
            if let Err(e) = db.save(p) {
                eprintln!("warning: could not cache the layer database at {}: {e}", p.display());
            }
        }
    }
    Ok((db, false))
}
