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
# CPU-only torch from PyPI is fine (large download).
"$VENV/bin/python" -m pip install --quiet \
  torch transformers accelerate gguf safetensors numpy sentencepiece tokenizers
"$VENV/bin/python" -c 'import torch, transformers, gguf, safetensors, numpy, tokenizers; print("torch", torch.__version__, "transformers", transformers.__version__, "gguf", gguf.__version__ if hasattr(gguf, "__version__") else "?")'
