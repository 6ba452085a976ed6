#!/usr/bin/env bash
# llama.cpp's own converter's outputs for the fixture folders, committed as
# tests/fixtures/converter/NAME.F16.gguf: tests/hf_gguf.rs checks that
# `triage compress --model tests/fixtures/NAME --type F16` writes the same tensors and metadata.
# Needs scripts/setup_python.sh (torch, transformers) and scripts/build_llama_cpp.sh (the sdist
# holding convert_hf_to_gguf.py). The fixtures' vocabularies are our own, so the converter's
# pre-tokenizer detection (a table of hashes of published vocabularies) is told the name
# (tiny-spm's SentencePiece model needs none).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p tests/fixtures/converter
for case in tiny-llama:smollm tiny-llama-sharded:smollm tiny-qwen2:qwen2 tiny-qwen3:qwen2 tiny-spm: tiny-gemma3:qwen2 tiny-gemma2: tiny-phi3: tiny-gemma3-vl: tiny-smollm3:smollm; do
  name=${case%%:*}
  pre=${case##*:}
  .venv/bin/python scripts/convert_reference.py --model "tests/fixtures/$name" ${pre:+--pre "$pre"} \
    --out "tests/fixtures/converter/$name.F16.gguf" > "/tmp/convert-$name.log" 2>&1 \
    || { tail -20 "/tmp/convert-$name.log"; exit 1; }
  echo "tests/fixtures/converter/$name.F16.gguf: $(sha256sum < "tests/fixtures/converter/$name.F16.gguf" | cut -c1-16)…"
done
# The Gemma, Phi-3 and SmolLM3 fixtures' GGUF files are the converter's too, in float32 (tests/conformance.rs).
for case in tiny-gemma3:qwen2 tiny-gemma2: tiny-phi3: tiny-smollm3:smollm; do
  name=${case%%:*}
  pre=${case##*:}
  .venv/bin/python scripts/convert_reference.py --model "tests/fixtures/$name" ${pre:+--pre "$pre"} --outtype f32 \
    --out "tests/fixtures/$name.gguf" > "/tmp/convert-$name-f32.log" 2>&1 \
    || { tail -20 "/tmp/convert-$name-f32.log"; exit 1; }
done
