//! `triage profile`: every importance signal of a model on a calibration text, as profile.json
//! and a report.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::calib::imatrix::Imatrix;
use crate::calib::runner::StateLimits;
use crate::calib::Windows;
use crate::ggml::types::QuantType;
use crate::importance::{profile, ProfileOptions};
use crate::model::{Blocks, Streaming, Weights};
use crate::temp::write_atomic;

use super::guard::{Files, Input};
use super::progress;

/// Importance profile: every signal in one pass, as DIR/profile.json and DIR/report.html
///
/// Per block: ShortGPT block influence, ablation ΔKL, LISA weight norms, OWL outlier ratio, RSQ
/// attention concentration. Per sublayer: LLM-Drop redundancy, ablation ΔKL. Per linear: imatrix,
/// OWL outliers, quantization error curves for every GGUF type the row width allows and RTN 2–8
/// bits. Then the Spearman correlations between the per-block signals. The calibration text must
/// be different from any text you evaluate on.
///
/// Example: triage profile --model assets/SmolLM2-135M-Instruct.Q4_1.gguf --calib assets/calib.txt
/// --out profile/ --imatrix-out profile/imatrix.gguf
#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// The model: a .gguf file or a Hugging Face folder.
    #[arg(long)]
    pub model: PathBuf,
    /// Calibration text (UTF-8).
    #[arg(long)]
    pub calib: PathBuf,
    /// Calibration tokens for the statistics (a multiple of --ctx; the text's first windows).
    #[arg(long, default_value_t = 32768, value_parser = super::values::positive)]
    pub tokens: usize,
    /// Window length in tokens.
    #[arg(long, default_value_t = 512, value_parser = super::values::ctx)]
    pub ctx: usize,
    /// Tokens (the first windows) on which each block and sublayer is removed and KL measured:
    /// 3 × blocks partial forward passes over them, the costliest part of the profile
    /// (about 3 minutes for SmolLM2 at 1024 tokens on 2 cores).
    #[arg(long, default_value_t = 1024, value_parser = super::values::positive)]
    pub ablation_tokens: usize,
    /// Tokens (the first windows) whose attention probabilities are summarised.
    #[arg(long, default_value_t = 2048, value_parser = super::values::count)]
    pub attention_tokens: usize,
    /// Windows per forward pass.
    #[arg(long, default_value_t = 4, value_parser = super::values::positive)]
    pub batch: usize,
    /// Also measure, for every linear, the end-to-end KL with only that linear quantized to each
    /// of these GGUF types (comma-separated, e.g. Q4_0,Q8_0), on the ablation tokens: one
    /// partial forward per linear and type — minutes per type on SmolLM2.
    #[arg(long, value_delimiter = ',', value_name = "TYPES", value_parser = super::values::qtype)]
    pub full: Vec<QuantType>,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Memory the calibration states between blocks may take: kept in f32 up to a quarter of
    /// it, in f16 up to half (a rounding of 2^-11 relative; each batch is widened to f32 when
    /// it runs), past that in f16 in a temporary file (B, KB, MB, GB, KiB, MiB, GiB; default:
    /// the machine's memory).
    #[arg(long, value_name = "SIZE", value_parser = super::values::bytes)]
    pub memory_limit: Option<u64>,
    /// Stream the weights from the model's files, one block decoded at a time, instead of
    /// loading the whole model in f32 (the ablations then decode the blocks after the ablated
    /// one again for each ablation). Auto streams models of more than about a billion
    /// parameters; the profile is the same either way.
    #[arg(long, value_enum, default_value_t = Streaming::Auto)]
    pub stream: Streaming,
    /// Also write the imatrix in llama.cpp's GGUF format (llama-quantize --imatrix reads it);
    /// a name ending in .dat writes the legacy format.
    #[arg(long)]
    pub imatrix_out: Option<PathBuf>,
    /// A llama.cpp imatrix file (GGUF or legacy .dat) to compare ours with, tensor by tensor;
    /// the comparison goes to DIR/imatrix_comparison.json and stdout.
    #[arg(long)]
    pub imatrix_in: Option<PathBuf>,
}

