//! `triage plan`: choose a GGUF type per tensor (or the blocks to remove) under a global budget,
//! written as plan.json for `triage compress --plan`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::calib::token_weights::TokenWeights;
use crate::calib::Windows;
use crate::compress::gptq::GptqOptions;
use crate::ggml::types::{QuantType, QUANTIZED_TYPES};
use crate::model::{Streaming, Weights};
use crate::plan::database::{default_cache_dir, DatabaseSettings, Mode};
use crate::plan::evo::EvoSettings;
use crate::plan::sensitivity::Method as Sensitivity;
use crate::plan::shard::Shard;
use crate::plan::{plan, Budget, PlanOptions, PlanOutcome, Solver};

use super::guard::{Files, Input};
use super::memory::{check_fits_whole, memory_bytes};
use super::{progress, values};

/// How a budget is searched: shared by `triage plan` and `triage compress --budget`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Solver: uniform, lagrange, evo (bpw= and size= budgets; default lagrange); lagrange
    /// (kld<=); uniform, owl, evo (sparsity=; default evo); shortgpt, evo (drop-blocks= and
    /// drop-sublayers=; default evo).
    #[arg(long, value_enum)]
    pub solver: Option<Solver>,
    /// EvoPress generations (each: --offspring children on one window, the best 2 and the
    /// parent on 2 more windows; about 10 s a generation for SmolLM2-135M on 2 cores).
    #[arg(long, default_value_t = 30, value_parser = values::count)]
    pub generations: usize,
    /// EvoPress offspring per generation.
    #[arg(long, default_value_t = 6, value_parser = values::positive)]
    pub offspring: usize,
    /// Seed of the search (the same seed, model, text and settings give the same plan).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Calibration windows after the database's that the search draws minibatches from.
    #[arg(long, default_value_t = 8, value_parser = values::positive)]
    pub search_windows: usize,
    /// Calibration windows after those on which the final plan's KL is measured (and kld<= judged).
    #[arg(long, default_value_t = 4, value_parser = values::positive)]
    pub holdout_windows: usize,
    /// Windows on which each tensor's sensitivity is measured (lagrange, evo's warm start).
    #[arg(long, default_value_t = 1, value_parser = values::positive)]
    pub sensitivity_windows: usize,
    /// How each tensor's sensitivity (its ΔKL at its worst level) is measured: gain (one
    /// pass over the model: each block's gain measured end to end on one tensor, the others'
    /// from how much they change the block's output; on SmolLM2-135M about 5 times faster than
    /// probe, its plans as good) or probe (one run through the rest of the model per tensor).
    #[arg(long, value_enum, default_value_t = Sensitivity::Gain)]
    pub sensitivity: Sensitivity,
    /// Sizes the plan is compared at (quantization budgets with lagrange or evo): the N
    /// single-type plans nearest the budget, and the Lagrangian plan of each one's size, every
    /// plan's KL measured on the hold-out windows (about one hold-out measurement each); shown in
    /// plan.json's "frontier" and the report's size–KL plot. 0: none.
    #[arg(long, default_value_t = 4, value_parser = values::count)]
    pub frontier: usize,
    /// The types a quantization budget may give a tensor, comma-separated (default: every
    /// quantized type but Q4_0, from IQ2_XS to Q8_0, each where the tensor's rows fit it). A
    /// shorter menu builds a smaller layer database, and a faster one without the i-quants
    /// (IQ2_* to IQ4_*), whose searches take most of its time; e.g. the k-quants and Q8_0, as
    /// llama.cpp's mixes use: --types Q2_K,Q3_K,Q4_K,Q5_K,Q6_K,Q8_0 (every tensor must fit one).
    #[arg(long, value_delimiter = ',', value_parser = parse_level)]
    pub types: Option<Vec<QuantType>>,
    /// How the layer database measures each level: exact (every tensor whole at every level),
    /// sampled (every level GPTQ'd on --sample-rows rows of each tensor, its error estimated
    /// from them with a standard error; the whole tensor made only at the levels the plan
    /// chooses, when its KL is measured and its file written), or auto: sampled for a large
    /// model (over about a billion parameters, streamed or not) under bpw= or size= with lagrange or uniform,
    /// exact otherwise. kld<= and evo measure many plans and need exact.
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    pub database: Mode,
    /// Rows of each tensor a sampled database quantizes at every level.
    #[arg(long, default_value_t = crate::plan::sample::DEFAULT_ROWS, value_parser = values::positive)]
    pub sample_rows: usize,
    /// Folder caching layer databases (default: $TRIAGE_CACHE, $XDG_CACHE_HOME/triage or ~/.cache/triage).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Neither read nor write the layer-database cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Continue an interrupted EvoPress search from the state it saved after its last
    /// generation (in the cache folder, keyed by model, text, budget and settings): the same plan
    /// as a run never stopped. --generations may be raised to search on. The layer database and
    /// the sensitivities resume by themselves, block by block and tensor by tensor.
    #[arg(long)]
    pub resume: bool,
}

