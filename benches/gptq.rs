//! GPTQ speed on SmolLM2's linears: `cargo bench --bench gptq` (or `scripts/bench_gptq.sh`,
//! which also runs the PyTorch reference on the same inputs and prints the ratio).
//!
//! Gathers the input moments of the first GPTQ_BLOCKS blocks (default 4) on 4096 calibration
//! tokens, writes every layer's W and H = 2XXᵀ/N to target/gptq-bench/ (the format
//! scripts/gptq_reference.py reads), then times our GPTQ (Cholesky work included) with the
//! paper's quantizer — 4-bit asymmetric RTN in groups of 32, blocks of 128, damp 0.01 — and
//! prints a table of median seconds and relative output errors tr(ΔW H ΔWᵀ)/tr(W H Wᵀ).

mod common;

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor};
use common::median;
use triage::calib::moments::BlockMoments;
use triage::calib::Windows;
use triage::compress::gptq::{gptq, GptqOptions, RtnGrid};
use triage::model::kernels::with_f32;
use triage::model::{BlockOpts, Model};

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model_path = root.join("assets/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !model_path.exists() {
        anyhow::bail!("{} is missing: run scripts/fetch_assets.sh", model_path.display());
    }
    let n_blocks: usize = std::env::var("GPTQ_BLOCKS").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    let (bits, group, reps) = (4u32, 32usize, 3);
    let model = Model::load(&model_path)?;
    let windows = Windows::from_file(&root.join("assets/calib.txt"), model.tokenizer()?, 512, Some(8))?;
    let flat: Vec<u32> = windows.windows.iter().flatten().copied().collect();
    let mut x = model.embed(&Tensor::from_vec(flat, (windows.len(), 512), &Device::Cpu)?)?;
    let pos = model.positions(512)?;
    let dump = root.join("target/gptq-bench");
    std::fs::create_dir_all(&dump)?;
    let mut manifest = Vec::new();
    println!("threads: {}", rayon::current_num_threads());
    println!("{:<28} {:>11} {:>12} {:>12}", "layer", "rows×cols", "median s", "rel. error");
    let mut total = 0.0;
    for block in &model.blocks[..n_blocks.min(model.blocks.len())] {
        let mut moments = BlockMoments::new(block);
        x = block.forward(&x, &model.config, &pos, BlockOpts::default(), &mut moments)?;
        for l in block.linears() {
            let m = moments.of(&l.name).expect("every linear has its input group");
            let (rows, cols) = (l.out_features(), l.in_features());
            let w = with_f32(&l.weight, <[f32]>::to_vec)?;
            let scale = 2.0 / m.n_tokens as f64;
            let h: Vec<f64> = m.xxt.iter().map(|&v| v as f64 * scale).collect();
            let stem = l.name.replace('.', "_");
            std::fs::File::create(dump.join(format!("{stem}.f32")))?
                .write_all(&w.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())?;
            std::fs::File::create(dump.join(format!("{stem}.f64")))?
                .write_all(&h.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())?;
            manifest.push(serde_json::json!({"name": l.name, "rows": rows, "cols": cols, "w": format!("{stem}.f32"), "h": format!("{stem}.f64")}));
            let mut q = w.clone();
            let times: Vec<f64> = (0..reps)
                .map(|_| {
                    q.copy_from_slice(&w);
                    let t = Instant::now();
                    let mut grid = RtnGrid::new(bits, group, rows, false);
                    gptq(
                        &mut q,
                        rows,
                        cols,
                        &m.xxt,
                        m.n_tokens,
                        Some(&mut grid),
                        None,
                        GptqOptions::default(),
                        &l.name,
                    )
                    .expect("positive definite");
                    t.elapsed().as_secs_f64()
                })
                .collect();
            let delta: Vec<f32> = w.iter().zip(&q).map(|(a, b)| a - b).collect();
            let rel = m.output_energy(&delta) / m.output_energy(&w);
            let med = median(times);
            total += med;
            println!("{:<28} {:>11} {:>12.4} {:>12.3e}", l.name, format!("{rows}×{cols}"), med, rel);
        }
    }
    println!("{:<28} {:>11} {:>12.4}", "total", "", total);
    let j = serde_json::json!({"layers": manifest, "group_size": group, "bits": bits, "block_size": 128, "damp": 0.01});
    std::fs::write(dump.join("manifest.json"), serde_json::to_string_pretty(&j)?)?;
    println!("inputs written to {}", dump.display());
    Ok(())
}
