//! Streaming (`--stream on`): a model read block by block from its files gives the same numbers
//! and the same files as the model loaded whole, from Hugging Face folders (bf16, sharded,
//! Gemma's shifted norms, Phi-3's fused tensors) and GGUF files alike.

use std::path::{Path, PathBuf};

mod common;
use common::{fixture, ok, one_line_error, s, triage};

fn tmp_dir(tag: &str) -> PathBuf {
    common::tmp_dir("stream", tag)
}

fn long_text(dir: &Path) -> PathBuf {
    let p = dir.join("long.txt");
    std::fs::write(&p, "The nation is at peace and the harvest is good. Congress met in December. ".repeat(200))
        .unwrap();
    p
}

/// The eval JSON without its timing.
fn eval_json(model: &Path, text: &Path, stream: &str, reference: Option<&Path>) -> serde_json::Value {
    let mut args = vec![
        "eval",
        "--model",
        s(model),
        "--text",
        s(text),
        "--ctx",
        "32",
        "--max-windows",
        "5",
        "--batch",
        "2",
        "--json",
        "--stream",
        stream,
    ];
    if let Some(r) = reference {
        args.extend(["--reference", s(r)]);
    }
    let out = ok(triage(&args));
    let mut j: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    j.as_object_mut().unwrap().remove("tokens_per_s");
    j
}

#[test]
fn streamed_eval_equals_loaded_eval() {
    let d = tmp_dir("eval");
    let text = long_text(&d);
    for name in ["tiny-llama-sharded", "tiny-gemma2", "tiny-phi3", "tiny-qwen2.gguf", "tiny-gemma3.gguf"] {
        let m = fixture(name);
        let r = fixture("tiny-llama");
        let reference = name.starts_with("tiny-llama").then_some(r.as_path());
        let (on, off) = (eval_json(&m, &text, "on", reference), eval_json(&m, &text, "off", reference));
        assert_eq!(on, off, "{name}");
    }
}

#[test]
fn streamed_compress_writes_the_same_file() {
    let d = tmp_dir("compress");
    let text = long_text(&d);
    let cases: [(&str, &[&str]); 4] = [
        ("tiny-llama-sharded", &["--type", "Q4_K", "--drop-blocks", "1"]),
        ("tiny-phi3", &["--type", "Q8_0", "--drop-mlp", "0"]),
        ("tiny-gemma3", &["--type", "Q6_K", "--sparsity", "2:4"]),
        ("tiny-qwen2.gguf", &["--type", "Q3_K", "--embeddings-type", "keep"]),
    ];
    for (name, extra) in cases {
        let m = fixture(name);
        let mut files = Vec::new();
        for stream in ["on", "off"] {
            let out = d.join(format!("{name}.{stream}.gguf"));
            let mut args = vec![
                "compress",
                "--model",
                s(&m),
                "--calib",
                s(&text),
                "--ctx",
                "32",
                "--tokens",
                "256",
                "--out",
                s(&out),
                "--stream",
                stream,
            ];
            args.extend(extra);
            args.extend(["--eval-text", s(&text), "--eval-windows", "3"]);
            let log = ok(triage(&args));
            assert!(log.contains("\"kld_mean\""), "{log}");
            files.push(std::fs::read(&out).unwrap());
        }
        assert!(files[0] == files[1], "{name}: the streamed file differs");
    }
    // Nothing of the spilled tensors is left in the temporary folder.
    let prefix = ".triage-encoded-";
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn streaming_refuses_what_needs_the_whole_model() {
    let d = tmp_dir("refuse");
    let text = long_text(&d);
    let m = fixture("tiny-llama");
    let base = ["compress", "--model", s(&m), "--calib", s(&text), "--ctx", "32", "--tokens", "64", "--stream", "on"];
    let out = d.join("b.gguf");
    for (budget, solver) in [("sparsity=0.5", None), ("drop-blocks=1", None), ("bpw=5", Some("evo"))] {
        let mut args = base.to_vec();
        args.extend(["--budget", budget, "--out", s(&out)]);
        if let Some(solver) = solver {
            args.extend(["--solver", solver]);
        }
        one_line_error(&triage(&args), "needs the model in memory");
        assert!(!out.exists());
    }
}

/// plan.json without what differs between runs (timings, whether the database was cached).
fn plan_json(path: &Path) -> serde_json::Value {
    let mut j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    j.as_object_mut().unwrap().remove("timings");
    j
}

/// A quantization budget planned streamed — the layer database built block by block, the
/// embedding and output levels by chunks of rows, the sensitivities and every plan's KL
/// measured through views that decode the planned variants as each block runs — gives the
/// same database, plan, frontier and file as the model loaded whole.
#[test]
fn streamed_plan_equals_loaded_plan() {
    let d = tmp_dir("plan");
    let text = long_text(&d);
    let cases: [(&str, &str); 3] =
        [("tiny-llama-sharded", "bpw=5.5"), ("tiny-gemma2", "bpw=6"), ("tiny-qwen2.gguf", "kld<=0.5")];
    for (name, budget) in cases {
        let m = fixture(name);
        let mut runs = Vec::new();
        for stream in ["on", "off"] {
            let cache = d.join(format!("{name}.{stream}.cache"));
            let out = d.join(format!("{name}.{stream}.gguf"));
            let args = [
                "compress",
                "--model",
                s(&m),
                "--calib",
                s(&text),
                "--ctx",
                "32",
                "--tokens",
                "128",
                "--budget",
                budget,
                "--frontier",
                "2",
                "--cache",
                s(&cache),
                "--out",
                s(&out),
                "--stream",
                stream,
            ];
            ok(triage(&args));
            let database: Vec<_> = std::fs::read_dir(&cache)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("database-"))
                .collect();
            assert_eq!(database.len(), 1, "{name}: {database:?}");
            runs.push((
                plan_json(&out.with_extension("plan.json")),
                std::fs::read(&out).unwrap(),
                std::fs::read(&database[0]).unwrap(),
            ));
        }
        assert_eq!(runs[0].0, runs[1].0, "{name}: plan.json");
        assert!(runs[0].1 == runs[1].1, "{name}: the streamed plan's file differs");
        assert!(runs[0].2 == runs[1].2, "{name}: the streamed layer database differs");
    }
}

