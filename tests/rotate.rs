//! `triage rotate` and `compress --rotate`: the rotated files compute the original's function
//! (read back and run by triage, and by llama.cpp), say which rotation they hold, and bad input
//! is refused in one line with nothing written.

mod common;

use std::path::Path;

use candle_core::{Device, Tensor};
use common::*;
use serde_json::Value;
use triage::model::gguf_file::GgufFile;
use triage::model::Model;

/// The logits of one 40-token window.
fn logits(m: &Model) -> Vec<f32> {
    let ids: Vec<u32> = (0..40).map(|i| ((i * 7919 + 3) % m.config.vocab_size) as u32).collect();
    let tokens = Tensor::from_vec(ids, (1, 40), &Device::Cpu).unwrap();
    m.forward(&tokens, &mut ()).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

/// ‖b − a‖ / ‖a‖.
fn relative(a: &[f32], b: &[f32]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum();
    let n: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum();
    (d / n).sqrt()
}

fn metadata(p: &Path, key: &str) -> Option<String> {
    let (g, _) = GgufFile::read(p).unwrap();
    g.get(key).map(|v| format!("{v:?}"))
}

#[test]
fn rotated_files_give_the_originals_logits() {
    let d = tmp_dir("rotate", "logits");
    // A GGUF with tied embeddings and q/k/v biases; a Hugging Face llama folder, whose q/k rows
    // the GGUF stores permuted; phi3's fused matrices; and the same folder as a folder.
    for (name, out) in [
        ("tiny-qwen2.gguf", "qwen2.gguf"),
        ("tiny-llama", "llama.gguf"),
        ("tiny-phi3.gguf", "phi3.gguf"),
        ("tiny-llama", "llama-folder"),
    ] {
        let (src, out) = (fixture(name), d.join(out));
        let log = ok(triage(&["rotate", "--model", s(&src), "--out", s(&out), "--seed", "3"]));
        assert!(log.contains("relative error"), "{log}");
        let (a, b) = (Model::load(&src).unwrap(), Model::load(&out).unwrap());
        let e = relative(&logits(&a), &logits(&b));
        // f32 matrices in a GGUF; f16 in a folder.
        let bound = if out.is_dir() { 5e-3 } else { 1e-5 };
        assert!(e < bound, "{name} → {}: relative logit error {e:e}", out.display());
        assert!(b.lm_head.is_some(), "{name}: the output has a matrix of its own");
        if !out.is_dir() {
            assert!(metadata(&out, "triage.rotation").is_some_and(|v| v.contains("seed 3")), "{name}");
            assert!(GgufFile::read(&out).unwrap().0.tensor("output.weight").is_some());
        }
    }
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn a_streamed_rotation_writes_the_same_bytes_and_seeds_differ() {
    let d = tmp_dir("rotate", "stream");
    let src = fixture("tiny-llama.gguf");
    let run = |out: &str, extra: &[&str]| {
        let out = d.join(out);
        ok(triage(&[&["rotate", "--model", s(&src), "--out", s(&out), "--type", "f16"], extra].concat()));
        std::fs::read(out).unwrap()
    };
    let resident = run("a.gguf", &["--stream", "off"]);
    assert_eq!(resident, run("b.gguf", &["--stream", "on"]));
    assert_ne!(resident, run("c.gguf", &["--stream", "off", "--seed", "1"]));
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn what_cannot_be_rotated_is_refused_in_one_line_with_nothing_written() {
    let d = tmp_dir("rotate", "bad");
    let out = d.join("g.gguf");
    let o = triage(&["rotate", "--model", s(&fixture("tiny-gemma2.gguf")), "--out", s(&out)]);
    one_line_error(&o, "gemma2 cannot be rotated");
    let folder = d.join("f");
    let o = triage(&["rotate", "--model", s(&fixture("tiny-llama.gguf")), "--out", s(&folder), "--type", "f32"]);
    one_line_error(&o, "f16 or bf16");
    let o = triage(&[
        "compress",
        "--model",
        s(&fixture("tiny-gemma2.gguf")),
        "--calib",
        s(&fixture("unicode.txt")),
        "--type",
        "Q8_0",
        "--rotate",
        "--out",
        s(&out),
    ]);
    one_line_error(&o, "cannot be rotated");
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0, "nothing written");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn compress_rotate_records_the_rotation_and_leaves_no_copy() {
    let d = tmp_dir("rotate", "compress");
    let text = d.join("calib.txt");
    std::fs::write(&text, "The quick brown fox jumps over the lazy dog. ".repeat(400)).unwrap();
    let out = d.join("m.gguf");
    let log = ok(triage(&[
        "compress",
        "--model",
        s(&fixture("tiny-qwen2.gguf")),
        "--calib",
        s(&text),
        "--ctx",
        "32",
        "--tokens",
        "128",
        "--search-windows",
        "3",
        "--holdout-windows",
        "2",
        "--budget",
        "bpw=6",
        "--rotate",
        "--rotation-seed",
        "5",
        "--cache",
        s(&d.join("cache")),
        "--eval-text",
        s(&text),
        "--eval-windows",
        "2",
        "--out",
        s(&out),
    ]));
    assert!(log.contains("rotated: "), "{log}");
    let plan: Value = serde_json::from_str(&std::fs::read_to_string(d.join("m.plan.json")).unwrap()).unwrap();
    assert_eq!(plan["settings"]["rotation"]["seed"], 5, "{plan}");
    assert!(metadata(&out, "triage.rotation").is_some_and(|v| v.contains("seed 5")));
    // The untied output is planned like any tensor.
    assert!(plan.to_string().contains("output.weight"), "{plan}");
    let left: Vec<String> = std::fs::read_dir(&d)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("rotated"))
        .collect();
    assert!(left.is_empty(), "the rotated copy is removed: {left:?}");
    std::fs::remove_dir_all(&d).ok();
}

/// llama.cpp runs a rotated SmolLM2 (F16, its output untied) with the original's perplexity.
#[test]
fn llama_cpp_runs_the_rotated_default_model_with_the_originals_perplexity() {
    let d = tmp_dir("rotate", "llama");
    let (src, out) = (asset("SmolLM2-135M-Instruct.Q4_1.gguf"), d.join("rot.gguf"));
    ok(triage(&["rotate", "--model", s(&src), "--out", s(&out), "--type", "f16"]));
    let (k, theirs) = llama_perplexity(&out, 512, 4);
    let ours = triage_ppl(&src, 512, k);
    let gap = (theirs / ours - 1.0).abs();
    eprintln!(
        "rotated SmolLM2: llama.cpp ppl {theirs:.4} over {k} windows, triage (original) {ours:.4}, gap {:.3}%",
        100.0 * gap
    );
    assert!(gap < 0.01, "llama.cpp {theirs} against triage's {ours} on the original");
    std::fs::remove_dir_all(&d).ok();
}

/// A plan made rotated is applied rotated alike, and refused otherwise in one line.
#[test]
fn a_rotated_plan_is_applied_only_with_the_same_rotation() {
    let d = tmp_dir("rotate", "plan");
    let text = d.join("calib.txt");
    std::fs::write(&text, "In year one the nation was at peace and Congress met. ".repeat(300)).unwrap();
    let model = fixture("tiny-llama.gguf");
    let plan = d.join("p.json");
    let small = ["--ctx", "32", "--tokens", "128", "--search-windows", "3", "--holdout-windows", "2"];
    let cache = d.join("cache");
    ok(triage(
        &[
            &["plan", "--model", s(&model), "--calib", s(&text), "--budget", "bpw=6", "--cache", s(&cache)][..],
            &small,
            &["--rotate", "--rotation-seed", "2", "--out", s(&plan)],
        ]
        .concat(),
    ));
    let j: Value = serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    assert_eq!(j["settings"]["rotation"]["seed"], 2);
    let compress = |out: &Path, extra: &[&str]| {
        triage(
            &[
                &["compress", "--model", s(&model), "--calib", s(&text), "--ctx", "32", "--tokens", "128"][..],
                &["--plan", s(&plan), "--out", s(out)],
                extra,
            ]
            .concat(),
        )
    };
    let out = d.join("m.gguf");
    one_line_error(
        &compress(&out, &[]),
        "this plan was made with --rotate --rotation-seed 2, and this run is without --rotate",
    );
    one_line_error(&compress(&out, &["--rotate"]), "and this run is with --rotate --rotation-seed 0");
    assert!(!out.exists());
    ok(compress(&out, &["--rotate", "--rotation-seed", "2"]));
    assert!(metadata(&out, "triage.rotation").is_some_and(|v| v.contains("seed 2")));
    let o = triage(&[
        "plan",
        "--model",
        s(&model),
        "--calib",
        s(&text),
        "--budget",
        "bpw=6",
        "--rotate",
        "--shard",
        "prepare",
        "--out",
        s(&plan),
    ]);
    one_line_error(&o, "--rotate with --shard");
    std::fs::remove_dir_all(&d).ok();
}
