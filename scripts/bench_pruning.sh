#!/usr/bin/env bash
# Pruning: magnitude, Wanda and SparseGPT at 50% unstructured and 2:4 on the default model,
# every linear pruned, calibrated on the first CALIB_TOKENS tokens of assets/calib.txt; the
# pruned models (F16 GGUF, exact zeros) are scored on the evaluation text against the original.
# Prints a markdown table. Environment: CALIB_TOKENS (16384), EVAL_WINDOWS (40), WORK.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CALIB_TOKENS="${CALIB_TOKENS:-16384}"
EVAL_WINDOWS="${EVAL_WINDOWS:-40}"
WORK="${WORK:-/tmp/triage-pruning}"
BASE=assets/SmolLM2-135M-Instruct.Q4_1.gguf
mkdir -p "$WORK"
scripts/fetch_assets.sh >/dev/null
cargo build --release --locked -q
T=target/release/triage
echo "| sparsity | pruner | PPL | mean KL | top-1 agree |"
echo "|---|---|---:|---:|---:|"
for S in 0.5 2:4; do
  for P in magnitude wanda sparsegpt; do
    F="$WORK/$P-${S/:/of}.gguf"
    "$T" compress --model "$BASE" --calib assets/calib.txt --tokens "$CALIB_TOKENS" --sparsity "$S" \
      --pruner "$P" --out "$F" >/dev/null
    "$T" eval --model "$F" --reference "$BASE" --text assets/eval.txt --max-windows "$EVAL_WINDOWS" --json \
      2>/dev/null | python3 -c "import json,sys; r=json.load(sys.stdin); print(f\"| $S | $P | {r['ppl']:.3f} | {r['kld_mean']:.4f} | {100*r['top1_agree']:.2f}% |\")"
    rm -f "$F"
  done
done