pub fn run(args: ProfileArgs) -> Result<()> {
    // The output folder is made first, so that the files to go in it (an --imatrix-out among
    // them) are checked like any other; a run that fails takes it away again if it made it
    // and it is still empty.
    let made = !args.out.exists();
    if made {
        let parent = args.out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        if !parent.is_dir() {
            bail!("--out {}: the folder {} does not exist", args.out.display(), parent.display());
        }
        std::fs::create_dir(&args.out).with_context(|| format!("--out {}", args.out.display()))?;
    }
    let out = args.out.clone();
    let done = profile_into(args);
    if done.is_err() && made {
        let _ = std::fs::remove_dir(&out);
    }
    done
}

fn profile_into(args: ProfileArgs) -> Result<()> {
    if args.tokens < args.ctx {
        bail!("--tokens {} is less than one window of --ctx {}", args.tokens, args.ctx);
    }
    let written = ["profile.json", "report.html", "imatrix_comparison.json"].map(|f| args.out.join(f));
    let mut files = Files::new()
        .input("--model", &args.model, Input::Model)
        .input("--calib", &args.calib, Input::Once)
        .input_opt("--imatrix-in", args.imatrix_in.as_deref(), Input::File)
        .output_opt("--imatrix-out", args.imatrix_out.as_deref());
    for f in &written {
        files = files.output("--out", f);
    }
    files.check()?;
    let limits = StateLimits::for_memory(super::memory::memory_bytes(args.memory_limit));
    let reference = args.imatrix_in.as_deref().map(Imatrix::read).transpose()?;
    let model = Weights::open(&args.model, args.stream)?;
    if let (Some(m), Some(p)) = (&reference, &args.imatrix_in) {
        m.check_against(p, model.config())?;
    }
    crate::eval::check_ctx(&model, args.ctx)?;
    let windows = Windows::from_file(&args.calib, model.tokenizer()?, args.ctx, Some(args.tokens / args.ctx))
        .with_context(|| format!("{}", args.calib.display()))?;

    let n = model.n_blocks();
    let n_linears = 7 * n;
    let full = !args.full.is_empty();
    let mut pb = progress::bar(2 * n + if full { n_linears } else { 0 }, "profile").naming_stages();
    let opts = ProfileOptions {
        batch: args.batch,
        ablation_windows: (args.ablation_tokens / args.ctx).max(1),
        attention_windows: args.attention_tokens / args.ctx,
        calib_name: args.calib.display().to_string(),
        full_types: args.full.clone(),
        state_limits: limits,
    };
    let (profile, imatrix) = profile(&model, &windows, &opts, &mut pb)?;
    pb.finish_and_clear();

    let json_path = args.out.join("profile.json");
    write_atomic(&json_path, |w| std::io::Write::write_all(w, profile.to_json().as_bytes()))?;
    let html_path = args.out.join("report.html");
    let html = crate::report::render(&profile);
    write_atomic(&html_path, |w| std::io::Write::write_all(w, html.as_bytes()))?;
    if let Some(p) = &args.imatrix_out {
        if p.extension().is_some_and(|e| e == "dat") {
            imatrix.write_dat(p)?;
        } else {
            imatrix.write_gguf(p)?;
        }
    }
    if let Some(r) = &reference {
        let cmp = crate::importance::imatrix_compare::compare(&imatrix, r);
        let path = args.out.join("imatrix_comparison.json");
        write_atomic(&path, |w| {
            std::io::Write::write_all(w, serde_json::to_string_pretty(&cmp)?.as_bytes()).map_err(anyhow::Error::from)
        })?;
        println!("{}", cmp.summary());
    }
    let t: f64 = profile.timings.values().sum();
    println!(
        "wrote {} and {} ({} blocks, {} calibration tokens, {t:.0} s)",
        json_path.display(),
        html_path.display(),
        n,
        profile.calibration.tokens
    );
    Ok(())
}
