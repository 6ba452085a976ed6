//! The command line: typed arguments, progress bars, one-line errors.

pub mod compress;
pub mod eval;
pub mod plan;
pub mod profile;
mod progress;

use clap::{Parser, Subcommand};

/// triage — find what matters inside a transformer language model and spend a compression budget
/// where it matters.
///
/// Models are GGUF files (F32, F16, BF16, Q4_0…Q8_0, Q2_K…Q6_K, IQ4_NL, IQ4_XS, IQ3_S, IQ3_XXS,
/// IQ2_S, IQ2_XS; byte-level BPE or SentencePiece vocabularies) or Hugging Face folders (config.json,
/// safetensors in f32/f16/bf16, tokenizer.json or tokenizer.model); architectures llama (Llama
/// 2/3, SmolLM2, Mistral with its sliding window), qwen2 and qwen3. A folder compresses straight
/// to a GGUF for llama.cpp.
#[derive(Debug, Parser)]
#[command(name = "triage", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Compress(Box<compress::CompressArgs>),
    Eval(eval::EvalArgs),
    Plan(plan::PlanArgs),
    Profile(profile::ProfileArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Compress(args) => compress::run(*args),
        Command::Eval(args) => eval::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Profile(args) => profile::run(args),
    }
}
