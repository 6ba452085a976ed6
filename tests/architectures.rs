//! Every command on every architecture's fixture: qwen3, Gemma 3, Phi-3 and SmolLM3 (folder and GGUF), Gemma 2, Mistral with its
//! sliding window, a SentencePiece folder — eval, profile with an imatrix, plan, compress by
//! the plan to GGUF, compress to a Hugging Face folder that loads back as the same model.

use std::path::{Path, PathBuf};

mod common;
use common::root;

/// The output of a triage run that must succeed.
fn triage(args: &[&str]) -> String {
    common::ok(common::triage(args))
}

fn ppl(model: &Path) -> f64 {
    let eval = common::asset("eval.txt");
    let out = triage(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--text",
        eval.to_str().unwrap(),
        "--ctx",
        "128",
        "--max-windows",
        "4",
        "--json",
    ]);
    let j: serde_json::Value = serde_json::from_str(out.lines().find(|l| l.starts_with('{')).unwrap()).unwrap();
    j["ppl"].as_f64().unwrap()
}

fn every_command(name: &str) {
    let dir = std::env::temp_dir().join(format!("triage-arch-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let m = root().join("tests/fixtures").join(name);
    let (m, calib, d) = (m.to_str().unwrap(), common::asset("calib.txt"), |f: &str| -> PathBuf { dir.join(f) });
    let calib = calib.to_str().unwrap();
    let original = ppl(Path::new(m));
    assert!(original.is_finite() && original > 1.0, "{name}: {original}");
    let imatrix = d("imatrix.gguf");
    triage(&[
        "profile",
        "--model",
        m,
        "--calib",
        calib,
        "--tokens",
        "512",
        "--ctx",
        "128",
        "--ablation-tokens",
        "128",
        "--attention-tokens",
        "128",
        "--out",
        d("profile").to_str().unwrap(),
        "--imatrix-out",
        imatrix.to_str().unwrap(),
    ]);
    let profile: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d("profile/profile.json")).unwrap()).unwrap();
    assert!(profile.to_string().contains("blk.0.attn_output.weight"), "{name}: the profile names the linears");
    assert!(imatrix.exists());
    let plan = d("plan.json");
    let common = ["--calib", calib, "--tokens", "256", "--ctx", "32"];
    let mut args = vec![
        "plan",
        "--model",
        m,
        "--budget",
        "bpw=6",
        "--solver",
        "lagrange",
        "--search-windows",
        "3",
        "--holdout-windows",
        "2",
        "--no-cache",
        "--out",
        plan.to_str().unwrap(),
    ];
    args.extend(common);
    triage(&args);
    let gguf = d("planned.gguf");
    let mut args = vec!["compress", "--model", m, "--plan", plan.to_str().unwrap(), "--out", gguf.to_str().unwrap()];
    args.extend(common);
    triage(&args);
    let planned: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    assert_eq!(
        planned["predicted"]["bytes"].as_u64().unwrap(),
        std::fs::metadata(&gguf).unwrap().len(),
        "{name}: the plan's size is the file's"
    );
    let q8 = d("q8.gguf");
    let folder = d("q8-hf");
    for out in [&q8, &folder] {
        let mut args =
            vec!["compress", "--model", m, "--type", "Q8_0", "--method", "rtn", "--out", out.to_str().unwrap()];
        args.extend(common);
        triage(&args);
    }
    // The folder (f16 of the Q8_0 values) is the GGUF's model; both are close to the original.
    // A sliding window is kept by the folder only: a GGUF (llama architecture, as llama.cpp's
    // converter writes Mistral) attends to the whole context.
    let (a, b) = (ppl(&q8), ppl(&folder));
    let windowed = name == "tiny-mistral";
    assert_eq!((a - b).abs() / a < 1e-3, !windowed, "{name}: Q8_0 GGUF {a}, its folder {b}");
    assert!((b - original).abs() / original < 0.02, "{name}: Q8_0 folder {b}, original {original}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn qwen3_folder() {
    every_command("tiny-qwen3");
}

#[test]
fn qwen3_gguf() {
    every_command("tiny-qwen3.gguf");
}

#[test]
fn mistral_with_a_sliding_window() {
    every_command("tiny-mistral");
}

#[test]
fn sentencepiece_folder() {
    every_command("tiny-spm");
}

#[test]
fn gemma3_folder() {
    every_command("tiny-gemma3");
}

#[test]
fn gemma3_gguf() {
    every_command("tiny-gemma3.gguf");
}

#[test]
fn gemma2_sentencepiece_folder() {
    every_command("tiny-gemma2");
}

#[test]
fn phi3_folder() {
    every_command("tiny-phi3");
}

#[test]
fn phi3_gguf() {
    every_command("tiny-phi3.gguf");
}

#[test]
fn smollm3_folder() {
    every_command("tiny-smollm3");
}

#[test]
fn smollm3_gguf() {
    every_command("tiny-smollm3.gguf");
}

#[test]
fn gemma3_vision_language_folder() {
    every_command("tiny-gemma3-vl");
}
