//! A Hugging Face folder straight to GGUF: with `--type F16` every tensor is byte for byte the
//! one llama.cpp's own converter writes at `--outtype f16` (its outputs for the fixtures are
//! committed: tests/fixtures/converter/, made by scripts/make_converter_fixtures.sh), every
//! metadata key has the converter's value, and quantized files from a folder run in llama.cpp
//! with the perplexity triage measures on the folder.

use std::path::{Path, PathBuf};

use triage::model::gguf_file::{GgufFile, Value};

mod common;
use common::{fixture, llama_perplexity, ok, s, triage, triage_ppl};

fn tmp_dir(tag: &str) -> PathBuf {
    common::tmp_dir("hf-gguf", tag)
}

/// `triage compress --model tests/fixtures/<model> … --out dir/<out>` on a short calibration text.
fn compress(dir: &Path, model: &str, out: &str, extra: &[&str]) -> (PathBuf, String) {
    let text = dir.join("calib.txt");
    std::fs::write(&text, "The nation is at peace and the harvest is good. Congress met in December. ".repeat(200))
        .unwrap();
    let out = dir.join(out);
    let m = fixture(model);
    let mut args =
        vec!["compress", "--model", s(&m), "--calib", s(&text), "--ctx", "32", "--tokens", "256", "--out", s(&out)];
    args.extend(extra);
    let log = ok(triage(&args));
    (out, log)
}

/// The keys triage adds to every file it writes; the converter writes neither.
const OURS_ONLY: [&str; 2] = ["general.quantized_by", "triage.bits_per_weight"];

