#!/usr/bin/env bash
# Same bytes, better file: triage's uniform GGUF quantization against llama-quantize --imatrix
# of the same type from the same base, both scored by llama-perplexity --kl-divergence against
# the base model on the evaluation text. Prints a markdown table.
#
#   scripts/bench_vs_llama.sh [TYPES]        (default: "Q4_K Q3_K"; "" for none)
#
# Then, scored the same way: llama-quantize's own MIXES (its rules per tensor, no --pure; same
# imatrix) and any FILES, e.g. the main job's file against llama.cpp's i-quant mixes:
#   MIXES="IQ4_XS IQ3_M IQ3_S IQ3_XXS IQ2_M" FILES=out/SmolLM2-135M-Instruct.budget.gguf scripts/bench_vs_llama.sh ""
#
# Both sides calibrate on the same first CALIB_TOKENS tokens of assets/calib.txt (llama-imatrix
# with 512-token chunks; triage with 512-token windows). llama-quantize runs with --pure, so
# every tensor (token embedding included) gets the type, with llama.cpp's fall-back for rows
# that do not fit 256-wide k-quant blocks — triage applies the same rule, so both files hold
# the same tensor types and bytes. Environment: MIXES, FILES (above), CALIB_TOKENS (8192), EVAL_CHUNKS (40),
# THREADS (2), WORK (/tmp/triage-bench).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
TYPES="${1-Q4_K Q3_K}"
MIXES="${MIXES:-}"
FILES="${FILES:-}"
for F in $FILES; do
  [ -f "$F" ] || { echo "bench_vs_llama: no such file: $F" >&2; exit 1; }
done
CALIB_TOKENS="${CALIB_TOKENS:-8192}"
EVAL_CHUNKS="${EVAL_CHUNKS:-40}"
THREADS="${THREADS:-2}"
WORK="${WORK:-/tmp/triage-bench}"
BASE=assets/SmolLM2-135M-Instruct.Q4_1.gguf
BIN=tools/llama.cpp/bin
mkdir -p "$WORK"
bash scripts/fetch_assets.sh >/dev/null
bash scripts/build_llama_cpp.sh >/dev/null
cargo build --release --locked -q
TRIAGE=target/release/triage

IMATRIX="$WORK/llama.imatrix.$CALIB_TOKENS.gguf"
if [ ! -f "$IMATRIX" ]; then
  "$BIN/llama-imatrix" -m "$BASE" -f assets/calib.txt -c 512 --chunks $((CALIB_TOKENS / 512)) -t "$THREADS" -o "$IMATRIX" >"$WORK/imatrix.log" 2>&1
fi
KLBASE="$WORK/base.kld"
. scripts/llama_kld.sh

row() { # label file → a table row
  local bytes bpw ppl kld p99 top
  bytes=$(stat -c %s "$2")
  read -r bpw ppl kld p99 top <<<"$(score "$2")"
  echo "| $1 | $(basename "$2" .gguf) | $bytes | $bpw | $ppl | $kld | $p99 | $top |"
}

echo "| type | file | bytes | bits/weight | PPL (llama.cpp) | mean KL | p99 KL | same top-1 % |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
# llama-quantize names its mixes, not its tensor types: with --pure, the mix whose base type is T.
# Its IQ2_S mix is made of IQ2_XS tensors; IQ2_S tensors are its IQ2_M mix's base type.
ftype() { case "$1" in IQ2_S) echo IQ2_M ;; *) echo "$1" ;; esac; }
for T in $TYPES; do
  L="$WORK/llama-$T.gguf"
  "$BIN/llama-quantize" --allow-requantize --pure --imatrix "$IMATRIX" "$BASE" "$L" "$(ftype "$T")" "$THREADS" >"$WORK/quantize-$T.log" 2>&1
  for M in imatrix gptq; do
    "$TRIAGE" compress --model "$BASE" --calib assets/calib.txt --tokens "$CALIB_TOKENS" --type "$T" \
      --method "$M" --out "$WORK/triage-$M-$T.gguf" >"$WORK/triage-$M-$T.log" 2>&1
  done
  for F in "$L" "$WORK/triage-imatrix-$T.gguf" "$WORK/triage-gptq-$T.gguf"; do
    row "$T" "$F"
  done
done
for T in $MIXES; do
  L="$WORK/llama-mix-$T.gguf"
  "$BIN/llama-quantize" --allow-requantize --imatrix "$IMATRIX" "$BASE" "$L" "$T" "$THREADS" >"$WORK/quantize-mix-$T.log" 2>&1
  row "$T (llama-quantize's mix)" "$L"
done
for F in $FILES; do
  row file "$F"
done
