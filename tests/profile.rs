//! The profile on a tiny model with hand-made structure: a block whose attention and MLP add
//! nothing must have block influence 0, ablation ΔKL 0 and redundancy 1; profile.json and the
//! imatrix must round-trip.

use std::path::Path;

use candle_core::Tensor;
use triage::calib::imatrix::Imatrix;
use triage::calib::Windows;
use triage::importance::{profile, Profile, ProfileOptions};
use triage::model::Model;
use triage::progress::Silent;

fn tiny() -> Model {
    Model::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-llama.gguf")).unwrap()
}

fn windows(model: &Model) -> Windows {
    let text = "The nation is at peace and the harvest is good; 1801 was a fine year. ".repeat(40);
    Windows::new(&model.tokenizer().unwrap().encode(&text).unwrap(), 64, Some(6)).unwrap()
}

fn opts() -> ProfileOptions {
    ProfileOptions {
        batch: 2,
        ablation_windows: 2,
        attention_windows: 2,
        calib_name: "test".into(),
        full_types: vec![],
        state_limits: triage::calib::runner::StateLimits::UNLIMITED,
    }
}

#[test]
fn an_identity_block_is_recognised_by_every_signal() {
    let mut model = tiny();
    let b = &mut model.blocks[1];
    b.attn.o.weight = b.attn.o.weight.zeros_like().unwrap();
    b.mlp.down.weight = b.mlp.down.weight.zeros_like().unwrap();
    let full = ProfileOptions { full_types: vec![triage::ggml::types::QuantType::Q4_0], ..opts() };
    let (p, imatrix) = profile(&model, &windows(&model), &full, &mut Silent).unwrap();

    let blk = &p.blocks[1];
    assert!(blk.block_influence.abs() < 1e-6, "{blk:?}");
    assert!(blk.ablation_kld.abs() < 1e-6, "{blk:?}");
    for s in p.sublayers.iter().filter(|s| s.block == 1) {
        assert!((s.redundancy - 1.0).abs() < 1e-6 && s.ablation_kld.abs() < 1e-6, "{s:?}");
    }
    for i in [0, 2] {
        assert!(p.blocks[i].block_influence > 1e-3, "{:?}", p.blocks[i]);
        assert!(p.blocks[i].ablation_kld > 1e-4, "{:?}", p.blocks[i]);
    }
    // Zero weights: no outliers, no quantization error, zero norm.
    let down = p.linears.iter().find(|l| l.name == "blk.1.ffn_down.weight").unwrap();
    assert_eq!((down.weight_norm, down.outlier_ratio), (0.0, 0.0));
    assert!(down.quant_error.values().all(|&e| e == 0.0));
    // End-to-end: quantizing a zero matrix changes nothing; quantizing a live one does.
    assert_eq!(down.full_kld["Q4_0"], 0.0);
    let q0 = p.linears.iter().find(|l| l.name == "blk.0.attn_q.weight").unwrap();
    assert!(q0.full_kld["Q4_0"] > 0.0 && q0.full_kld["Q4_0"] < p.blocks[0].ablation_kld);
    // Every linear has an error curve falling with RTN bits, and an imatrix entry over all tokens.
    let q = p.linears.iter().find(|l| l.name == "blk.0.attn_q.weight").unwrap();
    assert!(q.quant_error["RTN2"] > q.quant_error["RTN4"] && q.quant_error["RTN4"] > q.quant_error["RTN8"]);
    assert!(q.quant_error["Q4_0"] > q.quant_error["Q8_0"]);
    assert_eq!(imatrix.entries.len(), 3 * 7);
    assert!(imatrix.entries.values().all(|e| e.count == (6 * 64) as f64));
    // Shared inputs give identical imatrix rows.
    assert_eq!(imatrix.entries["blk.2.attn_q.weight"], imatrix.entries["blk.2.attn_v.weight"]);
    // Diagonal correlations are 1.
    for (i, row) in p.correlation.matrix.iter().enumerate() {
        assert!((row[i] - 1.0).abs() < 1e-12 || row.iter().all(|&x| x == 0.0));
    }
}

#[test]
fn imatrix_sums_equal_the_squares_of_the_captured_inputs() {
    let model = tiny();
    let w = windows(&model);
    let (_, imatrix) = profile(&model, &w, &opts(), &mut Silent).unwrap();
    // The input of block 0's q/k/v is rms_norm(embeddings) · attn_norm: recompute Σx² directly.
    let flat: Vec<u32> = w.windows.iter().flatten().copied().collect();
    let x = model.embed(&Tensor::from_vec(flat, (w.len(), 64), &candle_core::Device::Cpu).unwrap()).unwrap();
    let h = candle_nn::ops::rms_norm(&x, &model.blocks[0].attn_norm, model.config.rms_norm_eps as f32).unwrap();
    let sq: Vec<f32> = h.sqr().unwrap().sum((0, 1)).unwrap().to_vec1().unwrap();
    let ours = &imatrix.entries["blk.0.attn_k.weight"].in_sum2;
    for (a, b) in ours.iter().zip(&sq) {
        assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{a} vs {b}");
    }
}

#[test]
fn profile_json_and_imatrix_round_trip() {
    let model = tiny();
    let (p, imatrix) = profile(&model, &windows(&model), &opts(), &mut Silent).unwrap();
    let json = p.to_json();
    let back = Profile::from_json(&json).unwrap();
    assert!(back == p, "profile.json does not round-trip");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    for key in ["index", "block_influence", "ablation_kld"] {
        assert!(v["blocks"][0].get(key).is_some());
    }
    for key in ["block", "kind", "redundancy", "ablation_kld"] {
        assert!(v["sublayers"][1].get(key).is_some());
    }
    assert_eq!(v["sublayers"][1]["kind"], "mlp");
    assert!(v["linears"][0]["quant_error"]["Q8_0"].is_number());

    let dir = std::env::temp_dir().join(format!("triage-profile-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["imatrix.gguf", "imatrix.dat"] {
        let path = dir.join(name);
        if name.ends_with("gguf") {
            imatrix.write_gguf(&path).unwrap()
        } else {
            imatrix.write_dat(&path).unwrap()
        }
        let read = Imatrix::read(&path).unwrap();
        assert_eq!(read.entries.len(), imatrix.entries.len());
        let c = triage::importance::imatrix_compare::compare(&read, &imatrix);
        assert!(c.p99_rel_diff < 1e-6, "{name}: {}", c.summary());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
