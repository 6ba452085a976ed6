//! Bad input gets one clear line on stderr and a non-zero exit — never a panic.

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn tmp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("triage-bad-input-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A text long enough for a few windows of the tiny models.
fn long_text(dir: &Path) -> PathBuf {
    let p = dir.join("long.txt");
    std::fs::write(&p, "The nation is at peace and the harvest is good. ".repeat(200)).unwrap();
    p
}

/// Runs `triage eval` and returns stderr, asserting failure with one line and no panic.
fn eval_fails(model: &Path, text: &Path, extra: &[&str], expect: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_triage"))
        .args(["eval", "--model"])
        .arg(model)
        .arg("--text")
        .arg(text)
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, got success; stderr: {stderr}");
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains(expect), "'{expect}' not in: {stderr}");
    assert!(out.stdout.is_empty(), "no output expected on failure");
}

/// Rewrites tiny-llama.gguf with `edit` applied to its metadata and tensors.
fn edited_gguf(dir: &Path, edit: impl FnOnce(&mut Vec<(String, Value)>, &mut Vec<(String, QTensor)>)) -> PathBuf {
    let src = fixture("tiny-llama.gguf");
    let mut f = std::fs::File::open(&src).unwrap();
    let content = gguf_file::Content::read(&mut f).unwrap();
    let mut md: Vec<(String, Value)> = content.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let mut tensors: Vec<(String, QTensor)> =
        names.iter().map(|n| ((*n).clone(), content.tensor(&mut f, n, &Device::Cpu).unwrap())).collect();
    edit(&mut md, &mut tensors);
    let out = dir.join("edited.gguf");
    let mut w = std::fs::File::create(&out).unwrap();
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    gguf_file::write(&mut w, &md_refs, &t_refs).unwrap();
    out
}

#[test]
fn missing_model_file() {
    let d = tmp_dir("missing");
    eval_fails(&d.join("nope.gguf"), &long_text(&d), &[], "nope.gguf: No such file");
}

#[test]
fn missing_text_file() {
    let d = tmp_dir("missing-text");
    eval_fails(&fixture("tiny-llama.gguf"), &d.join("nope.txt"), &["--ctx", "64"], "nope.txt: No such file");
}

#[test]
fn not_a_model() {
    let d = tmp_dir("not-model");
    let t = long_text(&d);
    eval_fails(&t, &t, &[], "not a model: neither a GGUF file");
}

#[test]
fn truncated_gguf_data() {
    let d = tmp_dir("trunc");
    let bytes = std::fs::read(fixture("tiny-llama.gguf")).unwrap();
    let p = d.join("t.gguf");
    std::fs::write(&p, &bytes[..bytes.len() - 1000]).unwrap();
    eval_fails(&p, &long_text(&d), &[], "invalid GGUF: truncated: tensor");
}

#[test]
fn truncated_gguf_header() {
    let d = tmp_dir("trunc-header");
    let bytes = std::fs::read(fixture("tiny-llama.gguf")).unwrap();
    let p = d.join("t.gguf");
    std::fs::write(&p, &bytes[..200]).unwrap();
    eval_fails(&p, &long_text(&d), &[], "header runs past the end of the file");
}

#[test]
fn unsupported_architecture() {
    let d = tmp_dir("arch");
    let p = edited_gguf(&d, |md, _| {
        for (k, v) in md.iter_mut() {
            if k == "general.architecture" {
                *v = Value::String("mamba".into());
            }
        }
    });
    eval_fails(&p, &long_text(&d), &[], "unsupported model: GGUF architecture 'mamba'");
}

#[test]
fn tensor_shape_not_matching_config() {
    let d = tmp_dir("shape");
    let p = edited_gguf(&d, |md, _| {
        for (k, v) in md.iter_mut() {
            if k == "llama.feed_forward_length" {
                *v = Value::U32(128);
            }
        }
    });
    eval_fails(
        &p,
        &long_text(&d),
        &[],
        "tensor 'blk.0.ffn_gate.weight' has shape [160, 64], the configuration implies [128, 64]",
    );
}

/// A copy of the tiny-qwen2 folder, to damage.
fn qwen2_copy(tag: &str) -> PathBuf {
    folder_copy("tiny-qwen2", tag)
}

fn folder_copy(fixture_name: &str, tag: &str) -> PathBuf {
    let d = tmp_dir(tag);
    for e in std::fs::read_dir(fixture(fixture_name)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), d.join(e.file_name())).unwrap();
    }
    d
}

#[test]
fn gemma_and_phi3_configurations_out_of_range_are_refused_in_one_line() {
    // Each case once aborted or would: per-block window flags sized by a huge block count (the
    // fuzzer's 1 TiB allocation), a zero query scalar, LongRoPE factors of the wrong length.
    for (name, from, to, expect) in [
        (
            "tiny-gemma3",
            "\"num_hidden_layers\": 6",
            "\"num_hidden_layers\": 1099511627776",
            "1099511627776 layers (at most 4096 are supported)",
        ),
        (
            "tiny-gemma3",
            "\"query_pre_attn_scalar\": 16",
            "\"query_pre_attn_scalar\": 0",
            "attention scale inf is not a finite positive number",
        ),
        (
            "tiny-gemma3",
            "\"sliding_window_pattern\": 6",
            "\"layer_types\": [\"sliding_attention\"]",
            "1 layer_types for 6 layers",
        ),
        (
            "tiny-phi3",
            "\"original_max_position_embeddings\": 64",
            "\"original_max_position_embeddings\": 0",
            "RoPE attention factor NaN is not a finite positive number",
        ),
        (
            "tiny-phi3",
            "\"rms_norm_eps\"",
            "\"partial_rotary_factor\": 0.75, \"rms_norm_eps\"",
            "partial_rotary_factor 0.75 (RoPE over part of each head)",
        ),
    ] {
        let d = folder_copy(name, &format!("{name}-range"));
        let cfg = std::fs::read_to_string(d.join("config.json")).unwrap();
        assert!(cfg.contains(from), "{name}: {from}");
        std::fs::write(d.join("config.json"), cfg.replace(from, to)).unwrap();
        eval_fails(&d, &long_text(&d), &["--ctx", "64"], expect);
    }
}

