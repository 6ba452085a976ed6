//! The command line: typed arguments, progress bars, one-line errors.

pub mod compress;
pub mod eval;
pub(crate) mod guard;
mod memory;
pub mod plan;
pub mod profile;
mod progress;
pub mod rotate;
pub(crate) mod values;

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
    Rotate(rotate::RotateArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Compress(args) => compress::run(*args),
        Command::Eval(args) => eval::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Profile(args) => profile::run(args),
        Command::Rotate(args) => rotate::run(args),
    }
}

/// An error message in one line, whatever the underlying libraries put in it: lines joined,
/// and a backtrace (which candle appends to its errors when RUST_BACKTRACE is set: `stack
/// backtrace:` or numbered frames, each followed by an `at FILE:LINE` line) cut off.
pub fn one_line(msg: &str) -> String {
    let frame = |l: &str| {
        l == "stack backtrace:"
            || l.starts_with("at ")
            || l.split_once(": ").is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let lines: Vec<&str> = msg.lines().map(str::trim).take_while(|l| !frame(l)).filter(|l| !l.is_empty()).collect();
    lines.join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_line_joins_lines_and_drops_backtraces() {
        let msg = "m.gguf: metadata 'llama.rope.freq_base': unexpected dtype\n   0: candle_core::error::Error::bt\n             at /src/error.rs:264:25\n   1: triage::main\n";
        assert_eq!(super::one_line(msg), "m.gguf: metadata 'llama.rope.freq_base': unexpected dtype");
        assert_eq!(super::one_line("a\n\n  b: c\n"), "a b: c");
    }
}
