//! The scoring and encoding kernels outside the matrix products, at the default model's shapes:
//! `cargo bench --bench kernels`. Each row is the median of its repetitions; the KL and the
//! attention run on both cores (rayon), the grid fits on one.
//!
//! These are the loops whose sums must keep their order (so that every host gives the same
//! bits): their element-wise parts are computed apart and vectorised, on AVX2 where the CPU has
//! it (`simd` in the crate). Before that, on the same host, the KL of one window took as long
//! as half a forward pass; the plan phases it speeds up are in the README.

mod common;

use candle_core::{Device, Tensor};
use common::median_secs;
use triage::compress::gptq::ColumnQuantizer;
use triage::compress::grid_columns::GgufColumns;
use triage::ggml::codec::choose;
use triage::ggml::grid::{fit_asymmetric, fit_symmetric};
use triage::ggml::types::QuantType;
use triage::model::kernels::{causal_attention, kl_divergence_rows, AttentionOpts, Probs};
use triage::stats::Rng;

fn main() {
    let mut rng = Rng::new(1);
    let mut uniform = |scale: f64| (rng.uniform() * 2.0 - 1.0) * scale;
    let (ctx, vocab) = (512, 49_152);
    #[cfg(target_arch = "x86_64")]
    println!("AVX2: {}", std::arch::is_x86_feature_detected!("avx2"));
    println!("{:<44} {:>12} {:>16}", "kernel", "median ms", "per item");

    let p: Vec<f32> = (0..ctx * vocab).map(|_| uniform(10.0) as f32).collect();
    let q: Vec<f32> = p.iter().map(|x| x * 0.9 + 0.1).collect();
    let t = median_secs(5, || {
        std::hint::black_box(kl_divergence_rows(&p, &q, vocab));
    });
    println!("{:<44} {:>12.1} {:>13.1} µs", "KL(P‖Q), 512 rows × 49 152 logits", t * 1e3, t * 1e6 / ctx as f64);

    let (heads, kv, d) = (9, 3, 64);
    let dev = Device::Cpu;
    let qt = Tensor::randn(0f32, 1., (1, heads, ctx, d), &dev).unwrap();
    let kt = Tensor::randn(0f32, 1., (1, kv, ctx, d), &dev).unwrap();
    let vt = Tensor::randn(0f32, 1., (1, kv, ctx, d), &dev).unwrap();
    let t = median_secs(9, || {
        std::hint::black_box(causal_attention(&qt, &kt, &vt, Probs::None, AttentionOpts::plain(d)).unwrap());
    });
    println!("{:<44} {:>12.2} {:>13.1} µs", "causal attention, 9 heads × 512 × 64", t * 1e3, t * 1e6 / heads as f64);

    let n = 20_000;
    let x: Vec<f32> = (0..32 * n).map(|_| uniform(0.05) as f32).collect();
    let w: Vec<f32> = (0..32).map(|_| uniform(1.0).abs() as f32 + 0.1).collect();
    let t = median_secs(5, || {
        for c in x.chunks(32) {
            std::hint::black_box(fit_asymmetric(c, &w, 15, false));
        }
    });
    println!("{:<44} {:>12.1} {:>13.2} µs", "fit_asymmetric, 20 000 × 32 (Q4_1)", t * 1e3, t * 1e6 / n as f64);
    let t = median_secs(5, || {
        for c in x.chunks(32) {
            std::hint::black_box(fit_symmetric(c, &w, -16, 15));
        }
    });
    println!("{:<44} {:>12.1} {:>13.2} µs", "fit_symmetric, 20 000 × 32 (Q5_0)", t * 1e3, t * 1e6 / n as f64);
    let w256: Vec<f32> = w.iter().cycle().take(256).copied().collect();
    for t in [
        QuantType::Q4K,
        QuantType::Q2K,
        QuantType::IQ4NL,
        QuantType::IQ4XS,
        QuantType::IQ3S,
        QuantType::IQ3XXS,
        QuantType::IQ2S,
        QuantType::IQ2XS,
    ] {
        let bs = t.block_size();
        let blocks = 32 * n / bs;
        let secs = median_secs(5, || {
            for c in x.chunks(bs) {
                std::hint::black_box(choose(t, c, &w256[..bs]));
            }
        });
        println!(
            "{:<44} {:>12.1} {:>13.2} µs",
            format!("choose {}, {blocks} blocks of {bs}", t.name()),
            secs * 1e3,
            secs * 1e6 / blocks as f64
        );
    }
    // GPTQ's per-column rounding on the vector grids (the layer database's other search): every
    // block's grids chosen, then each column rounded among the points its group's rounded weights
    // allow; both cores, as in GPTQ.
    // Weights N(0, 0.02) as a trained (or the synthetic scale) model's; the importances spread
    // over four orders of magnitude, as activations' second moments are.
    let (rows, cols) = (256, 1024);
    let mut normal = || {
        let (u, v) = (rng.uniform().max(1e-12), rng.uniform());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    };
    let wm: Vec<f32> = (0..rows * cols).map(|_| 0.02 * normal()).collect();
    let by_col: Vec<Vec<f32>> = (0..cols).map(|c| (0..rows).map(|r| wm[r * cols + c]).collect()).collect();
    let imp: Vec<f32> = (0..cols).map(|_| (2.0 * normal()).exp()).collect();
    for t in [QuantType::IQ4NL, QuantType::IQ4XS, QuantType::IQ3S, QuantType::IQ3XXS, QuantType::IQ2S, QuantType::IQ2XS]
    {
        let bs = t.block_size();
        let secs = median_secs(3, || {
            let mut cq = GgufColumns::new(t, &wm, rows, cols, Some(&imp));
            let mut out = vec![0f32; rows];
            for c0 in (0..cols).step_by(bs) {
                let block: Vec<&[f32]> = by_col[c0..c0 + bs].iter().map(|c| &c[..]).collect();
                cq.choose(c0, &block);
                for c in c0..c0 + bs {
                    cq.round(c, &by_col[c], &mut out);
                }
            }
            std::hint::black_box(cq.into_bytes());
        });
        println!(
            "{:<44} {:>12.1} {:>13.2} µs",
            format!("GPTQ rounding {}, {rows} × {cols}", t.name()),
            secs * 1e3,
            secs * 1e6 / (rows * cols / bs) as f64
        );
    }
}
