//! The short fuzzing run of CI: a few thousand seeded cases per parser family (see
//! `triage::fuzz`); the long run is `cargo run --release --example fuzz`. The caches' families
//! damage payloads as well as headers: a case that loads damage as valid data fails the run as
//! a panic does.

use std::path::Path;

use triage::fuzz::{families, run_family, Family, Loaded};

const SEED: u64 = 20_261_130;

fn all() -> Vec<Family> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    families(&fixtures, &std::env::temp_dir()).unwrap()
}

/// Every seed file passes its own parser, and loads as itself: damaged copies are errors
/// because of the damage.
#[test]
fn every_seed_file_is_valid() {
    for f in all() {
        for (i, s) in f.seeds.iter().enumerate() {
            let loaded = (f.check)(i, &s.bytes).unwrap_or_else(|e| panic!("{}: seed {} fails: {e}", f.name, s.name));
            assert_eq!(loaded, Loaded::Valid, "{}: seed {}", f.name, s.name);
        }
    }
}

/// Cases per family: fewer where one case loads a whole model.
fn cases(family: &str) -> u64 {
    match family {
        "gguf-model" | "hf-folder" | "hf-gguf-metadata" => 2_000,
        _ => 5_000,
    }
}

#[test]
fn no_input_makes_a_parser_panic() {
    let mut report = Vec::new();
    for f in all() {
        let t = run_family(&f, cases(f.name), SEED, 0);
        for p in &t.panics {
            report.push(format!("{} case {} ({}): {}", f.name, p.case, p.seed_file, p.message));
        }
        for p in &t.undetected {
            report.push(format!("{} case {} ({}): damage loaded as valid: {}", f.name, p.case, p.seed_file, p.message));
        }
        assert_eq!(t.silent_errors, 0, "{}: errors without a message", f.name);
        // Random blocks are always valid tensor data; every other family must refuse damage.
        assert!(
            f.name == "tensor-decode" || t.err > 0,
            "{}: no case was refused; the mutations do not reach the parser",
            f.name
        );
        eprintln!(
            "{:<17} {:>6} cases {:>6} ok {:>6} err {:>3} panics {:>3} undetected {:>6.1} s",
            f.name,
            t.cases,
            t.ok,
            t.err,
            t.panics.len(),
            t.undetected.len(),
            t.seconds
        );
    }
    assert!(report.is_empty(), "panics and undetected damage (seed {SEED}):\n{}", report.join("\n"));
}