/// Every file of a folder, by name.
fn folder_files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect()
}

/// A Hugging Face folder written from a streamed source (changed tensors decoded from their
/// GGUF bytes, the rest read from the source's files a chunk of rows at a time) is the folder
/// written from the model loaded whole, file for file: q/k rows reordered from a GGUF source,
/// Gemma's norms less one, Phi-3's fused tensors, Qwen2's biases, removed blocks renumbered.
#[test]
fn streamed_compress_writes_the_same_folder() {
    let d = tmp_dir("folder");
    let text = long_text(&d);
    // A llama GGUF (q/k rows interleaved) without llama3 RoPE scaling, which a folder made from
    // a GGUF cannot carry: Mistral's fixture, converted.
    let mistral = d.join("tiny-mistral.gguf");
    ok(triage(&[
        "compress",
        "--model",
        s(&fixture("tiny-mistral")),
        "--calib",
        s(&text),
        "--ctx",
        "32",
        "--tokens",
        "64",
        "--type",
        "F16",
        "--method",
        "rtn",
        "--out",
        s(&mistral),
    ]));
    let cases: [(&str, &[&str]); 5] = [
        ("tiny-llama-sharded", &["--type", "Q4_K", "--drop-blocks", "1", "--hf-shard-size", "20KB"]),
        (s(&mistral), &["--type", "Q8_0", "--hf-dtype", "bf16"]),
        ("tiny-gemma2", &["--sparsity", "0.5"]),
        ("tiny-phi3", &["--type", "IQ4_NL", "--drop-mlp", "0"]),
        ("tiny-qwen2.gguf", &["--type", "Q6_K", "--embeddings-type", "keep"]),
    ];
    for (name, extra) in cases {
        let m = if name.starts_with('/') { PathBuf::from(name) } else { fixture(name) };
        let name = m.file_name().unwrap().to_string_lossy().into_owned();
        let mut folders = Vec::new();
        for stream in ["on", "off"] {
            let out = d.join(format!("{name}.{stream}"));
            let mut args = vec![
                "compress",
                "--model",
                s(&m),
                "--calib",
                s(&text),
                "--ctx",
                "32",
                "--tokens",
                "256",
                "--out",
                s(&out),
                "--stream",
                stream,
            ];
            args.extend(extra);
            args.extend(["--eval-text", s(&text), "--eval-windows", "3"]);
            let log = ok(triage(&args));
            assert!(log.contains("\"kld_mean\""), "{log}");
            folders.push(folder_files(&out));
        }
        assert_eq!(folders[0].keys().collect::<Vec<_>>(), folders[1].keys().collect::<Vec<_>>(), "{name}");
        for (f, bytes) in &folders[0] {
            assert!(*bytes == folders[1][f], "{name}: the streamed folder's {f} differs");
        }
    }
}

