#!/usr/bin/env bash
# What keeping the calibration states between blocks in f16 (in memory, or in a temporary file)
# does to GPTQ's result on the default model: uniform Q4_K with the states in f32 (the default
# here), in f16 (--memory-limit 100MB: 38 MB of f32 states are over a quarter of it) and in f16 in
# a file (--memory-limit 30MB). Prints one Markdown table.
#   scripts/bench_states.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --locked >&2
T=target/release/triage
M=assets/SmolLM2-135M-Instruct.Q4_1.gguf
D=$(mktemp -d)
for run in f32:16GB f16:100MB file:30MB; do
    name=${run%%:*} limit=${run#*:}
    "$T" compress --model "$M" --calib assets/calib.txt --type Q4_K --memory-limit "$limit" \
        --out "$D/$name.gguf" --report "$D/$name.json" --eval-text assets/eval.txt --eval-windows 20 \
        | grep '^{' >"$D/$name.eval.json"
done
python3 - "$D" <<'PY'
import json, sys
d = sys.argv[1]
base = open(f"{d}/f32.gguf", "rb").read()
print("| states | mean rel. output error | max rel. output error | KL mean | KL p99 | top-1 | bytes equal to f32's |")
print("|---|---:|---:|---:|---:|---:|---:|")
for name in ["f32", "f16", "file"]:
    errs = [t["rel_error"] for t in json.load(open(f"{d}/{name}.json"))["tensors"] if t["rel_error"] is not None]
    e = json.load(open(f"{d}/{name}.eval.json"))
    data = open(f"{d}/{name}.gguf", "rb").read()
    same = sum(a == b for a, b in zip(data, base)) / len(base) if len(data) == len(base) else 0.0
    print(f"| {name} | {sum(errs)/len(errs):.6f} | {max(errs):.6f} | {e['kld_mean']:.6f} | {e['kld_p99']:.6f} | {e['top1_agree']:.4f} | {100*same:.2f}% |")
PY
rm -rf "$D"
