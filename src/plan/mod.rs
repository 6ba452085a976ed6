//! Allocation under a global budget: a level per tensor (GGUF type) or a set of removed blocks,
//! chosen by a solver and written as a [`Plan`] that `triage compress --plan` applies.
//!
//! Quantization budgets (`bpw=`, `size=`, `kld<=`): the layer database (every tensor at every
//! allowed GGUF type, GPTQ on the original inputs, cached on disk) gives each level's exact
//! bytes and relative error; `uniform` takes the largest single type that fits; `lagrange`
//! solves Σ a_l·t_l² under the budget with measured sensitivities a_l; `evo` (EvoPress)
//! starts from lagrange's plan and searches on end-to-end KL. `kld<=T` bisects the budget with
//! lagrange plans until the measured KL is within T. Sparsity budgets (`sparsity=S`, see
//! [`sparsity`]): `uniform`, `owl`, or `evo` over a database of SparseGPT levels. Depth budgets
//! (`drop-blocks=K`, `drop-sublayers=K`, see [`depth`]): `shortgpt` removes the K units of
//! lowest influence; `evo` searches from there.

pub mod budget;
pub mod database;
pub mod depth;
pub mod digest;
pub mod evo;
pub mod fitness;
pub mod frontier;
pub mod gain;
pub mod lagrange;
pub mod masked;
pub mod owl;
pub mod planned;
pub mod removal;
pub mod sample;
pub mod sealed;
pub mod search;
pub mod sensitivity;
pub mod shard;
pub mod sparsity;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Value as Json};

use crate::calib::Windows;
use crate::compress::plan::{plannable_tensors, Plan, TensorSpec};
use crate::ggml::types::QuantType;
use crate::layout::{PredictedSize, Skeleton};
use crate::model::{Blocks, Config, Weights};

pub use budget::Budget;
use database::{Database, DatabaseSettings, Kind};
use evo::{evolve, Checkpoint, EvoSettings};
use fitness::{full_layout, Probe};
use frontier::{single_type_plans, Frontier, Point};
use lagrange::Curve;
use planned::Planned;
use search::{QuantGenome, QuantSpace};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Solver {
    /// One type everywhere: the largest that fits (quantization budgets); one share everywhere (sparsity).
    Uniform,
    /// OWL: each block's share pruned by its outlier ratio (sparsity budgets).
    Owl,
    /// Bisection on λ over measured per-tensor error curves; exact budget (quantization budgets).
    Lagrange,
    /// EvoPress: evolutionary search on end-to-end KL, warm-started from lagrange (or uniform, shortgpt).
    Evo,
    /// ShortGPT: remove the blocks of lowest block influence (depth budgets).
    Shortgpt,
}

impl Solver {
    /// The solver a budget gets when none is named: lagrange for quantization budgets (EvoPress,
    /// warm-started from it, kept the Lagrangian plan at the budgets measured on the default
    /// model and made the hold-out KL 1% worse on the off-grid base, for five minutes or more
    /// of search; `--solver evo` still runs it), EvoPress for sparsity and depth budgets (where
    /// it beat uniform, OWL and ShortGPT by 6–18% in mean KL).
    pub fn default_for(budget: Budget) -> Solver {
        match budget {
            Budget::Bpw(_) | Budget::Size(_) | Budget::Kld(_) => Solver::Lagrange,
            Budget::Sparsity(_) | Budget::DropBlocks(_) | Budget::DropSublayers(_) => Solver::Evo,
        }
    }
}