#[test]
fn f16_from_a_folder_equals_the_converters_file() {
    let dir = tmp_dir("f16");
    for name in [
        "tiny-llama",
        "tiny-qwen2",
        "tiny-llama-sharded",
        "tiny-qwen3",
        "tiny-spm",
        "tiny-gemma3",
        "tiny-gemma2",
        "tiny-phi3",
        "tiny-gemma3-vl",
        "tiny-smollm3",
    ] {
        let (out, _) = compress(&dir, name, &format!("{name}.gguf"), &["--type", "F16"]);
        let (ours, mut f) = GgufFile::read(&out).unwrap();
        let (theirs, mut g) = GgufFile::read(&fixture(&format!("converter/{name}.F16.gguf"))).unwrap();
        let keys: Vec<&str> =
            ours.metadata.iter().map(|(k, _)| k.as_str()).filter(|k| !OURS_ONLY.contains(k)).collect();
        let their_keys: Vec<&str> = theirs.metadata.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, their_keys, "{name}: the keys and their order");
        for (k, v) in &theirs.metadata {
            assert_eq!(format!("{:?}", ours.get(k).unwrap()), format!("{v:?}"), "{name}: {k}");
        }
        let names = |g: &GgufFile| g.tensors.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&ours), names(&theirs), "{name}: the tensors and their order");
        for (a, b) in ours.tensors.iter().zip(&theirs.tensors) {
            assert_eq!((&a.ne, a.type_id), (&b.ne, b.type_id), "{name}: {}", a.name);
            assert!(
                ours.read_data(&mut f, a).unwrap() == theirs.read_data(&mut g, b).unwrap(),
                "{name}: {} differs",
                a.name
            );
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn quantized_files_from_folders_run_in_llama_cpp_with_our_perplexity() {
    let dir = tmp_dir("llama");
    // tiny-llama: llama3 RoPE scaling and permuted q/k rows; tiny-qwen2: biases, tied output.
    for (name, t) in [
        ("tiny-llama", "Q8_0"),
        ("tiny-llama", "Q4_0"),
        ("tiny-qwen2", "Q5_1"),
        ("tiny-llama-sharded", "F16"),
        ("tiny-qwen3", "Q8_0"),
        ("tiny-spm", "Q8_0"),
        ("tiny-gemma3", "F16"),
        ("tiny-gemma3", "Q4_0"),
        ("tiny-gemma2", "F16"),
        ("tiny-gemma2", "Q8_0"),
        ("tiny-phi3", "F16"),
        ("tiny-phi3", "Q8_0"),
        ("tiny-gemma3-vl", "Q6_K"),
        ("tiny-smollm3", "F16"),
        ("tiny-smollm3", "Q8_0"),
    ] {
        let (out, _) = compress(&dir, name, &format!("{name}-{t}.gguf"), &["--type", t]);
        let (k, theirs) = llama_perplexity(&out, 128, 8);
        let ours = triage_ppl(&out, 128, k);
        let rel = (ours - theirs).abs() / theirs;
        assert!(rel < 0.01, "{name} {t}: triage {ours} llama.cpp {theirs} ({:.3}%)", 100.0 * rel);
        if t == "F16" {
            // The folder itself scores what llama.cpp scores on its F16 file.
            let folder = triage_ppl(&fixture(name), 128, k);
            assert!((folder - theirs).abs() / theirs < 0.01, "{name}: folder {folder}, F16 file in llama.cpp {theirs}");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_budget_plans_a_folder_to_the_predicted_bytes() {
    let dir = tmp_dir("budget");
    let cache = dir.join("cache");
    let (out, log) = compress(
        &dir,
        "tiny-llama",
        "b.gguf",
        &[
            "--budget",
            "bpw=6",
            "--cache",
            s(&cache),
            "--solver",
            "lagrange",
            "--search-windows",
            "3",
            "--holdout-windows",
            "2",
        ],
    );
    assert!(!log.contains("the plan predicted"), "{log}");
    let (g, _) = GgufFile::read(&out).unwrap();
    let bpw = match g.get("triage.bits_per_weight") {
        Some(Value::F32(b)) => *b,
        other => panic!("{other:?}"),
    };
    assert!(bpw <= 6.0 && bpw > 4.5, "{bpw}");
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("b.plan.json")).unwrap()).unwrap();
    assert_eq!(plan["predicted"]["bytes"].as_u64().unwrap(), std::fs::metadata(&out).unwrap().len());
    std::fs::remove_dir_all(&dir).ok();
}

/// A copy of a fixture folder with `edit` applied to it.
fn edited_copy(dir: &Path, name: &str, tag: &str, edit: impl FnOnce(&Path)) -> PathBuf {
    let to = dir.join(format!("{name}-{tag}"));
    std::fs::create_dir_all(&to).unwrap();
    for e in std::fs::read_dir(fixture(name)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
    edit(&to);
    to
}

#[test]
fn tokenizers_that_cannot_be_written_are_refused_before_any_output() {
    let dir = tmp_dir("refuse");
    let text = dir.join("calib.txt");
    std::fs::write(&text, "The nation is at peace. ".repeat(100)).unwrap();
    let edit_json = |f: &Path, change: &dyn Fn(&mut serde_json::Value)| {
        let mut j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        change(&mut j);
        std::fs::write(f, j.to_string()).unwrap();
    };
    let cases: Vec<(PathBuf, &str)> = vec![
        (
            edited_copy(&dir, "tiny-llama", "spm", |d| {
                std::fs::write(d.join("tokenizer.model"), b"\x0a\x05ab").unwrap()
            }),
            "not a SentencePiece model",
        ),
        (
            edited_copy(&dir, "tiny-qwen2", "notok", |d| std::fs::remove_file(d.join("tokenizer.json")).unwrap()),
            "neither tokenizer.json nor tokenizer.model",
        ),
        (
            edited_copy(&dir, "tiny-llama", "fallback", |d| {
                edit_json(&d.join("tokenizer.json"), &|j| j["model"]["byte_fallback"] = true.into())
            }),
            "needs its tokenizer.model",
        ),
        (
            edited_copy(&dir, "tiny-qwen2", "pre", |d| {
                edit_json(&d.join("tokenizer.json"), &|j| {
                    j["pre_tokenizer"] = serde_json::json!({"type": "Whitespace"})
                })
            }),
            "unknown pre-tokenizer",
        ),
    ];
    for (i, (model, expect)) in cases.iter().enumerate() {
        let out = dir.join(format!("{i}.gguf"));
        let o = triage(&[
            "compress",
            "--model",
            s(model),
            "--calib",
            s(&text),
            "--ctx",
            "32",
            "--tokens",
            "64",
            "--type",
            "Q8_0",
            "--out",
            s(&out),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{expect}: {err}");
        assert!(err.contains(expect) && err.lines().filter(|l| l.starts_with("error")).count() == 1, "{expect}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(!out.exists(), "{expect}: an output was left");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(left.is_empty(), "{expect}: temporaries left: {left:?}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn every_pre_tokenizer_group_gives_llama_tokenizes_ids() {
    // llama-tokenize's ids for a 2000-token vocabulary whose merges cross every split
    // (scripts/make_tokenizer_expectations.py), under one name of each group we run.
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("tokenize-expected.json")).unwrap()).unwrap();
    let (g, _) = GgufFile::read(&fixture("bpe2k.gguf")).unwrap();
    let unicode = std::fs::read_to_string(fixture("unicode.txt")).unwrap();
    let eval = std::fs::read_to_string(common::asset("eval.txt")).unwrap();
    let mut distinct = std::collections::BTreeSet::new();
    for (pre, e) in expected.as_object().unwrap() {
        let mut md: std::collections::HashMap<String, Value> = g.metadata.iter().cloned().collect();
        md.insert("tokenizer.ggml.pre".into(), Value::String(pre.clone()));
        let tok = triage::model::Tokenizer::from_gguf(&md).unwrap();
        let ids = tok.encode(&unicode).unwrap();
        let want: Vec<u32> = e["unicode"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        if let Some(i) = (0..ids.len().max(want.len())).find(|&i| ids.get(i) != want.get(i)) {
            panic!(
                "{pre}: unicode.txt differs from llama-tokenize at token {i}: ours {:?}, llama.cpp {:?}",
                &ids[i.saturating_sub(2)..(i + 3).min(ids.len())],
                &want[i.saturating_sub(2)..(i + 3).min(want.len())]
            );
        }
        let ids = tok.encode(&eval).unwrap();
        let printed = format!("[{}]", ids.iter().map(u32::to_string).collect::<Vec<_>>().join(", "));
        let sha = format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(printed.as_bytes()));
        assert_eq!(
            (ids.len() as u64, sha.as_str()),
            (e["eval_tokens"].as_u64().unwrap(), e["eval_sha256"].as_str().unwrap()),
            "{pre}: eval.txt"
        );
        distinct.insert(sha);
    }
    assert!(distinct.len() >= 3, "the vocabulary tells the groups apart");
}

#[test]
fn gemma3_without_a_block_keeps_its_windowed_blocks_in_llama_cpp() {
    // Removing block 1 of six moves the global block from 5 to 4, off llama.cpp's default
    // pattern: the file must list the kept blocks' windows, and llama.cpp then scores it as we do.
    let dir = tmp_dir("gemma3-drop");
    let (_, _) = compress(&dir, "tiny-gemma3", "shortgpt.gguf", &["--budget", "drop-blocks=2", "--solver", "shortgpt"]);
    let plan_path = dir.join("shortgpt.plan.json");
    let mut plan: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&plan_path).unwrap()).unwrap();
    plan["drop_blocks"] = serde_json::json!([1]);
    let edited = dir.join("drop1.json");
    std::fs::write(&edited, plan.to_string()).unwrap();
    let (out, _) = compress(&dir, "tiny-gemma3", "drop1.gguf", &["--plan", s(&edited)]);
    let (g, _) = GgufFile::read(&out).unwrap();
    let flags = match g.get("gemma3.attention.sliding_window_pattern") {
        Some(Value::Array(a)) => a.iter().map(|v| matches!(v, Value::Bool(true))).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(flags, [true, true, true, true, false]);
    let (k, theirs) = llama_perplexity(&out, 128, 8);
    let ours = triage_ppl(&out, 128, k);
    assert!((ours - theirs).abs() / theirs < 0.01, "triage {ours} llama.cpp {theirs}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn smollm3_without_blocks_off_llama_cpps_nope_pattern_is_refused() {
    // llama.cpp takes every fourth block as SmolLM3's NoPE block, by number: removing block 3
    // (the NoPE block) of four keeps that pattern; removing block 0 moves it, which no key says.
    let dir = tmp_dir("smollm3-drop");
    let text = dir.join("calib.txt");
    std::fs::write(&text, "The nation is at peace and the harvest is good. ".repeat(100)).unwrap();
    let m = fixture("tiny-smollm3");
    let plan_path = dir.join("plan.json");
    ok(triage(&[
        "plan",
        "--model",
        s(&m),
        "--budget",
        "drop-blocks=1",
        "--solver",
        "shortgpt",
        "--calib",
        s(&text),
        "--ctx",
        "32",
        "--tokens",
        "256",
        "--no-cache",
        "--out",
        s(&plan_path),
    ]));
    let mut plan: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&plan_path).unwrap()).unwrap();
    for (drop, written) in [(3, true), (0, false)] {
        plan["drop_blocks"] = serde_json::json!([drop]);
        let edited = dir.join(format!("drop{drop}.json"));
        std::fs::write(&edited, plan.to_string()).unwrap();
        let out = dir.join(format!("drop{drop}.gguf"));
        let o = triage(&[
            "compress",
            "--model",
            s(&m),
            "--plan",
            s(&edited),
            "--calib",
            s(&text),
            "--ctx",
            "32",
            "--tokens",
            "256",
            "--out",
            s(&out),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!((o.status.success(), out.exists()), (written, written), "drop {drop}: {err}");
        assert!(written || err.contains("without RoPE"), "{err}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn folders_named_as_checkpoints_get_the_converters_naming_keys() {
    // A fixture copied under a checkpoint's name: the converter reads basename, finetune,
    // version and size in the name (here `0.5b` and `270m`, far from the fixtures' parameter
    // counts, are read as finetunes, and the size label is the count's), then in config.json's
    // `_name_or_path` first where it is a model id. Expected keys: scripts/make_name_expectations.py
    // on the same folders, every other key the converter's file for the fixture.
    let dir = tmp_dir("naming");
    let cases: [(&str, &str, Option<&str>, &[(&str, &str)]); 2] = [
        (
            "tiny-qwen2",
            "qwen2.5-coder-0.5b-instruct",
            None,
            &[
                ("general.name", "Qwen2.5 Coder 0.5b Instruct"),
                ("general.finetune", "0.5b-instruct"),
                ("general.basename", "qwen2.5-coder"),
                ("general.size_label", "149K"),
            ],
        ),
        (
            "tiny-gemma3",
            "gemma3-270m",
            Some("google/gemma-3-270m-it"),
            &[
                ("general.name", "Gemma 3 270m It"),
                ("general.organization", "Google"),
                ("general.finetune", "270m-it"),
                ("general.basename", "gemma-3"),
                ("general.size_label", "279K"),
            ],
        ),
    ];
    let text = dir.join("calib.txt");
    std::fs::write(&text, "The nation is at peace and the harvest is good. ".repeat(100)).unwrap();
    for (fixture_name, folder, name_or_path, naming) in cases {
        let model = dir.join(fixture_name).join(folder);
        std::fs::create_dir_all(&model).unwrap();
        for e in std::fs::read_dir(fixture(fixture_name)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), model.join(e.file_name())).unwrap();
        }
        if let Some(id) = name_or_path {
            let config = model.join("config.json");
            let mut j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
            j["_name_or_path"] = id.into();
            std::fs::write(&config, j.to_string()).unwrap();
        }
        let out = dir.join(format!("{folder}.gguf"));
        ok(triage(&[
            "compress",
            "--model",
            s(&model),
            "--calib",
            s(&text),
            "--ctx",
            "32",
            "--tokens",
            "64",
            "--type",
            "F16",
            "--out",
            s(&out),
        ]));
        let (ours, _) = GgufFile::read(&out).unwrap();
        let (theirs, _) = GgufFile::read(&fixture(&format!("converter/{fixture_name}.F16.gguf"))).unwrap();
        // The converter's keys for the fixture, its naming keys (name, size label) replaced by
        // those of the folder's name, where the converter writes them.
        let naming_key =
            |k: &str| naming.iter().any(|(n, _)| *n == k) || ["general.name", "general.size_label"].contains(&k);
        let at = theirs.metadata.iter().position(|(k, _)| k == "general.name").unwrap();
        let mut want: Vec<(String, String)> = theirs
            .metadata
            .iter()
            .filter(|(k, _)| !naming_key(k))
            .map(|(k, v)| (k.clone(), format!("{v:?}")))
            .collect();
        let block = naming.iter().map(|(k, v)| (k.to_string(), format!("{:?}", Value::String(v.to_string()))));
        want.splice(at..at, block);
        let got: Vec<(String, String)> = ours
            .metadata
            .iter()
            .filter(|(k, _)| !OURS_ONLY.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), format!("{v:?}")))
            .collect();
        assert_eq!(
            got.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            want.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            "{folder}: the keys and their order"
        );
        assert_eq!(got, want, "{folder}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