/// Plan under a budget: a GGUF type per tensor, a share pruned per linear, or the blocks to
/// remove, as plan.json
///
/// Budgets: bpw=B (bits per weight over every tensor, as the file's tensors count them),
/// size=N (the whole GGUF file; B, KB, MB, GB, KiB, MiB, GiB), sparsity=S (as many of the
/// blocks' weights pruned as a share S of every linear; 0.6 or 60%), drop-blocks=K,
/// drop-sublayers=K (attention or MLP sublayers), kld<=T (the smallest plan whose KL on hold-out
/// calibration windows is within T).
///
/// Quantization budgets first build the layer database — every tensor at every GGUF type its
/// rows allow (or only those of --types), by GPTQ on the calibration text's first --tokens tokens (cached on disk by model,
/// text and settings, so the next budget costs only the solver). Then: lagrange, the default
/// (each tensor's sensitivity measured once, errors a·t², bisection on λ, leftover bytes spent
/// greedily — the budget is met within one step), uniform (one type), or evo (EvoPress,
/// warm-started from lagrange: minutes more, and on the models measured no better).
///
/// Sparsity budgets: uniform (S everywhere), owl (OWL: blocks with more outlier weights pruned
/// less, λ = 0.08, M = 5) or evo, the default (EvoPress over a database of every linear pruned
/// by SparseGPT at 0, 10, …, 90%, started from uniform). Pruned linears are written in F16; compress prunes them
/// with --pruner (SparseGPT by default), layer by layer.
///
/// plan.json holds the type of every tensor (or the removed blocks), the predicted file size and
/// bits per weight, the solver and its settings, the KL on hold-out windows, and timings.
///
/// Example: triage plan --model assets/SmolLM2-135M-Instruct.Q4_1.gguf --calib assets/calib.txt
/// --budget size=93510464 --out plan.json
///
/// Example (an 8B model, k-quant levels only: a database several times faster to build):
/// triage plan --model DIR --calib assets/calib.txt --budget bpw=4.5 --types
/// Q2_K,Q3_K,Q4_K,Q5_K,Q6_K,Q8_0 --out plan.json
///
/// Example (60% of the weights pruned, EvoPress): triage compress --model M.gguf --calib
/// assets/calib.txt --budget sparsity=0.6 --out sparse.gguf
///
/// Example (ShortGPT's choice of 8 blocks to remove): triage plan --model M.gguf --calib
/// assets/calib.txt --budget drop-blocks=8 --solver shortgpt --out drop.json
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The model: a GGUF file or a Hugging Face folder (sizes are those of the GGUF that
    /// `triage compress` writes from it).
    #[arg(long)]
    pub model: PathBuf,
    /// Calibration text (UTF-8), never the text you evaluate on.
    #[arg(long)]
    pub calib: PathBuf,
    /// The budget: bpw=B, size=N, sparsity=S, drop-blocks=K, drop-sublayers=K or kld<=T.
    #[arg(long, value_parser = values::budget)]
    pub budget: Budget,
    /// Where to write plan.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Calibration tokens for the layer database (the text's first windows).
    #[arg(long, default_value_t = 16384, value_parser = values::positive)]
    pub tokens: usize,
    /// Window length in tokens.
    #[arg(long, default_value_t = 512, value_parser = values::ctx)]
    pub ctx: usize,
    /// GPTQ dampening for the database, a share of the mean diagonal of H.
    #[arg(long, default_value_t = 0.01, value_parser = values::damp)]
    pub damp: f32,
    /// Turn off GPTQ's act-order in the database.
    #[arg(long)]
    pub no_act_order: bool,
    /// How the calibration tokens weigh in the database's statistics (as compress's
    /// --token-weights: equal, attention, attention-mild, actnorm).
    #[arg(long, value_enum, default_value_t = TokenWeights::Equal)]
    pub token_weights: TokenWeights,
    #[command(flatten)]
    pub rotation: super::rotate::RotationArgs,
    /// Stream the weights from the model's files, one block decoded at a time, instead of
    /// loading the whole model in f32: the layer database, the sensitivities and every plan's KL
    /// are then made block by block (memory: about one block in f32 and its statistics). For
    /// quantization budgets with the lagrange or uniform solver; EvoPress, sparsity and depth
    /// budgets need the model in memory. Auto streams models of more than about a billion
    /// parameters where it can. The plan is the same either way.
    #[arg(long, value_enum, default_value_t = Streaming::Auto)]
    pub stream: Streaming,
    /// Share the layer database and the sensitivities out over processes or machines that see
    /// the same --cache folder: `prepare` (once, first) saves the calibration states entering
    /// every block; `I/N` (0 ≤ I < N; each index once, in any order, anywhere) builds index
    /// I's run of blocks and their sensitivities; `auto/N` takes I from SLURM_ARRAY_TASK_ID or
    /// JOB_COMPLETION_INDEX (a Slurm job array, a Kubernetes Indexed Job). Every run takes the
    /// same arguments; the run without --shard, after them, merges, solves and writes --out
    /// (the plan of a single process, byte for byte), or names the shards not done.
    #[arg(long, value_parser = parse_shard)]
    pub shard: Option<Shard>,
    #[command(flatten)]
    pub search: SearchArgs,
}

