//! Families for the command line's checks: output paths that may alias an input (through `..`,
//! `.`, symbolic links, hard links and folder links), and numeric flag values at their edges.
//! A case that breaks a promise — an alias let through, an out-of-range value accepted — is
//! [`Loaded::Damaged`]: the harness counts it as undetected, a failure as a panic is, and reports
//! it with its case index. A refusal is an error with its message; an acceptance is Ok.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::mutate::{mutate, Layout, Rng, Seed};
use super::{Family, Loaded};
use crate::cli::guard::{Files, Input};

/// A folder of files to alias: an input `m.gguf`, a symbolic and a hard link to it, a link to
/// the folder, a subfolder, and a file that is not an input.
struct Aliases {
    dir: PathBuf,
}

impl Aliases {
    fn new(scratch: &Path) -> Result<Aliases, String> {
        static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = scratch.join(format!(
            "triage-fuzz-aliases-{}-{}",
            std::process::id(),
            MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let make = || -> std::io::Result<()> {
            std::fs::create_dir_all(dir.join("sub/deeper"))?;
            std::fs::write(dir.join("m.gguf"), b"GGUF")?;
            std::fs::write(dir.join("other.gguf"), b"GGUF")?;
            std::os::unix::fs::symlink(dir.join("m.gguf"), dir.join("link.gguf"))?;
            std::os::unix::fs::symlink(&dir, dir.join("sub/up"))?;
            std::fs::hard_link(dir.join("m.gguf"), dir.join("sub/hard.gguf"))
        };
        make().map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Aliases { dir })
    }
}

impl Drop for Aliases {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Path parts an output is made of, relative to the aliases' folder: none climbs above it
/// (`sub/..` returns to where it started), so checks write their probes only inside it.
const PARTS: [&str; 11] =
    [".", "sub/..", "sub", "deeper", "up", "m.gguf", "link.gguf", "hard.gguf", "other.gguf", "new.gguf", ""];

/// A relative path of up to six random parts.
fn random_path(_: &Seed, rng: &mut Rng) -> Vec<u8> {
    let n = 1 + rng.below(6);
    (0..n).map(|_| PARTS[rng.below(PARTS.len())]).collect::<Vec<_>>().join("/").into_bytes()
}

/// Output paths against one input: the check must refuse every path that is the input's file
/// (the oracle: the same device and inode, found without the guard's code) and every pair of
/// outputs that are one file.
pub fn aliases_family(scratch: &Path) -> Result<Family, String> {
    let a = Arc::new(Aliases::new(scratch)?);
    let check = move |_: usize, b: &[u8]| {
        use std::os::unix::fs::MetadataExt;
        let dir = &a.dir;
        let rel = String::from_utf8_lossy(b).into_owned();
        let out = dir.join(&rel);
        let input = dir.join("m.gguf");
        let same = |p: &Path| {
            let (Ok(x), Ok(y)) = (std::fs::metadata(p), std::fs::metadata(&input)) else { return false };
            (x.dev(), x.ino()) == (y.dev(), y.ino())
        };
        let verdict = Files::new().input("--model", &input, Input::Model).output("--out", &out).check();
        if same(&out) && verdict.is_ok() {
            return Ok(Loaded::Damaged(format!("--out {rel} is the input m.gguf, and was let through")));
        }
        // The same output twice, once through the folder link.
        let twice = Files::new().output("--out", &out).output("--report", &dir.join("sub/up").join(&rel)).check();
        if twice.is_ok() {
            return Ok(Loaded::Damaged(format!(
                "--out {rel} and --report sub/up/{rel} are one file, and were let through"
            )));
        }
        verdict.map(|_| Loaded::Valid).map_err(|e| e.to_string())
    };
    Ok(Family {
        name: "output-aliases",
        seeds: vec![Seed::new("new.gguf", b"new.gguf".to_vec(), Layout::Raw)],
        input: random_path,
        check: Box::new(check),
    })
}

/// How many parsers a numeric-flags case goes through.
const PARSERS: usize = 11;

/// Values at the edges of what a number can be, and mutations of them.
const EDGES: [&str; 24] = [
    "0",
    "1",
    "2",
    "-1",
    "-0",
    "0.5",
    "1.0",
    "NaN",
    "inf",
    "-inf",
    "1e15",
    "1e-400",
    "1e400",
    "18446744073709551000",
    "18446744073709551616",
    "4294967296",
    "9223372036854775807",
    "4.5",
    "16384",
    "512",
    "2:4",
    "64:128",
    "0:4",
    "4:4",
];

/// One of [`EDGES`], as it is or mutated.
fn edge_value(_: &Seed, rng: &mut Rng) -> Vec<u8> {
    let edge = EDGES[rng.below(EDGES.len())];
    match rng.below(2) {
        0 => edge.as_bytes().to_vec(),
        _ => mutate(&Seed::new(edge, edge.as_bytes().to_vec(), Layout::Raw), rng),
    }
}

/// The flags' parsers and the budgets' grammar fed values at their edges: each must answer
/// Ok with a value in its range, or an error with a message — never a panic, a non-finite
/// number or a zero where a division follows. A case is Ok when some parser takes the value,
/// an error (every parser's message) when none does.
pub fn numbers_family() -> Family {
    let seeds = vec![Seed::new("512", b"512".to_vec(), Layout::Raw)];
    let check = |_: usize, b: &[u8]| {
        use crate::cli::values;
        let s = String::from_utf8_lossy(b).into_owned();
        let mut errors = Vec::new();
        let mut broken: Option<String> = None;
        match values::ctx(&s) {
            Ok(n) if n < 2 => broken = Some(format!("--ctx {s} gave {n}")),
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
        match values::positive(&s) {
            Ok(0) => broken = Some(format!("{s} gave 0 where at least 1 is needed")),
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
        if let Err(e) = values::count(&s) {
            errors.push(e);
        }
        match values::damp(&s) {
            Ok(x) if !(0.0..1.0).contains(&x) => broken = Some(format!("--damp {s} gave {x}")),
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
        use crate::plan::Budget;
        // The parsers clap runs for --budget, --memory-limit/--hf-shard-size and --sparsity.
        for prefix in ["bpw=", "size=", "sparsity=", "drop-blocks=", "kld<="] {
            match values::budget(&format!("{prefix}{s}")) {
                Ok(Budget::Bpw(x) | Budget::Kld(x)) if !(x.is_finite() && x > 0.0) => {
                    broken = Some(format!("{prefix}{s} gave {x}"))
                }
                Ok(Budget::Sparsity(p)) if !(p > 0.0 && p < 1.0) => broken = Some(format!("{prefix}{s} gave {p}")),
                Ok(Budget::DropBlocks(0) | Budget::DropSublayers(0)) => {
                    broken = Some(format!("{prefix}{s} removes nothing"))
                }
                Ok(_) => {}
                Err(e) => errors.push(e),
            }
        }
        if let Err(e) = values::bytes(&s) {
            errors.push(e);
        }
        use crate::compress::gptq::Sparsity;
        match values::sparsity(&s) {
            Ok(Sparsity::Unstructured(p)) if !(0.0..1.0).contains(&p) => {
                broken = Some(format!("--sparsity {s} gave {p}"))
            }
            Ok(Sparsity::NofM(n, m)) if n >= m || m == 0 => broken = Some(format!("--sparsity {s} gave {n}:{m}")),
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
        if let Some(broken) = broken {
            return Ok(Loaded::Damaged(broken));
        }
        if errors.iter().any(|e| e.trim().is_empty()) {
            return Err(String::new());
        }
        match errors.len() {
            PARSERS => Err(errors.join("; ")),
            _ => Ok(Loaded::Valid),
        }
    };
    Family { name: "numeric-flags", seeds, input: edge_value, check: Box::new(check) }
}
