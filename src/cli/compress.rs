//! `triage compress`: quantize, prune and remove depth under a uniform setting or a plan, and
//! write a GGUF file (llama.cpp) or a Hugging Face folder (transformers).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::calib::imatrix::Imatrix;
use crate::calib::runner::StateLimits;
use crate::calib::token_weights::TokenWeights;
use crate::calib::{Text, Windows};
use crate::compress::compressed::Compressed;
use crate::compress::gptq::{GptqOptions, Sparsity};
use crate::compress::pipeline::{compress, CompressOptions, Method, Pruner};
use crate::compress::plan::Plan;
use crate::eval::EvalReport;
use crate::export::hf::{FolderWeights, HfOptions};
use crate::ggml::types::QuantType;
use crate::model::{Blocks, Streamed, Streaming, Weights};
use crate::plan::{Budget, PlanOutcome};

use super::guard::{Files, Input};
use super::memory::{check_fits_whole, limit_is, memory_bytes};
use super::values::{self, Embeddings};
use super::{plan as planning, progress};

/// Compress a model: GGUF quantization (RTN, imatrix-weighted, GPTQ), pruning (magnitude,
/// Wanda, SparseGPT; unstructured or N:M), block and sublayer removal
///
/// Layer-sequential: block i is compressed on the outputs of the already compressed blocks
/// before it (the calibration text runs through the model once, block by block). A uniform
/// --type applies to every linear and to the token embedding and output, exactly as
/// `llama-quantize --pure` does, including its fall-back for rows that do not fit a 256-wide
/// block: Q2_K, Q3_K → Q4_0; IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ4_XS → IQ4_NL; Q4_K → Q5_0; Q5_K →
/// Q5_1; Q6_K → Q8_0 (SmolLM2's 576-wide matrices). --plan gives a type and sparsity per tensor instead.
///
/// Output: a path ending in .gguf is a GGUF file for llama.cpp. From a GGUF source its tokenizer
/// and metadata are copied and unchanged tensors keep their bytes; from a Hugging Face folder
/// the metadata, tokenizer and tensor layout are those llama.cpp's convert_hf_to_gguf.py writes,
/// unchanged matrices in F16 (--type F16 gives the converter's --outtype f16 file, tensor for
/// tensor). Anything else is a Hugging Face folder (model.safetensors in f16 or bf16, sharded
/// past --hf-shard-size; config.json, generation_config.json, tokenizer.json,
/// tokenizer_config.json with the chat template).
///
/// Example (a Hugging Face folder in bf16 to a 4 GB file for llama.cpp): triage compress
/// --model Llama-3.2-1B-Instruct/ --calib assets/calib.txt --budget size=4GB --out m.gguf
///
/// Example (uniform Q4_K with GPTQ): triage compress --model assets/SmolLM2-135M-Instruct.Q4_1.gguf
/// --calib assets/calib.txt --type Q4_K --out q4k.gguf
///
/// Example (2:4 sparsity with SparseGPT): triage compress --model M.gguf --calib assets/calib.txt
/// --sparsity 2:4 --out sparse.gguf
///
/// Example (two blocks removed, the rest Q8_0): triage compress --model M.gguf --calib
/// assets/calib.txt --drop-blocks 20,22 --type Q8_0 --out short.gguf
#[derive(Debug, Args)]
pub struct CompressArgs {
    /// The model: a .gguf file or a Hugging Face folder.
    #[arg(long)]
    pub model: PathBuf,
    /// Calibration text (UTF-8), never the text you evaluate on.
    #[arg(long)]
    pub calib: PathBuf,
    /// Output: FILE.gguf, or a folder for Hugging Face safetensors.
    #[arg(long)]
    pub out: PathBuf,
    /// GGUF type for every linear, the embedding and the output (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
    /// Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, IQ4_XS, IQ3_S, IQ3_XXS, IQ2_S, IQ2_XS, F16, …).
    /// IQ4_XS, IQ3_S, IQ3_XXS, IQ2_S and IQ2_XS need rows of a multiple of 256 and fall back to
    /// IQ4_NL elsewhere, as in llama-quantize.
    #[arg(long = "type", value_name = "TYPE", value_parser = values::qtype)]
    pub qtype: Option<QuantType>,
    /// Type for the token embedding (and output) instead of --type (like llama-quantize's
    /// --token-embedding-type); "keep" leaves their source bytes unchanged.
    #[arg(long, value_name = "TYPE", value_parser = values::embeddings)]
    pub embeddings_type: Option<Embeddings>,
    /// How weights are rounded onto their grid.
    #[arg(long, value_enum, default_value_t = Method::Gptq)]
    pub method: Method,
    /// Sparsity of every linear: a share in [0, 1) (unstructured) or N:M (e.g. 2:4, 4:8).
    #[arg(long, value_parser = values::sparsity)]
    pub sparsity: Option<Sparsity>,
    /// How pruned weights are chosen.
    #[arg(long, value_enum, default_value_t = Pruner::Sparsegpt)]
    pub pruner: Pruner,
    /// Blocks to remove (comma-separated indices, from 0).
    #[arg(long, value_delimiter = ',')]
    pub drop_blocks: Vec<usize>,
    /// Blocks whose attention sublayer is removed.
    #[arg(long, value_delimiter = ',')]
    pub drop_attention: Vec<usize>,
    /// Blocks whose MLP sublayer is removed.
    #[arg(long, value_delimiter = ',')]
    pub drop_mlp: Vec<usize>,
    /// A plan (JSON: a type and sparsity per tensor, blocks and sublayers to remove), as
    /// `triage plan` writes; replaces --type/--sparsity/--drop-*.
    #[arg(long, conflicts_with_all = ["qtype", "sparsity", "drop_blocks", "drop_attention", "drop_mlp"])]
    pub plan: Option<PathBuf>,
    /// Plan under a budget first (as `triage plan` does), then apply the plan: bpw=B, size=N
    /// (bytes of the GGUF; MB, MiB…), sparsity=S, drop-blocks=K or kld<=T. The plan is written
    /// beside the output as OUT.plan.json. A quantization budget's file holds exactly the
    /// variants its search scored, taken from the layer database (GPTQ on the original model's
    /// inputs, the first --tokens of --calib), unless --requantize.
    #[arg(long, value_parser = values::budget, conflicts_with_all = ["qtype", "sparsity", "drop_blocks", "drop_attention", "drop_mlp", "plan"])]
    pub budget: Option<Budget>,
    /// With a quantization --budget: compress by the plan layer-sequentially (GPTQ on the
    /// compressed blocks' outputs, as --plan does; --method and --imatrix apply) instead of
    /// writing the layer database's variants: one more GPTQ pass, and a file that differs from
    /// the one the search scored. Other budgets always compress by the plan.
    #[arg(long, requires = "budget")]
    pub requantize: bool,
    /// Also measure the compressed model against the original on this text (perplexity, KL,
    /// top-1; every position of --eval-windows windows of --ctx), printed as JSON and, with
    /// --budget, shown in the report.
    #[arg(long)]
    pub eval_text: Option<PathBuf>,
    /// Windows of --eval-text to score.
    #[arg(long, default_value_t = 40, value_parser = values::positive)]
    pub eval_windows: usize,
    #[command(flatten)]
    pub search: super::plan::SearchArgs,
    /// Calibration tokens (a multiple of --ctx; the text's first windows).
    #[arg(long, default_value_t = 16384, value_parser = values::positive)]
    pub tokens: usize,
    /// Window length in tokens.
    #[arg(long, default_value_t = 512, value_parser = values::ctx)]
    pub ctx: usize,
    /// Windows per forward pass.
    #[arg(long, default_value_t = 4, value_parser = values::positive)]
    pub batch: usize,
    /// Compress every block on the original model's inputs instead of the compressed ones.
    #[arg(long)]
    pub no_sequential: bool,
    /// GPTQ/SparseGPT dampening, a share of the mean diagonal of H.
    #[arg(long, default_value_t = 0.01, value_parser = values::damp)]
    pub damp: f32,
    /// Turn off GPTQ's act-order (on by default: columns are quantized by decreasing input
    /// energy, every group's grid chosen up front from the original weights — static groups;
    /// on SmolLM2 it lowers the mean KL of uniform Q4_K by 13% and of Q3_K by 12%).
    #[arg(long)]
    pub no_act_order: bool,
    /// How the calibration tokens weigh in the statistics H = Σ r_t x_t x_tᵀ that GPTQ and the
    /// imatrix-weighted grids read (RSQ): equal, attention (the attention each token receives in
    /// its block, summed over heads and queries, scaled per window into [0.005, 1] as RSQ's
    /// released runs do), attention-mild (the same into [1, 3]) or actnorm (the norm of the
    /// token's residual stream, into [1, 3]). Recorded in plan.json and the GGUF's metadata.
    #[arg(long, value_enum, default_value_t = TokenWeights::Equal)]
    pub token_weights: TokenWeights,
    #[command(flatten)]
    pub rotation: super::rotate::RotationArgs,
    /// An imatrix file (llama.cpp GGUF or .dat) whose column importances weight the grids instead
    /// of those measured on --calib.
    #[arg(long)]
    pub imatrix: Option<PathBuf>,
    /// Memory the calibration states between blocks may take: kept in f32 up to a quarter of
    /// it, in f16 up to half (a rounding of 2^-11 relative; each batch is widened to f32 when
    /// it runs), past that in f16 in a temporary file (B, KB, MB, GB, KiB, MiB, GiB; default:
    /// the machine's memory). What loads the whole model in f32 (--stream off, or a --budget
    /// that needs the model in memory) refuses a model larger than it, before loading anything.
    #[arg(long, value_name = "SIZE", value_parser = values::bytes)]
    pub memory_limit: Option<u64>,
    /// Hugging Face output: the weights' type, f16 or bf16.
    #[arg(long, value_enum, default_value_t = HfDtype::F16)]
    pub hf_dtype: HfDtype,
    /// Hugging Face output: the most bytes of weights in one safetensors file; larger models
    /// are sharded with an index, as transformers' max_shard_size (B, KB, MB, GB, KiB, MiB, GiB).
    #[arg(long, default_value = "5GB", value_parser = values::bytes)]
    pub hf_shard_size: u64,
    /// Also write what was done to every tensor (type, zeros, relative output error) as JSON.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Stream the weights from the model's files, one block decoded at a time, the encoded
    /// tensors kept in a temporary file until the GGUF or the Hugging Face folder is written
    /// (memory: about one block in f32 and its statistics), instead of loading the whole model
    /// in f32. Auto streams models of more than about a billion parameters. The output is the
    /// same either way (a Hugging Face folder's compressed tensors are then the GGUF bytes'
    /// values). A quantization --budget with the lagrange or uniform solver is planned
    /// streamed too (the layer database, the sensitivities and every plan's KL block by block);
    /// EvoPress, sparsity and depth budgets need the model in memory. A budget's file is always
    /// written from the source streamed.
    #[arg(long, value_enum, default_value_t = Streaming::Auto)]
    pub stream: Streaming,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HfDtype {
    F16,
    Bf16,
}

/// Where the compressed model goes: a GGUF file, or a Hugging Face folder in these options.
enum Output {
    Gguf,
    Folder(HfOptions),
}

pub fn run(mut args: CompressArgs) -> Result<()> {
    let output = check_args(&args)?;
    // Every file this run reads or writes, checked before any work.
    let budget_files =
        args.budget.map(|_| (args.out.with_extension("plan.json"), args.out.with_extension("report.html")));
    Files::new()
        .input("--model", &args.model, Input::Model)
        .input("--calib", &args.calib, Input::Once)
        .input_opt("--plan", args.plan.as_deref(), Input::Once)
        .input_opt("--imatrix", args.imatrix.as_deref(), Input::File)
        .input_opt("--eval-text", args.eval_text.as_deref(), Input::Once)
        .output("--out", &args.out)
        .output_opt("--out (its plan)", budget_files.as_ref().map(|f| f.0.as_path()))
        .output_opt("--out (its report)", budget_files.as_ref().map(|f| f.1.as_path()))
        .output_opt("--report", args.report.as_deref())
        .check()?;
    // --rotate: from here on the model is its rotated copy; the evaluation still compares the
    // written file with the original.
    let original = args.model.clone();
    let _rotated = args.rotation.rotate_source(&mut args.model, args.stream, &args.out)?;
    let imatrix = args.imatrix.as_deref().map(Imatrix::read).transpose()?;
    // Read once: a piped text cannot be read again (the planner's cache key is its sha256).
    let calib = crate::calib::read_text(&args.calib).with_context(|| "--calib")?;
    let limit = memory_bytes(args.memory_limit);
    let model = match args.budget {
        Some(budget) => planning::open_for_planning(
            &args.model,
            budget,
            args.search.solver,
            args.stream,
            limit,
            limit_is(args.memory_limit),
        )?,
        None => {
            if args.stream == Streaming::Off {
                check_fits_whole(&args.model, limit, limit_is(args.memory_limit), "--stream off")?;
            }
            Weights::open(&args.model, args.stream)?
        }
    };
    let streaming = if model.is_streamed() { Streaming::On } else { Streaming::Off };
    crate::eval::check_ctx(&model, args.ctx)?;
    if let (Some(m), Some(p)) = (&imatrix, &args.imatrix) {
        m.check_against(p, model.config())?;
    }
    // The evaluation text is read and cut now: a text too short or not UTF-8 fails before the
    // compression, not after it.
    let eval_windows = match &args.eval_text {
        Some(text) => Some(
            Windows::from_file(text, model.tokenizer()?, args.ctx, Some(args.eval_windows))
                .with_context(|| format!("--eval-text {}", text.display()))?,
        ),
        None => None,
    };
    check_output_of(&args, &model, &output)?;
    let gptq = GptqOptions {
        damp: args.damp,
        act_order: !args.no_act_order,
        token_weights: args.token_weights,
        ..GptqOptions::default()
    };
    let (model, plan, mut planned) = make_plan(&args, model, &calib, gptq)?;
    if plan.tensors.is_empty()
        && plan.drop_blocks.is_empty()
        && plan.drop_attention.is_empty()
        && plan.drop_mlp.is_empty()
    {
        bail!("nothing to do: give --type, --sparsity, --drop-blocks/--drop-attention/--drop-mlp or --plan");
    }
    let windows = Windows::from_text(&calib, model.tokenizer()?, args.ctx, Some(args.tokens / args.ctx))
        .with_context(|| format!("--calib {}", args.calib.display()))?;
    let opts = CompressOptions {
        method: args.method,
        pruner: args.pruner,
        sequential: !args.no_sequential,
        gptq,
        batch: args.batch,
        imatrix,
        state_limits: StateLimits::for_memory(limit),
    };
    let n = model.n_blocks();
    let mut pb = progress::bar(n, "compress");
    let t0 = std::time::Instant::now();
    // A budget's file is made of the variants its search scored, read from the layer database.
    let mut compressed = match (planned.as_mut().and_then(|o| o.database.take()).filter(|_| !args.requantize), &model) {
        (Some(db), Weights::Streamed(source)) => db.compressed(source, &plan, gptq.token_weights)?,
        _ => compress(model, &windows, &plan, &opts, &mut pb)?,
    };
    pb.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    write_output(&args, &output, &compressed, planned.as_ref(), windows.len() * windows.ctx, secs)?;
    if matches!(output, Output::Gguf) {
        // The GGUF just written is what is judged, read back from the file block by block
        // beside the original, also streamed: neither model is held whole.
        compressed.model = None;
    }
    let quality = match &eval_windows {
        Some(w) => Some(evaluate(&args, &original, &compressed, streaming, w)?),
        None => None,
    };
    if let Some(o) = &planned {
        write_allocation_report(&args, o, n, quality.as_ref())?;
    }
    let sparsity = compressed.sparsity();
    if let Some(sp) = &sparsity {
        println!(
            "sparsity: {:.1}% requested, {:.2}% measured in the written weights over {} linears",
            100.0 * sp.requested,
            100.0 * sp.measured,
            sp.linears
        );
        if sp.short > 0 {
            eprintln!(
                "warning: {} of {} pruned linears hold fewer zeros than requested: {} {} no 0 level, so a pruned weight is written as the grid's value nearest 0 (see the report's per-tensor zeros)",
                sp.short,
                sp.linears,
                sp.short_types.join(", "),
                if sp.short_types.len() == 1 { "has" } else { "have" }
            );
        }
    }
    if let Some(p) = &args.report {
        let j = serde_json::json!({ "plan": plan.to_json(), "tensors": compressed.report, "sparsity": sparsity, "seconds": secs });
        crate::temp::write_atomic(p, |w| {
            std::io::Write::write_all(w, serde_json::to_string_pretty(&j)?.as_bytes()).map_err(anyhow::Error::from)
        })?;
    }
    Ok(())
}

/// The checks that need no file: the output's kind, and the flags that go together.
fn check_args(args: &CompressArgs) -> Result<Output> {
    if args.tokens < args.ctx {
        bail!("--tokens {} is less than one window of --ctx {}", args.tokens, args.ctx);
    }
    let to_gguf = args.out.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
    if !to_gguf && args.out.is_dir() && std::fs::read_dir(&args.out).map(|mut d| d.next().is_some()).unwrap_or(false) {
        bail!("output folder {} exists and is not empty", args.out.display());
    }
    if !to_gguf && args.out.exists() && !args.out.is_dir() {
        bail!(
            "--out {} is a file; Hugging Face output is a folder (or give an --out ending in .gguf)",
            args.out.display()
        );
    }
    if to_gguf && args.out.is_dir() {
        bail!("--out {} is a folder; GGUF output is a file", args.out.display());
    }
    if args.requantize && args.budget.is_none() {
        // clap drops `requires` when a flag that conflicts with --budget (--type, --plan…) is given.
        bail!("--requantize applies to a --budget's plan; --type, --sparsity, --drop-* and --plan always compress layer-sequentially");
    }
    if let Some(budget) = args.budget.filter(|b| b.is_quantization() && !args.requantize) {
        if args.method != Method::Gptq {
            bail!(
                "--budget {budget} writes the layer database's GPTQ variants: --method {} needs --requantize",
                format!("{:?}", args.method).to_lowercase()
            );
        }
        if args.imatrix.is_some() {
            bail!("--budget {budget} writes the layer database's GPTQ variants, made on --calib: --imatrix needs --requantize");
        }
    }
    Ok(if to_gguf {
        Output::Gguf
    } else {
        let dtype = match args.hf_dtype {
            HfDtype::F16 => candle_core::DType::F16,
            HfDtype::Bf16 => candle_core::DType::BF16,
        };
        Output::Folder(HfOptions { dtype, shard_bytes: args.hf_shard_size.max(1) })
    })
}

/// What the output can hold of this model, checked before compressing.
fn check_output_of(args: &CompressArgs, model: &Weights, output: &Output) -> Result<()> {
    let config = model.config();
    match output {
        Output::Gguf => {
            crate::layout::check_source(&args.model)?;
            if let Some(w) = config.sliding_window.filter(|_| config.arch.facts().swa_pattern == 0) {
                eprintln!("warning: the model attends within a sliding window of {w} tokens; llama.cpp (as its converter writes the model) attends to the whole context, so the file differs from the folder past {w} tokens");
            }
        }
        Output::Folder(_) => {
            if config.rope_freq_factors.is_some()
                && config.rope_long_factors.is_none()
                && model.source().format == crate::model::Format::Gguf
            {
                bail!("this GGUF model uses llama3 RoPE scaling, whose parameters a GGUF does not keep (only their factors); give a .gguf as --out");
            }
            if args.budget.is_some() {
                bail!("--budget plans the bytes of a GGUF file: give an --out ending in .gguf");
            }
        }
    }
    Ok(())
}

/// The plan to compress by: a budget's (planned now, written beside the output, with the
/// outcome that holds its layer database), a plan file's, or the uniform flags'. A budget's
/// planner takes the model (its search drops the original weights); the model returned is then
/// the source, streamed.
fn make_plan(
    args: &CompressArgs,
    model: Weights,
    calib: &Text,
    gptq: GptqOptions,
) -> Result<(Weights, Plan, Option<PlanOutcome>)> {
    if let Some(budget) = args.budget {
        let t = std::time::Instant::now();
        let o = planning::run_planner(model, &args.model, calib, budget, args.tokens, args.ctx, gptq, &args.search)?;
        crate::memory::release_freed();
        let model = Weights::open(&args.model, Streaming::On)?;
        let path = args.out.with_extension("plan.json");
        let mut o = o;
        args.rotation.record(&mut o.json, model.config().hidden_size);
        planning::write_plan_json(&path, &o)?;
        println!("wrote {}: {} ({:.0} s)", path.display(), planning::summary(&o), t.elapsed().as_secs_f64());
        let plan = o.plan.clone();
        return Ok((model, plan, Some(o)));
    }
    let plan = match &args.plan {
        Some(p) => {
            let text = crate::calib::read_text(p)?.text;
            args.rotation.check_plan(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            Plan::from_json(&text, model.config()).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
        }
        None => {
            let embeddings = match args.embeddings_type {
                None => args.qtype,
                Some(Embeddings::Keep) => None,
                Some(Embeddings::Type(t)) => Some(t),
            };
            let mut plan =
                Plan::uniform(model.config(), args.qtype, args.sparsity, embeddings).map_err(anyhow::Error::msg)?;
            plan.drop_blocks = args.drop_blocks.iter().copied().collect();
            plan.drop_attention = args.drop_attention.iter().copied().collect();
            plan.drop_mlp = args.drop_mlp.iter().copied().collect();
            plan.validate(model.config()).map_err(anyhow::Error::msg)?;
            plan
        }
    };
    Ok((model, plan, None))
}

/// Writes the GGUF file or the Hugging Face folder, and says so in one line.
fn write_output(
    args: &CompressArgs,
    output: &Output,
    compressed: &Compressed,
    planned: Option<&PlanOutcome>,
    calib_tokens: usize,
    secs: f64,
) -> Result<()> {
    match output {
        Output::Gguf => {
            let s = crate::export::gguf::write_gguf(&args.out, compressed)
                .with_context(|| format!("writing {}", args.out.display()))?;
            println!(
                "wrote {}: {} bytes, {:.3} bits per weight over all tensors ({} blocks, {calib_tokens} calibration tokens, {secs:.0} s)",
                args.out.display(),
                s.bytes,
                s.bits_per_weight,
                compressed.config.n_layers,
            );
            if let Some(o) = planned.filter(|o| o.predicted.bytes != s.bytes) {
                eprintln!("warning: the plan predicted {} bytes, the file has {}", o.predicted.bytes, s.bytes);
            }
        }
        Output::Folder(hf) => {
            // A streamed source is read again, tensor by tensor, beside the changed tensors' bytes.
            let source = match &compressed.model {
                Some(_) => None,
                None => Some(Streamed::open(&args.model)?),
            };
            let weights = match (&compressed.model, &source) {
                (Some(m), _) => FolderWeights::Resident(m),
                (None, Some(s)) => FolderWeights::Streamed { source: s, compressed },
                (None, None) => unreachable!("a compressed model or its source"),
            };
            crate::export::hf::write_folder(&args.out, &weights, &compressed.kept_blocks, hf)
                .with_context(|| format!("writing {}", args.out.display()))?;
            println!(
                "wrote {} (Hugging Face folder, {:?}; {} blocks, {secs:.0} s)",
                args.out.display(),
                args.hf_dtype,
                compressed.config.n_layers
            );
        }
    }
    Ok(())
}

/// The compressed model (in memory, or the file just written) against the original on the
/// evaluation windows, printed as one JSON line.
fn evaluate(
    args: &CompressArgs,
    original: &std::path::Path,
    compressed: &Compressed,
    streaming: Streaming,
    windows: &Windows,
) -> Result<EvalReport> {
    let original = Weights::open(original, if compressed.model.is_some() { streaming } else { Streaming::On })?;
    let written = match &compressed.model {
        Some(_) => None,
        None => Some(Weights::open(&args.out, Streaming::On)?),
    };
    let model: &dyn Blocks = match (&compressed.model, &written) {
        (Some(m), _) => m,
        (None, Some(w)) => w,
        (None, None) => unreachable!("a compressed model or its file"),
    };
    let mut pb = progress::bar(crate::eval::steps(model, Some(&original), windows, args.batch), "eval");
    let r = crate::eval::evaluate(model, Some(&original), windows, args.batch, 0, &mut pb)?;
    pb.finish_and_clear();
    println!("{}", serde_json::to_string(&r)?);
    Ok(r)
}

/// The budget's report beside the output: its plan's KL against its size, the types, the
/// sensitivities, and the evaluation when there was one.
fn write_allocation_report(
    args: &CompressArgs,
    o: &PlanOutcome,
    n_blocks: usize,
    quality: Option<&EvalReport>,
) -> Result<()> {
    let path = args.out.with_extension("report.html");
    let name = args.model.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let text = args.eval_text.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
    let html = crate::report::allocation::render(&name, &o.json, n_blocks, quality.map(|q| (text.as_str(), q)));
    crate::temp::write_atomic(&path, |w| std::io::Write::write_all(w, html.as_bytes()).map_err(anyhow::Error::from))?;
    println!("wrote {}", path.display());
    Ok(())
}
