//! EvoPress's layer database: every plannable tensor compressed once at every level it may
//! take, so that a search only swaps finished variants in and out.
//!
//! Two kinds of level ([`Kind`]). Types: the GGUF types the tensor's row width allows (k-quants
//! only where rows are a multiple of 256); Q4_0 is left out, as IQ4_NL costs the same bytes with
//! a non-uniform grid and lower error; or only those of a menu (`--types`). Sparsity: the
//! blocks' linears pruned by SparseGPT at every share of [`SPARSITY_LEVELS`], in F16, each pruned
//! level stored as a mask and its kept values ([`super::masked`]: 0.6 of the dense F16 bytes
//! over the ten levels). Linears are compressed on the original model's inputs (one forward per
//! block, not sequential: the variants must not depend on each other);
//! types by GPTQ onto their GGUF grid (imatrix-weighted grids, as `triage compress --method
//! gptq`). The token embedding and a separate output matrix take types too, without calibrated
//! rounding, as in `triage compress`.
//!
//! The database is cached on disk as a GGUF file keyed by the model's and the calibration
//! text's sha256, the kind and the settings, so a second budget on the same model costs only
//! the search. Every variant's bytes and error carry a CRC-32, checked when a cached database (or a
//! block saved by an interrupted build) is opened: damaged bytes are rebuilt, never planned
//! with. It is not held in memory: a loaded database is an index into its file, read
//! one variant at a time; a database being built appends each block's variants to a spill
//! file as the block finishes (SmolLM2-135M's types database is about 1 GB).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use crate::calib::moments::BlockMoments;
use crate::calib::runner::{Runner, StateLimits};
use crate::calib::token_weights::TokenWeights;
use crate::calib::Windows;
use crate::compress::compressed::{Compressed, TensorReport};
use crate::compress::encoded::Encoded;
use crate::compress::gptq::{GptqOptions, Sparsity};
use crate::compress::pipeline::{
    compress_linear, importance, relative_output_error, sparsegpt_of, CompressOptions, Factors, Method, Pruner,
};
use crate::compress::plan::{plannable_tensors, Plan, TensorSpec};
use crate::ggml::codec::{dequantize, quantize};
use crate::ggml::types::{allowed_types, QuantType};
use crate::model::gguf_file::{self, GgufFile, Value};
use crate::model::kernels::with_f32;
use crate::model::stream::Streamed;
use crate::model::tensor_id::gguf_block;
use crate::model::{BlockOpts, Blocks, Config, ModelError, Result};
use crate::progress::Progress;
use crate::spill::Spill;

use super::masked;
use super::sample::Estimate;
use super::shard::Owned;

/// Bumped whenever the way variants are made or stored changes, so old cache files are not
/// reused (5: every variant's CRC-32 in the metadata).
const DATABASE_VERSION: u32 = 5;

/// How a types database measures its levels (`--database`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Sampled for a large model (over about a billion parameters, what --stream auto streams)
    /// planned by lagrange or uniform under bpw= or size=; exact otherwise.
    Auto,
    /// Every tensor whole at every level.
    Exact,
    /// Every level on a sample of each tensor's rows; the whole tensor only at the levels a
    /// plan is measured and written with.
    Sampled,
}

/// What a database's levels are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Every GGUF type a tensor's rows allow, for every plannable tensor.
    Types,
    /// The blocks' linears at every share of [`SPARSITY_LEVELS`] (SparseGPT), in F16; the
    /// pruned levels masked ([`super::masked`]).
    Sparsity,
}

/// The shares of a sparsity database, sparsest (cheapest) first. 0.9 is the sparsest a tensor
/// may go in a searched plan.
pub const SPARSITY_LEVELS: [f32; 10] = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0];

/// The variants a linear with rows of `cols` gets in a database of `kind` (types from `menu`),
/// cheapest first.
fn specs(kind: Kind, cols: usize, menu: Menu) -> Vec<TensorSpec> {
    match kind {
        Kind::Types => levels(cols, menu).into_iter().map(|t| TensorSpec { qtype: t, sparsity: None }).collect(),
        Kind::Sparsity => SPARSITY_LEVELS
            .iter()
            .map(|&p| TensorSpec { qtype: QuantType::F16, sparsity: (p > 0.0).then_some(Sparsity::Unstructured(p)) })
            .collect(),
    }
}

/// The share of each row a level prunes (0 for a quantized level).
fn share(spec: &TensorSpec) -> f32 {
    match spec.sparsity {
        Some(Sparsity::Unstructured(p)) => p,
        _ => 0.0,
    }
}

/// The tensors a database of `kind` (types from `menu`) holds, with their (rows, cols).
pub fn database_tensors(config: &Config, kind: Kind, menu: Menu) -> BTreeMap<String, (usize, usize)> {
    plannable_tensors(config)
        .into_iter()
        .filter(|(name, (_, cols))| match kind {
            Kind::Types => !levels(*cols, menu).is_empty(),
            Kind::Sparsity => gguf_block(name).is_some(),
        })
        .collect()
}

/// The types a types database draws its levels from: Some(a menu), or None for every
/// quantized type whose row makes it a default level (all but Q4_0, which IQ4_NL stands in for).
pub type Menu<'a> = Option<&'a [QuantType]>;

/// The levels a tensor with rows of `cols` may take from `menu`, cheapest first.
pub fn levels(cols: usize, menu: Menu) -> Vec<QuantType> {
    let mut l: Vec<QuantType> =
        allowed_types(cols).into_iter().filter(|t| menu.map_or(t.default_level(), |m| m.contains(t))).collect();
    l.sort_by(|a, b| a.bits_per_weight().total_cmp(&b.bits_per_weight()).then(a.ggml_id().cmp(&b.ggml_id())));
    l
}

/// One compressed version of one tensor.
#[derive(Debug, Clone)]
pub struct Variant {
    pub qtype: QuantType,
    /// The share of each row pruned (0 in a types database).
    pub sparsity: f32,
    pub bytes: VariantBytes,
    /// ‖(W − Ŵ)X‖/‖WX‖ on the calibration inputs (linears); ‖W − Ŵ‖/‖W‖ (embedding, output).
    pub rel_error: f64,
    /// The CRC-32 of its bytes followed by its `rel_error` (8 bytes, little-endian) and, when
    /// sampled, the sample's size and standard error, taken as they were made ([`sealed`]): a
    /// cached copy that disagrees was damaged on disk.
    pub checksum: u32,
    /// Some: only a sample of the tensor's rows was quantized ([`super::sample`]): `bytes` are
    /// those rows' (in increasing order) and `rel_error` is estimated from them.
    pub sample: Option<Sample>,
}

/// How many rows a sampled variant holds (its tensor's [`Drawn`] rows); the standard error of
/// its estimated `rel_error`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub rows: usize,
    pub stderr: f64,
}

/// A variant's checksum: `bytes`, the CRC-32 of its bytes so far, sealed with its `rel_error`
/// (and a sampled variant's sample).
fn sealed(mut bytes: crc32fast::Hasher, rel_error: f64, sample: Option<Sample>) -> u32 {
    bytes.update(&rel_error.to_le_bytes());
    if let Some(s) = sample {
        bytes.update(&(s.rows as u64).to_le_bytes());
        bytes.update(&s.stderr.to_le_bytes());
    }
    bytes.finalize()
}

/// Where a variant's bytes are: its `qtype`'s encoding, or for a pruned variant (`sparsity` >
/// 0) its F16 encoding masked ([`super::masked`]).
#[derive(Debug, Clone)]
pub enum VariantBytes {
    Memory(Vec<u8>),
    /// `len` bytes at `offset` of the database's file.
    At {
        offset: u64,
        len: usize,
    },
}

impl Variant {
    /// A variant whose bytes are in memory, with its checksum.
    pub fn in_memory(qtype: QuantType, sparsity: f32, bytes: Vec<u8>, rel_error: f64) -> Variant {
        let mut h = crc32fast::Hasher::new();
        h.update(&bytes);
        Variant {
            qtype,
            sparsity,
            bytes: VariantBytes::Memory(bytes),
            rel_error,
            checksum: sealed(h, rel_error, None),
            sample: None,
        }
    }

    /// Whether its bytes are masked ([`super::masked`]): every pruned variant's are.
    pub fn masked(&self) -> bool {
        self.sparsity > 0.0
    }

    /// The bytes it holds (a sampled variant: its sample's).
    pub fn size(&self) -> usize {
        match &self.bytes {
            VariantBytes::Memory(b) => b.len(),
            VariantBytes::At { len, .. } => *len,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TensorVariants {
    pub rows: usize,
    pub cols: usize,
    /// Cheapest first.
    pub variants: Vec<Variant>,
    /// The rows its sampled variants hold (None: none is sampled).
    pub drawn: Option<Drawn>,
}

/// The rows a tensor's sampled variants hold ([`super::sample::draw`]), in increasing order,
/// and the estimated share of the tensor's output energy ‖WX‖² (a weight norm for the embedding
/// and the output) they carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Drawn {
    pub rows: Vec<usize>,
    pub share: f64,
}

impl TensorVariants {
    /// The bytes variant `level` costs in a file: the whole tensor's encoding, also for a
    /// sampled variant.
    pub fn cost(&self, level: usize) -> usize {
        let v = &self.variants[level];
        match v.sample {
            Some(_) => v.qtype.bytes(self.rows * self.cols),
            None => v.size(),
        }
    }

    /// The share of the tensor's output error energy variant `level` carries when it is put
    /// over the original weights: about its rows' share of the output energy (1 when whole).
    pub fn share_of_rows(&self, level: usize) -> f64 {
        match (&self.variants[level].sample, &self.drawn) {
            (Some(_), Some(d)) => d.share,
            _ => 1.0,
        }
    }
}

/// Every plannable tensor's variants, by GGUF name.
#[derive(Debug)]
pub struct Database {
    pub key: String,
    pub tensors: BTreeMap<String, TensorVariants>,
    /// The file variants stored [`VariantBytes::At`] an offset are read from: the cache file
    /// it was loaded from, or the spill file it was built into.
    file: Option<Arc<File>>,
}

/// What the database depends on besides the model: hashed into its cache key.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub tokens: usize,
    pub ctx: usize,
    pub gptq: GptqOptions,
    /// The types' menu (`--types`); None: every quantized type but Q4_0.
    pub types: Option<Vec<QuantType>>,
    /// Some(n): a types database's levels are made on n sampled rows of each tensor (all of a
    /// tensor's rows when it has no more), the whole tensor only at its worst level where a
    /// probe needs it (the token embedding and the output matrix) and at the levels a plan
    /// chooses ([`materialize`]). None: every level of every tensor whole (exact).
    pub sample: Option<usize>,
}

impl DatabaseSettings {
    pub fn menu(&self) -> Menu<'_> {
        self.types.as_deref()
    }
}

