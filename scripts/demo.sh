#!/usr/bin/env bash
# The main job on the default model: fetch SmolLM2-135M-Instruct (Q4_1 GGUF) and the State of the
# Union texts, build triage, and evaluate the model on held-out text (2000–2021 speeches,
# 40 windows of 512 tokens), printing one JSON object.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/fetch_assets.sh
cargo build --release --locked
./target/release/triage eval --model assets/SmolLM2-135M-Instruct.Q4_1.gguf \
  --text assets/eval.txt --ctx 512 --max-windows 40 --json "$@"
