#!/usr/bin/env bash
# The main job on the default model: fetch SmolLM2-135M-Instruct (Q4_1 GGUF) and the State of the
# Union texts, build triage, compress the model to Q4_K with GPTQ on 16k tokens of calibration
# text (1800s speeches), and evaluate the result against the original on held-out text
# (2000–2021 speeches, 40 windows of 512 tokens), printing one JSON object.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/fetch_assets.sh
cargo build --release --locked
mkdir -p out
./target/release/triage compress --model assets/SmolLM2-135M-Instruct.Q4_1.gguf \
  --calib assets/calib.txt --type Q4_K --method gptq --out out/SmolLM2-135M-Instruct.Q4_K.gguf >&2
./target/release/triage eval --model out/SmolLM2-135M-Instruct.Q4_K.gguf \
  --reference assets/SmolLM2-135M-Instruct.Q4_1.gguf \
  --text assets/eval.txt --ctx 512 --max-windows 40 --json "$@"