/// Why `menu` cannot serve a model of `config` (None: it can): a tensor that some type fits
/// but none of the menu's, which would keep its source type instead of being planned.
pub fn menu_mismatch(config: &Config, menu: &[QuantType]) -> Option<String> {
    let names = |m: &[QuantType]| m.iter().map(|t| t.name()).collect::<Vec<_>>().join(",");
    plannable_tensors(config)
        .into_iter()
        .find(|(_, (_, cols))| levels(*cols, Some(menu)).is_empty() && !levels(*cols, None).is_empty())
        .map(|(name, (_, cols))| {
            format!(
                "--types {}: {name} has rows of {cols} weights, which none of them fits (it fits {})",
                names(menu),
                names(&levels(cols, None))
            )
        })
}

/// The cache key: the program's and the format's versions, model bytes and calibration text
/// ([`super::digest::inputs_digest`]), kind and settings.
pub fn cache_key(inputs: &str, s: &DatabaseSettings, kind: Kind) -> String {
    let sampled = match (kind, s.sample) {
        (Kind::Types, Some(n)) => format!(" sampled {n}"),
        _ => String::new(),
    };
    let kind = match (kind, &s.types) {
        (Kind::Types, None) => String::new(),
        (Kind::Types, Some(menu)) => format!(" types {}", menu.iter().map(|t| t.name()).collect::<Vec<_>>().join(",")),
        (Kind::Sparsity, _) => format!(" sparsity {SPARSITY_LEVELS:?} masked"),
    };
    let kind = kind + &sampled;
    super::digest::short_key(&format!(
        "v{DATABASE_VERSION} triage {}{kind} {inputs} tokens {} ctx {} damp {} act_order {} block {}{}",
        env!("CARGO_PKG_VERSION"),
        s.tokens,
        s.ctx,
        s.gptq.damp,
        s.gptq.act_order,
        s.gptq.block,
        // Equal weights add nothing: the keys of databases built before token weights hold.
        match s.gptq.token_weights {
            TokenWeights::Equal => String::new(),
            w => format!(" token_weights {}", w.name()),
        }
    ))
}

/// Builds the database of `kind` (tensors whose rows fit no quantized type are left out of a
/// types database: they keep their source bytes): one forward per block on the original
/// model's inputs, then every linear at every level. `progress`'s stage "layer database
/// (millions of weights)" counts millions of the database's weights (each made at every level),
/// tensor by tensor.
///
/// With a `partial` folder, each block's variants are saved there as the block finishes
/// (`block-N.gguf`), and blocks found there — made for the same key, with the expected
/// tensors and levels, their bytes matching their checksums — are taken instead of compressed
/// again: an interrupted build resumes where it stopped.
pub fn build(
    model: &dyn Blocks,
    windows: &Windows,
    settings: &DatabaseSettings,
    kind: Kind,
    key: String,
    partial: Option<&Path>,
    progress: &mut dyn Progress,
) -> Result<Database> {
    rebuild(model, windows, settings, kind, key, partial, None, Scope::default(), progress)
}

/// Which of a database's units a build makes, and where it may start: a shard's
/// ([`super::shard`]) or all of them.
#[derive(Clone, Copy, Default)]
pub struct Scope<'a> {
    /// Only these blocks and matrices (None: every one).
    pub only: Option<&'a Owned>,
    /// A folder of the states entering each block ([`super::shard::state_path`]): the first
    /// block built starts from its saved state instead of running the blocks before it.
    pub states: Option<&'a Path>,
}

/// [`build`], taking from `reuse` — a cached database for the same key whose damaged tensors
/// were removed — every block (and embedding or output matrix) it still holds whole: only
/// what was damaged is compressed again. Only the units `scope` names are taken or built;
/// the calibration windows run only up to the last block built.
#[allow(clippy::too_many_arguments)]
fn rebuild(
    model: &dyn Blocks,
    windows: &Windows,
    settings: &DatabaseSettings,
    kind: Kind,
    key: String,
    partial: Option<&Path>,
    mut reuse: Option<Database>,
    scope: Scope,
    progress: &mut dyn Progress,
) -> Result<Database> {
    let mut spill = Spill::new("database").map_err(spill_error)?;
    let stored = Arc::new(spill.reader().map_err(spill_error)?);
    let opts = compress_options(settings);
    let mut tensors = BTreeMap::new();
    let n = model.n_blocks();
    let menu = settings.menu();
    let mut all = database_tensors(model.config(), kind, menu);
    if let Some(o) = scope.only {
        all.retain(|name, _| o.has(name));
    }
    let total = all.values().map(|(r, c)| r * c).sum::<usize>().div_ceil(MILLION);
    let mut done_weights = 0usize;
    let sample = settings.sample.filter(|_| kind == Kind::Types);
    progress.start("layer database (millions of weights)", total);
    progress.step(0, None);
    // A unit saved by an interrupted build (or a shard) under the same key, or still whole in
    // `reuse`, is taken; the others are built.
    // Returns the unit and whether it came from the partial folder.
    let mut take = |unit: &str, expected: &BTreeMap<String, (usize, usize)>| -> Option<(Database, bool)> {
        let saved = partial.map(|d| d.join(format!("{unit}.gguf")));
        let resumed = match saved.as_deref().map(|p| (p, saved_block(p, &key, expected, kind, menu))) {
            Some((_, Ok(Some(db)))) => Some(db),
            Some((p, Err(why))) => {
                eprintln!(
                    "warning: {unit} saved by an interrupted build, {}, is not used ({why}); building it again",
                    p.display()
                );
                None
            }
            _ => None,
        };
        resumed
            .map(|db| (db, true))
            .or_else(|| reuse.as_mut().and_then(|r| r.take(expected, kind, menu)).map(|db| (db, false)))
    };
    let block_tensors = |i: usize| -> BTreeMap<String, (usize, usize)> {
        all.iter().filter(|(name, _)| gguf_block(name) == Some(i)).map(|(name, &shape)| (name.clone(), shape)).collect()
    };
    let mut to_build = Vec::new();
    let mut resumed = Vec::new();
    for i in 0..n {
        let expected = block_tensors(i);
        if expected.is_empty() {
            continue;
        }
        match take(&format!("block-{i}"), &expected) {
            Some((db, saved)) => {
                if saved {
                    resumed.push(i);
                }
                done_weights += expected.values().map(|(r, c)| r * c).sum::<usize>();
                db.move_into(&mut spill, &mut tensors).map_err(spill_error)?;
            }
            None => to_build.push(i),
        }
    }
    match resumed.as_slice() {
        [] => {}
        few if few.len() <= 4 => {
            for i in few {
                eprintln!("resuming the layer database: block {i} was built by an earlier run");
            }
        }
        many => {
            eprintln!("resuming the layer database: {} blocks were built by an earlier run or by shards", many.len())
        }
    }
    progress.step(done_weights / MILLION, None);
    if let (Some(&first), Some(&last)) = (to_build.first(), to_build.last()) {
        let saved = scope.states.map(|d| super::shard::state_path(d, first)).filter(|p| first > 0 && p.exists());
        // Always f32: the database is cached under a key that says nothing of the machine's memory.
        let mut runner = match &saved {
            Some(p) => {
                let states = super::shard::load_states(p).map_err(|why| ModelError::Io {
                    path: p.clone(),
                    error: io::Error::new(io::ErrorKind::InvalidData, why),
                })?;
                Runner::with_states(model, windows.ctx, states, StateLimits::UNLIMITED)?
            }
            None => Runner::new(model, windows, opts.batch, StateLimits::UNLIMITED)?,
        };
        let start = if saved.is_some() { first } else { 0 };
        for i in start..=last {
            let block = model.block(i)?;
            if !to_build.contains(&i) {
                runner.step(&block, BlockOpts::default())?;
                continue;
            }
            let mut moments = BlockMoments::weighted(&block, opts.gptq.token_weights);
            let next = runner.run(&block, BlockOpts::default(), &mut moments, |_, _| {})?;
            let mut done = Database { key: key.clone(), tensors: BTreeMap::new(), file: Some(stored.clone()) };
            let mut factors = Factors::default();
            for l in block.linears().into_iter().filter(|l| all.contains_key(&l.name)) {
                let m = moments.of(&l.name).expect("every linear has an input group");
                let (rows, cols) = (l.out_features(), l.in_features());
                let specs = specs(kind, cols, menu);
                let (variants, drawn) = linear_levels(l, m, &mut factors, specs, &opts, sample, &mut spill)?;
                done.tensors.insert(l.name.clone(), TensorVariants { rows, cols, variants, drawn });
                done_weights += rows * cols;
                progress.step(done_weights / MILLION, None);
            }
            drop((moments, factors, block));
            save_unit(partial, &format!("block-{i}"), &done);
            crate::failpoint::hit("database-block", i + 1);
            tensors.append(&mut done.tensors);
            if i < last {
                runner.advance(next)?;
            }
        }
    }
    for (name, (rows, cols)) in all.into_iter().filter(|(name, _)| gguf_block(name).is_none()) {
        let unit = format!("matrix-{name}");
        if let Some((db, _)) = take(&unit, &BTreeMap::from([(name.clone(), (rows, cols))])) {
            db.move_into(&mut spill, &mut tensors).map_err(spill_error)?;
            done_weights += rows * cols;
            continue;
        }
        let types = levels(cols, menu);
        let (variants, drawn) = match sample.filter(|&n| n < rows) {
            None => (
                matrix_levels(
                    model,
                    &name,
                    rows,
                    cols,
                    &types,
                    &mut spill,
                    MATRIX_CHUNK_BYTES,
                    done_weights,
                    progress,
                )?,
                None,
            ),
            Some(n) => {
                // Every level on the sample; the one its sensitivity is probed at also whole:
                // the worst of the grids searched without a point grid (525 M weights at
                // IQ2_XS take minutes at Llama-3.1-8B's size, at Q2_K seconds).
                let (mut variants, drawn) = matrix_sample(model, &name, rows, cols, &types, n, &mut spill)?;
                let fast: Vec<usize> = (0..types.len()).filter(|&l| types[l].vector_grid().is_none()).collect();
                let worst = fast
                    .into_iter()
                    .max_by(|&a, &b| variants[a].rel_error.total_cmp(&variants[b].rel_error))
                    .unwrap_or_else(|| worst_level(&variants));
                let whole = matrix_levels(
                    model,
                    &name,
                    rows,
                    cols,
                    &types[worst..=worst],
                    &mut spill,
                    MATRIX_CHUNK_BYTES,
                    done_weights,
                    progress,
                )?;
                variants[worst] = whole.into_iter().next().expect("one level");
                (variants, Some(drawn))
            }
        };
        let mut done = Database { key: key.clone(), tensors: BTreeMap::new(), file: Some(stored.clone()) };
        done.tensors.insert(name, TensorVariants { rows, cols, variants, drawn });
        save_unit(partial, &unit, &done);
        tensors.append(&mut done.tensors);
        done_weights += rows * cols;
    }
    progress.step(total, None);
    Ok(Database { key, tensors, file: Some(stored) })
}