#[test]
fn truncated_safetensors() {
    let d = qwen2_copy("hf-trunc");
    let w = d.join("model.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    eval_fails(&d, &long_text(&d), &[], "cannot read safetensors");
}

#[test]
fn hf_config_not_matching_weights() {
    let d = qwen2_copy("hf-shape");
    let cfg = std::fs::read_to_string(d.join("config.json")).unwrap();
    std::fs::write(d.join("config.json"), cfg.replace("\"hidden_size\": 64", "\"hidden_size\": 48")).unwrap();
    eval_fails(
        &d,
        &long_text(&d),
        &[],
        "tensor 'token_embd.weight' has shape [300, 64], the configuration implies [300, 48]",
    );
}

#[test]
fn nan_weights() {
    let d = tmp_dir("nan");
    let p = edited_gguf(&d, |_, tensors| {
        for (k, v) in tensors.iter_mut() {
            if k == "blk.1.attn_v.weight" {
                let nan = Tensor::full(f32::NAN, v.shape().dims(), &Device::Cpu).unwrap();
                *v = QTensor::quantize(&nan, GgmlDType::F32).unwrap();
            }
        }
    });
    eval_fails(&p, &long_text(&d), &[], "tensor 'blk.1.attn_v.weight' contains NaN");
}

#[test]
fn empty_text() {
    let d = tmp_dir("empty");
    let t = d.join("empty.txt");
    std::fs::write(&t, "  \n").unwrap();
    eval_fails(&fixture("tiny-llama.gguf"), &t, &["--ctx", "64"], "the text is empty");
}

#[test]
fn text_shorter_than_one_window() {
    let d = tmp_dir("short");
    let t = d.join("short.txt");
    std::fs::write(&t, "Hello there.").unwrap();
    eval_fails(&fixture("tiny-llama.gguf"), &t, &["--ctx", "64"], "fewer than one window of 64");
}

#[test]
fn ctx_beyond_the_model_context() {
    let d = tmp_dir("ctx");
    eval_fails(
        &fixture("tiny-qwen2.gguf"),
        &long_text(&d),
        &["--ctx", "512"],
        "window length 512 exceeds the context length 256",
    );
}

#[test]
fn reference_with_another_vocabulary() {
    let d = tmp_dir("vocab");
    let p = edited_gguf(&d, |_, tensors| {
        for (k, v) in tensors.iter_mut() {
            if k == "token_embd.weight" || k == "output.weight" {
                let t = Tensor::zeros((310, 64), candle_core::DType::F32, &Device::Cpu).unwrap();
                *v = QTensor::quantize(&t, GgmlDType::F32).unwrap();
            }
        }
    });
    eval_fails(
        &fixture("tiny-llama.gguf"),
        &long_text(&d),
        &["--ctx", "64", "--reference", p.to_str().unwrap()],
        "the reference model has 310 vocabulary entries, the model 300",
    );
}

#[test]
fn eval_succeeds_on_a_tiny_model_with_json() {
    let d = tmp_dir("ok");
    let out = Command::new(env!("CARGO_BIN_EXE_triage"))
        .args(["eval", "--json", "--ctx", "64", "--model"])
        .arg(fixture("tiny-llama.gguf"))
        .arg("--text")
        .arg(long_text(&d))
        .arg("--reference")
        .arg(fixture("tiny-llama"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in
        ["ppl", "tokens_scored", "windows", "ctx", "kld_mean", "kld_median", "kld_p99", "top1_agree", "tokens_per_s"]
    {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    // The GGUF and the HF folder hold the same f32 weights: KL ≈ 0, top-1 always agrees.
    assert!(v["kld_mean"].as_f64().unwrap() < 1e-6, "{v}");
    assert_eq!(v["top1_agree"].as_f64().unwrap(), 1.0);
    assert_eq!(v["tokens_scored"].as_u64().unwrap(), v["windows"].as_u64().unwrap() * 63);
}

/// Runs `triage profile` on the tiny model and asserts a one-line failure with no output left.
fn profile_fails(extra: &[&str], expect: &str) {
    profile_fails_with(extra, 1, expect)
}

/// A value refused by its flag's parser: a usage error, exit 2.
fn profile_refused(extra: &[&str], expect: &str) {
    profile_fails_with(extra, 2, expect)
}

fn profile_fails_with(extra: &[&str], code: i32, expect: &str) {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let d = tmp_dir(&format!("profile-{}-{}", expect.len(), CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
    let out_dir = d.join("out");
    let out = Command::new(env!("CARGO_BIN_EXE_triage"))
        .args(["profile", "--ctx", "64", "--model"])
        .arg(fixture("tiny-llama.gguf"))
        .arg("--calib")
        .arg(long_text(&d))
        .arg("--out")
        .arg(&out_dir)
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {stderr}");
    assert!(lines[0].starts_with("error: ") && lines[0].contains(expect), "'{expect}' not in: {stderr}");
    assert!(!out_dir.join("profile.json").exists(), "no profile.json on failure");
}

#[test]
fn profile_with_fewer_tokens_than_a_window() {
    profile_fails(&["--tokens", "32"], "--tokens 32 is less than one window of --ctx 64");
}

#[test]
fn profile_with_an_unknown_quantization_type() {
    profile_refused(&["--full", "Q4_0,Q9_9"], "unknown tensor type 'Q9_9'");
}

#[test]
fn profile_with_a_file_that_is_not_an_imatrix() {
    let d = tmp_dir("imatrix-in");
    let bogus = d.join("bogus.dat");
    std::fs::write(&bogus, b"\x05\x00\x00\x00\xff\xff\xff\xff").unwrap();
    profile_fails(&["--imatrix-in", bogus.to_str().unwrap()], "not an imatrix file");
}

#[test]
fn profile_writes_json_report_and_imatrix() {
    let d = tmp_dir("profile-ok");
    let out = Command::new(env!("CARGO_BIN_EXE_triage"))
        .args(["profile", "--ctx", "64", "--tokens", "256", "--ablation-tokens", "128", "--model"])
        .arg(fixture("tiny-qwen2.gguf"))
        .arg("--calib")
        .arg(long_text(&d))
        .arg("--out")
        .arg(d.join("out"))
        .arg("--imatrix-out")
        .arg(d.join("out/imatrix.gguf"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for f in ["profile.json", "report.html", "imatrix.gguf"] {
        assert!(d.join("out").join(f).exists(), "{f} missing");
    }
    let leftovers: Vec<_> = std::fs::read_dir(d.join("out"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind");
}

/// Runs `triage compress` on the tiny llama with `extra` flags, asserting one error line, exit 1
/// and that the output folder holds nothing afterwards (no partial or temporary file).
fn compress_fails(extra: &[&str], expect: &str) {
    compress_fails_with(&fixture("tiny-llama.gguf"), "o.gguf", extra, expect)
}

/// A value refused by its flag's parser (--type, --sparsity, --budget, sizes): a usage error,
/// exit 2.
fn compress_refused(extra: &[&str], expect: &str) {
    compress_exits(&fixture("tiny-llama.gguf"), "o.gguf", extra, 2, expect)
}

fn compress_fails_with(model: &Path, out_name: &str, extra: &[&str], expect: &str) {
    compress_exits(model, out_name, extra, 1, expect)
}

fn compress_exits(model: &Path, out_name: &str, extra: &[&str], code: i32, expect: &str) {
    // A folder of its own per call: tests run in parallel, and expectations share lengths.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let d = tmp_dir(&format!("compress-{}-{}", expect.len(), CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
    let text = long_text(&d);
    let outdir = d.join("out");
    std::fs::create_dir_all(&outdir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_triage"))
        .args(["compress", "--model"])
        .arg(model)
        .arg("--calib")
        .arg(&text)
        .args(["--ctx", "32", "--tokens", "64", "--out"])
        .arg(outdir.join(out_name))
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {stderr}");
    assert!(lines[0].starts_with("error: ") && lines[0].contains(expect), "'{expect}' not in: {stderr}");
    assert_eq!(std::fs::read_dir(&outdir).unwrap().count(), 0, "output left behind");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn compress_with_an_unknown_type() {
    compress_refused(&["--type", "Q4_X"], "unknown tensor type 'Q4_X'");
}

#[test]
fn compress_with_sparsity_outside_the_unit_interval() {
    compress_refused(&["--sparsity", "1.5"], "sparsity 1.5 is outside [0, 1)");
    compress_refused(&["--sparsity", "4:2"], "N:M needs whole numbers with N < M");
}

#[test]
fn compress_dropping_more_blocks_than_exist() {
    compress_fails(&["--drop-blocks", "0,1,2"], "cannot drop 3 blocks of a model that has 3");
    compress_fails(&["--drop-blocks", "7"], "block 7 does not exist");
}

#[test]
fn compress_with_a_plan_naming_missing_tensors() {
    let d = tmp_dir("plan");
    let plan = d.join("plan.json");
    std::fs::write(&plan, r#"{"tensors": {"blk.9.attn_q.weight": "Q8_0"}}"#).unwrap();
    compress_fails(
        &["--plan", plan.to_str().unwrap()],
        "names tensor 'blk.9.attn_q.weight', which the model does not have",
    );
    std::fs::write(&plan, r#"{"tensors": {"blk.0.attn_q.weight": "Q4_K"}}"#).unwrap();
    compress_fails(&["--plan", plan.to_str().unwrap()], "rows of 64 are not a multiple of 256");
    std::fs::write(&plan, "{not json").unwrap();
    compress_fails(&["--plan", plan.to_str().unwrap()], "not valid JSON");
}

#[test]
fn compress_with_nothing_to_do() {
    compress_fails(&[], "nothing to do");
}

#[test]
fn compress_to_outputs_that_cannot_be_written() {
    compress_fails_with(&fixture("tiny-llama.gguf"), "missing/x.gguf", &["--type", "Q8_0"], "missing does not exist");
    // The tiny llama GGUF uses llama3 RoPE scaling, whose parameters a GGUF does not keep.
    compress_fails_with(
        &fixture("tiny-llama.gguf"),
        "folder",
        &["--type", "Q8_0"],
        "llama3 RoPE scaling, whose parameters a GGUF does not keep",
    );
    compress_exits(
        &fixture("tiny-qwen2"),
        "folder",
        &["--type", "Q8_0", "--hf-shard-size", "5XB"],
        2,
        "for '--hf-shard-size <HF_SHARD_SIZE>': unknown size unit",
    );
}

/// Sets metadata `key` of the tiny llama to `value` (adding it if absent).
fn gguf_with(dir: &Path, key: &str, value: Value) -> PathBuf {
    edited_gguf(dir, |md, _| match md.iter_mut().find(|(k, _)| k == key) {
        Some((_, v)) => *v = value,
        None => md.push((key.to_string(), value)),
    })
}

#[test]
fn negative_block_count() {
    let d = tmp_dir("block-count-negative");
    let p = gguf_with(&d, "llama.block_count", Value::I32(-1));
    eval_fails(
        &p,
        &long_text(&d),
        &[],
        "edited.gguf: invalid model configuration: metadata 'llama.block_count' is -1, a size cannot be negative",
    );
}

#[test]
fn block_count_beyond_the_tensors() {
    let d = tmp_dir("block-count-huge");
    let p = gguf_with(&d, "llama.block_count", Value::U64(1 << 40));
    eval_fails(&p, &long_text(&d), &[], "edited.gguf: invalid model configuration: llama.block_count is 1099511627776, but the file holds only 31 tensors");
}

#[test]
fn head_dimension_whose_products_overflow() {
    let d = tmp_dir("head-dim");
    let p = gguf_with(&d, "llama.attention.key_length", Value::U64(1 << 62));
    eval_fails(&p, &long_text(&d), &[], "head dimension 4611686018427387904 is outside 1..=16777216");
}

#[test]
fn duplicated_metadata_key() {
    let d = tmp_dir("dup-key");
    let p = edited_gguf(&d, |md, _| md.push(("llama.block_count".into(), Value::U32(2))));
    eval_fails(&p, &long_text(&d), &[], "invalid GGUF: metadata key 'llama.block_count' appears twice");
}

#[test]
fn tensor_with_more_than_2_40_elements() {
    let d = tmp_dir("ne");
    let bytes = std::fs::read(fixture("tiny-llama.gguf")).unwrap();
    let g = triage::model::gguf_file::GgufFile::from_bytes(&bytes).unwrap();
    // A matrix's info: name length (8), name, n_dims (4), then ne[0], ne[1].
    let name = &g.tensors.iter().find(|t| t.ne.len() == 2).unwrap().name;
    let key = [&(name.len() as u64).to_le_bytes()[..], name.as_bytes()].concat();
    let at = find(&bytes, &key) + key.len();
    assert_eq!(u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()), 2, "{name} is a matrix");
    let mut b = bytes.clone();
    b[at + 4..at + 12].copy_from_slice(&0u64.to_le_bytes());
    b[at + 12..at + 20].copy_from_slice(&(1u64 << 50).to_le_bytes());
    let p = d.join("t.gguf");
    std::fs::write(&p, b).unwrap();
    eval_fails(
        &p,
        &long_text(&d),
        &[],
        &format!("tensor '{name}' has dimensions [0, 1125899906842624], more than 2^40 elements"),
    );
}

/// The position of the last occurrence of `needle` in `b` (tensor infos follow the metadata,
/// which may hold the same text).
fn find(b: &[u8], needle: &[u8]) -> usize {
    b.windows(needle.len()).rposition(|w| w == needle).unwrap()
}

#[test]
fn gguf_tokenizer_with_ids_beyond_the_vocabulary() {
    let d = tmp_dir("tok-ids");
    let p = edited_gguf(&d, |md, _| {
        for (k, v) in md.iter_mut() {
            if k == "tokenizer.ggml.tokens" {
                let Value::Array(a) = v else { panic!("tokens are an array") };
                a.extend((0..4).map(|i| Value::String(format!("<extra{i}>"))));
            }
            if k == "tokenizer.ggml.token_type" {
                let Value::Array(a) = v else { panic!("token types are an array") };
                a.extend((0..4).map(|_| Value::I32(1)));
            }
        }
    });
    eval_fails(
        &p,
        &long_text(&d),
        &[],
        "edited.gguf: tokenizer: token \"<extra3>\" has id 303, beyond the model's vocabulary of 300",
    );
    // Tokens without their types.
    let p = edited_gguf(&d, |md, _| {
        for (k, v) in md.iter_mut() {
            if k == "tokenizer.ggml.tokens" {
                let Value::Array(a) = v else { panic!("tokens are an array") };
                a.push(Value::String("<extra>".into()));
            }
        }
    });
    eval_fails(&p, &long_text(&d), &[], "300 token types for 301 tokens");
}

/// A copy of the sharded tiny llama whose index names `shard` for every tensor of the first
/// shard, with that shard's file also placed one folder up.
fn sharded_copy_naming(tag: &str, shard: impl Fn(&Path) -> String) -> PathBuf {
    let root = tmp_dir(tag);
    let d = root.join("model");
    std::fs::create_dir_all(&d).unwrap();
    for e in std::fs::read_dir(fixture("tiny-llama-sharded")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), d.join(e.file_name())).unwrap();
    }
    let first = "model-00001-of-00003.safetensors";
    std::fs::copy(d.join(first), root.join(first)).unwrap();
    let index = std::fs::read_to_string(d.join("model.safetensors.index.json")).unwrap();
    std::fs::write(
        d.join("model.safetensors.index.json"),
        index.replace(&format!("\"{first}\""), &format!("{:?}", shard(&root))),
    )
    .unwrap();
    d
}

#[test]
fn shard_paths_that_leave_the_model_folder() {
    let d = sharded_copy_naming("shard-up", |_| "../model-00001-of-00003.safetensors".into());
    eval_fails(
        &d,
        &long_text(&d),
        &["--ctx", "64"],
        "shard '../model-00001-of-00003.safetensors' is not a file name inside the model folder",
    );
    let d =
        sharded_copy_naming("shard-abs", |root| root.join("model-00001-of-00003.safetensors").display().to_string());
    eval_fails(&d, &long_text(&d), &["--ctx", "64"], "is not a file name inside the model folder");
}

#[test]
fn compress_with_a_plan_holding_unknown_keys() {
    let d = tmp_dir("plan-keys");
    let plan = d.join("plan.json");
    std::fs::write(&plan, r#"{"tensors": {}, "drop_block": [1]}"#).unwrap();
    compress_fails(
        &["--plan", plan.to_str().unwrap()],
        r#"unknown key "drop_block" in the plan (it holds tensors, drop_blocks, drop_attention, drop_mlp)"#,
    );
    std::fs::write(&plan, r#"{"tensors": {"blk.0.attn_q.weight": {"type": "Q8_0", "sparsty": 0.5}}}"#).unwrap();
    compress_fails(
        &["--plan", plan.to_str().unwrap()],
        r#"unknown key "sparsty" in blk.0.attn_q.weight (it holds type, sparsity)"#,
    );
}

/// A legacy `.dat` imatrix with one entry of `values`.
fn dat_imatrix(path: &Path, name: &str, values: &[f32]) {
    let mut b = Vec::new();
    b.extend_from_slice(&1i32.to_le_bytes());
    b.extend_from_slice(&(name.len() as i32).to_le_bytes());
    b.extend_from_slice(name.as_bytes());
    b.extend_from_slice(&1i32.to_le_bytes());
    b.extend_from_slice(&(values.len() as i32).to_le_bytes());
    values.iter().for_each(|v| b.extend_from_slice(&v.to_le_bytes()));
    b.extend_from_slice(&[0; 8]);
    std::fs::write(path, b).unwrap();
}

#[test]
fn profile_with_an_imatrix_holding_nan() {
    let d = tmp_dir("imatrix-nan");
    let p = d.join("nan.dat");
    dat_imatrix(&p, "blk.0.attn_q.weight", &[1.0, f32::NAN, 2.0]);
    profile_fails(
        &["--imatrix-in", p.to_str().unwrap()],
        "invalid imatrix: tensor 'blk.0.attn_q.weight' holds the value NaN",
    );
}

#[test]
fn gguf_imatrix_with_infinite_values_is_refused() {
    use triage::calib::imatrix::{Imatrix, ImatrixEntry};
    let d = tmp_dir("imatrix-inf");
    let p = d.join("inf.gguf");
    let mut m = Imatrix { chunk_count: 1, chunk_size: 64, ..Imatrix::default() };
    m.entries.insert("blk.1.ffn_up.weight".into(), ImatrixEntry { in_sum2: vec![0.5, f32::INFINITY], count: 64.0 });
    m.write_gguf(&p).unwrap();
    let e = Imatrix::read(&p).unwrap_err().to_string();
    assert!(e.contains("inf.gguf: invalid imatrix: tensor 'blk.1.ffn_up.weight' holds the value inf"), "{e}");
}

#[test]
fn dat_imatrix_naming_a_tensor_twice_is_refused() {
    use triage::calib::imatrix::Imatrix;
    let d = tmp_dir("imatrix-dup");
    let p = d.join("dup.dat");
    dat_imatrix(&p, "blk.0.attn_q.weight", &[1.0]);
    let mut b = std::fs::read(&p).unwrap();
    let entry = b[4..b.len() - 8].to_vec();
    b.splice(4..4, entry);
    b[..4].copy_from_slice(&2i32.to_le_bytes());
    std::fs::write(&p, b).unwrap();
    let e = Imatrix::read(&p).unwrap_err().to_string();
    assert!(e.contains("tensor 'blk.0.attn_q.weight' appears twice"), "{e}");
}

#[test]
fn tokenizer_json_with_a_syntax_error_inside_the_decoder() {
    let d = qwen2_copy("tok-decoder");
    let p = d.join("tokenizer.json");
    let text = std::fs::read_to_string(&p).unwrap();
    // tokenizers' decoder deserializer panics ("Helper") on a syntax error within its object.
    std::fs::write(&p, text.replacen("\"decoder\": {", "\"decoder\": {\"type\": \"Byte\u{1}Level\",", 1)).unwrap();
    eval_fails(
        &d,
        &long_text(&d),
        &[],
        "tokenizer.json: control character (\\u0000-\\u001F) found while parsing a string",
    );
}

#[test]
fn mixtures_of_experts_and_unknown_rope_are_refused_in_one_line() {
    let d = qwen2_copy("hf-moe");
    let cfg = std::fs::read_to_string(d.join("config.json")).unwrap();
    for (from, to, expect) in [
        (
            "\"Qwen2ForCausalLM\"",
            "\"MixtralForCausalLM\"",
            "unsupported model: config.json architecture 'MixtralForCausalLM'",
        ),
        (
            "\"Qwen2ForCausalLM\"",
            "\"Qwen3MoeForCausalLM\"",
            "unsupported model: config.json architecture 'Qwen3MoeForCausalLM'",
        ),
        (
            "\"rope_scaling\": null",
            "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0}",
            "rope_scaling type 'yarn' (supported: llama3, linear, longrope)",
        ),
    ] {
        assert!(cfg.contains(from), "{from}");
        std::fs::write(d.join("config.json"), cfg.replace(from, to)).unwrap();
        eval_fails(&d, &long_text(&d), &[], expect);
    }
    let g = tmp_dir("gguf-moe");
    let p = edited_gguf(&g, |md, _| {
        for (k, v) in md.iter_mut() {
            if k == "general.architecture" {
                *v = Value::String("qwen3moe".into());
            }
        }
    });
    eval_fails(
        &p,
        &long_text(&g),
        &[],
        "unsupported model: GGUF architecture 'qwen3moe' (supported: llama, qwen2, qwen3, gemma2, gemma3, phi3, smollm3)",
    );
}

/// Runs triage with `args`, asserting a failure in one `error:` line containing `expect`, with
/// exit status `code`, and no panic.
fn refused<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(
    args: &[S],
    env: &[(&str, &str)],
    code: i32,
    expect: &str,
) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_triage")).args(args).envs(env.iter().copied()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {stderr}");
    assert!(lines[0].starts_with("error: ") && lines[0].contains(expect), "'{expect}' not in: {stderr}");
    stderr
}

fn os<S: AsRef<std::ffi::OsStr> + ?Sized>(s: &S) -> &std::ffi::OsStr {
    s.as_ref()
}

/// `--ctx 0` once divided by zero in compress, plan and profile (exit 101); every numeric flag
/// is checked by its parser, before anything is read.
#[test]
fn numeric_flags_out_of_range_are_refused_before_any_work() {
    let d = tmp_dir("numeric");
    let (m, t, o) = (fixture("tiny-llama.gguf"), long_text(&d), d.join("o.gguf"));
    let common = [os("--model"), m.as_os_str(), os("--out"), o.as_os_str()];
    for (cmd, extra) in [
        ("compress", vec!["--calib", "T", "--type", "Q8_0", "--ctx", "0"]),
        ("compress", vec!["--calib", "T", "--budget", "bpw=5", "--ctx", "0"]),
        ("plan", vec!["--calib", "T", "--budget", "bpw=5", "--ctx", "0"]),
        ("profile", vec!["--calib", "T", "--ctx", "0"]),
        ("compress", vec!["--calib", "T", "--type", "Q8_0", "--batch", "0"]),
        ("compress", vec!["--calib", "T", "--type", "Q8_0", "--damp", "NaN"]),
        ("plan", vec!["--calib", "T", "--budget", "bpw=5", "--offspring", "0"]),
        ("plan", vec!["--calib", "T", "--budget", "bpw=5", "--holdout-windows", "0"]),
        ("compress", vec!["--calib", "T", "--type", "Q8_0", "--eval-windows", "0"]),
    ] {
        let mut args = vec![os(cmd)];
        args.extend(common);
        args.extend(extra.iter().map(|a| if *a == "T" { t.as_os_str() } else { os(*a) }));
        let flag = extra[extra.len() - 2];
        refused(&args, &[], 2, &format!("for '{flag}"));
        assert!(!o.exists());
    }
    let e = refused(
        &[os("eval"), os("--model"), m.as_os_str(), os("--text"), t.as_os_str(), os("--ctx"), os("1")],
        &[],
        2,
        "'--ctx",
    );
    assert!(e.contains("less than 2"), "{e}");
    std::fs::remove_dir_all(&d).ok();
}

/// An output that resolves to an input (the same path, `..`, a symbolic or a hard link, a file
/// inside an input folder) or to another output is refused before any work; the input is
/// untouched.
#[test]
fn outputs_never_replace_inputs_or_each_other() {
    let d = tmp_dir("aliases");
    let t = long_text(&d);
    let m = d.join("m.gguf");
    std::fs::copy(fixture("tiny-llama.gguf"), &m).unwrap();
    let before = std::fs::read(&m).unwrap();
    std::os::unix::fs::symlink(&m, d.join("link.gguf")).unwrap();
    std::fs::hard_link(&m, d.join("hard.gguf")).unwrap();
    std::fs::create_dir_all(d.join("sub")).unwrap();
    let folder = folder_copy("tiny-llama", "aliases-folder");
    let (o, dotdot) = (d.join("o.gguf"), d.join("sub/../m.gguf"));
    let args = |a: &[&std::ffi::OsStr]| a.iter().map(|s| s.to_os_string()).collect::<Vec<_>>();
    let plan = |model: &Path, out: &Path| {
        args(&[
            os("plan"),
            os("--model"),
            model.as_os_str(),
            os("--calib"),
            t.as_os_str(),
            os("--budget"),
            os("bpw=5"),
            os("--ctx"),
            os("32"),
            os("--out"),
            out.as_os_str(),
        ])
    };
    let compress = |out: &Path, report: Option<&Path>| {
        let mut a = args(&[
            os("compress"),
            os("--model"),
            m.as_os_str(),
            os("--calib"),
            t.as_os_str(),
            os("--type"),
            os("Q8_0"),
            os("--ctx"),
            os("32"),
            os("--tokens"),
            os("64"),
            os("--out"),
            out.as_os_str(),
        ]);
        if let Some(r) = report {
            a.extend(args(&[os("--report"), r.as_os_str()]));
        }
        a
    };
    let same = "never replaces an input";
    refused(&plan(&m, &m), &[], 1, same);
    refused(&plan(&m, &dotdot), &[], 1, same);
    refused(&plan(&m, &d.join("link.gguf")), &[], 1, same);
    refused(&plan(&m, &d.join("hard.gguf")), &[], 1, same);
    refused(&plan(&folder, &folder.join("model.safetensors")), &[], 1, same);
    refused(&compress(&m, None), &[], 1, same);
    refused(&compress(&o, Some(&m)), &[], 1, same);
    refused(&compress(&o, Some(&t)), &[], 1, same);
    refused(&compress(&o, Some(&o)), &[], 1, "two outputs of one run cannot share a file");
    refused(
        &[
            os("profile"),
            os("--model"),
            m.as_os_str(),
            os("--calib"),
            t.as_os_str(),
            os("--ctx"),
            os("32"),
            os("--out"),
            d.join("p").as_os_str(),
            os("--imatrix-out"),
            m.as_os_str(),
        ],
        &[],
        1,
        same,
    );
    assert_eq!(std::fs::read(&m).unwrap(), before, "the model is untouched");
    assert!(!o.exists() && !d.join("p/profile.json").exists());
    std::fs::remove_dir_all(&d).ok();
}

/// A piped calibration text (`--calib <(cat A)`) is read once and keyed by what was read: a
/// second text B through a pipe builds its own layer database instead of reusing A's.
#[test]
fn piped_texts_are_read_once_and_keyed_by_their_bytes() {
    let d = tmp_dir("piped");
    let a = long_text(&d);
    let b = d.join("b.txt");
    let text: String = (0..400).map(|i| format!("On day {i} the ships sailed west and the river rose. ")).collect();
    std::fs::write(&b, text).unwrap();
    let run = |text: &Path, out: &str| {
        let script = format!(
            "'{bin}' plan --model '{m}' --calib <(cat '{text}') --ctx 32 --tokens 128 --search-windows 3 --holdout-windows 2 --budget bpw=5 --solver lagrange --frontier 0 --cache '{cache}' --out '{out}'",
            bin = env!("CARGO_BIN_EXE_triage"),
            m = fixture("tiny-llama.gguf").display(),
            text = text.display(),
            cache = d.join("cache").display(),
            out = d.join(out).display()
        );
        let o = Command::new("bash").args(["-c", &script]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let plan: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d.join(out)).unwrap()).unwrap();
        plan["timings"]["database_cached"].as_bool().unwrap()
    };
    assert!(!run(&a, "a.json"), "A's database is built");
    assert!(!run(&b, "b.json"), "B is another text: its own database");
    assert!(run(&a, "a2.json"), "A again through a pipe: its database is found");
    std::fs::remove_dir_all(&d).ok();
}

/// Outputs that cannot be written and inputs that cannot serve fail before the compression,
/// naming the file, and leave nothing behind.
#[test]
fn late_failures_are_found_before_any_work() {
    let d = tmp_dir("late");
    let short = d.join("short.txt");
    std::fs::write(&short, "Too short.").unwrap();
    let latin1 = d.join("latin1.txt");
    std::fs::write(&latin1, b"caf\xe9 ".repeat(500)).unwrap();
    compress_fails(&["--type", "Q8_0", "--report", d.join("nodir/r.json").to_str().unwrap()], "--report");
    compress_fails(&["--type", "Q8_0", "--report", d.join("nodir/r.json").to_str().unwrap()], "nodir does not exist");
    compress_fails(&["--type", "Q8_0", "--eval-text", short.to_str().unwrap()], "--eval-text");
    compress_fails(&["--type", "Q8_0", "--eval-text", latin1.to_str().unwrap()], "not UTF-8");
    profile_fails(&["--imatrix-out", d.join("nodir/i.gguf").to_str().unwrap()], "--imatrix-out");
    std::fs::remove_dir_all(&d).ok();
}

/// Where a text is expected, a device (`/dev/zero` grew without end) or a file past 1 GiB is
/// refused; where a file is read at offsets (a model, its shards), a FIFO is refused.
#[test]
fn devices_huge_texts_and_fifos_are_refused_where_they_cannot_serve() {
    let d = tmp_dir("kinds");
    let m = fixture("tiny-llama.gguf");
    eval_fails(&m, Path::new("/dev/zero"), &[], "/dev/zero: a device");
    let huge = d.join("huge.txt");
    std::fs::File::create(&huge).unwrap().set_len((1 << 30) + 1).unwrap();
    eval_fails(&m, &huge, &["--ctx", "64"], "more than 1073741824 bytes");
    let fifo = d.join("m.gguf");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    eval_fails(&fifo, &long_text(&d), &[], "a FIFO, not a GGUF file");
    let folder = folder_copy("tiny-llama", "kinds-folder");
    std::fs::remove_file(folder.join("model.safetensors")).unwrap();
    assert!(Command::new("mkfifo").arg(folder.join("model.safetensors")).status().unwrap().success());
    eval_fails(&folder, &long_text(&d), &[], "a FIFO, not a regular file");
    std::fs::remove_dir_all(&d).ok();
}

/// With RUST_BACKTRACE=1, a metadata value of the wrong type is still one short line (candle
/// appends a backtrace to its errors).
#[test]
fn errors_stay_one_line_with_backtraces_on() {
    let d = tmp_dir("backtrace");
    let p = gguf_with(&d, "llama.rope.freq_base", Value::String("ten thousand".into()));
    let t = long_text(&d);
    let e = refused(
        &[os("eval"), os("--model"), p.as_os_str(), os("--text"), t.as_os_str()],
        &[("RUST_BACKTRACE", "1")],
        1,
        "llama.rope.freq_base",
    );
    assert!(e.len() < 400, "{e}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn compress_with_sparsity_that_prunes_nothing_everything_or_what_is_not_pruned() {
    compress_refused(&["--sparsity", "NaN"], "sparsity 'NaN' is not a number;");
    compress_refused(&["--sparsity", "1.0"], "sparsity 1 is outside [0, 1)");
    compress_refused(&["--sparsity=-0.5"], "sparsity -0.5 is outside [0, 1)");
    compress_refused(&["--sparsity", "0:4"], "sparsity '0:4' prunes nothing");
    compress_refused(&["--sparsity", "4:4"], "sparsity '4:4': N:M needs whole numbers with N < M");
    // Rows of 64 hold no group of 128: 64:128 would prune every weight.
    compress_fails(
        &["--sparsity", "64:128"],
        "cannot prune blk.0.attn_k.weight 64:128: its rows of 64 are not a whole number of groups of 128",
    );
    let d = tmp_dir("plan-sparsity");
    let plan = d.join("plan.json");
    for name in ["token_embd.weight", "output.weight"] {
        std::fs::write(&plan, format!(r#"{{"tensors": {{"{name}": {{"type": "Q8_0", "sparsity": 0.5}}}}}}"#)).unwrap();
        compress_fails(
            &["--plan", plan.to_str().unwrap()],
            &format!("the plan gives {name} sparsity 0.5, but only the blocks' linears are pruned"),
        );
    }
    std::fs::write(&plan, r#"{"tensors": {"blk.1.ffn_down.weight": {"type": "Q8_0", "sparsity": "3:7"}}}"#).unwrap();
    compress_fails(
        &["--plan", plan.to_str().unwrap()],
        "cannot prune blk.1.ffn_down.weight 3:7: its rows of 160 are not a whole number of groups of 7",
    );
    std::fs::remove_dir_all(&d).ok();
}

/// tiny-llama.gguf with blk.1.attn_v.weight at ±3e38: finite weights, which the loading checks
/// pass, whose products overflow f32 and make the logits NaN.
fn overflowing_gguf(dir: &Path) -> PathBuf {
    edited_gguf(dir, |_, tensors| {
        for (k, v) in tensors.iter_mut() {
            if k == "blk.1.attn_v.weight" {
                let n = v.shape().elem_count();
                let big: Vec<f32> = (0..n).map(|i| if i % 2 == 0 { 3e38 } else { -3e38 }).collect();
                let t = Tensor::from_vec(big, v.shape().dims(), &Device::Cpu).unwrap();
                *v = QTensor::quantize(&t, GgmlDType::F32).unwrap();
            }
        }
    })
}

#[test]
fn eval_of_a_model_whose_logits_overflow_names_where() {
    let d = tmp_dir("overflow-eval");
    let p = overflowing_gguf(&d);
    let text = long_text(&d);
    // Perplexity alone: a NaN logit anywhere in a row makes its NLL NaN (it was `ppl NaN`).
    eval_fails(&p, &text, &["--ctx", "64"], "the model's logits are not finite at window 0, position 0");
    // Against the original (it printed `KL 0.000000`), and the other way round.
    let original = fixture("tiny-llama.gguf");
    eval_fails(
        &p,
        &text,
        &["--ctx", "64", "--reference", original.to_str().unwrap()],
        "the model's logits are not finite at window 0, position 0",
    );
    eval_fails(
        &original,
        &text,
        &["--ctx", "64", "--reference", p.to_str().unwrap()],
        "the reference model's logits are not finite at window 0, position 0",
    );
}

#[test]
fn plan_and_profile_of_a_model_whose_logits_overflow_fail_in_one_line() {
    let d = tmp_dir("overflow-plan");
    let p = overflowing_gguf(&d);
    let text = long_text(&d);
    // drop-blocks=1 reported "KL 0.00000" and bpw=5 a Hessian "not positive definite".
    for budget in ["drop-blocks=1", "bpw=5"] {
        let out = Command::new(env!("CARGO_BIN_EXE_triage"))
            .args([
                "plan",
                "--ctx",
                "32",
                "--tokens",
                "128",
                "--search-windows",
                "3",
                "--holdout-windows",
                "2",
                "--budget",
                budget,
                "--no-cache",
                "--model",
            ])
            .arg(&p)
            .arg("--calib")
            .arg(&text)
            .arg("--out")
            .arg(d.join("plan.json"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line expected: {stderr}");
        assert!(
            lines[0].starts_with(
                "error: the original model's logits are not finite at window 0, position 0 of the planning windows"
            ),
            "{stderr}"
        );
        assert!(!d.join("plan.json").exists());
    }
    // It wrote a profile of NaN statistics.
    let out = Command::new(env!("CARGO_BIN_EXE_triage"))
        .args(["profile", "--ctx", "32", "--tokens", "128", "--ablation-tokens", "64", "--model"])
        .arg(&p)
        .arg("--calib")
        .arg(&text)
        .arg("--out")
        .arg(d.join("profile"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {stderr}");
    assert!(
        lines[0].starts_with("error: blk.1.attn_v.weight: an output energy") && lines[0].contains("is not finite"),
        "{stderr}"
    );
    assert!(!d.join("profile/profile.json").exists());
}

#[test]
fn budgets_past_u64_are_above_the_largest_plan_as_bpw_9_is() {
    let planning = ["--search-windows", "3", "--holdout-windows", "2", "--no-cache"];
    // They saturated to the "no limit" of kld<= and were planned as if unbounded.
    for budget in ["bpw=9", "bpw=1e15", "size=18446744073709551000", "size=99999999999999999999999 GB"] {
        let args: Vec<&str> = ["--budget", budget].iter().chain(&planning).copied().collect();
        compress_fails(&args, "is above the largest possible plan");
    }
    for (budget, expect) in [
        ("bpw=NaN", "bpw needs a positive number"),
        ("bpw=inf", "bpw needs a positive number"),
        ("bpw=-3", "bpw needs a positive number"),
        ("bpw=0", "bpw needs a positive number"),
        ("size=0", "not a positive number of bytes"),
        ("size=-1", "not a positive number of bytes"),
        ("sparsity=1.0", "strictly between 0 and 1"),
        ("sparsity=NaN", "strictly between 0 and 1"),
        ("drop-blocks=0", "drop-blocks needs a positive whole number"),
        ("drop-blocks=3", "cannot remove 3 blocks"),
        ("kld<=NaN", "kld<= needs a positive number"),
        ("kld<=-0.1", "kld<= needs a positive number"),
    ] {
        let args: Vec<&str> = ["--budget", budget].iter().chain(&planning).copied().collect();
        // Refused by --budget's parser (exit 2), but for a count the model cannot hold.
        if budget == "drop-blocks=3" {
            compress_fails(&args, expect);
        } else {
            compress_refused(&args, expect);
        }
    }
}

#[test]
fn imatrix_of_another_model_is_refused_naming_the_tensor() {
    let d = tmp_dir("imatrix-other");
    let narrow = d.join("narrow.dat");
    dat_imatrix(&narrow, "blk.0.attn_q.weight", &[1.0, 2.0, 3.0]);
    let expect = "invalid imatrix: tensor 'blk.0.attn_q.weight' has 3 columns, the model's has 64 (an imatrix of another model?)";
    profile_fails(&["--imatrix-in", narrow.to_str().unwrap()], expect);
    compress_fails(&["--type", "Q4_0", "--method", "imatrix", "--imatrix", narrow.to_str().unwrap()], expect);
    // No entry for any linear of the model: other names, or a 4-byte `.dat` of 0 entries.
    let other = d.join("other.dat");
    dat_imatrix(&other, "blk.40.attn_q.weight", &[1.0; 64]);
    let empty = d.join("empty.dat");
    std::fs::write(&empty, [0u8; 4]).unwrap();
    for p in [&other, &empty] {
        compress_fails(
            &["--type", "Q4_0", "--method", "imatrix", "--imatrix", p.to_str().unwrap()],
            "it has no entry for any of the model's 21 linears",
        );
    }
    // Some entries missing: a warning saying how many.
    let some = d.join("some.dat");
    dat_imatrix(&some, "blk.0.attn_q.weight", &[1.0; 64]);
    let out = Command::new(env!("CARGO_BIN_EXE_triage"))
        .args(["compress", "--ctx", "32", "--tokens", "64", "--type", "Q4_0", "--method", "imatrix", "--model"])
        .arg(fixture("tiny-llama.gguf"))
        .arg("--calib")
        .arg(long_text(&d))
        .arg("--imatrix")
        .arg(&some)
        .arg("--out")
        .arg(d.join("o.gguf"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("warning: ")
                && l.contains("the imatrix has no entry for 20 of the model's 21 linears")),
        "{stderr}"
    );
}

#[test]
fn reference_with_another_tokenizer_is_refused_naming_the_first_difference() {
    let d = tmp_dir("tokenizer");
    let p = edited_gguf(&d, |md, _| {
        for (k, v) in md.iter_mut() {
            if k == "tokenizer.ggml.tokens" {
                let Value::Array(tokens) = v else { panic!("tokens") };
                tokens.swap(280, 281);
            }
        }
    });
    eval_fails(
        &fixture("tiny-llama.gguf"),
        &long_text(&d),
        &["--ctx", "64", "--reference", p.to_str().unwrap()],
        "the reference model's tokenizer differs from the model's: token 280 is ",
    );
    // A model's GGUF and its Hugging Face folder have the same tokenizer.
    for name in ["tiny-llama", "tiny-qwen2", "tiny-qwen3", "tiny-gemma2", "tiny-gemma3", "tiny-phi3"] {
        let load = |p: PathBuf| triage::model::Model::load(&p).unwrap().tokenizer.unwrap();
        let (gguf, hf) = (load(fixture(&format!("{name}.gguf"))), load(fixture(name)));
        assert_eq!(gguf.first_difference(&hf, ("the GGUF", "the folder")), None, "{name}");
    }
}