/// Whether `solver` plans `budget` from the layer database's curves and KL measurements alone
/// (quantization budgets with lagrange or uniform): block by block, so on a streamed model, and
/// reading only the sensitivity windows of the search pool. EvoPress, sparsity and depth search
/// whole decoded models.
pub fn plans_by_measurement(budget: Budget, solver: Solver) -> bool {
    budget.is_quantization() && matches!(solver, Solver::Uniform | Solver::Lagrange)
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{0}")]
    Budget(String),
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
    #[error(transparent)]
    Layout(#[from] crate::layout::LayoutError),
    #[error("{}", crate::model::candle_message(.0))]
    Tensor(#[from] candle_core::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

type Result<T> = std::result::Result<T, PlanError>;

#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub budget: Budget,
    pub solver: Solver,
    pub database: DatabaseSettings,
    /// Where layer databases are cached (None: not cached).
    pub cache_dir: Option<PathBuf>,
    pub evo: EvoSettings,
    /// Calibration windows (after the database's) the search draws its minibatches from.
    pub search_windows: usize,
    /// Windows (after those) on which the final plan's KL is reported, and `kld<=` is judged.
    pub holdout_windows: usize,
    /// Windows of the search pool on which each tensor's sensitivity is measured.
    pub sensitivity_windows: usize,
    /// How the sensitivities are measured.
    pub sensitivity: sensitivity::Method,
    /// Single-type plans near the budget measured for the frontier (with the Lagrangian plans
    /// of their sizes); 0: none.
    pub frontier: usize,
    /// Continue an interrupted search from the state it saved in the cache folder.
    pub resume: bool,
    /// Where the search saves its state (set by [`plan`] in the cache folder).
    pub checkpoint: Option<Checkpoint>,
}

/// A plan with what it is predicted to cost and how it was found.
pub struct PlanOutcome {
    pub plan: Plan,
    pub predicted: PredictedSize,
    /// KL(original ‖ plan) on the hold-out windows, when measured.
    pub kld: Option<f64>,
    /// plan.json: the plan plus budget, prediction, solver, settings, fitness and timings.
    pub json: Json,
    /// A quantization plan's layer database: its tensors' variants, the plan's among them.
    pub database: Option<Database>,
}

use crate::progress::Progress;

/// Calibration windows: the database's first, then the search pool (the part of it used), then
/// the hold-out.
struct Split {
    database: Windows,
    probe: Vec<Vec<u32>>,
    n_search: usize,
}

/// The windows: the database's `db_windows`, then `search` for the search pool — of which only
/// the first `used` are run (a lagrange plan measures its sensitivities on a few) — then
/// `holdout`.
fn split(all: &Windows, db_windows: usize, search: usize, used: usize, holdout: usize) -> Result<Split> {
    let need = db_windows + search + holdout;
    if all.len() < need {
        return Err(PlanError::Budget(format!(
            "the calibration text has {} windows of {} tokens; planning needs {need} ({db_windows} for the layer database, {search} to search on, {holdout} to judge the result): give a longer text or fewer --tokens",
            all.len(),
            all.ctx
        )));
    }
    let database =
        Windows { ctx: all.ctx, windows: all.windows[..db_windows].to_vec(), text_sha256: all.text_sha256.clone() };
    let used = used.min(search);
    let probe = [&all.windows[db_windows..db_windows + used], &all.windows[db_windows + search..need]].concat();
    Ok(Split { database, probe, n_search: used })
}

/// What every run of a plan needs first, checked: the database's windows and kind, and the
/// windows' split.
struct Setup {
    db_windows: usize,
    kind: Option<Kind>,
    sp: Split,
}

fn setup(model: &Weights, windows: &Windows, opts: &PlanOptions) -> Result<Setup> {
    let solver_ok = match opts.budget {
        Budget::DropBlocks(_) | Budget::DropSublayers(_) => matches!(opts.solver, Solver::Shortgpt | Solver::Evo),
        Budget::Kld(_) => matches!(opts.solver, Solver::Lagrange),
        Budget::Sparsity(_) => matches!(opts.solver, Solver::Uniform | Solver::Owl | Solver::Evo),
        _ => matches!(opts.solver, Solver::Uniform | Solver::Lagrange | Solver::Evo),
    };
    if !solver_ok {
        let allowed = match opts.budget {
            Budget::DropBlocks(_) | Budget::DropSublayers(_) => "shortgpt or evo",
            Budget::Kld(_) => "lagrange",
            Budget::Sparsity(_) => "uniform, owl or evo",
            _ => "uniform, lagrange or evo",
        };
        return Err(PlanError::Budget(
            format!("solver {:?} does not apply to budget {}; use {allowed}", opts.solver, opts.budget).to_lowercase(),
        ));
    }
    let by_measurement = plans_by_measurement(opts.budget, opts.solver);
    if model.is_streamed() && !by_measurement {
        return Err(PlanError::Budget(format!(
            "budget {} with solver {} needs the model in memory; a streamed model (--stream on, or auto for models over about a billion parameters) is planned with quantization budgets and the lagrange or uniform solver",
            opts.budget,
            format!("{:?}", opts.solver).to_lowercase()
        )));
    }
    if let Budget::Sparsity(s) = opts.budget {
        if opts.solver == Solver::Evo && s > sparsity::max_share() {
            return Err(PlanError::Budget(format!(
                "budget {}: evo searches shares up to {} per tensor, so the mean cannot exceed it; use uniform or owl",
                opts.budget,
                sparsity::max_share()
            )));
        }
    }
    let db_windows = (opts.database.tokens / windows.ctx).max(1);
    let kind = match opts.budget {
        Budget::Sparsity(_) if opts.solver == Solver::Evo => Some(Kind::Sparsity),
        _ if opts.budget.is_quantization() => Some(Kind::Types),
        _ => None,
    };
    let needs_db = kind.is_some();
    // Lagrange and uniform plans draw only the sensitivities' windows from the search pool.
    let used = if by_measurement { opts.sensitivity_windows.max(1) } else { opts.search_windows };
    let sp = split(windows, if needs_db { db_windows } else { 0 }, opts.search_windows, used, opts.holdout_windows)?;
    if let Some(menu) = &opts.database.types {
        if kind != Some(Kind::Types) {
            return Err(PlanError::Budget(format!(
                "--types chooses the levels of quantization budgets (bpw=, size=, kld<=); budget {} does not use them",
                opts.budget
            )));
        }
        if let Some(why) = database::menu_mismatch(model.config(), menu) {
            return Err(PlanError::Budget(why));
        }
    }
    Ok(Setup { db_windows, kind, sp })
}

/// Plans `model` (opened from `model_path`) under `opts.budget` with calibration `windows` (the
/// text's first, keyed in the caches by [`Windows::source_digest`]: the database's `database.tokens`, then the search's and the hold-out's). The
/// model is taken: a quantization search drops the original weights of every tensor it plans
/// once the sensitivities are measured (every candidate replaces them all). A streamed model
/// takes the quantization budgets with the uniform and lagrange solvers: the database, the
/// sensitivities and every plan's KL are made block by block; EvoPress (a whole model per
/// candidate), sparsity and depth need it in memory.
pub fn plan(
    model: Weights,
    model_path: &Path,
    windows: &Windows,
    opts: &PlanOptions,
    progress: &mut dyn Progress,
) -> Result<PlanOutcome> {
    let t0 = Instant::now();
    let Setup { db_windows, kind, sp } = setup(&model, windows, opts)?;
    // What the GGUF of this source holds: every plan's size is asked of it.
    let gguf = Skeleton::open(model_path)?;
    let limits = if opts.budget.is_quantization() {
        Some(quant_limits(model.config(), &gguf, opts.budget, opts.database.menu())?)
    } else {
        None
    };
    let mut base = model;
    if let Weights::Resident(m) = &mut base {
        m.tokenizer = None;
    }
    let mut timings = serde_json::Map::new();
    let inputs = match (&opts.cache_dir, kind) {
        (None, None) => String::new(),
        _ => digest::inputs_digest(model_path, &windows.source_digest(), opts.cache_dir.as_deref())?,
    };
    if opts.resume && opts.cache_dir.is_none() {
        return Err(PlanError::Budget(
            "--resume continues a search saved in the cache folder; it cannot go with --no-cache".into(),
        ));
    }
    // The search's state lives beside the caches, keyed by everything the search depends on.
    let search_key = digest::short_key(&format!(
        "search v1 triage {} {inputs} budget {} solver {:?} evo {} {} {:?} {} database {:?} windows {} {} {} {}",
        env!("CARGO_PKG_VERSION"),
        opts.budget,
        opts.solver,
        opts.evo.offspring,
        opts.evo.survivors,
        opts.evo.stage_windows,
        opts.evo.seed,
        opts.database,
        windows.ctx,
        opts.search_windows,
        opts.holdout_windows,
        opts.sensitivity_windows
    ));
    let checkpoint = opts
        .cache_dir
        .as_ref()
        .map(|d| Checkpoint { path: d.join(format!("search-{search_key}.json")), resume: opts.resume });
    if let Some(d) = opts.cache_dir.as_ref().filter(|_| opts.solver == Solver::Evo) {
        std::fs::create_dir_all(d)?;
    }
    let opts = &PlanOptions { checkpoint, ..opts.clone() };
    let key = kind.map(|kind| database::cache_key(&inputs, &opts.database, kind));
    // Shards of this database prepared in the cache: all done, or nothing is planned.
    let shards = opts.cache_dir.as_ref().zip(key.as_ref()).map(|(d, key)| shard::folder(d, key));
    if let (Some(d), Some(key), Some(shards)) = (&opts.cache_dir, &key, &shards) {
        let cached = d.join(format!("database-{key}.gguf")).exists();
        if let Some(why) = shards.is_dir().then(|| shard::missing(shards)).flatten().filter(|_| !cached) {
            return Err(PlanError::Budget(why));
        }
        if !shards.is_dir() && !cached {
            shard::warn_of_others(d, shards);
        }
    }
    let probe = Probe::new(&base, &sp.probe, progress)?;
    let pool: Vec<usize> = (0..sp.n_search).collect();
    let holdout: Vec<usize> = (sp.n_search..sp.probe.len()).collect();
    timings.insert("probe_s".into(), json!(t0.elapsed().as_secs_f64()));
    let mut db = match (kind, key.clone()) {
        (Some(kind), Some(key)) => {
            let t = Instant::now();
            let (db, cached) = database::load_or_build(
                &base,
                &sp.database,
                &opts.database,
                kind,
                key,
                opts.cache_dir.as_deref(),
                progress,
            )?;
            crate::memory::release_freed();
            timings.insert("database_s".into(), json!(t.elapsed().as_secs_f64()));
            timings.insert("database_cached".into(), json!(cached));
            Some(db)
        }
        _ => None,
    };
    let mut out = match (opts.budget, &base) {
        (Budget::DropBlocks(k), Weights::Resident(base)) => {
            depth::plan_depth(base, &gguf, &probe, &pool, &holdout, k, false, opts, progress)?
        }
        (Budget::DropSublayers(k), Weights::Resident(base)) => {
            depth::plan_depth(base, &gguf, &probe, &pool, &holdout, k, true, opts, progress)?
        }
        (Budget::Sparsity(s), Weights::Resident(base)) => {
            sparsity::plan_sparsity(base, &gguf, db.as_ref(), &probe, &pool, &holdout, s, opts, &mut timings, progress)?
        }
        (b, _) if !b.is_quantization() => unreachable!("a streamed model was refused these budgets"),
        _ => {
            let (fixed, limit) = limits.expect("computed for quantization budgets");
            let db = db.as_mut().expect("built for quantization budgets");
            let probe = Measure { probe: &probe, pool: &pool, holdout: &holdout, database: &sp.database };
            plan_quant(base, &gguf, db, &probe, opts, fixed, limit, &mut timings, progress)?
        }
    };
    if opts.budget.is_quantization() {
        out.database = db;
    }
    if let (Some(d), Some(key), Some(shards)) = (&opts.cache_dir, &key, &shards) {
        // The shards' states and marks are spent once their database is cached whole.
        if shards.is_dir() && d.join(format!("database-{key}.gguf")).exists() {
            if let Err(e) = std::fs::remove_dir_all(&shards) {
                eprintln!("warning: could not remove the shards' folder {}: {e}", shards.display());
            }
        }
    }
    timings.insert("total_s".into(), json!(t0.elapsed().as_secs_f64()));
    let j = out.json.as_object_mut().expect("an object");
    j.insert("timings".into(), Json::Object(timings));
    j.insert("budget".into(), json!(opts.budget.to_string()));
    j.insert("solver".into(), serde_json::to_value(opts.solver).expect("serializable"));
    let mut database_json = json!({"tokens": db_windows * windows.ctx, "ctx": windows.ctx, "damp": opts.database.gptq.damp, "act_order": opts.database.gptq.act_order, "token_weights": opts.database.gptq.token_weights.name()});
    if kind == Some(Kind::Types) {
        database_json["mode"] = json!(if opts.database.sample.is_some() { "sampled" } else { "exact" });
        if let Some(n) = opts.database.sample {
            database_json["sample_rows"] = json!(n);
        }
    }
    if let Some(menu) = &opts.database.types {
        database_json["types"] = json!(menu.iter().map(|t| t.name()).collect::<Vec<_>>());
    }
    j.insert(
        "settings".into(),
        json!({
            "database": database_json,
            "evo": opts.evo,
            "search_windows": opts.search_windows,
            "holdout_windows": opts.holdout_windows,
            "sensitivity_windows": opts.sensitivity_windows,
            "sensitivity": format!("{:?}", opts.sensitivity).to_lowercase(),
        }),
    );
    j.insert("predicted".into(), json!({"bytes": out.predicted.bytes, "tensor_bytes": out.predicted.tensor_bytes, "n_weights": out.predicted.n_weights, "bits_per_weight": out.predicted.bits_per_weight()}));
    if let Some(k) = out.kld {
        j.insert(
            "fitness".into(),
            json!({"kld_mean": k, "windows": holdout.len(), "tokens": holdout.len() * windows.ctx}),
        );
    }
    Ok(out)
}

/// The bytes a level costs in the budget's units: padded to GGUF's alignment for file sizes.
fn unit_cost(budget: Budget) -> impl Fn(u64) -> u64 {
    move |b| match budget {
        Budget::Size(_) => b.div_ceil(32) * 32,
        _ => b,
    }
}

/// The planned tensors' cheapest and dearest levels of `menu`, as types by name.
fn extreme_types(config: &Config, dearest: bool, menu: database::Menu) -> BTreeMap<String, QuantType> {
    plannable_tensors(config)
        .into_iter()
        .filter_map(|(n, (_, cols))| {
            let l = database::levels(cols, menu);
            let t = if dearest { l.last() } else { l.first() };
            t.map(|&t| (n, t))
        })
        .collect()
}

/// What the planned tensors may spend under `budget` — (bytes of everything else, the budget
/// in the same units) — after checking that the budget lies between the smallest and the
/// largest possible plans.
fn quant_limits(config: &Config, gguf: &Skeleton, budget: Budget, menu: database::Menu) -> Result<(u64, u64)> {
    let all_blocks: Vec<usize> = (0..config.n_layers).collect();
    let known = plannable_tensors(config);
    let cost = unit_cost(budget);
    let planned_cost = |types: &BTreeMap<String, QuantType>| -> u64 {
        types.iter().map(|(n, t)| cost(t.bytes(known[n].0 * known[n].1) as u64)).sum()
    };
    let (floor, top) = (extreme_types(config, false, menu), extreme_types(config, true, menu));
    let (floor_size, top_size) = (gguf.predicted_size(&all_blocks, &floor)?, gguf.predicted_size(&all_blocks, &top)?);
    let (fixed, limit) = match budget {
        Budget::Size(n) => (floor_size.bytes - planned_cost(&floor), n),
        Budget::Bpw(b) => {
            (floor_size.tensor_bytes - planned_cost(&floor), (b * floor_size.n_weights as f64 / 8.0).floor() as u64)
        }
        _ => (floor_size.bytes - planned_cost(&floor), u64::MAX),
    };
    let describe = |p: &PredictedSize| format!("{} bytes, {:.3} bits per weight", p.bytes, p.bits_per_weight());
    if limit < fixed + planned_cost(&floor) {
        return Err(PlanError::Budget(format!(
            "budget {budget} is below the smallest possible plan ({}: every tensor at its cheapest type)",
            describe(&floor_size)
        )));
    }
    // kld<= has no byte limit; a size or bpw past u64 saturates to u64::MAX, above any plan.
    if matches!(budget, Budget::Size(_) | Budget::Bpw(_)) && limit > fixed + planned_cost(&top) {
        let top = if menu.is_some() { "every tensor at its dearest type of --types" } else { "every tensor Q8_0" };
        return Err(PlanError::Budget(format!(
            "budget {budget} is above the largest possible plan ({}: {top}); use triage compress --type Q8_0 or F16",
            describe(&top_size)
        )));
    }
    Ok((fixed, limit))
}

/// What a quantization plan is measured on: the probe with its search pool and hold-out
/// windows, and the database's windows (a sampled database's whole variants are made on them).
struct Measure<'a> {
    probe: &'a Probe,
    pool: &'a [usize],
    holdout: &'a [usize],
    database: &'a Windows,
}

#[allow(clippy::too_many_arguments)]
fn plan_quant(
    mut base: Weights,
    gguf: &Skeleton,
    db: &mut Database,
    m: &Measure,
    opts: &PlanOptions,
    fixed: u64,
    limit: u64,
    timings: &mut serde_json::Map<String, Json>,
    progress: &mut dyn Progress,
) -> Result<PlanOutcome> {
    let (probe, pool, holdout) = (m.probe, m.pool, m.holdout);
    let names: Vec<String> = db.tensors.keys().cloned().collect();
    let all_blocks: Vec<usize> = (0..base.n_blocks()).collect();
    let qtypes: Vec<Vec<QuantType>> =
        db.tensors.values().map(|tv| tv.variants.iter().map(|v| v.qtype).collect()).collect();
    let types_of = |levels: &[usize]| -> BTreeMap<String, QuantType> {
        names.iter().zip(levels).zip(&qtypes).map(|((n, &l), q)| (n.clone(), q[l])).collect()
    };
    let sampled = db.tensors.values().any(|tv| tv.variants.iter().any(|v| v.sample.is_some()));
    let cost = unit_cost(opts.budget);
    let budget = limit.saturating_sub(fixed);
    let t = Instant::now();
    let mut result_json = serde_json::Map::new();
    // The sensitivities' error curves (lagrange and evo) and the Lagrangian plan at the budget
    // with its KL (evo's warm start), kept for the frontier.
    let mut measured: Option<(Vec<Curve>, Option<(Vec<usize>, f64)>)> = None;
    let levels: Vec<usize> = match opts.solver {
        Solver::Uniform => uniform_levels(db, &names, &cost, budget).ok_or_else(|| {
            let gap = frontier::single_type_gap(db, &names)
                .map_or(String::new(), |g| format!(" (no single-type plan of {g})"));
            PlanError::Budget(format!("no single type fits budget {}{gap}", opts.budget))
        })?,
        _ => {
            let sens: Vec<usize> = pool.iter().copied().take(opts.sensitivity_windows.max(1)).collect();
            let method = opts.sensitivity;
            let cache = opts.cache_dir.as_ref().map(|d| d.join(sensitivity::cache_name(method, &db.key, sens.len())));
            if let (Some(d), Some(c)) = (&opts.cache_dir, cache.as_deref().filter(|c| !c.exists())) {
                shard::merge_sensitivities(&shard::folder(d, &db.key), c, db);
            }
            let (curves, dkl, cached) =
                sensitivity::load_or_measure(&base, db, probe, &sens, method, &cost, cache.as_deref(), progress)?;
            // A sampled database makes its whole variants from the original weights later.
            if let (Weights::Resident(m), false) = (&mut base, sampled) {
                search::drop_planned_weights(m, db);
                crate::memory::release_freed();
            }
            timings.insert("sensitivity_s".into(), json!(t.elapsed().as_secs_f64()));
            timings.insert("sensitivity_cached".into(), json!(cached));
            result_json.insert(
                "sensitivity".into(),
                Json::Object(names.iter().zip(&dkl).map(|(n, &k)| (n.clone(), json!(k))).collect()),
            );
            match opts.budget {
                Budget::Kld(target) => {
                    let levels = kld_bisection(&base, db, &curves, probe, holdout, target, progress)?;
                    measured = Some((curves, None));
                    levels
                }
                _ => {
                    let warm = lagrange::solve(&curves, budget).expect("the budget is above the floor");
                    if let (Solver::Evo, Weights::Resident(base)) = (opts.solver, &base) {
                        let space = QuantSpace::new(base, db, curves.clone(), budget);
                        // The warm start's KL on the hold-out windows, to show what the search added.
                        let warm_kld = probe.kl(&space.model(&warm)?, holdout, 0, &full_layout, None)?;
                        result_json.insert("lagrange_kld".into(), json!(warm_kld));
                        let start = QuantGenome { space: &space, levels: warm.clone() };
                        let t = Instant::now();
                        let (best, fit) = evolve(probe, pool, start, &opts.evo, opts.checkpoint.as_ref(), progress)?;
                        timings.insert("search_s".into(), json!(t.elapsed().as_secs_f64()));
                        result_json.insert("search_fitness".into(), json!(fit));
                        measured = Some((curves, Some((warm, warm_kld))));
                        best.levels
                    } else {
                        measured = Some((curves, None));
                        warm
                    }
                }
            }
        }
    };
    let types = types_of(&levels);
    let predicted = gguf.predicted_size(&all_blocks, &types)?;
    let measured = measured.filter(|_| opts.frontier > 0);
    let frontier_plans = measured.as_ref().map(|(curves, _)| {
        Frontier { base: &base, db, names: &names, curves, probe, holdout, gguf }.plans(opts.frontier, budget, &cost)
    });
    if sampled {
        // The plan's levels (and the frontier's) made whole: what is measured and written.
        let t = Instant::now();
        result_json.insert("estimates".into(), estimates_json(db, &names, &levels));
        let wanted: BTreeSet<(String, usize)> = std::iter::once(&levels)
            .chain(frontier_plans.iter().flatten().map(|(_, _, l)| l))
            .flat_map(|l| names.iter().cloned().zip(l.iter().copied()))
            .collect();
        database::materialize(&base, m.database, &opts.database, db, &wanted, progress)?;
        timings.insert("whole_s".into(), json!(t.elapsed().as_secs_f64()));
        if let Some(Json::Object(e)) = result_json.get_mut("estimates") {
            for (n, &l) in names.iter().zip(&levels) {
                e.get_mut(n).expect("every tensor")["whole"] = json!(db.tensors[n].variants[l].rel_error);
            }
        }
    }
    let db: &Database = db;
    let t = Instant::now();
    let kld = probe.kl(&Planned::of_levels(&base, db, &levels), holdout, 0, &full_layout, None)?;
    timings.insert("holdout_s".into(), json!(t.elapsed().as_secs_f64()));
    if let (Some((curves, warm)), Some(plans)) = (measured, frontier_plans) {
        let t = Instant::now();
        let f = Frontier { base: &base, db, names: &names, curves: &curves, probe, holdout, gguf };
        let mut points = f.measure(&plans, progress)?;
        if let Some((warm, warm_kld)) = warm {
            // Evo's warm start: the Lagrangian plan at the budget, already measured.
            let size = gguf.predicted_size(&all_blocks, &types_of(&warm))?;
            points.push(Point {
                solver: "lagrange",
                qtype: None,
                bytes: size.bytes,
                bits_per_weight: size.bits_per_weight(),
                kld: warm_kld,
            });
        }
        points.sort_by_key(|p| p.bytes);
        result_json.insert("frontier".into(), Json::Array(points.iter().map(Point::to_json).collect()));
        timings.insert("frontier_s".into(), json!(t.elapsed().as_secs_f64()));
    }
    let plan = Plan {
        tensors: types.into_iter().map(|(n, t)| (n, TensorSpec { qtype: t, sparsity: None })).collect(),
        ..Plan::default()
    };
    let mut json = plan.to_json();
    json.as_object_mut().expect("an object").extend(result_json);
    Ok(PlanOutcome { plan, predicted, kld: Some(kld), json, database: None })
}

/// The plan's level of every tensor as a sampled database estimated it: type, t̂ and its
/// standard error, rows sampled (the whole tensor's t is added once it is made).
fn estimates_json(db: &Database, names: &[String], levels: &[usize]) -> Json {
    Json::Object(
        names
            .iter()
            .zip(levels)
            .map(|(n, &l)| {
                let (tv, v) = (&db.tensors[n], &db.tensors[n].variants[l]);
                let (rows, stderr) = v.sample.map_or((tv.rows, 0.0), |s| (s.rows, s.stderr));
                (n.clone(), json!({"type": v.qtype.name(), "rel_error": v.rel_error, "stderr": stderr, "rows": rows, "of_rows": tv.rows}))
            })
            .collect(),
    )
}

/// The largest single type (llama-quantize's row-width fall-back; IQ4_NL standing in for Q4_0,
/// which costs the same, unless a `--types` menu holds Q4_0) whose plan fits.
fn uniform_levels(db: &Database, names: &[String], cost: &dyn Fn(u64) -> u64, budget: u64) -> Option<Vec<usize>> {
    single_type_plans(db, names)
        .into_iter()
        .map(|(_, levels)| {
            (names.iter().zip(&levels).map(|(n, &l)| cost(db.tensors[n].cost(l) as u64)).sum::<u64>(), levels)
        })
        .filter(|(c, _)| *c <= budget)
        .max_by_key(|(c, _)| *c)
        .map(|(_, l)| l)
}

/// The smallest lagrange plan whose KL on the hold-out windows is within `target`.
fn kld_bisection(
    base: &dyn Blocks,
    db: &Database,
    curves: &[Curve],
    probe: &Probe,
    holdout: &[usize],
    target: f64,
    progress: &mut dyn Progress,
) -> Result<Vec<usize>> {
    let kl = |levels: &[usize]| -> Result<f64> {
        Ok(probe.kl(&Planned::of_levels(base, db, levels), holdout, 0, &full_layout, None)?)
    };
    let lo_cost: u64 = curves.iter().map(Curve::min_cost).sum();
    let hi_cost: u64 = curves.iter().map(Curve::max_cost).sum();
    let top = lagrange::solve(curves, hi_cost).expect("feasible");
    let top_kl = kl(&top)?;
    if top_kl > target {
        return Err(PlanError::Budget(format!("no plan meets kld<={target}: even every tensor at its largest type gives KL {top_kl:.5} on the hold-out windows")));
    }
    let (mut lo, mut hi, mut best) = (lo_cost, hi_cost, top);
    const STEPS: usize = 10;
    progress.start("kld bisection", STEPS);
    for s in 0..STEPS {
        progress.step(s, None);
        let mid = lo + (hi - lo) / 2;
        let levels = lagrange::solve(curves, mid).expect("above the floor");
        if kl(&levels)? <= target {
            hi = mid;
            best = levels;
        } else {
            lo = mid;
        }
    }
    progress.step(STEPS, None);
    Ok(best)
}
