//! What the end-to-end tests share: paths, running triage, and llama.cpp's perplexity beside
//! triage's.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

/// A large test asset under `assets/` (git-ignored, not in the repository). A missing one fails
/// the test with the file's name and the command that fetches it, not with the error of the first
/// thing that tried to read it.
pub fn asset(name: &str) -> PathBuf {
    let p = root().join("assets").join(name);
    assert!(
        p.is_file(),
        "test asset {} is missing: run scripts/fetch_assets.sh, which fetches the default model, calib.txt and eval.txt (scripts/test.sh, which .ci/run calls, runs it first)",
        p.display()
    );
    p
}

/// A peer tool under `tools/` (git-ignored, built on the machine): its path, or a failure that
/// names the missing file and the command that makes it.
pub fn tool(rel: &str) -> PathBuf {
    let p = root().join("tools").join(rel);
    let how = if rel.starts_with("llama.cpp/") {
        "run scripts/build_llama_cpp.sh (LLAMA_TARGETS=llama-perplexity builds only the one the tests run; scripts/test.sh runs it first)"
    } else if rel.starts_with("pyenv/") {
        "run `python3 -m venv tools/pyenv && tools/pyenv/bin/python -m pip install gguf==0.19.0` (scripts/test.sh does it first)"
    } else {
        "run scripts/test.sh, which makes every tool the tests use"
    };
    assert!(p.exists(), "test tool {} is missing: {how}", p.display());
    p
}

/// A fresh folder for the test `tag` of the suite `suite`.
pub fn tmp_dir(suite: &str, tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("triage-{suite}-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn triage(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_triage")).args(args).output().unwrap()
}

/// The output of a run that must succeed: stdout, then stderr.
pub fn ok(out: Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "triage failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned() + &stderr
}

/// One `error:` line containing `expect`, exit 1, no panic.
pub fn one_line_error(o: &Output, expect: &str) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {stderr}");
    assert!(lines[0].starts_with("error: ") && lines[0].contains(expect), "'{expect}' not in: {stderr}");
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// llama.cpp's perplexity (second half of each window) of `gguf` on the first windows of `ctx`
/// tokens of the evaluation text, up to `chunks`: (windows scored, perplexity). llama.cpp logs
/// from a thread and a run sometimes ends with the last lines of its log lost — on a busy
/// machine, one tiny-model run in three loses everything after the next-to-last window, final
/// estimate included — so the running estimate after the last window printed is used, and a
/// run that printed fewer than two windows is repeated, up to eight times.
pub fn llama_perplexity(gguf: &Path, ctx: usize, chunks: usize) -> (usize, f64) {
    let bin = tool("llama.cpp/bin/llama-perplexity");
    let flags = std::fs::read_to_string(root().join("tools/llama.cpp/bin/BUILD_FLAGS"))
        .unwrap_or_else(|_| "unknown flags".into());
    eprintln!("llama.cpp peer: {} (built with {})", bin.display(), flags.trim());
    let mut text = String::new();
    for _ in 0..8 {
        let out = Command::new(&bin)
            .arg("-m")
            .arg(gguf)
            .arg("-f")
            .arg(asset("eval.txt"))
            .args(["-c", &ctx.to_string(), "-b", &ctx.to_string(), "--chunks", &chunks.to_string(), "-t", "2"])
            .output()
            .unwrap();
        text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{} (built with {}) failed on {}: {text}",
            bin.display(),
            flags.trim(),
            gguf.display()
        );
        if let Some(line) = text.lines().find(|l| l.contains("Final estimate: PPL =")) {
            return (chunks, line.split("PPL =").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap());
        }
        // "[1]352.1082,[2]382.0544,…": the running perplexity after each window.
        let last = text
            .lines()
            .filter(|l| l.starts_with("[1]"))
            .flat_map(|l| l.split(','))
            .filter_map(|e| {
                let (k, v) = e.strip_prefix('[')?.split_once(']')?;
                Some((k.parse::<usize>().ok()?, v.trim().parse::<f64>().ok()?))
            })
            .next_back();
        if let Some((k, p)) = last.filter(|&(k, _)| k >= 2) {
            return (k, p);
        }
    }
    panic!("no perplexity in eight runs; the last printed: {text}")
}

/// `triage eval --llama-protocol` on the same windows as [`llama_perplexity`].
pub fn triage_ppl(model: &Path, ctx: usize, windows: usize) -> f64 {
    let eval = asset("eval.txt");
    let (c, w) = (ctx.to_string(), windows.to_string());
    let out = ok(triage(&[
        "eval",
        "--model",
        s(model),
        "--text",
        s(&eval),
        "--ctx",
        &c,
        "--max-windows",
        &w,
        "--llama-protocol",
        "--json",
    ]));
    let j: serde_json::Value = serde_json::from_str(out.lines().find(|l| l.starts_with('{')).unwrap()).unwrap();
    j["ppl"].as_f64().unwrap()
}
