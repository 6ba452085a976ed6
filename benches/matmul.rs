//! `x Wᵀ` at the forward pass's shapes, candle's CPU matmul against our faer kernel, side by side:
//! `cargo bench --bench matmul`. This is the measurement behind `model::kernels::matmul_nt`.

mod common;

use candle_core::{Device, Tensor};
use common::median_secs;
use triage::model::kernels::matmul_nt;

fn main() {
    let d = Device::Cpu;
    println!("{:<24} {:>12} {:>12} {:>8}", "rows×in→out", "candle GF/s", "faer GF/s", "ratio");
    let shapes =
        [(512, 576, 576), (512, 576, 192), (512, 576, 1536), (512, 1536, 576), (2048, 576, 1536), (512, 576, 49152)];
    for (m, k, n) in shapes {
        let x = Tensor::randn(0f32, 1., (m, k), &d).unwrap();
        let w = Tensor::randn(0f32, 1., (n, k), &d).unwrap();
        let flop = 2.0 * (m * k * n) as f64;
        let reps = if n > 10_000 { 3 } else { 9 };
        let c = median_secs(reps, || {
            std::hint::black_box(x.matmul(&w.t().unwrap()).unwrap());
        });
        let f = median_secs(reps, || {
            std::hint::black_box(matmul_nt(&x, &w).unwrap());
        });
        println!("{:<24} {:>12.0} {:>12.0} {:>8.2}", format!("{m}×{k}→{n}"), flop / c / 1e9, flop / f / 1e9, c / f);
    }
}
