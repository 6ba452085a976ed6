//! `triage compress` end to end: the files it writes load in triage, in llama.cpp (whose
//! perplexity must agree with ours within 1%) and in Python `gguf`; Hugging Face folders give the
//! same model back.

use std::path::{Path, PathBuf};
use std::process::Command;

use triage::model::gguf_file::GgufFile;
use triage::model::Model;

mod common;
use common::{asset, fixture, ok, s, tool, triage};

/// llama.cpp's and triage's perplexity of `gguf` on the same windows (up to `chunks`).
fn both_perplexities(gguf: &Path, chunks: usize) -> (f64, f64) {
    let (k, theirs) = common::llama_perplexity(gguf, 512, chunks);
    (common::triage_ppl(gguf, 512, k), theirs)
}

fn triage_ppl(model: &Path, windows: usize) -> f64 {
    common::triage_ppl(model, 512, windows)
}

fn smollm() -> PathBuf {
    asset("SmolLM2-135M-Instruct.Q4_1.gguf")
}

fn tmp_dir(tag: &str) -> PathBuf {
    common::tmp_dir("compress", tag)
}

/// A text long enough for a few windows of the tiny models.
fn long_text(dir: &Path) -> PathBuf {
    let p = dir.join("long.txt");
    std::fs::write(&p, "The nation is at peace and the harvest is good. Congress met in December. ".repeat(200))
        .unwrap();
    p
}

fn tiny_compress(dir: &Path, model: &str, out: &str, extra: &[&str]) -> PathBuf {
    let text = long_text(dir);
    let out = dir.join(out);
    let mut args = vec!["compress", "--model"];
    let m = fixture(model);
    args.extend([s(&m), "--calib", s(&text), "--ctx", "32", "--tokens", "256", "--out", s(&out)]);
    args.extend(extra);
    ok(triage(&args));
    out
}

fn weights(m: &Model, name: &str) -> Vec<f32> {
    let b: usize = name.split('.').nth(1).unwrap().parse().unwrap();
    let l = m.blocks[b].linears().into_iter().find(|l| l.name == name).unwrap();
    l.weight.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    let d: f32 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
    let n: f32 = a.iter().map(|x| x * x).sum();
    (d / n).sqrt()
}