/// Saves a finished unit (`block-N` or `matrix-NAME`) of a database being built in the
/// `partial` folder, where an interrupted build (or the run after the shards) takes it from.
fn save_unit(partial: Option<&Path>, unit: &str, done: &Database) {
    if let Some(p) = partial.map(|d| d.join(format!("{unit}.gguf"))) {
        if let Err(e) = done.save(&p) {
            eprintln!("warning: could not save {unit} of the layer database at {}: {e}", p.display());
        }
    }
}

/// Runs the calibration `windows` through `model` once and saves the state entering every
/// block in `dir` ([`super::shard::state_path`]), for shards to start from; `progress`'s
/// stage "calibration states (blocks)" counts blocks.
pub fn prepare_states(
    model: &dyn Blocks,
    windows: &Windows,
    settings: &DatabaseSettings,
    dir: &Path,
    progress: &mut dyn Progress,
) -> Result<()> {
    let opts = compress_options(settings);
    let mut runner = Runner::new(model, windows, opts.batch, StateLimits::UNLIMITED)?;
    let n = model.n_blocks();
    progress.start("calibration states (blocks)", n);
    for i in 0..n {
        progress.step(i, None);
        super::shard::save_states(&super::shard::state_path(dir, i), &runner.states()?)?;
        if i + 1 < n {
            runner.step(&*model.block(i)?, BlockOpts::default())?;
        }
    }
    progress.step(n, None);
    Ok(())
}

/// Makes whole every sampled variant of `db` that `wanted` names (tensor, level): the
/// database's block pass again on the same `windows` (one forward per block on the original
/// model's inputs, the blocks after the last one wanted not run), GPTQ at only those levels —
/// the bytes and errors of an exact database's variants. `progress`'s stage "whole tensors at
/// the planned levels (millions of weights)" counts them.
pub fn materialize(
    model: &dyn Blocks,
    windows: &Windows,
    settings: &DatabaseSettings,
    db: &mut Database,
    wanted: &std::collections::BTreeSet<(String, usize)>,
    progress: &mut dyn Progress,
) -> Result<()> {
    let wanted: Vec<(String, usize)> =
        wanted.iter().filter(|(n, l)| db.tensors[n].variants[*l].sample.is_some()).cloned().collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let total = wanted.iter().map(|(n, _)| db.tensors[n].rows * db.tensors[n].cols).sum::<usize>().div_ceil(MILLION);
    progress.start("whole tensors at the planned levels (millions of weights)", total);
    let mut done_weights = 0;
    // Everything the database holds moves to a new spill file with the whole variants.
    let mut spill = Spill::new("database").map_err(spill_error)?;
    let stored = Arc::new(spill.reader().map_err(spill_error)?);
    let old = Database { key: db.key.clone(), tensors: std::mem::take(&mut db.tensors), file: db.file.take() };
    old.move_into(&mut spill, &mut db.tensors).map_err(spill_error)?;
    db.file = Some(stored);
    let opts = compress_options(settings);
    let last = wanted.iter().filter_map(|(n, _)| gguf_block(n)).max();
    if let Some(last) = last {
        let mut runner = Runner::new(model, windows, opts.batch, StateLimits::UNLIMITED)?;
        for i in 0..=last {
            let block = model.block(i)?;
            if !wanted.iter().any(|(n, _)| gguf_block(n) == Some(i)) {
                runner.step(&block, BlockOpts::default())?;
                continue;
            }
            let mut moments = BlockMoments::weighted(&block, opts.gptq.token_weights);
            let next = runner.run(&block, BlockOpts::default(), &mut moments, |_, _| {})?;
            let mut factors = Factors::default();
            for l in block.linears() {
                let levels: Vec<usize> = wanted.iter().filter(|(n, _)| *n == l.name).map(|(_, lv)| *lv).collect();
                if levels.is_empty() {
                    continue;
                }
                let m = moments.of(&l.name).expect("every linear has an input group");
                let tv = db.tensors.get_mut(&l.name).expect("a database tensor");
                let specs =
                    levels.iter().map(|&lv| TensorSpec { qtype: tv.variants[lv].qtype, sparsity: None }).collect();
                let (made, _) = linear_levels(l, m, &mut factors, specs, &opts, None, &mut spill)?;
                for (lv, v) in levels.into_iter().zip(made) {
                    tv.variants[lv] = v;
                    done_weights += tv.rows * tv.cols;
                }
                progress.step(done_weights / MILLION, None);
            }
            drop((moments, factors, block));
            runner.advance(next)?;
        }
    }
    for (name, level) in wanted.iter().filter(|(n, _)| gguf_block(n).is_none()) {
        let tv = db.tensors.get_mut(name).expect("a database tensor");
        let (rows, cols) = (tv.rows, tv.cols);
        let t = [tv.variants[*level].qtype];
        let made = matrix_levels(model, name, rows, cols, &t, &mut spill, MATRIX_CHUNK_BYTES, done_weights, progress)?;
        tv.variants[*level] = made.into_iter().next().expect("one level");
        done_weights += rows * cols;
    }
    progress.step(total, None);
    Ok(())
}

const MILLION: usize = 1_000_000;

/// How the database compresses: GPTQ (SparseGPT for pruned levels) on the original model's
/// inputs, not sequentially.
fn compress_options(settings: &DatabaseSettings) -> CompressOptions {
    CompressOptions {
        method: Method::Gptq,
        pruner: Pruner::Sparsegpt,
        sequential: false,
        gptq: settings.gptq,
        batch: 4,
        imatrix: None,
        state_limits: StateLimits::UNLIMITED,
    }
}

/// For tests: the tiny llama fixture, 6 windows of 16 tokens, and its types database built on
/// the first two.
#[cfg(test)]
pub(crate) fn tiny_types_database() -> (crate::model::Model, Windows, Database) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-llama");
    let model = crate::model::Model::load(&dir).unwrap();
    let ids: Vec<u32> = (0..96).map(|i| (i * 7 % 300) as u32).collect();
    let windows = Windows::new(&ids, 16, None).unwrap();
    let settings = DatabaseSettings { tokens: 32, ctx: 16, gptq: GptqOptions::default(), types: None, sample: None };
    let first = Windows { ctx: 16, windows: windows.windows[..2].to_vec(), text_sha256: None };
    let db = build(&model, &first, &settings, Kind::Types, "test".into(), None, &mut crate::progress::Silent).unwrap();
    (model, windows, db)
}

fn spill_error(error: io::Error) -> ModelError {
    ModelError::Io { path: crate::spill::folder(), error }
}

