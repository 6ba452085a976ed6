//! `triage eval`: perplexity of a model on a text, and with `--reference` its KL divergence from
//! another model on the same windows.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::calib::Windows;
use crate::eval::{check_ctx, check_reference_tokenizer, evaluate, steps};
use crate::model::{Blocks, Streaming, Weights};

use super::guard::{Files, Input};
use super::progress;

/// Perplexity on held-out text; with --reference, KL(reference ‖ model) and top-1 agreement
///
/// Protocol: the whole text is tokenized without special tokens and cut into non-overlapping
/// windows of --ctx tokens (the remainder dropped); each window runs on its own; every position
/// whose next token is inside the window is scored. ppl = exp(mean NLL). KL uses natural logs over
/// the full vocabulary, per position, as llama.cpp's `llama-perplexity --kl-divergence` does.
///
/// Example: triage eval --model small.gguf --reference original.gguf --text assets/eval.txt
/// --max-windows 40 --json
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The model: a .gguf file or a Hugging Face folder.
    #[arg(long)]
    pub model: PathBuf,
    /// UTF-8 text file to score (held out from any calibration).
    #[arg(long)]
    pub text: PathBuf,
    /// Window length in tokens.
    #[arg(long, default_value_t = 512, value_parser = super::values::ctx)]
    pub ctx: usize,
    /// Score only the first N windows.
    #[arg(long, value_parser = super::values::positive)]
    pub max_windows: Option<usize>,
    /// A reference model (e.g. the uncompressed original) for KL divergence and top-1 agreement.
    /// Its tokenizer must match (every id's token, the special tokens); the text is tokenized
    /// with the evaluated model's.
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// Windows per forward pass (memory grows with batch × ctx × vocabulary).
    #[arg(long, default_value_t = 4, value_parser = super::values::positive)]
    pub batch: usize,
    /// Score only the second half of each window, as llama-perplexity does (its first half is
    /// context only), so that the two programs' numbers compare directly.
    #[arg(long)]
    pub llama_protocol: bool,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    /// Stream the weights from the model's files, one block decoded at a time (memory: about
    /// one block in f32), instead of loading the whole model in f32. Auto streams models of
    /// more than about a billion parameters; the numbers are the same either way.
    #[arg(long, value_enum, default_value_t = Streaming::Auto)]
    pub stream: Streaming,
}

pub fn run(args: EvalArgs) -> Result<()> {
    Files::new()
        .input("--model", &args.model, Input::Model)
        .input_opt("--reference", args.reference.as_deref(), Input::Model)
        .input("--text", &args.text, Input::Once)
        .check()?;
    let model = Weights::open(&args.model, args.stream)?;
    let reference = args.reference.as_deref().map(|r| Weights::open(r, args.stream)).transpose()?;
    for m in std::iter::once(&model).chain(reference.as_ref()) {
        check_ctx(m, args.ctx)?;
    }
    if let Some(r) = &reference {
        check_reference_tokenizer(&model, r)?;
    }
    let tokenizer = model.tokenizer()?;
    let windows = Windows::from_file(&args.text, tokenizer, args.ctx, args.max_windows)
        .with_context(|| format!("{}", args.text.display()))?;
    let score_from = if args.llama_protocol { args.ctx / 2 } else { 0 };
    let reference = reference.as_ref().map(|r| r as &dyn Blocks);
    let mut pb = progress::bar(steps(&model, reference, &windows, args.batch), "eval");
    let report = evaluate(&model, reference, &windows, args.batch, score_from, &mut pb)?;
    pb.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "ppl {:.4} over {} tokens ({} windows of {}), {:.0} tokens/s",
            report.ppl, report.tokens_scored, report.windows, report.ctx, report.tokens_per_s
        );
        if let (Some(mean), Some(median), Some(p99), Some(top1)) =
            (report.kld_mean, report.kld_median, report.kld_p99, report.top1_agree)
        {
            println!(
                "KL(reference ‖ model): mean {mean:.6}, median {median:.6}, p99 {p99:.6}; top-1 agreement {:.2}%",
                100.0 * top1
            );
        }
    }
    Ok(())
}
