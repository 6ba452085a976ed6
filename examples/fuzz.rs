//! The long fuzzing run: every parser family, millions of seeded cases each.
//!
//!     cargo run --release --example fuzz -- --cases 1000000 --seed 1 [--family gguf-model] [--start K]
//!
//! Prints one row per family (cases, Ok, Err, panics, damage loaded as valid, seconds) and every
//! panic or undetected damage with the command that reproduces it alone; exits 1 if any case
//! panicked or loaded damage. Progress goes to stderr every batch,
//! so that an abort (which no harness can catch) is narrowed to one batch to rerun with --start.

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use triage::fuzz::{families, run_family, Tally};

#[derive(Parser)]
struct Args {
    /// Cases per family.
    #[arg(long, default_value_t = 1_000_000)]
    cases: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The first case index (to rerun one case: --start N --cases 1).
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// Only these families (comma-separated; all by default).
    #[arg(long, value_delimiter = ',')]
    family: Vec<String>,
    /// Cases between progress lines.
    #[arg(long, default_value_t = 20_000)]
    batch: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let shm = Path::new("/dev/shm");
    let scratch = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
    let all = match families(&fixtures, &scratch) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut rows = Vec::new();
    for f in all.iter().filter(|f| args.family.is_empty() || args.family.iter().any(|n| n == f.name)) {
        let mut total = Tally::default();
        let mut done = 0;
        while done < args.cases {
            let n = args.batch.min(args.cases - done);
            let t = run_family(f, n, args.seed, args.start + done);
            total = total.merge(t);
            done += n;
            eprintln!("{}: {done}/{} cases, {} panics, {:.0} s", f.name, args.cases, total.panics.len(), total.seconds);
        }
        for (what, p) in total
            .panics
            .iter()
            .map(|p| ("panic", p))
            .chain(total.undetected.iter().map(|p| ("damage loaded as valid", p)))
        {
            println!("{what}: {} case {} ({}): {}", f.name, p.case, p.seed_file, p.message);
            println!(
                "  reproduce: cargo run --release --example fuzz -- --family {} --seed {} --start {} --cases 1",
                f.name, args.seed, p.case
            );
        }
        rows.push((f.name, total));
    }
    println!("seed {}, cases {}..{}", args.seed, args.start, args.start + args.cases);
    println!(
        "{:<17} {:>10} {:>10} {:>10} {:>7} {:>10} {:>9}",
        "family", "cases", "ok", "err", "panics", "undetected", "seconds"
    );
    for (name, t) in &rows {
        println!(
            "{name:<17} {:>10} {:>10} {:>10} {:>7} {:>10} {:>9.1}",
            t.cases,
            t.ok,
            t.err,
            t.panics.len(),
            t.undetected.len(),
            t.seconds
        );
    }
    let silent: u64 = rows.iter().map(|(_, t)| t.silent_errors).sum();
    if silent > 0 {
        println!("{silent} errors had an empty message");
    }
    if rows.iter().any(|(_, t)| !t.panics.is_empty() || !t.undetected.is_empty()) || silent > 0 {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