#[test]
fn dropping_a_block_renumbers_and_quantizes_the_rest() {
    let dir = tmp_dir("drop");
    let out = tiny_compress(&dir, "tiny-llama.gguf", "t.gguf", &["--type", "Q8_0", "--drop-blocks", "1"]);
    let orig = Model::load(&fixture("tiny-llama.gguf")).unwrap();
    let m = Model::load(&out).unwrap();
    assert_eq!(m.blocks.len(), 2);
    assert_eq!(m.config.n_layers, 2);
    // Old block 2 is new block 1, within Q8_0's error.
    let e = rel_diff(&weights(&orig, "blk.2.attn_q.weight"), &weights(&m, "blk.1.attn_q.weight"));
    assert!(e < 0.01, "{e}");
    for (name, t) in &m.source.tensor_types {
        let expect = if name.contains("norm") || name.starts_with("rope_freqs") { "F32" } else { "Q8_0" };
        assert_eq!(t, expect, "{name}");
    }
    let (g, _) = GgufFile::read(&out).unwrap();
    assert!(matches!(g.get("llama.block_count"), Some(triage::model::gguf_file::Value::U32(2))));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_plan_sets_each_tensor_and_sparsity_is_exact() {
    let dir = tmp_dir("plan");
    let plan = dir.join("plan.json");
    std::fs::write(
        &plan,
        r#"{"tensors": {"blk.0.attn_q.weight": "Q4_0", "blk.1.ffn_down.weight": {"type": "F16", "sparsity": "2:4"},
            "blk.2.ffn_up.weight": {"type": "F16", "sparsity": 0.5}}, "drop_attention": [2]}"#,
    )
    .unwrap();
    let out = tiny_compress(&dir, "tiny-qwen2.gguf", "p.gguf", &["--plan", s(&plan), "--pruner", "wanda"]);
    let m = Model::load(&out).unwrap();
    let types = &m.source.tensor_types;
    assert_eq!(types["blk.0.attn_q.weight"], "Q4_0");
    assert_eq!(types["blk.1.ffn_down.weight"], "F16");
    assert_eq!(types["blk.0.attn_k.weight"], "F32", "unplanned tensors keep their bytes");
    let down = weights(&m, "blk.1.ffn_down.weight");
    for g in down.chunks(4) {
        assert!(g.iter().filter(|&&x| x == 0.0).count() >= 2);
    }
    let up = weights(&m, "blk.2.ffn_up.weight");
    let zeros = up.iter().filter(|&&x| x == 0.0).count();
    assert_eq!(zeros, up.len() / 2);
    // The removed attention adds nothing: its output projection is zero.
    assert!(weights(&m, "blk.2.attn_output.weight").iter().all(|&x| x == 0.0));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn sparsegpt_and_wanda_keep_the_output_closer_than_magnitude() {
    // On the tiny model's calibration text: relative output error of each pruned linear.
    let dir = tmp_dir("pruners");
    let mut err = Vec::new();
    for p in ["magnitude", "wanda", "sparsegpt"] {
        let report = dir.join(format!("{p}.json"));
        tiny_compress(
            &dir,
            "tiny-llama.gguf",
            &format!("{p}.gguf"),
            &["--sparsity", "0.5", "--pruner", p, "--report", s(&report)],
        );
        let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        let e: f64 = j["tensors"].as_array().unwrap().iter().filter_map(|t| t["rel_error"].as_f64()).sum();
        err.push(e);
    }
    assert!(err[2] < err[1] && err[1] < err[0], "magnitude, wanda, sparsegpt: {err:?}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Python `gguf` (tools/pyenv, made by scripts/test.sh) reads the file: tensor count and types.
fn python_gguf_types(gguf: &Path) -> String {
    let py = tool("pyenv/bin/python");
    let out = Command::new(py)
        .args(["-c", "import sys, gguf, collections; r = gguf.GGUFReader(sys.argv[1]); c = collections.Counter(t.tensor_type.name for t in r.tensors); print(len(r.tensors), sorted(c.items()))"])
        .arg(gguf)
        .output()
        .unwrap();
    assert!(out.status.success(), "gguf failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn smollm2_files_run_in_llama_cpp_with_the_same_perplexity() {
    let dir = tmp_dir("llama");
    let calib = asset("calib.txt");
    let cases: [(&str, &[&str]); 8] = [
        ("q4k-gptq.gguf", &["--type", "Q4_K", "--method", "gptq"]),
        ("iq4xs-gptq.gguf", &["--type", "IQ4_XS", "--method", "gptq"]),
        ("iq3s-imatrix.gguf", &["--type", "IQ3_S", "--method", "imatrix", "--embeddings-type", "Q8_0"]),
        ("iq3xxs-gptq.gguf", &["--type", "IQ3_XXS", "--method", "gptq", "--embeddings-type", "Q8_0"]),
        ("iq2xs-gptq.gguf", &["--type", "IQ2_XS", "--method", "gptq", "--embeddings-type", "Q8_0"]),
        ("iq2s-imatrix.gguf", &["--type", "IQ2_S", "--method", "imatrix", "--embeddings-type", "Q8_0"]),
        ("q3k-imatrix.gguf", &["--type", "Q3_K", "--method", "imatrix", "--drop-attention", "3"]),
        ("sparse-drop.gguf", &["--sparsity", "2:4", "--drop-blocks", "28", "--embeddings-type", "Q8_0"]),
    ];
    for (name, extra) in cases {
        let out = dir.join(name);
        let mut args = vec!["compress", "--model"];
        let m = smollm();
        args.extend([s(&m), "--calib", s(&calib), "--tokens", "1024", "--out", s(&out)]);
        args.extend(extra);
        ok(triage(&args));
        let (ours, theirs) = both_perplexities(&out, 4);
        let rel = (ours - theirs).abs() / theirs;
        assert!(rel < 0.01, "{name}: triage {ours} llama.cpp {theirs} ({:.3}%)", 100.0 * rel);
        let types = python_gguf_types(&out);
        match name {
            // 30 blocks × 9 + embedding + output norm; ffn_down takes Q4_K, the 576-wide rest Q5_0.
            "q4k-gptq.gguf" => assert_eq!(types, "272 [('F32', 61), ('Q4_K', 30), ('Q5_0', 181)]"),
            // IQ4_XS where rows tile 256, its fall-back IQ4_NL elsewhere (llama-quantize's rule).
            "iq4xs-gptq.gguf" => assert_eq!(types, "272 [('F32', 61), ('IQ4_NL', 181), ('IQ4_XS', 30)]"),
            "iq3s-imatrix.gguf" => assert_eq!(types, "272 [('F32', 61), ('IQ3_S', 30), ('IQ4_NL', 180), ('Q8_0', 1)]"),
            "iq3xxs-gptq.gguf" => assert_eq!(types, "272 [('F32', 61), ('IQ3_XXS', 30), ('IQ4_NL', 180), ('Q8_0', 1)]"),
            "iq2xs-gptq.gguf" => assert_eq!(types, "272 [('F32', 61), ('IQ2_XS', 30), ('IQ4_NL', 180), ('Q8_0', 1)]"),
            "iq2s-imatrix.gguf" => assert_eq!(types, "272 [('F32', 61), ('IQ2_S', 30), ('IQ4_NL', 180), ('Q8_0', 1)]"),
            "q3k-imatrix.gguf" => assert!(types.contains("('Q3_K', 30)") && types.contains("('Q4_0',"), "{types}"),
            _ => assert!(types.starts_with("263 "), "one block (9 tensors) fewer: {types}"),
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn hugging_face_folder_holds_the_same_model() {
    let dir = tmp_dir("hf");
    let calib = asset("calib.txt");
    let m = smollm();
    let common = ["--calib", s(&calib), "--tokens", "512", "--type", "Q8_0", "--method", "rtn"];
    let gguf = dir.join("q8.gguf");
    let folder = dir.join("q8-hf");
    for out in [&gguf, &folder] {
        let mut args = vec!["compress", "--model", s(&m), "--out", s(out)];
        args.extend(common);
        ok(triage(&args));
    }
    for f in ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
        assert!(folder.join(f).exists(), "{f}");
    }
    // The folder (f16, Hugging Face q/k layout) and the GGUF (Q8_0) are the same model up to
    // the f16 rounding of the Q8_0 values.
    let (a, b) = (triage_ppl(&gguf, 2), triage_ppl(&folder, 2));
    assert!((a - b).abs() / a < 1e-3, "gguf {a} folder {b}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_gguf_goes_to_a_sharded_bf16_folder_and_back_with_its_tokenizer_and_chat_template() {
    let dir = tmp_dir("round-trip");
    let calib = asset("calib.txt");
    let folder = dir.join("bf16");
    let m = smollm();
    ok(triage(&[
        "compress",
        "--model",
        s(&m),
        "--calib",
        s(&calib),
        "--tokens",
        "512",
        "--type",
        "F32",
        "--method",
        "rtn",
        "--hf-dtype",
        "bf16",
        "--hf-shard-size",
        "100MB",
        "--out",
        s(&folder),
    ]));
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("model.safetensors.index.json")).unwrap()).unwrap();
    let shards: std::collections::BTreeSet<&str> =
        index["weight_map"].as_object().unwrap().values().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(shards.len(), 3, "{shards:?}");
    assert!(shards.iter().all(|f| folder.join(f).exists()));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        (config["torch_dtype"].as_str(), config["bos_token_id"].as_u64(), config["eos_token_id"].as_u64()),
        (Some("bfloat16"), Some(1), Some(2))
    );
    let tc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("tokenizer_config.json")).unwrap()).unwrap();
    assert_eq!((tc["bos_token"].as_str(), tc["eos_token"].as_str()), (Some("<|im_start|>"), Some("<|im_end|>")));
    // Back to GGUF from the folder: what llama.cpp reads of the tokenizer is the original's.
    let back = dir.join("back.gguf");
    ok(triage(&[
        "compress",
        "--model",
        s(&folder),
        "--calib",
        s(&calib),
        "--tokens",
        "512",
        "--type",
        "Q8_0",
        "--method",
        "rtn",
        "--out",
        s(&back),
    ]));
    let ((a, _), (b, _)) = (GgufFile::read(&m).unwrap(), GgufFile::read(&back).unwrap());
    for k in [
        "tokenizer.ggml.model",
        "tokenizer.ggml.pre",
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.token_type",
        "tokenizer.ggml.merges",
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.unknown_token_id",
        "tokenizer.ggml.padding_token_id",
        "tokenizer.ggml.add_bos_token",
        "tokenizer.ggml.add_space_prefix",
        "tokenizer.chat_template",
        "llama.context_length",
        "llama.embedding_length",
        "llama.feed_forward_length",
        "llama.attention.head_count",
        "llama.attention.head_count_kv",
        "llama.rope.freq_base",
        "llama.attention.layer_norm_rms_epsilon",
        "llama.vocab_size",
        "llama.rope.dimension_count",
    ] {
        assert_eq!(format!("{:?}", a.get(k)), format!("{:?}", b.get(k)), "{k}");
    }
    // The same model: bf16 rounding of the Q4_1 values, then Q8_0.
    let (pa, pb) = (triage_ppl(&m, 2), triage_ppl(&back, 2));
    assert!((pa - pb).abs() / pa < 0.01, "source {pa} round trip {pb}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_folder_with_llama3_rope_scaling_becomes_a_folder_again() {
    let dir = tmp_dir("hf-hf");
    let out = dir.join("out");
    let text = long_text(&dir);
    let m = fixture("tiny-llama");
    ok(triage(&[
        "compress",
        "--model",
        s(&m),
        "--calib",
        s(&text),
        "--ctx",
        "32",
        "--tokens",
        "256",
        "--type",
        "F16",
        "--drop-blocks",
        "1",
        "--out",
        s(&out),
    ]));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["rope_scaling"]["rope_type"], "llama3", "the source's RoPE scaling is carried over");
    assert_eq!(config["num_hidden_layers"], 2);
    for f in ["tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
        assert_eq!(std::fs::read(out.join(f)).unwrap(), std::fs::read(m.join(f)).unwrap(), "{f} is the source's");
    }
    let back = triage::model::Model::load(&out).unwrap();
    assert_eq!(back.blocks.len(), 2);
    assert_eq!(back.config.rope_freq_factors, triage::model::Model::load(&m).unwrap().config.rope_freq_factors);
    std::fs::remove_dir_all(&dir).ok();
}

/// The linears of a written GGUF (blk.*, norms left out), read straight from its bytes: name,
/// type, row width and the values the bytes decode to.
fn written_linears(gguf: &Path) -> Vec<(String, String, usize, Vec<f32>)> {
    let (g, mut f) = GgufFile::read(gguf).unwrap();
    g.tensors
        .iter()
        .filter(|t| t.name.starts_with("blk.") && !t.name.contains("norm"))
        .map(|t| {
            let qt = t.qtype().unwrap();
            let bytes = g.read_data(&mut f, t).unwrap();
            (
                t.name.clone(),
                qt.name().to_string(),
                t.ne[0] as usize,
                triage::ggml::codec::dequantize(qt, &bytes, t.n_elements() as usize),
            )
        })
        .collect()
}

fn zeros(v: &[f32]) -> usize {
    v.iter().filter(|&&x| x == 0.0).count()
}

#[test]
fn sparsity_under_gptq_onto_a_quantized_type_is_in_the_written_bytes() {
    let dir = tmp_dir("sparse-gptq");
    // SparseGPT's 2:4 inside GPTQ (the default method) onto Q8_0: two exact zeros in every group of 4.
    let text = long_text(&dir);
    let (out, report) = (dir.join("nm.gguf"), dir.join("nm.json"));
    let m = fixture("tiny-llama.gguf");
    let stdout = ok(triage(&[
        "compress",
        "--model",
        s(&m),
        "--calib",
        s(&text),
        "--ctx",
        "32",
        "--tokens",
        "256",
        "--sparsity",
        "2:4",
        "--type",
        "Q8_0",
        "--report",
        s(&report),
        "--out",
        s(&out),
    ]));
    let linears = written_linears(&out);
    assert_eq!(linears.len(), 21);
    for (name, t, _, v) in &linears {
        assert_eq!(t, "Q8_0", "{name}");
        for (i, g) in v.chunks(4).enumerate() {
            assert!(zeros(g) >= 2, "{name}: group {i} is {g:?}");
        }
    }
    assert!(
        stdout.contains("sparsity: 50.0% requested, ")
            && stdout.contains("% measured in the written weights over 21 linears"),
        "{stdout}"
    );
    assert!(!stdout.contains("warning:"), "{stdout}");
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(j["sparsity"]["requested"], 0.5);
    assert!(j["sparsity"]["measured"].as_f64().unwrap() >= 0.5, "{}", j["sparsity"]);
    // Magnitude's and Wanda's masks, fixed before GPTQ, stay zero through its updates (each row
    // pruned by half); SparseGPT's share is over blocks of columns.
    for pruner in ["magnitude", "wanda", "sparsegpt"] {
        let out = tiny_compress(
            &dir,
            "tiny-llama.gguf",
            &format!("{pruner}.gguf"),
            &["--sparsity", "0.5", "--pruner", pruner, "--type", "Q8_0"],
        );
        for (name, _, cols, v) in written_linears(&out) {
            assert!(zeros(&v) * 2 >= v.len(), "{pruner}: {name} holds {} zeros of {}", zeros(&v), v.len());
            if pruner != "sparsegpt" {
                assert!(v.chunks(cols).all(|row| zeros(row) * 2 >= cols), "{pruner}: {name}");
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_report_measures_the_sparsity_the_file_holds() {
    // Q4_0 has a 0 level; Q4_1 (a minimum plus steps) has none: its pruned weights are written as
    // its value nearest 0, which the report and a warning say.
    let dir = tmp_dir("sparse-report");
    let plan = dir.join("plan.json");
    std::fs::write(
        &plan,
        r#"{"tensors": {"blk.0.attn_q.weight": {"type": "Q4_0", "sparsity": 0.5}, "blk.1.ffn_down.weight": {"type": "Q4_0", "sparsity": "2:4"},
            "blk.2.ffn_up.weight": {"type": "Q4_1", "sparsity": 0.5}, "blk.2.ffn_gate.weight": "Q8_0"}}"#,
    )
    .unwrap();
    let text = long_text(&dir);
    let (out, report) = (dir.join("p.gguf"), dir.join("p.json"));
    let m = fixture("tiny-llama.gguf");
    let o = triage(&[
        "compress",
        "--model",
        s(&m),
        "--calib",
        s(&text),
        "--ctx",
        "32",
        "--tokens",
        "256",
        "--plan",
        s(&plan),
        "--report",
        s(&report),
        "--out",
        s(&out),
    ]);
    let (stdout, stderr) =
        (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned());
    assert!(o.status.success(), "{stderr}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains("1 of 3 pruned linears hold fewer zeros than requested: Q4_1 has no 0 level"),
        "{stderr}"
    );
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let file: std::collections::BTreeMap<String, (String, usize, Vec<f32>)> =
        written_linears(&out).into_iter().map(|(n, t, c, v)| (n, (t, c, v))).collect();
    let (mut held, mut total) = (0, 0);
    for t in j["tensors"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        let (qtype, _, v) = &file[name];
        assert_eq!(t["type"].as_str(), Some(qtype.as_str()));
        assert_eq!(t["zeros"].as_f64().unwrap(), zeros(v) as f64 / v.len() as f64, "{name}");
        if t["sparsity"].as_f64().is_some() {
            held += zeros(v);
            total += v.len();
        }
    }
    assert_eq!(j["sparsity"]["linears"], 3);
    assert_eq!(j["sparsity"]["short"], 1);
    assert_eq!(j["sparsity"]["requested"], 0.5);
    let measured = j["sparsity"]["measured"].as_f64().unwrap();
    assert!((measured - held as f64 / total as f64).abs() < 1e-12, "report {measured}, file {held}/{total}");
    assert!(
        stdout.contains(&format!(
            "sparsity: 50.0% requested, {:.2}% measured in the written weights over 3 linears",
            100.0 * measured
        )),
        "{stdout}"
    );
    // The Q4_0 tensors hold their masks exactly.
    assert!(zeros(&file["blk.0.attn_q.weight"].2) * 2 >= 64 * 64);
    assert!(file["blk.1.ffn_down.weight"].2.chunks(4).all(|g| zeros(g) >= 2));
    std::fs::remove_dir_all(&dir).ok();
}