#[test]
fn a_streamed_model_with_a_nan_weight_stops_with_one_line() {
    // The weights are checked as each block is decoded: the error comes mid-run, names the
    // tensor, and leaves no output.
    let d = tmp_dir("nan");
    let text = long_text(&d);
    let src = fixture("tiny-qwen2.gguf");
    let (g, mut f) = triage::model::gguf_file::GgufFile::read(&src).unwrap();
    let info = g.tensor("blk.1.ffn_down.weight").unwrap();
    assert_eq!(info.qtype(), Some(triage::ggml::types::QuantType::F32));
    let mut bytes = std::fs::read(&src).unwrap();
    let at = (g.data_offset + info.offset) as usize;
    bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let _ = &mut f;
    let bad = d.join("nan.gguf");
    std::fs::write(&bad, bytes).unwrap();
    let out = d.join("o.gguf");
    let o = triage(&[
        "compress",
        "--model",
        s(&bad),
        "--calib",
        s(&text),
        "--ctx",
        "32",
        "--tokens",
        "64",
        "--type",
        "Q8_0",
        "--stream",
        "on",
        "--out",
        s(&out),
    ]);
    one_line_error(&o, "blk.1.ffn_down.weight");
    assert!(!out.exists());
    let o = triage(&["eval", "--model", s(&bad), "--text", s(&text), "--ctx", "32", "--stream", "on"]);
    one_line_error(&o, "blk.1.ffn_down.weight");
}

#[test]
fn streamed_profile_equals_loaded_profile() {
    let d = tmp_dir("profile");
    let text = long_text(&d);
    for name in ["tiny-llama-sharded", "tiny-phi3.gguf"] {
        let m = fixture(name);
        let mut outs = Vec::new();
        for stream in ["on", "off"] {
            let out = d.join(format!("{name}.{stream}"));
            let imatrix = out.join("imatrix.gguf");
            ok(triage(&[
                "profile",
                "--model",
                s(&m),
                "--calib",
                s(&text),
                "--ctx",
                "32",
                "--tokens",
                "256",
                "--ablation-tokens",
                "64",
                "--attention-tokens",
                "64",
                "--full",
                "Q8_0",
                "--out",
                s(&out),
                "--imatrix-out",
                s(&imatrix),
                "--stream",
                stream,
            ]));
            let mut j: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(out.join("profile.json")).unwrap()).unwrap();
            j.as_object_mut().unwrap().remove("timings");
            outs.push((j, std::fs::read(&imatrix).unwrap()));
        }
        assert_eq!(outs[0].0, outs[1].0, "{name}: profile.json");
        assert!(outs[0].1 == outs[1].1, "{name}: imatrix");
    }
}

#[test]
fn the_configuration_counts_the_parameters_of_every_tensor() {
    for name in ["tiny-llama", "tiny-qwen2.gguf", "tiny-qwen3.gguf", "tiny-gemma2", "tiny-gemma3", "tiny-phi3"] {
        let m = triage::model::Model::load(&fixture(name)).unwrap();
        let mut n =
            m.embed.elem_count() + m.final_norm.elem_count() + m.lm_head.as_ref().map_or(0, |l| l.weight.elem_count());
        for b in &m.blocks {
            n += b
                .linears()
                .iter()
                .map(|l| l.weight.elem_count() + l.bias.as_ref().map_or(0, |b| b.elem_count()))
                .sum::<usize>();
            n += b.norms().iter().map(|(_, t)| t.elem_count()).sum::<usize>();
        }
        assert_eq!(m.config.n_params(), n, "{name}");
    }
}
