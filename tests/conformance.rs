//! Conformance: our forward pass against `transformers` on tiny random checkpoints.
//!
//! `tests/fixtures/` holds llama and qwen2 checkpoints (HF folders in f32 and sharded bf16, and
//! the same weights as GGUF) with the token ids, hidden states and logits `transformers` computed
//! for them (scripts/make_fixtures.py). We must reproduce them within 1e-4 relative.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::Deserialize;
use triage::model::{Capture, Model};

#[derive(Deserialize)]
struct Expected {
    text: String,
    tokens: Vec<u32>,
    logits: Vec<Vec<f32>>,
    /// Embeddings, the residual stream after each block but the last, and the final-normed output.
    hidden_states: Vec<Vec<Vec<f32>>>,
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn expected(name: &str) -> Expected {
    let text = std::fs::read_to_string(fixture(name)).expect("fixture");
    serde_json::from_str(&text).expect("fixture JSON")
}

/// max |a − b| / max |b|.
fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// Records the residual stream leaving each block.
#[derive(Default)]
struct BlockOutputs(Vec<Vec<f32>>);

impl Capture for BlockOutputs {
    fn block_output(&mut self, _block: usize, x: &Tensor) -> triage::model::Result<()> {
        self.0.push(x.flatten_all()?.to_vec1()?);
        Ok(())
    }
}

fn check(model_file: &str, expected_file: &str) {
    let model = Model::load(&fixture(model_file)).expect("load");
    let exp = expected(expected_file);
    let ids = model.tokenizer().expect("tokenizer").encode(&exp.text).expect("encode");
    assert_eq!(ids, exp.tokens, "{model_file}: token ids");

    let t = exp.tokens.len();
    let tokens = Tensor::from_vec(exp.tokens.clone(), (1, t), &Device::Cpu).unwrap();
    let mut cap = BlockOutputs::default();
    let logits = model.forward(&tokens, &mut cap).unwrap();
    let logits: Vec<f32> = logits.flatten_all().unwrap().to_vec1().unwrap();
    let want: Vec<f32> = exp.logits.concat();
    let e = rel_err(&logits, &want);
    let d = logits.iter().zip(&want).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    eprintln!("{model_file}: logits relative error {e:.2e}, max |difference| {d:.2e}");
    assert!(e < 1e-4, "{model_file}: logits relative error {e}");

    let embed: Vec<f32> = model.embed(&tokens).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert!(rel_err(&embed, &exp.hidden_states[0].concat()) < 1e-6, "{model_file}: embeddings");
    let n = model.blocks.len();
    for (i, got) in cap.0.iter().take(n - 1).enumerate() {
        let e = rel_err(got, &exp.hidden_states[i + 1].concat());
        assert!(e < 1e-4, "{model_file}: block {i} output relative error {e}");
    }
}

#[test]
fn llama_hf_folder_matches_transformers() {
    check("tiny-llama", "tiny-llama.expected.json");
}

#[test]
fn llama_gguf_matches_transformers() {
    check("tiny-llama.gguf", "tiny-llama.expected.json");
}

#[test]
fn llama_sharded_bf16_folder_matches_transformers() {
    check("tiny-llama-sharded", "tiny-llama-sharded.expected.json");
}

#[test]
fn qwen2_hf_folder_matches_transformers() {
    check("tiny-qwen2", "tiny-qwen2.expected.json");
}

#[test]
fn qwen2_gguf_matches_transformers() {
    check("tiny-qwen2.gguf", "tiny-qwen2.expected.json");
}

#[test]
fn qwen3_hf_folder_matches_transformers() {
    check("tiny-qwen3", "tiny-qwen3.expected.json");
}

#[test]
fn qwen3_gguf_matches_transformers() {
    check("tiny-qwen3.gguf", "tiny-qwen3.expected.json");
}

#[test]
fn gemma3_hf_folder_matches_transformers() {
    check("tiny-gemma3", "tiny-gemma3.expected.json");
}

#[test]
fn gemma3_gguf_matches_transformers() {
    check("tiny-gemma3.gguf", "tiny-gemma3.expected.json");
}

#[test]
fn gemma3_vision_language_folder_runs_its_text_model_as_transformers() {
    check("tiny-gemma3-vl", "tiny-gemma3-vl.expected.json");
}

#[test]
fn gemma2_hf_folder_matches_transformers() {
    check("tiny-gemma2", "tiny-gemma2.expected.json");
}

#[test]
fn gemma2_gguf_matches_transformers() {
    check("tiny-gemma2.gguf", "tiny-gemma2.expected.json");
}

#[test]
fn phi3_hf_folder_matches_transformers() {
    check("tiny-phi3", "tiny-phi3.expected.json");
}

#[test]
fn phi3_gguf_matches_transformers() {
    check("tiny-phi3.gguf", "tiny-phi3.expected.json");
}

#[test]
fn phi3_past_its_original_context_takes_the_long_factors_as_transformers() {
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("tiny-phi3.expected.json")).unwrap()).unwrap();
    let ids: Vec<u32> = j["long_tokens"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let want: Vec<f32> = j["long_logits"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32))
        .collect();
    assert!(ids.len() > 64);
    for m in ["tiny-phi3", "tiny-phi3.gguf"] {
        let model = Model::load(&fixture(m)).unwrap();
        let logits = model
            .forward(
                &Tensor::from_vec(ids.clone(), (1, ids.len()), &Device::Cpu).unwrap(),
                &mut BlockOutputs::default(),
            )
            .unwrap();
        let e = rel_err(&logits.flatten_all().unwrap().to_vec1().unwrap(), &want);
        assert!(e < 1e-4, "{m}: logits relative error {e}");
    }
}

#[test]
fn smollm3_hf_folder_matches_transformers() {
    check("tiny-smollm3", "tiny-smollm3.expected.json");
}

#[test]
fn smollm3_gguf_matches_transformers() {
    check("tiny-smollm3.gguf", "tiny-smollm3.expected.json");
}

#[test]
fn mistral_sliding_window_matches_transformers() {
    check("tiny-mistral", "tiny-mistral.expected.json");
    // The window (8 tokens of the 24) is what makes the match: without it the logits differ.
    let mut model = Model::load(&fixture("tiny-mistral")).unwrap();
    assert_eq!(model.config.sliding_window, Some(8));
    model.config.sliding_window = None;
    let exp = expected("tiny-mistral.expected.json");
    let tokens = Tensor::from_vec(exp.tokens.clone(), (1, exp.tokens.len()), &Device::Cpu).unwrap();
    let logits: Vec<f32> =
        model.forward(&tokens, &mut BlockOutputs::default()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert!(rel_err(&logits, &exp.logits.concat()) > 1e-2);
}

#[test]
fn gguf_and_hf_folder_give_the_same_structure() {
    let a = Model::load(&fixture("tiny-llama.gguf")).unwrap();
    let b = Model::load(&fixture("tiny-llama")).unwrap();
    assert_eq!(a.config.n_layers, b.config.n_layers);
    assert_eq!(a.config.rope_freq_factors.as_ref().map(Vec::len), Some(8));
    let (fa, fb) = (a.config.rope_freq_factors.clone().unwrap(), b.config.rope_freq_factors.clone().unwrap());
    for (x, y) in fa.iter().zip(fb) {
        assert!((x - y).abs() < 1e-6, "rope factors {x} vs {y}");
    }
    let names =
        |m: &Model| m.blocks.iter().flat_map(|b| b.linears().into_iter().map(|l| l.name.clone())).collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b));
    assert_eq!(a.n_params(), b.n_params());
}
