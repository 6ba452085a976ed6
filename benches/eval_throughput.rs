//! Eval throughput on the default model: `cargo bench --bench eval_throughput`.
//!
//! Prints a table of the median time of each stage (load, tokenize, forward per batch size,
//! scoring) and tokens per second. Needs `scripts/fetch_assets.sh` to have run.

mod common;

use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor};
use common::median;
use triage::calib::Windows;
use triage::eval::evaluate;
use triage::model::Model;
use triage::progress::Silent;

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model_path = root.join("assets/SmolLM2-135M-Instruct.Q4_1.gguf");
    let text_path = root.join("assets/eval.txt");
    if !model_path.exists() {
        anyhow::bail!("{} is missing: run scripts/fetch_assets.sh", model_path.display());
    }
    let reps = 3;
    let ctx = 512;
    println!("threads: {}", rayon::current_num_threads());
    println!("{:<28} {:>12} {:>12}", "stage", "median s", "tokens/s");

    let t = Instant::now();
    let model = Model::load(&model_path)?;
    println!("{:<28} {:>12.3} {:>12}", "load (dequantize to f32)", t.elapsed().as_secs_f64(), "");

    let text = std::fs::read_to_string(&text_path)?;
    let tok = model.tokenizer()?;
    let times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            let ids = tok.encode(&text).expect("tokenize");
            std::hint::black_box(ids);
            t.elapsed().as_secs_f64()
        })
        .collect();
    let n_tokens = tok.encode(&text)?.len();
    let m = median(times);
    println!("{:<28} {:>12.3} {:>12.0}", "tokenize eval.txt", m, n_tokens as f64 / m);

    let windows = Windows::from_file(&text_path, tok, ctx, Some(8))?;
    for batch in [1usize, 2, 4] {
        let times: Vec<f64> = (0..reps)
            .map(|_| {
                let flat: Vec<u32> = windows.windows[..batch].iter().flatten().copied().collect();
                let x = Tensor::from_vec(flat, (batch, ctx), &Device::Cpu).expect("tensor");
                let t = Instant::now();
                let logits = model.forward(&x, &mut ()).expect("forward");
                std::hint::black_box(logits);
                t.elapsed().as_secs_f64()
            })
            .collect();
        let m = median(times);
        println!("{:<28} {:>12.3} {:>12.0}", format!("forward, batch {batch}×{ctx}"), m, (batch * ctx) as f64 / m);
    }
    for (name, reference) in
        [("eval 8 windows", None), ("eval 8 windows + reference", Some(&model as &dyn triage::model::Blocks))]
    {
        let times: Vec<f64> = (0..reps)
            .map(|_| {
                let t = Instant::now();
                let r = evaluate(&model, reference, &windows, 4, 0, &mut Silent).expect("eval");
                std::hint::black_box(r);
                t.elapsed().as_secs_f64()
            })
            .collect();
        let m = median(times);
        println!("{:<28} {:>12.3} {:>12.0}", name, m, (windows.len() * ctx) as f64 / m);
    }
    Ok(())
}
