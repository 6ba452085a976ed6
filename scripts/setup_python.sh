#!/usr/bin/env bash
# Create <repo>/.venv with the Python packages used by scripts/make_fixtures.py
# and scripts/reference_eval.py. Idempotent: re-running only installs what is missing.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# Pinned to the versions that made the committed fixtures and the reference numbers.
# PyPI's torch is the CUDA build (several GB); it runs on the CPU here.
"$VENV/bin/python" -m pip install --quiet \
  torch==2.15.0 transformers==5.24.0 accelerate gguf==0.19.0 safetensors numpy sentencepiece tokenizers==0.23.3
"$VENV/bin/python" -c 'import torch, transformers, gguf, safetensors, numpy, tokenizers; print("torch", torch.__version__, "transformers", transformers.__version__, "gguf", gguf.__version__ if hasattr(gguf, "__version__") else "?")'
