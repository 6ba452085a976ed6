#!/usr/bin/env bash
# GPTQ speed, side by side on identical inputs and threads: our Rust GPTQ (cargo bench --bench
# gptq, which also writes the inputs) and the PyTorch reference (scripts/gptq_reference.py, the
# paper's algorithm in torch). Needs scripts/setup_python.sh (.venv with torch).
#   GPTQ_BLOCKS=4 THREADS=2 scripts/bench_gptq.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
THREADS="${THREADS:-2}"
export RAYON_NUM_THREADS="$THREADS"
cargo bench --locked --bench gptq 2>/dev/null | tee /tmp/triage-gptq-bench.txt
.venv/bin/python scripts/gptq_reference.py target/gptq-bench --threads "$THREADS" --repeat 3 --json /tmp/triage-gptq-ref.json >/dev/null
python3 - <<'PY'
import json
ours = {}
for line in open("/tmp/triage-gptq-bench.txt"):
    f = line.split()
    if len(f) == 4 and f[0].startswith("blk."):
        ours[f[0]] = (float(f[2]), float(f[3]))
    if f and f[0] == "total":
        total = float(f[1])
ref = json.load(open("/tmp/triage-gptq-ref.json"))
print()
print("| layer | triage s | PyTorch s | speed-up | triage rel. error | PyTorch rel. error |")
print("|---|---:|---:|---:|---:|---:|")
for l in ref["layers"]:
    s, e = ours[l["name"]]
    print(f"| {l['name']} | {s:.4f} | {l['seconds']:.4f} | {l['seconds']/s:.2f}× | {e:.3e} | {l['rel_err']:.3e} |")
print(f"| **total** | {total:.3f} | {ref['total_s_median']:.3f} | {ref['total_s_median']/total:.2f}× | | |")
PY
