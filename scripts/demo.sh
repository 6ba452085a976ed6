#!/usr/bin/env bash
# The main job on the default model: fetch SmolLM2-135M-Instruct (Q4_1 GGUF) and the State of the
# Union texts, build triage, and compress the model to 4.5 bits per weight — below the source's
# Q4_1 and below every k-quant mix llama.cpp makes of this model (its 576-wide rows fall back to
# 4.5 bits or more, so its smallest, Q2_K, is 88 202 080 bytes) — with the default solver for
# such budgets (lagrange: a GGUF type per tensor by each tensor's measured sensitivity, over a
# layer database of GPTQ variants) on calibration text (1800s speeches). Writes
# out/SmolLM2-135M-Instruct.budget.gguf, its plan (.plan.json) and report (.report.html: KL
# against size beside single-type and Lagrangian plans, the type of every tensor, the
# sensitivities), measures the result against the original on
# held-out text (2000–2021 speeches, 40 windows of 512 tokens) and prints that as one JSON object
# on stdout.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/fetch_assets.sh >&2
cargo build --release --locked >&2
mkdir -p out
./target/release/triage compress --model assets/SmolLM2-135M-Instruct.Q4_1.gguf \
  --calib assets/calib.txt --budget bpw=4.5 --eval-text assets/eval.txt --eval-windows 40 \
  --out out/SmolLM2-135M-Instruct.budget.gguf "$@" >out/budget.log
grep -v '^{' out/budget.log >&2
grep '^{' out/budget.log