fn parse_shard(s: &str) -> std::result::Result<Shard, String> {
    Shard::parse(s, |v| std::env::var(v).ok())
}

/// A quantized type named in --types.
fn parse_level(s: &str) -> std::result::Result<QuantType, String> {
    let t = QuantType::parse(s)?;
    if !QUANTIZED_TYPES.contains(&t) {
        let known: Vec<&str> = QUANTIZED_TYPES.iter().map(|t| t.name()).collect();
        return Err(format!("{} is not a quantized type; the levels are {}", t.name(), known.join(", ")));
    }
    Ok(t)
}

/// Opens the model for a budget's planner: streamed where `stream` allows it and the budget
/// and solver can be planned streamed, else whole — refused in one line, before loading, when
/// its f32 weights exceed `limit` bytes (`limit_is`: where that limit comes from).
pub(crate) fn open_for_planning(
    path: &Path,
    budget: Budget,
    solver: Option<Solver>,
    stream: Streaming,
    limit: u64,
    limit_is: &str,
) -> Result<Weights> {
    let solver = solver.unwrap_or(Solver::default_for(budget));
    let streamable = crate::plan::plans_by_measurement(budget, solver);
    let name = format!("{solver:?}").to_lowercase();
    match stream {
        Streaming::On if !streamable => bail!("budget {budget} with solver {name} needs the model in memory; --stream on plans quantization budgets (bpw=, size=, kld<=) with the lagrange or uniform solver"),
        Streaming::On | Streaming::Auto if streamable => Ok(Weights::open(path, stream)?),
        _ => {
            check_fits_whole(path, limit, limit_is, &format!("planning budget {budget} with solver {name}"))?;
            Ok(Weights::open(path, Streaming::Off)?)
        }
    }
}

/// Checks the arguments, runs the planner with progress bars, and returns the outcome.
#[allow(clippy::too_many_arguments)]
pub fn run_planner(
    model: Weights,
    model_path: &Path,
    calib: &crate::calib::Text,
    budget: Budget,
    tokens: usize,
    ctx: usize,
    gptq: GptqOptions,
    s: &SearchArgs,
) -> Result<PlanOutcome> {
    let (windows, opts) = options(&model, calib, budget, tokens, ctx, gptq, s)?;
    let mut pb = progress::staged("plan");
    let outcome = plan(model, model_path, &windows, &opts, &mut pb)?;
    pb.finish_and_clear();
    Ok(outcome)
}

/// The calibration windows and the planner's options the arguments ask for, checked.
#[allow(clippy::too_many_arguments)]
fn options(
    model: &Weights,
    calib: &crate::calib::Text,
    budget: Budget,
    tokens: usize,
    ctx: usize,
    gptq: GptqOptions,
    s: &SearchArgs,
) -> Result<(Windows, PlanOptions)> {
    crate::eval::check_ctx(model, ctx)?;
    // The most windows a plan reads: the database's, then the search's and the hold-out's.
    let need = (tokens / ctx).max(1) + s.search_windows + s.holdout_windows;
    let windows = Windows::from_text(calib, model.tokenizer()?, ctx, Some(need)).with_context(|| "--calib")?;
    let cache_dir = if s.no_cache { None } else { s.cache.clone().or_else(default_cache_dir) };
    let solver = s.solver.unwrap_or(Solver::default_for(budget));
    let samples =
        matches!(budget, Budget::Bpw(_) | Budget::Size(_)) && matches!(solver, Solver::Lagrange | Solver::Uniform);
    let sample = match s.database {
        Mode::Exact => None,
        Mode::Auto => (samples && crate::model::stream::is_large(crate::model::Blocks::config(model))).then_some(s.sample_rows),
        Mode::Sampled if samples => Some(s.sample_rows),
        Mode::Sampled => bail!(
            "--database sampled serves bpw= and size= budgets with the lagrange or uniform solver; budget {budget} with solver {} measures many plans whole: use --database exact",
            format!("{solver:?}").to_lowercase()
        ),
    };
    let opts = PlanOptions {
        budget,
        solver,
        // One menu, one cache key, whatever the order it was written in.
        database: DatabaseSettings {
            tokens,
            ctx,
            gptq,
            types: s.types.clone().map(|mut t| {
                t.sort();
                t.dedup();
                t
            }),
            sample,
        },
        cache_dir,
        evo: EvoSettings { generations: s.generations, offspring: s.offspring, seed: s.seed, ..EvoSettings::default() },
        search_windows: s.search_windows,
        holdout_windows: s.holdout_windows,
        sensitivity_windows: s.sensitivity_windows,
        sensitivity: s.sensitivity,
        frontier: s.frontier,
        resume: s.resume,
        checkpoint: None,
    };
    Ok((windows, opts))
}