/// Linear `l` (its input's moments `m`) at every level of `specs` by GPTQ (or SparseGPT) on
/// one factorization of H from `factors`, each level's bytes appended to `spill` as soon as
/// they are made. With a `sample` of fewer rows than `l` has, only those rows
/// ([`super::sample::draw`], by the proxy energies Σ_j w_rj²·H_jj) are compressed, the error is
/// their ratio estimate, and the rows drawn are returned.
fn linear_levels(
    l: &crate::model::Linear,
    m: &crate::calib::moments::InputMoments,
    factors: &mut Factors,
    specs: Vec<TensorSpec>,
    opts: &CompressOptions,
    sample: Option<usize>,
    spill: &mut Spill,
) -> Result<(Vec<Variant>, Option<Drawn>)> {
    let (rows, cols) = (l.out_features(), l.in_features());
    let (w, picked) = with_f32(&l.weight, |w| match sample.filter(|&n| n < rows) {
        Some(n) => {
            let h: Vec<f64> = m.sum_sq().iter().map(|&x| x as f64).collect();
            let proxy: Vec<f64> =
                w.chunks(cols).map(|r| r.iter().zip(&h).map(|(&x, h)| (x as f64).powi(2) * h).sum()).collect();
            let d = super::sample::draw(&l.name, rows, n, Some(&proxy));
            (d.rows.iter().flat_map(|&r| &w[r * cols..(r + 1) * cols]).copied().collect(), Some(d))
        }
        None => (w.to_vec(), None),
    })?;
    let rows_made = w.len() / cols;
    let imp = importance(m, None, &l.name);
    // Every level's GPTQ (or SparseGPT) runs on the same factorization of H: the database's
    // levels share their act-order setting.
    let factor = factors.of(m, opts.gptq, sparsegpt_of(&specs[0], opts))?;
    // The sampled rows' energies ‖w_r X‖², the same at every level.
    let energies = picked.as_ref().map(|_| m.row_block_energies_exact(&w, 1));
    let spill = std::sync::Mutex::new(spill);
    let variants = specs
        .into_par_iter()
        .map(|spec| {
            let (new_w, bytes) = compress_linear(&w, rows_made, cols, &spec, m, Some(factor), &imp, opts, &l.name)?;
            let (rel_error, sample) = match (&picked, &energies) {
                (Some(d), Some(n)) => {
                    let delta: Vec<f32> = w.iter().zip(&new_w).map(|(a, b)| a - b).collect();
                    let est = d.estimate(&m.row_block_energies_exact(&delta, 1), n);
                    (est.rel_error, Some(Sample { rows: d.rows.len(), stderr: est.stderr }))
                }
                _ => (relative_output_error(m, &w, &new_w), None),
            };
            drop(new_w);
            let bytes = if share(&spec) > 0.0 { masked::pack(&bytes) } else { bytes };
            let mut checksum = crc32fast::Hasher::new();
            checksum.update(&bytes);
            let checksum = sealed(checksum, rel_error, sample);
            let offset = spill.lock().expect("not poisoned").append(&bytes).map_err(spill_error)?;
            Ok(Variant {
                qtype: spec.qtype,
                sparsity: share(&spec),
                bytes: VariantBytes::At { offset, len: bytes.len() },
                rel_error,
                checksum,
                sample,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let drawn = picked.zip(energies).map(|(d, n)| Drawn { share: d.share(&n), rows: d.rows });
    Ok((variants, drawn))
}

/// Rows of the token embedding or the output matrix quantized at once: 64 MB of f32.
const MATRIX_CHUNK_BYTES: usize = 64 << 20;

/// The token embedding or the output matrix `name` (rows × cols) at every level, without
/// calibrated rounding (as `triage compress` quantizes them): read `chunk_bytes` of rows at a time,
/// each chunk quantized at every level into the level's place in `spill` (rows are quantized
/// independently, so the bytes are those of the whole matrix), with ‖W − Ŵ‖/‖W‖ and each
/// level's CRC-32 carried along. A step of `progress` after each chunk: millions of weights done,
/// `before` of them before this matrix.
#[allow(clippy::too_many_arguments)]
fn matrix_levels(
    model: &dyn Blocks,
    name: &str,
    rows: usize,
    cols: usize,
    types: &[QuantType],
    spill: &mut Spill,
    chunk_bytes: usize,
    before: usize,
    progress: &mut dyn Progress,
) -> Result<Vec<Variant>> {
    let places: Vec<(QuantType, u64, usize)> =
        types.iter().map(|&t| (t, t.bytes(rows * cols))).map(|(t, len)| (t, spill.reserve(len as u64), len)).collect();
    let chunk = (chunk_bytes / (4 * cols)).max(1);
    let mut norm = 0f64;
    let mut errs = vec![0f64; types.len()];
    let mut checksums = vec![crc32fast::Hasher::new(); types.len()];
    for start in (0..rows).step_by(chunk) {
        let end = (start + chunk).min(rows);
        let w = with_f32(&model.rows(name, start..end)?, <[f32]>::to_vec)?;
        // Sums carried across chunks in order: the same numbers as one sum over the matrix.
        norm = w.iter().fold(norm, |a, &x| a + (x as f64).powi(2));
        let done: Vec<io::Result<f64>> = places
            .par_iter()
            .zip(&errs)
            .zip(&mut checksums)
            .map(|((&(t, at, _), &err), checksum)| {
                let bytes = quantize(t, &w, cols, None);
                checksum.update(&bytes);
                spill.write_at(at + (start * t.bytes(cols)) as u64, &bytes)?;
                let d = dequantize(t, &bytes, w.len());
                Ok(w.iter().zip(&d).fold(err, |a, (&x, &y)| a + (x as f64 - y as f64).powi(2)))
            })
            .collect();
        for (e, d) in errs.iter_mut().zip(done) {
            *e = d.map_err(|error| ModelError::Io { path: crate::spill::folder(), error })?;
        }
        progress.step((before + end * cols) / MILLION, None);
    }
    Ok(places
        .into_iter()
        .zip(errs)
        .zip(checksums)
        .map(|(((qtype, offset, len), err), checksum)| {
            let rel_error = (err / norm.max(f64::MIN_POSITIVE)).sqrt();
            Variant {
                qtype,
                sparsity: 0.0,
                bytes: VariantBytes::At { offset, len },
                rel_error,
                checksum: sealed(checksum, rel_error, None),
                sample: None,
            }
        })
        .collect())
}

/// The level of highest error.
pub fn worst_level(variants: &[Variant]) -> usize {
    (0..variants.len()).max_by(|&a, &b| variants[a].rel_error.total_cmp(&variants[b].rel_error)).expect("a level")
}

/// The level a sensitivity probe puts a tensor at: its worst, or where a sampled database made
/// only some levels whole (the token embedding and the output matrix), the worst of those.
pub fn probe_level(variants: &[Variant]) -> usize {
    let whole = |l: &usize| variants[*l].sample.is_none();
    match (0..variants.len()).filter(whole).count() {
        0 => worst_level(variants),
        n if n == variants.len() => worst_level(variants),
        _ => (0..variants.len())
            .filter(whole)
            .max_by(|&a, &b| variants[a].rel_error.total_cmp(&variants[b].rel_error))
            .expect("a whole level"),
    }
}

/// The token embedding or the output matrix `name` at every level of `types` on `n` rows drawn
/// uniformly ([`super::sample::draw`]), read one row at a time: their bytes, ‖W − Ŵ‖/‖W‖
/// estimated from them, and the rows drawn.
fn matrix_sample(
    model: &dyn Blocks,
    name: &str,
    rows: usize,
    cols: usize,
    types: &[QuantType],
    n: usize,
    spill: &mut Spill,
) -> Result<(Vec<Variant>, Drawn)> {
    let drawn = super::sample::draw(name, rows, n, None);
    let picked = &drawn.rows;
    let mut w = Vec::with_capacity(picked.len() * cols);
    for &r in picked {
        with_f32(&model.rows(name, r..r + 1)?, |row| w.extend_from_slice(row))?;
    }
    let norms: Vec<f64> = w.chunks(cols).map(|r| r.iter().map(|&x| (x as f64).powi(2)).sum()).collect();
    let made: Vec<(Vec<u8>, Estimate)> = types
        .par_iter()
        .map(|&t| {
            let bytes = quantize(t, &w, cols, None);
            let d = dequantize(t, &bytes, w.len());
            let errs: Vec<f64> = w
                .chunks(cols)
                .zip(d.chunks(cols))
                .map(|(a, b)| a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum())
                .collect();
            (bytes, drawn.estimate(&errs, &norms))
        })
        .collect();
    let variants = types
        .iter()
        .zip(made)
        .map(|(&qtype, (bytes, est)): (&QuantType, (Vec<u8>, Estimate))| {
            let sample = Some(Sample { rows: picked.len(), stderr: est.stderr });
            let mut checksum = crc32fast::Hasher::new();
            checksum.update(&bytes);
            let offset = spill.append(&bytes).map_err(spill_error)?;
            Ok(Variant {
                qtype,
                sparsity: 0.0,
                bytes: VariantBytes::At { offset, len: bytes.len() },
                rel_error: est.rel_error,
                checksum: sealed(checksum, est.rel_error, sample),
                sample,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((variants, Drawn { share: drawn.share(&norms), rows: drawn.rows }))
}

/// A variant's bytes, read from `file` when stored there.
fn read_variant<'a>(file: Option<&File>, v: &'a Variant) -> io::Result<Cow<'a, [u8]>> {
    Ok(match &v.bytes {
        VariantBytes::Memory(b) => Cow::Borrowed(b.as_slice()),
        VariantBytes::At { offset, len } => {
            let mut b = vec![0u8; *len];
            file.expect("a database with stored variants has a file").read_exact_at(&mut b, *offset)?;
            Cow::Owned(b)
        }
    })
}

/// Bytes read at once to check a stored variant's checksum: a variant of a large model's
/// embedding is hundreds of MB.
const CHECK_CHUNK: usize = 4 << 20;

/// A variant's checksum as its bytes (read from `file` when stored there) and its error make it.
fn checksum(file: Option<&File>, v: &Variant) -> io::Result<u32> {
    let mut h = crc32fast::Hasher::new();
    let VariantBytes::At { offset, len } = v.bytes else {
        h.update(&read_variant(file, v)?);
        return Ok(sealed(h, v.rel_error, v.sample));
    };
    let file = file.expect("a database with stored variants has a file");
    let mut buf = vec![0u8; CHECK_CHUNK.min(len)];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(buf.len());
        file.read_exact_at(&mut buf[..n], offset + done as u64)?;
        h.update(&buf[..n]);
        done += n;
    }
    Ok(sealed(h, v.rel_error, v.sample))
}

/// A variant's name in the database file: `name#TYPE`, or `name#TYPE@share` when pruned.
fn variant_name(name: &str, v: &Variant) -> String {
    let share = if v.sparsity > 0.0 { format!("{SHARE_SEP}{}", v.sparsity) } else { String::new() };
    format!("{name}{VARIANT_SEP}{}{share}", v.qtype.name())
}

/// How errors name a database variant.
fn variant_path(name: &str, level: usize) -> PathBuf {
    PathBuf::from(format!("the layer database's variant {name}#{level}"))
}

const VARIANT_SEP: char = '#';
/// Separates a sparse variant's type from its share: `name#F16@0.6`.
const SHARE_SEP: char = '@';

impl Database {
    /// A database whose variants are all in memory.
    pub fn new(key: String, tensors: BTreeMap<String, TensorVariants>) -> Database {
        Database { key, tensors, file: None }
    }

    /// The encoded bytes of `name`'s variant `level`.
    pub fn bytes(&self, name: &str, level: usize) -> io::Result<Cow<'_, [u8]>> {
        read_variant(self.file.as_deref(), &self.tensors[name].variants[level])
    }

    /// `name`'s variant `level` as f32 weights, row-major.
    fn values(&self, name: &str, level: usize) -> Result<Vec<f32>> {
        let bytes =
            self.bytes(name, level).map_err(|error| ModelError::Io { path: variant_path(name, level), error })?;
        self.decode(name, level, &bytes)
    }

    /// The f32 weights of `name`'s variant `level`, from its `bytes`.
    fn decode(&self, name: &str, level: usize, bytes: &[u8]) -> Result<Vec<f32>> {
        let tv = &self.tensors[name];
        let v = &tv.variants[level];
        self.whole(name, level)?;
        if v.masked() {
            return masked::unpack(bytes, tv.rows * tv.cols)
                .map_err(|reason| ModelError::Gguf { path: variant_path(name, level), reason });
        }
        Ok(dequantize(v.qtype, bytes, tv.rows * tv.cols))
    }

    /// An error unless `name`'s variant `level` holds every row (it is not a sample).
    fn whole(&self, name: &str, level: usize) -> Result<()> {
        let tv = &self.tensors[name];
        match tv.variants[level].sample {
            None => Ok(()),
            Some(s) => Err(ModelError::InvalidConfig(format!(
                "the layer database holds {} sampled rows of the {} of {name} at {}, not the whole tensor",
                s.rows, tv.rows, tv.variants[level].qtype
            ))),
        }
    }

    /// `name`'s variant `level` put over its `original` (rows, cols) f32 weights: a sampled
    /// variant's rows in place of theirs (the rest original), a whole variant as it is.
    pub fn over(&self, name: &str, level: usize, original: &Tensor) -> Result<Tensor> {
        let tv = &self.tensors[name];
        let v = &tv.variants[level];
        let Some(s) = v.sample else { return self.decoded(name, level) };
        let bytes =
            self.bytes(name, level).map_err(|error| ModelError::Io { path: variant_path(name, level), error })?;
        let rows = dequantize(v.qtype, &bytes, s.rows * tv.cols);
        let mut w = with_f32(original, <[f32]>::to_vec)?;
        let drawn = tv.drawn.as_ref().expect("a sampled variant's tensor has its rows drawn");
        for (&r, row) in drawn.rows.iter().zip(rows.chunks(tv.cols)) {
            w[r * tv.cols..(r + 1) * tv.cols].copy_from_slice(row);
        }
        Ok(Tensor::from_vec(w, (tv.rows, tv.cols), &Device::Cpu)?)
    }

    /// `name`'s variant `level` as a (rows, cols) f32 tensor.
    pub fn decoded(&self, name: &str, level: usize) -> Result<Tensor> {
        let tv = &self.tensors[name];
        Ok(Tensor::from_vec(self.values(name, level)?, (tv.rows, tv.cols), &Device::Cpu)?)
    }

    /// Rows `rows` of `name`'s variant `level` as an f32 tensor, only their bytes read: a
    /// variant's rows are encoded one after the other, each in `qtype.bytes(cols)` bytes (a
    /// masked variant is decoded whole).
    pub fn rows(&self, name: &str, level: usize, rows: std::ops::Range<usize>) -> Result<Tensor> {
        let tv = &self.tensors[name];
        let v = &tv.variants[level];
        self.whole(name, level)?;
        if v.masked() {
            return Ok(self.decoded(name, level)?.narrow(0, rows.start, rows.len())?);
        }
        let row = v.qtype.bytes(tv.cols);
        let (start, len) = (rows.start * row, rows.len() * row);
        let bytes = match &v.bytes {
            VariantBytes::Memory(b) => Cow::Borrowed(&b[start..start + len]),
            VariantBytes::At { offset, .. } => {
                let mut b = vec![0u8; len];
                let file = self.file.as_deref().expect("a database with stored variants has a file");
                file.read_exact_at(&mut b, offset + start as u64)
                    .map_err(|error| ModelError::Io { path: variant_path(name, level), error })?;
                Cow::Owned(b)
            }
        };
        let w = dequantize(v.qtype, &bytes, rows.len() * tv.cols);
        Ok(Tensor::from_vec(w, (rows.len(), tv.cols), &Device::Cpu)?)
    }

    /// The GGUF encoding of a quantization `plan` chosen from this database, exactly as the
    /// search scored it: every planned tensor's variant as the database holds it (GPTQ on the
    /// original model's inputs), nothing quantized again; every other tensor of `source` is
    /// copied as it is by the writer. The variants wait in a temporary file, not in memory.
    pub fn compressed(&self, source: &Streamed, plan: &Plan, token_weights: TokenWeights) -> Result<Compressed> {
        let io = |error| ModelError::Io { path: crate::spill::folder(), error };
        if !(plan.drop_blocks.is_empty() && plan.drop_attention.is_empty() && plan.drop_mlp.is_empty()) {
            return Err(ModelError::InvalidConfig(
                "a plan that removes blocks or sublayers is not made of database variants".into(),
            ));
        }
        let mut encoded = Encoded::spilled().map_err(io)?;
        let mut report = Vec::with_capacity(plan.tensors.len());
        for (name, spec) in &plan.tensors {
            let missing = || {
                ModelError::InvalidConfig(format!(
                    "the plan puts {name} at {}, which the layer database does not hold",
                    spec.qtype.name()
                ))
            };
            let tv = self.tensors.get(name).ok_or_else(missing)?;
            let level = tv
                .variants
                .iter()
                .position(|v| v.qtype == spec.qtype && v.sparsity == share(spec))
                .ok_or_else(missing)?;
            let bytes = self.bytes(name, level).map_err(io)?;
            let values = self.decode(name, level, &bytes)?;
            let zeros = values.iter().filter(|&&x| x == 0.0).count();
            // A masked variant goes back to its type's encoding (exactly: its values are F16).
            let bytes = if tv.variants[level].masked() {
                Cow::Owned(quantize(spec.qtype, &values, tv.cols, None))
            } else {
                bytes
            };
            report.push(TensorReport {
                name: name.clone(),
                qtype: spec.qtype.name().into(),
                shape: [tv.rows, tv.cols],
                sparsity: spec.sparsity.map(|s| s.share()).filter(|&p| p > 0.0),
                zeros: zeros as f64 / (tv.rows * tv.cols) as f64,
                // The output error of a linear; the embedding's is a weight error, not reported.
                rel_error: gguf_block(name).is_some().then_some(tv.variants[level].rel_error),
                seconds: 0.0,
            });
            encoded.insert(name.clone(), spec.qtype, bytes.into_owned()).map_err(io)?;
        }
        Ok(Compressed {
            model: None,
            config: source.config.clone(),
            source: source.source.clone(),
            encoded,
            kept_blocks: (0..source.config.n_layers).collect(),
            report,
            token_weights,
        })
    }

    /// Removes the `expected` tensors from this database and returns them as one, when it
    /// holds them all as a database of `kind` with types from `menu` (else None, and removes
    /// nothing).
    fn take(&mut self, expected: &BTreeMap<String, (usize, usize)>, kind: Kind, menu: Menu) -> Option<Database> {
        let held: BTreeMap<String, TensorVariants> =
            expected.keys().filter_map(|n| self.tensors.get(n).map(|tv| (n.clone(), tv.clone()))).collect();
        if mismatch(&held, expected, kind, menu).is_some() {
            return None;
        }
        self.tensors.retain(|n, _| !expected.contains_key(n));
        Some(Database { key: self.key.clone(), tensors: held, file: self.file.clone() })
    }

    /// Appends every variant to `spill` and adds the tensors, stored there, to `tensors`.
    fn move_into(self, spill: &mut Spill, tensors: &mut BTreeMap<String, TensorVariants>) -> io::Result<()> {
        for (name, mut tv) in self.tensors {
            for v in &mut tv.variants {
                let len = v.size();
                let offset = spill.append(&read_variant(self.file.as_deref(), v)?)?;
                v.bytes = VariantBytes::At { offset, len };
            }
            tensors.insert(name, tv);
        }
        Ok(())
    }

    /// Writes the database as a GGUF file (one tensor per variant, `name#TYPE` or
    /// `name#TYPE@share`; a masked variant as a one-dimensional F16 tensor of its bytes),
    /// atomically, one variant's bytes in memory at a time.
    pub fn save(&self, path: &Path) -> std::result::Result<(), crate::export::ExportError> {
        let mut metadata = vec![
            ("general.architecture".to_string(), Value::String("triage-database".into())),
            ("triage.database.key".to_string(), Value::String(self.key.clone())),
        ];
        let mut names = Vec::new();
        let mut order = Vec::new();
        for (name, tv) in &self.tensors {
            metadata.push((
                format!("triage.rel_error.{name}"),
                Value::Array(tv.variants.iter().map(|v| Value::F64(v.rel_error)).collect()),
            ));
            metadata.push((
                format!("triage.checksum.{name}"),
                Value::Array(tv.variants.iter().map(|v| Value::U32(v.checksum)).collect()),
            ));
            if tv.variants.iter().any(|v| v.sample.is_some()) {
                let rows = |v: &Variant| Value::U64(v.sample.map_or(0, |s| s.rows as u64));
                let stderr = |v: &Variant| Value::F64(v.sample.map_or(0.0, |s| s.stderr));
                metadata.push((format!("triage.sample.{name}"), Value::Array(tv.variants.iter().map(rows).collect())));
                metadata
                    .push((format!("triage.stderr.{name}"), Value::Array(tv.variants.iter().map(stderr).collect())));
                metadata.push((format!("triage.rows.{name}"), Value::U64(tv.rows as u64)));
                if let Some(d) = &tv.drawn {
                    let rows = d.rows.iter().map(|&r| Value::U64(r as u64)).collect();
                    metadata.push((format!("triage.drawn.{name}"), Value::Array(rows)));
                    metadata.push((format!("triage.drawn_share.{name}"), Value::F64(d.share)));
                }
                metadata.push((format!("triage.cols.{name}"), Value::U64(tv.cols as u64)));
            }
            for (level, v) in tv.variants.iter().enumerate() {
                let rows = v.sample.map_or(tv.rows, |s| s.rows);
                let ne = if v.masked() { vec![v.size() as u64 / 2] } else { vec![tv.cols as u64, rows as u64] };
                names.push((variant_name(name, v), ne, v.qtype));
                order.push((name.as_str(), level));
            }
        }
        let infos: Vec<(&str, &[u64], QuantType)> =
            names.iter().map(|(n, ne, t)| (n.as_str(), ne.as_slice(), *t)).collect();
        crate::temp::write_atomic(path, |w| {
            gguf_file::write_with(w, &metadata, &infos, |i| self.bytes(order[i].0, order[i].1))
                .map_err(crate::export::ExportError::Io)
        })
    }

    /// Opens a cached database — its index; the variants stay in the file until read, each
    /// read once here to check its checksum — `Ok(None)` when there is none, `Err(why)` when
    /// the file cannot be trusted (unreadable, made for another key, a malformed variant, a
    /// non-finite error, a variant that does not match its checksum).
    pub fn load(path: &Path, key: &str) -> std::result::Result<Option<Database>, String> {
        let Some(db) = Database::open(path, key)? else { return Ok(None) };
        db.undamaged()?;
        Ok(Some(db))
    }

    /// [`Database::load`] but for the checksums, not checked yet ([`Database::damaged`]).
    fn open(path: &Path, key: &str) -> std::result::Result<Option<Database>, String> {
        if !path.exists() {
            return Ok(None);
        }
        let mut file = std::io::BufReader::new(File::open(path).map_err(|e| e.to_string())?);
        let len = file.get_ref().metadata().map_err(|e| e.to_string())?.len();
        let g = GgufFile::parse(&mut file, len).map_err(|e| e.to_string())?;
        let tensors = index(&g, key)?;
        Ok(Some(Database { key: key.to_string(), tensors, file: Some(Arc::new(file.into_inner())) }))
    }

    /// Reads a database of `len` bytes from `r` into memory (see [`Database::load`]).
    pub fn parse<R: std::io::Read + std::io::Seek>(
        r: &mut R,
        len: u64,
        key: &str,
    ) -> std::result::Result<Database, String> {
        let g = GgufFile::parse(r, len).map_err(|e| e.to_string())?;
        let mut tensors = index(&g, key)?;
        for v in tensors.values_mut().flat_map(|tv| tv.variants.iter_mut()) {
            if let VariantBytes::At { offset, len } = v.bytes {
                let mut b = vec![0u8; len];
                r.seek(io::SeekFrom::Start(offset)).and_then(|_| r.read_exact(&mut b)).map_err(|e| e.to_string())?;
                v.bytes = VariantBytes::Memory(b);
            }
        }
        let db = Database::new(key.to_string(), tensors);
        db.undamaged()?;
        Ok(db)
    }

    /// Every variant, as (tensor name, level), whose bytes and error do not match its checksum,
    /// in name order: all of them read, [`CHECK_CHUNK`] bytes at a time, on every core.
    pub fn damaged(&self) -> io::Result<Vec<(String, usize)>> {
        let all: Vec<(&String, usize, &Variant)> = self
            .tensors
            .iter()
            .flat_map(|(n, tv)| tv.variants.iter().enumerate().map(move |(l, v)| (n, l, v)))
            .collect();
        let found = all
            .par_iter()
            .map(|&(n, l, v)| Ok((checksum(self.file.as_deref(), v)? != v.checksum).then(|| (n.clone(), l))))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(found.into_iter().flatten().collect())
    }

    /// Err(why) naming the first variant that does not match its checksum.
    fn undamaged(&self) -> std::result::Result<(), String> {
        match self.damaged().map_err(|e| e.to_string())?.first() {
            Some((name, level)) => Err(self.damage(name, *level)),
            None => Ok(()),
        }
    }

    /// What is wrong with a damaged variant, naming it as the file does.
    fn damage(&self, name: &str, level: usize) -> String {
        format!(
            "variant '{}' does not match its checksum: its bytes or its error were damaged",
            variant_name(name, &self.tensors[name].variants[level])
        )
    }

    /// Why this database cannot serve a model of `config` as a database of `kind` with types
    /// from `menu` (None: it can).
    pub fn mismatch(&self, config: &Config, kind: Kind, menu: Menu) -> Option<String> {
        mismatch(&self.tensors, &database_tensors(config, kind, menu), kind, menu)
    }
}

/// The variants a database file's header `g` lists, stored at their offsets in the file, with
/// their errors and checksums; Err(why) when it was made for another key or does not read as a database.
fn index(g: &GgufFile, key: &str) -> std::result::Result<BTreeMap<String, TensorVariants>, String> {
    match g.get("triage.database.key") {
        Some(Value::String(k)) if k == key => {}
        _ => return Err(format!("it was not made for key {key}")),
    }
    // A masked variant is one-dimensional: its tensor's shape is read off the unpruned variants.
    let mut shapes: BTreeMap<String, Option<(usize, usize)>> = BTreeMap::new();
    let mut tensors: BTreeMap<String, TensorVariants> = BTreeMap::new();
    for info in &g.tensors {
        let bad = |what: &str| format!("variant '{}': {what}", info.name);
        let (name, tag) = info.name.split_once(VARIANT_SEP).ok_or_else(|| bad("no type tag"))?;
        let sparsity = match tag.split_once(SHARE_SEP) {
            Some((_, p)) => p.parse().map_err(|_| bad("a share that is not a number"))?,
            None => 0.0,
        };
        let qtype = info.qtype().ok_or_else(|| bad("an unknown type"))?;
        // The header reader checked that every tensor's bytes lie inside the file.
        let len = g.tensor_bytes(info).map_err(|e| bad(&e.to_string()))? as usize;
        let offset = g.data_offset.checked_add(info.offset).ok_or_else(|| bad("an offset past 2^64"))?;
        let variant = Variant {
            qtype,
            sparsity,
            bytes: VariantBytes::At { offset, len },
            rel_error: 0.0,
            checksum: 0,
            sample: None,
        };
        let shape = match info.ne[..] {
            [_] if variant.masked() && qtype == QuantType::F16 => None,
            [cols, rows] if !variant.masked() => Some((rows as usize, cols as usize)),
            _ if variant.masked() => return Err(bad("a pruned variant that is not a masked F16 one")),
            _ => return Err(bad("not two-dimensional")),
        };
        // A sampled variant holds fewer rows than its tensor: its shape is checked against its
        // sample below.
        let sampled = match g.get(&format!("triage.sample.{name}")) {
            Some(Value::Array(a)) => {
                let level = tensors.get(name).map_or(0, |tv| tv.variants.len());
                matches!(a.get(level), Some(Value::U64(n)) if *n > 0)
            }
            _ => false,
        };
        let shape = if sampled { None } else { shape };
        let known = shapes.entry(name.to_string()).or_insert(shape);
        match (*known, shape) {
            (Some(a), Some(b)) if a != b => return Err(bad("a shape unlike the tensor's other variants")),
            (None, Some(_)) => *known = shape,
            _ => {}
        }
        tensors
            .entry(name.to_string())
            .or_insert_with(|| TensorVariants { rows: 0, cols: 0, variants: Vec::new(), drawn: None })
            .variants
            .push(variant);
    }
    for (name, tv) in &mut tensors {
        (tv.rows, tv.cols) =
            match (shapes[name], g.get(&format!("triage.rows.{name}")), g.get(&format!("triage.cols.{name}"))) {
                (Some(shape), _, _) => shape,
                (None, Some(Value::U64(rows)), Some(Value::U64(cols))) => (*rows as usize, *cols as usize),
                _ => return Err(format!("'{name}' has no unpruned variant to give its shape")),
            };
        if let Some(Value::Array(a)) = g.get(&format!("triage.sample.{name}")) {
            let Some(Value::Array(se)) = g.get(&format!("triage.stderr.{name}")) else {
                return Err(format!("no standard errors for the sampled '{name}'"));
            };
            if a.len() != tv.variants.len() || se.len() != tv.variants.len() {
                return Err(format!("{} samples for the {} variants of '{name}'", a.len(), tv.variants.len()));
            }
            for ((v, n), e) in tv.variants.iter_mut().zip(a).zip(se) {
                let (Value::U64(n), Value::F64(e)) = (n, e) else {
                    return Err(format!("a sample of '{name}' is not a U64 with an F64 standard error"));
                };
                if *n == 0 {
                    continue;
                }
                let n = *n as usize;
                if n >= tv.rows || !e.is_finite() || *e < 0.0 || v.size() != v.qtype.bytes(n * tv.cols) {
                    return Err(format!(
                        "a sampled {} variant of '{name}' of {n} rows: not a sample of its {} rows or not its bytes",
                        v.qtype, tv.rows
                    ));
                }
                v.sample = Some(Sample { rows: n, stderr: *e });
            }
            let rows = match g.get(&format!("triage.drawn.{name}")) {
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| match v {
                        Value::U64(r) => Ok(*r as usize),
                        _ => Err(format!("a drawn row of '{name}' is not a U64")),
                    })
                    .collect::<std::result::Result<Vec<usize>, String>>()?,
                _ => return Err(format!("no drawn rows for the sampled '{name}'")),
            };
            let share = match g.get(&format!("triage.drawn_share.{name}")) {
                Some(Value::F64(x)) if x.is_finite() && *x > 0.0 && *x <= 1.0 => *x,
                _ => return Err(format!("no share in (0, 1] for the rows drawn of '{name}'")),
            };
            let increasing = rows.windows(2).all(|w| w[0] < w[1]) && rows.last().is_none_or(|&r| r < tv.rows);
            if !increasing || tv.variants.iter().any(|v| v.sample.is_some_and(|s| s.rows != rows.len())) {
                return Err(format!("the rows drawn of '{name}' are not its sampled variants' rows"));
            }
            tv.drawn = Some(Drawn { rows, share });
        }
        if let Some(v) = tv.variants.iter().find(|v| v.masked() && !masked::fits(v.size(), tv.rows * tv.cols)) {
            return Err(format!(
                "a masked variant of '{name}' has {} bytes, which cannot pack {}×{} weights",
                v.size(),
                tv.rows,
                tv.cols
            ));
        }
    }
    for (name, tv) in &mut tensors {
        let Some(Value::Array(errs)) = g.get(&format!("triage.rel_error.{name}")) else {
            return Err(format!("no errors for '{name}'"));
        };
        if errs.len() != tv.variants.len() {
            return Err(format!("{} errors for the {} variants of '{name}'", errs.len(), tv.variants.len()));
        }
        for (v, e) in tv.variants.iter_mut().zip(errs) {
            v.rel_error = match e {
                Value::F64(x) if x.is_finite() && *x >= 0.0 => *x,
                _ => return Err(format!("an error of '{name}' is not a finite non-negative F64")),
            };
        }
        let Some(Value::Array(sums)) = g.get(&format!("triage.checksum.{name}")) else {
            return Err(format!("no checksums for '{name}'"));
        };
        if sums.len() != tv.variants.len() {
            return Err(format!("{} checksums for the {} variants of '{name}'", sums.len(), tv.variants.len()));
        }
        for (v, c) in tv.variants.iter_mut().zip(sums) {
            v.checksum = match c {
                Value::U32(x) => *x,
                _ => return Err(format!("a checksum of '{name}' is not a U32")),
            };
        }
    }
    Ok(tensors)
}

/// The block an interrupted build saved at `path`, when there is one and it is whole: made for
/// `key`, its checksums matching, exactly the `expected` tensors at the levels of a database
/// of `kind` with types from `menu`; Err(why) when it is not.
pub fn saved_block(
    path: &Path,
    key: &str,
    expected: &BTreeMap<String, (usize, usize)>,
    kind: Kind,
    menu: Menu,
) -> std::result::Result<Option<Database>, String> {
    let Some(db) = Database::load(path, key)? else { return Ok(None) };
    match mismatch(&db.tensors, expected, kind, menu) {
        Some(why) => Err(why),
        None => Ok(Some(db)),
    }
}

/// Why `tensors` are not a database of `kind` for the `expected` tensors and shapes (None:
/// they are): every expected tensor, with its shape and exactly the levels the code makes, in
/// order, each variant of its type's size.
fn mismatch(
    tensors: &BTreeMap<String, TensorVariants>,
    expected: &BTreeMap<String, (usize, usize)>,
    kind: Kind,
    menu: Menu,
) -> Option<String> {
    if !tensors.keys().eq(expected.keys()) {
        return Some(format!("it holds {} tensors, {} are expected", tensors.len(), expected.len()));
    }
    for (name, &(rows, cols)) in expected {
        let tv = &tensors[name];
        if (tv.rows, tv.cols) != (rows, cols) {
            return Some(format!("'{name}' is {}×{}, the model's is {rows}×{cols}", tv.rows, tv.cols));
        }
        let want: Vec<(QuantType, f32)> = if gguf_block(name).is_some() {
            specs(kind, cols, menu).iter().map(|s| (s.qtype, share(s))).collect()
        } else {
            levels(cols, menu).into_iter().map(|t| (t, 0.0)).collect()
        };
        let have: Vec<(QuantType, f32)> = tv.variants.iter().map(|v| (v.qtype, v.sparsity)).collect();
        if have != want {
            return Some(format!("'{name}' has levels {have:?}, the code makes {want:?}"));
        }
        let sized = |v: &Variant| match v.sample {
            _ if v.masked() => masked::fits(v.size(), rows * cols),
            Some(s) => v.size() == v.qtype.bytes(s.rows * cols),
            None => v.size() == v.qtype.bytes(rows * cols),
        };
        if tv.variants.iter().any(|v| v.sample.is_some()) != tv.drawn.is_some() {
            return Some(format!("'{name}' has sampled variants without the rows drawn, or rows drawn without them"));
        }
        if let Some(v) = tv.variants.iter().find(|v| !sized(v)) {
            return Some(format!("a {} variant of '{name}' has {} bytes", v.qtype, v.size()));
        }
    }
    None
}

/// Where cached databases live: $TRIAGE_CACHE, else $XDG_CACHE_HOME/triage, else
/// ~/.cache/triage. A variable set empty counts as unset, as the XDG base directory rules
/// say (an empty `TRIAGE_CACHE=$UNSET` would otherwise put the cache in the current folder),
/// and so does an XDG_CACHE_HOME that is not absolute, which those rules call invalid.
pub fn default_cache_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(d) = var("TRIAGE_CACHE") {
        return Some(d);
    }
    if let Some(d) = var("XDG_CACHE_HOME").filter(|d| d.is_absolute()) {
        return Some(d.join("triage"));
    }
    var("HOME").map(|h| h.join(".cache").join("triage"))
}

/// The cached database for `key` in `dir`, or a freshly built one (saved there when `dir` is given).
pub fn load_or_build(
    model: &dyn Blocks,
    windows: &Windows,
    settings: &DatabaseSettings,
    kind: Kind,
    key: String,
    dir: Option<&Path>,
    progress: &mut dyn Progress,
) -> std::result::Result<(Database, bool), ModelError> {
    let path = dir.map(|d| d.join(format!("database-{key}.gguf")));
    let mut reuse = None;
    if let Some(p) = path.as_deref() {
        let checked = Database::open(p, &key).and_then(|db| {
            match db.as_ref().and_then(|db| db.mismatch(model.config(), kind, settings.menu())) {
                Some(why) => Err(why),
                None => Ok(db),
            }
        });
        match checked.and_then(|db| db.map(|db| db.damaged().map(|d| (db, d)).map_err(|e| e.to_string())).transpose()) {
            Ok(Some((db, damaged))) if damaged.is_empty() => return Ok((db, true)),
            Ok(Some((mut db, damaged))) => {
                let (name, level) = &damaged[0];
                let tensors: std::collections::BTreeSet<&String> = damaged.iter().map(|(n, _)| n).collect();
                eprintln!(
                    "warning: the cached layer database {} is damaged ({}; {} damaged variant(s) of {} tensor(s)); rebuilding the blocks that hold them",
                    p.display(),
                    db.damage(name, *level),
                    damaged.len(),
                    tensors.len()
                );
                db.tensors.retain(|n, _| !tensors.contains(n));
                reuse = Some(db);
            }
            Ok(None) => {}
            Err(why) => {
                eprintln!("warning: the cached layer database {} is not used ({why}); rebuilding it", p.display())
            }
        }
    }
    // Blocks finished by an interrupted build of the same key wait in the partial folder.
    // A cache that cannot be written only costs time next run.
    let partial = dir.map(|d| d.join(format!("database-{key}.partial"))).filter(|p| std::fs::create_dir_all(p).is_ok());
    // Prepared shards' states let the blocks left start where they are.
    let states = dir.map(|d| super::shard::folder(d, &key)).filter(|d| d.is_dir());
    let scope = Scope { only: None, states: states.as_deref() };
    let db = rebuild(model, windows, settings, kind, key, partial.as_deref(), reuse, scope, progress)?;
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

/// Builds the units shard `owned` holds (taking those already saved) into the partial folder
/// of the database of `key` in the cache folder `dir`, each saved as it finishes, starting from
/// the states prepared in `shards`; returns them as a database.
#[allow(clippy::too_many_arguments)]
pub fn build_shard(
    model: &dyn Blocks,
    windows: &Windows,
    settings: &DatabaseSettings,
    kind: Kind,
    key: String,
    dir: &Path,
    shards: &Path,
    owned: &Owned,
    progress: &mut dyn Progress,
) -> Result<Database> {
    let partial = dir.join(format!("database-{key}.partial"));
    std::fs::create_dir_all(&partial).map_err(|error| ModelError::Io { path: partial.clone(), error })?;
    let scope = Scope { only: Some(owned), states: Some(shards) };
    rebuild(model, windows, settings, kind, key, Some(&partial), None, scope, progress)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::gptq::GptqOptions;
    use crate::progress::Silent;

    /// A sparsity database keeps its pruned levels masked: saved and loaded again, every level
    /// decodes to the same weights, with at least its share of zeros per tensor, in a file about
    /// 0.6 of the dense F16 levels' bytes.
    #[test]
    fn a_sparsity_database_is_masked_and_reads_back_the_same() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-llama");
        let model = crate::model::Model::load(&dir).unwrap();
        let ids: Vec<u32> = (0..64).map(|i| (i * 7 % 300) as u32).collect();
        let windows = Windows::new(&ids, 16, None).unwrap();
        let settings =
            DatabaseSettings { tokens: 64, ctx: 16, gptq: GptqOptions::default(), types: None, sample: None };
        let db = build(&model, &windows, &settings, Kind::Sparsity, "test".into(), None, &mut Silent).unwrap();
        assert_eq!(db.mismatch(&model.config, Kind::Sparsity, None), None);
        let path = std::env::temp_dir().join(format!("triage-sparsity-db-{}.gguf", std::process::id()));
        db.save(&path).unwrap();
        let back = Database::load(&path, "test").unwrap().unwrap();
        assert_eq!(back.mismatch(&model.config, Kind::Sparsity, None), None);
        assert_eq!(back.damaged().unwrap(), Vec::new());
        let mut dense = 0;
        for (name, tv) in &db.tensors {
            let n = tv.rows * tv.cols;
            dense += n * 2 * SPARSITY_LEVELS.len();
            for (level, v) in tv.variants.iter().enumerate() {
                assert_eq!(v.masked(), v.sparsity > 0.0);
                let w = db.values(name, level).unwrap();
                assert_eq!(back.values(name, level).unwrap(), w, "{name}#{level}");
                assert_eq!(back.tensors[name].variants[level].rel_error, v.rel_error);
                assert_eq!(back.tensors[name].variants[level].checksum, v.checksum);
                let zeros = w.iter().filter(|&&x| x == 0.0).count();
                assert!(
                    zeros as f64 >= (v.sparsity as f64 - 1e-3) * n as f64,
                    "{name} at {}: {zeros} zeros of {n}",
                    v.sparsity
                );
            }
        }
        let file = std::fs::metadata(&path).unwrap().len() as f64;
        std::fs::remove_file(&path).ok();
        assert!(file < 0.65 * dense as f64, "{file} bytes against {dense} dense");
    }

    /// Quantizing the embedding a few rows at a time into each level's place gives the bytes
    /// and the error of the whole matrix quantized at once.
    #[test]
    fn matrix_levels_by_chunks_equal_the_whole_matrix() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-llama");
        let model = crate::model::Model::load(&dir).unwrap();
        let (rows, cols) = (model.config.vocab_size, model.config.hidden_size);
        let w = with_f32(&model.embed, <[f32]>::to_vec).unwrap();
        let norm: f64 = w.iter().map(|&x| (x as f64).powi(2)).sum();
        // 7 rows a chunk: the last chunk is shorter.
        for chunk_bytes in [7 * 4 * cols, usize::MAX / 8] {
            let mut spill = Spill::new("test").unwrap();
            spill.append(b"leading bytes").unwrap();
            let types = levels(cols, None);
            let variants =
                matrix_levels(&model, "token_embd.weight", rows, cols, &types, &mut spill, chunk_bytes, 0, &mut Silent)
                    .unwrap();
            assert_eq!(variants.iter().map(|v| v.qtype).collect::<Vec<_>>(), levels(cols, None));
            let file = spill.reader().unwrap();
            for v in &variants {
                let bytes = quantize(v.qtype, &w, cols, None);
                assert_eq!(read_variant(Some(&file), v).unwrap().as_ref(), bytes.as_slice(), "{}", v.qtype);
                assert_eq!(
                    v.checksum,
                    Variant::in_memory(v.qtype, 0.0, bytes.clone(), v.rel_error).checksum,
                    "{}",
                    v.qtype
                );
                let d = dequantize(v.qtype, &bytes, w.len());
                let err: f64 = w.iter().zip(&d).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum();
                assert_eq!(v.rel_error, (err / norm).sqrt(), "{}", v.qtype);
            }
        }
    }

    /// A sampled database's variants are the exact database's rows: each level's bytes are
    /// those of its sampled rows in the whole tensor's encoding, it costs the whole tensor's
    /// bytes, its error is near the exact one, it is saved and read back with its sample, and
    /// made whole it is the exact variant, bytes and error.
    #[test]
    fn a_sampled_database_holds_the_exact_databases_rows_and_makes_them_whole() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-llama");
        let model = crate::model::Model::load(&dir).unwrap();
        let ids: Vec<u32> = (0..64).map(|i| (i * 7 % 300) as u32).collect();
        let windows = Windows::new(&ids, 16, None).unwrap();
        let exact = DatabaseSettings { tokens: 64, ctx: 16, gptq: GptqOptions::default(), types: None, sample: None };
        let settings = DatabaseSettings { sample: Some(40), ..exact.clone() };
        let whole = build(&model, &windows, &exact, Kind::Types, "exact".into(), None, &mut Silent).unwrap();
        let mut db = build(&model, &windows, &settings, Kind::Types, "sampled".into(), None, &mut Silent).unwrap();
        assert_eq!(db.mismatch(&model.config, Kind::Types, None), None);
        let mut sampled = 0;
        for (name, tv) in &db.tensors {
            let full = &whole.tensors[name];
            let probed = probe_level(&tv.variants);
            for (level, v) in tv.variants.iter().enumerate() {
                assert_eq!(tv.cost(level), full.variants[level].size(), "{name}#{level}");
                let exact_bytes = whole.bytes(name, level).unwrap();
                let Some(s) = v.sample else {
                    // Whole: a tensor of no more rows than the sample, or the probe's worst level
                    // of the embedding and the output.
                    assert!(tv.rows <= 40 || (gguf_block(name).is_none() && level == probed), "{name}#{level}");
                    assert!(v.qtype.vector_grid().is_none());
                    assert_eq!(db.bytes(name, level).unwrap(), exact_bytes, "{name}#{level}");
                    assert_eq!(v.rel_error, full.variants[level].rel_error);
                    continue;
                };
                sampled += 1;
                assert_eq!(s.rows, 40);
                let row = v.qtype.bytes(tv.cols);
                let want: Vec<u8> = tv
                    .drawn
                    .as_ref()
                    .unwrap()
                    .rows
                    .iter()
                    .flat_map(|&r| exact_bytes[r * row..(r + 1) * row].to_vec())
                    .collect();
                assert_eq!(db.bytes(name, level).unwrap().as_ref(), want.as_slice(), "{name}#{level}");
                let t = full.variants[level].rel_error;
                assert!(
                    (v.rel_error - t).abs() <= 5.0 * s.stderr + 1e-3 * t,
                    "{name}#{level}: {} ± {} against {t}",
                    v.rel_error,
                    s.stderr
                );
                assert!(db.decoded(name, level).is_err(), "a sample is not decoded as a whole tensor");
            }
        }
        assert!(sampled > 20, "{sampled} sampled variants");
        let path = std::env::temp_dir().join(format!("triage-sampled-db-{}.gguf", std::process::id()));
        db.save(&path).unwrap();
        let back = Database::load(&path, "sampled").unwrap().unwrap();
        std::fs::remove_file(&path).ok();
        assert_eq!(back.mismatch(&model.config, Kind::Types, None), None);
        for (name, tv) in &db.tensors {
            for (level, v) in tv.variants.iter().enumerate() {
                let b = &back.tensors[name].variants[level];
                assert_eq!((b.sample, b.rel_error, b.checksum), (v.sample, v.rel_error, v.checksum), "{name}#{level}");
                assert_eq!(back.tensors[name].drawn, tv.drawn, "{name}");
                assert_eq!(back.bytes(name, level).unwrap(), db.bytes(name, level).unwrap());
            }
        }
        let wanted: std::collections::BTreeSet<(String, usize)> =
            db.tensors.iter().flat_map(|(n, tv)| (0..tv.variants.len()).map(move |l| (n.clone(), l))).collect();
        materialize(&model, &windows, &settings, &mut db, &wanted, &mut Silent).unwrap();
        for (name, tv) in &db.tensors {
            for (level, v) in tv.variants.iter().enumerate() {
                assert_eq!(v.sample, None);
                assert_eq!(db.bytes(name, level).unwrap(), whole.bytes(name, level).unwrap(), "{name}#{level}");
                assert_eq!(v.rel_error, whole.tensors[name].variants[level].rel_error, "{name}#{level}");
                assert_eq!(v.checksum, whole.tensors[name].variants[level].checksum, "{name}#{level}");
            }
        }
    }
}
