//! The default model (SmolLM2-135M-Instruct, Q4_1 GGUF) against `transformers` on the evaluation
//! text. Needs `scripts/fetch_assets.sh` (`.ci/run` runs it first).
//!
//! The reference numbers come from
//! `.venv/bin/python scripts/reference_eval.py --gguf assets/SmolLM2-135M-Instruct.Q4_1.gguf
//!  --text assets/eval.txt --ctx 512 --max-windows 40 --dump-tokens assets/eval.smollm2.tokens.txt`
//! (transformers 5.24.0, float32, eager attention): ppl 26.302139868009544 over 20 440 tokens;
//! 160 885 tokens in all, whose ids (one per line) hash to the sha256 below.

use sha2::{Digest, Sha256};
use triage::calib::Windows;
use triage::eval::evaluate;
use triage::model::Model;
use triage::progress::Silent;

const REFERENCE_PPL: f64 = 26.302139868009544;
const REFERENCE_N_TOKENS: usize = 160_885;
const REFERENCE_IDS_SHA256: &str = "c4d244ce80161b654debfc6aa411754c08f28b00f1663c518ff0909fff2f759b";

mod common;
use common::asset;

#[test]
fn smollm2_token_ids_and_perplexity_match_transformers() {
    let model = Model::load(&asset("SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap();
    assert_eq!(model.config.n_layers, 30);
    assert_eq!(model.config.hidden_size, 576);

    let text = std::fs::read_to_string(asset("eval.txt")).unwrap();
    let ids = model.tokenizer().unwrap().encode(&text).unwrap();
    assert_eq!(ids.len(), REFERENCE_N_TOKENS);
    assert_eq!(&ids[..5], &[14086, 30, 32436, 28, 4994]);
    let dump: String = ids.iter().map(|i| format!("{i}\n")).collect();
    let sha = Sha256::digest(dump.as_bytes());
    let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, REFERENCE_IDS_SHA256, "token ids differ from transformers'");

    let windows = Windows::new(&ids, 512, Some(40)).unwrap();
    let report = evaluate(&model, None, &windows, 4, 0, &mut Silent).unwrap();
    assert_eq!(report.tokens_scored, 20_440);
    let rel = (report.ppl - REFERENCE_PPL).abs() / REFERENCE_PPL;
    eprintln!("ppl {} vs transformers {REFERENCE_PPL}: relative difference {rel:.2e}", report.ppl);
    assert!(rel < 0.005, "ppl {} vs {REFERENCE_PPL}", report.ppl);
}

#[test]
fn smollm2_against_itself_has_zero_kl() {
    let model = Model::load(&asset("SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap();
    let windows = Windows::from_file(&asset("eval.txt"), model.tokenizer().unwrap(), 128, Some(2)).unwrap();
    let r = evaluate(&model, Some(&model), &windows, 2, 0, &mut Silent).unwrap();
    assert!(r.kld_mean.unwrap() < 1e-6, "{r:?}");
    assert_eq!(r.top1_agree, Some(1.0));
}
