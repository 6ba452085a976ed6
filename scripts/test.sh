#!/usr/bin/env bash
# The whole test suite: fetch the assets (default model, texts) and the peer tools, then every
# unit, conformance, bad-input, compression and real-model test, in release mode (the real-model
# tests run full forward passes), then the sharded plan under a real Slurm.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/fetch_assets.sh
# The peer: llama.cpp's llama-perplexity (tests/compress.rs checks our GGUF files with it) and
# Python gguf (an independent reader), both under tools/ (git-ignored; built once).
LLAMA_TARGETS=llama-perplexity scripts/build_llama_cpp.sh
if [ ! -x tools/pyenv/bin/python ]; then
  python3 -m venv tools/pyenv
  tools/pyenv/bin/python -m pip install --quiet gguf==0.19.0
fi
cargo test --release --locked "$@"
# The sharded plan under a real single-node Slurm (root: installs Debian's slurm-wlm and munge;
# elsewhere it says why it cannot run and passes). Only for the whole suite, not a filtered run.
if [ $# -eq 0 ]; then
  scripts/test_slurm.sh
  python3 scripts/check_k8s.py deploy/k8s/plan-job.yaml
fi
