//! Every quantized type we encode, decoded by an independent reader: Python `gguf`'s port of
//! ggml's `dequantize_row_*` (tools/pyenv, made by scripts/test.sh) reads a GGUF file we write
//! and must find, weight for weight, the values our own decoder gives.

mod common;

use std::borrow::Cow;
use std::process::Command;

use common::{s, tmp_dir};
use triage::ggml::codec::{dequantize, quantize};
use triage::ggml::types::QUANTIZED_TYPES;
use triage::model::gguf_file::{write, OutTensor};

const CHECK: &str = r#"
import sys, numpy as np, gguf
from gguf.quants import dequantize
r = gguf.GGUFReader(sys.argv[1])
t = {x.name: x for x in r.tensors}
bad = []
for name, x in t.items():
    if name.endswith(".ref"):
        continue
    ours = np.asarray(t[name + ".ref"].data, dtype=np.float32).reshape(-1)
    theirs = dequantize(np.asarray(x.data), x.tensor_type).reshape(-1)
    if not np.array_equal(ours.view(np.uint32), theirs.astype(np.float32).view(np.uint32)):
        bad.append(f"{name}: {int((ours != theirs).sum())} of {ours.size} differ")
print("checked", len(t) // 2)
print("\n".join(bad))
sys.exit(1 if bad else 0)
"#;

fn weights(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = triage::stats::Rng::new(seed);
    (0..n).map(|i| ((rng.uniform() - 0.5) * if i % 61 == 7 { 0.8 } else { 0.05 }) as f32).collect()
}

#[test]
fn python_gguf_decodes_every_type_we_write_to_our_values() {
    let py = common::tool("pyenv/bin/python");
    let (rows, cols) = (4usize, 512usize);
    let mut tensors = Vec::new();
    for (k, t) in QUANTIZED_TYPES.into_iter().enumerate() {
        let w = weights(rows * cols, 5 + k as u64);
        let bytes = quantize(t, &w, cols, None);
        let ours = dequantize(t, &bytes, w.len());
        let ne = vec![cols as u64, rows as u64];
        tensors.push(OutTensor { name: t.name().to_string(), ne: ne.clone(), qtype: t, data: Cow::Owned(bytes) });
        let f32_bytes: Vec<u8> = ours.iter().flat_map(|v| v.to_le_bytes()).collect();
        tensors.push(OutTensor {
            name: format!("{}.ref", t.name()),
            ne,
            qtype: triage::ggml::types::QuantType::F32,
            data: Cow::Owned(f32_bytes),
        });
    }
    let dir = tmp_dir("decoders", "python");
    let path = dir.join("types.gguf");
    write(std::fs::File::create(&path).unwrap(), &[], &tensors).unwrap();
    let out = Command::new(py).args(["-c", CHECK, s(&path)]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "Python gguf decodes our bytes differently:\n{text}");
    assert!(text.contains(&format!("checked {}", QUANTIZED_TYPES.len())), "{text}");
    std::fs::remove_dir_all(&dir).ok();
}
