use candle_core::{Device, Tensor};
use std::time::Instant;
fn main() {
    faer_bench();
    let d = Device::Cpu;
    for (m, k, n) in [(512usize, 576usize, 576usize), (512, 576, 1536), (512, 1536, 576), (2048, 576, 1536), (512, 576, 49152)] {
        let x = Tensor::randn(0f32, 1., (m, k), &d).unwrap();
        let w = Tensor::randn(0f32, 1., (n, k), &d).unwrap();
        let wt = w.t().unwrap().contiguous().unwrap();
        for (name, rhs) in [("w.t()", w.t().unwrap()), ("contig", wt.clone())] {
            let _ = x.matmul(&rhs).unwrap();
            let t = Instant::now();
            let r = 5;
            for _ in 0..r { let _ = x.matmul(&rhs).unwrap(); }
            let s = t.elapsed().as_secs_f64() / r as f64;
            println!("{m}x{k}x{n} {name}: {:.2} ms {:.0} GFLOP/s", s * 1e3, 2.0 * (m * k * n) as f64 / s / 1e9);
        }
    }
    // batched attention-like
    let q = Tensor::randn(0f32, 1., (1, 9, 512, 64), &d).unwrap();
    let k = Tensor::randn(0f32, 1., (1, 9, 512, 64), &d).unwrap();
    let t = Instant::now();
    for _ in 0..5 { let _ = q.matmul(&k.t().unwrap()).unwrap(); }
    let s = t.elapsed().as_secs_f64() / 5.0;
    println!("attn qk 9x512x64x512: {:.2} ms {:.0} GFLOP/s", s * 1e3, 2.0 * 9.0 * 512.0 * 512.0 * 64.0 / s / 1e9);
}
#[allow(dead_code)]
pub fn faer_bench() {
    use faer::{linalg::matmul::matmul, Accum, MatMut, MatRef, Par};
    for (m, k, n) in [(512usize, 576usize, 576usize), (512, 576, 1536), (512, 1536, 576), (2048, 576, 1536), (512, 576, 49152)] {
        let x: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let w: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut y = vec![0f32; m * n];
        let run = |y: &mut Vec<f32>| {
            let lhs = MatRef::from_row_major_slice(&x, m, k);
            let rhs = MatRef::from_row_major_slice(&w, n, k).transpose();
            let dst = MatMut::from_row_major_slice_mut(y, m, n);
            matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, Par::rayon(0));
        };
        run(&mut y);
        let t = Instant::now();
        for _ in 0..5 { run(&mut y); }
        let s = t.elapsed().as_secs_f64() / 5.0;
        println!("faer {m}x{k}x{n}: {:.2} ms {:.0} GFLOP/s", s * 1e3, 2.0 * (m * k * n) as f64 / s / 1e9);
    }
}