pub fn write_plan_json(path: &Path, o: &PlanOutcome) -> Result<()> {
    crate::temp::write_atomic(path, |w| {
        std::io::Write::write_all(w, serde_json::to_string_pretty(&o.json)?.as_bytes()).map_err(anyhow::Error::from)
    })
    .with_context(|| format!("writing {}", path.display()))
}

/// One line: the predicted size, the KL measured, and how many tensors take each type (fewest
/// bits first).
pub fn summary(o: &PlanOutcome) -> String {
    let kl = o.kld.map(|k| format!(", KL {k:.5} on hold-out calibration windows")).unwrap_or_default();
    let mut per_type: Vec<(crate::ggml::types::QuantType, usize)> = Vec::new();
    for spec in o.plan.tensors.values() {
        match per_type.iter_mut().find(|(t, _)| *t == spec.qtype) {
            Some((_, n)) => *n += 1,
            None => per_type.push((spec.qtype, 1)),
        }
    }
    per_type.sort_by(|a, b| a.0.bits_per_weight().total_cmp(&b.0.bits_per_weight()).then(a.0.name().cmp(b.0.name())));
    let types = per_type.iter().map(|(t, n)| format!("{n} {}", t.name())).collect::<Vec<_>>().join(", ");
    let types = if types.is_empty() { types } else { format!("; tensors: {types}") };
    format!("{} bytes predicted, {:.3} bits per weight{kl}{types}", o.predicted.bytes, o.predicted.bits_per_weight())
}

pub fn run(args: PlanArgs) -> Result<()> {
    if args.tokens < args.ctx {
        bail!("--tokens {} is less than one window of --ctx {}", args.tokens, args.ctx);
    }
    let files = Files::new().input("--model", &args.model, Input::Model).input("--calib", &args.calib, Input::Once);
    // A shard writes no plan: its --out (the merge's) need not be writable where it runs.
    let files = if args.shard.is_some() { files } else { files.output("--out", &args.out) };
    files.check()?;
    let calib = crate::calib::read_text(&args.calib).with_context(|| "--calib")?;
    // --rotate: the plan is made on a rotated copy, as `compress --rotate` compresses one.
    if args.rotation.rotate && args.shard.is_some() {
        bail!("--rotate with --shard: rotate the model once (`triage rotate --model M --out R.gguf`) and plan R.gguf in shards");
    }
    let mut args = args;
    let _rotated = args.rotation.rotate_source(&mut args.model, args.stream, &args.out)?;
    let model = open_for_planning(
        &args.model,
        args.budget,
        args.search.solver,
        args.stream,
        memory_bytes(None),
        "the machine's memory",
    )?;
    let gptq = GptqOptions {
        damp: args.damp,
        act_order: !args.no_act_order,
        token_weights: args.token_weights,
        ..GptqOptions::default()
    };
    if let Some(shard) = args.shard {
        let (windows, opts) = options(&model, &calib, args.budget, args.tokens, args.ctx, gptq, &args.search)?;
        let mut pb = progress::staged("plan shard");
        let line = crate::plan::shard::run(model, &args.model, &windows, &opts, shard, &mut pb)?;
        pb.finish_and_clear();
        println!("{line}");
        return Ok(());
    }
    let hidden = crate::model::Blocks::config(&model).hidden_size;
    let mut o = run_planner(model, &args.model, &calib, args.budget, args.tokens, args.ctx, gptq, &args.search)?;
    args.rotation.record(&mut o.json, hidden);
    write_plan_json(&args.out, &o)?;
    println!("wrote {}: {}", args.out.display(), summary(&o));
    Ok(())
}
