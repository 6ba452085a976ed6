#!/usr/bin/env bash
# Budgeted allocation against llama.cpp's own mixes: for each llama-quantize --imatrix type
# (Q2_K, Q3_K_S, Q3_K_M, Q4_K_S, Q4_K_M) from the same base, `triage compress --budget
# size=<that file's bytes>` with each solver; every file scored by llama-perplexity
# --kl-divergence against the base on the evaluation text. Then depth: DROP blocks (and
# DROP_SUBLAYERS attention/MLP sublayers) removed by ShortGPT's influence and by EvoPress, both
# scored the same way. Then sparsity: a share
# of the blocks' weights pruned (SparseGPT, F16) as uniform, OWL and EvoPress allocate it.
# Prints markdown tables.
#
#   scripts/bench_budget.sh [BASE.gguf]        (default: the default model)
#
# Calibration: triage's layer database uses the first CALIB_TOKENS tokens of assets/calib.txt
# and its search the next 12 windows of 512 (8 to search on, 4 to judge); llama-imatrix gets the
# same CALIB_TOKENS + 6144 tokens. Environment: MIXES ("Q2_K Q3_K_S Q3_K_M Q4_K_S Q4_K_M"; empty skips),
# SOLVERS ("lagrange evo"), DROP (8; 0 skips), DROP_SUBLAYERS (16; 0 skips), SPARSITY ("0.5 0.6 0.7"; empty skips),
# SPARSE_SOLVERS ("uniform owl evo"), CALIB_TOKENS (16384), EVAL_CHUNKS (40),
# THREADS (2), WORK (/tmp/triage-bench), TRIAGE_ARGS (extra flags for triage compress).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
MIXES="${MIXES-Q2_K Q3_K_S Q3_K_M Q4_K_S Q4_K_M}"
SOLVERS="${SOLVERS:-lagrange evo}"
DROP="${DROP:-8}"
DROP_SUBLAYERS="${DROP_SUBLAYERS:-16}"
SPARSITY="${SPARSITY-0.5 0.6 0.7}"
SPARSE_SOLVERS="${SPARSE_SOLVERS:-uniform owl evo}"
CALIB_TOKENS="${CALIB_TOKENS:-16384}"
EVAL_CHUNKS="${EVAL_CHUNKS:-40}"
THREADS="${THREADS:-2}"
WORK="${WORK:-/tmp/triage-bench}"
TRIAGE_ARGS="${TRIAGE_ARGS:-}"
bash scripts/fetch_assets.sh >/dev/null
BASE="${1:-assets/SmolLM2-135M-Instruct.Q4_1.gguf}"
TAG="$(basename "$BASE" .gguf)"
OUT="$WORK/budget-$TAG"
BIN=tools/llama.cpp/bin
mkdir -p "$OUT"
bash scripts/build_llama_cpp.sh >/dev/null
cargo build --release --locked -q
TRIAGE=target/release/triage

IMATRIX="$OUT/llama.imatrix.gguf"
if [ ! -f "$IMATRIX" ]; then
  "$BIN/llama-imatrix" -m "$BASE" -f assets/calib.txt -c 512 --chunks $(((CALIB_TOKENS + 6144) / 512)) -t "$THREADS" \
    -o "$IMATRIX" >"$OUT/imatrix.log" 2>&1
fi
KLBASE="$OUT/base.kld"
if [ ! -f "$KLBASE" ]; then
  "$BIN/llama-perplexity" -m "$BASE" -f assets/eval.txt -c 512 --chunks "$EVAL_CHUNKS" -t "$THREADS" \
    --kl-divergence-base "$KLBASE" >"$OUT/base.log" 2>&1
fi

score() { # file → "ppl mean_kld p99_kld same_top"
  local log="$1.kld.log"
  if [ ! -f "$log" ] || ! grep -q '^Same top p:' "$log"; then
    "$BIN/llama-perplexity" -m "$1" -f assets/eval.txt -c 512 --chunks "$EVAL_CHUNKS" -t "$THREADS" -lv 4 \
      --kl-divergence-base "$KLBASE" --kl-divergence >"$log" 2>&1
  fi
  local ppl kld p99 top
  ppl=$(grep -E '^Mean PPL\(Q\) +:' "$log" | awk '{print $4}')
  kld=$(grep -E '^Mean    KLD:' "$log" | awk '{print $3}')
  p99=$(grep -E '^99.0%   KLD:' "$log" | awk '{print $3}')
  top=$(grep -E '^Same top p:' "$log" | awk '{print $4}')
  echo "$ppl $kld $p99 $top"
}
bpw_of() { # a GGUF's tensor bits per weight, as llama.cpp counts them
  grep -oE '\([0-9.]+ BPW\)' "$1.kld.log" | head -1 | tr -d '()' | awk '{print $1}'
}

echo "## $TAG: equal file size, llama.cpp's mixes vs triage plans"
echo
echo "| llama.cpp mix | file | bytes | BPW | PPL | mean KL | KL ratio | p99 KL | same top-1 % | compress time |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for T in $MIXES; do
  L="$OUT/llama-$T.gguf"
  [ -f "$L" ] || "$BIN/llama-quantize" --allow-requantize --imatrix "$IMATRIX" "$BASE" "$L" "$T" "$THREADS" >"$OUT/quantize-$T.log" 2>&1
  SIZE=$(stat -c %s "$L")
  read -r ppl kld p99 top <<<"$(score "$L")"
  echo "| $T | llama-quantize | $SIZE | $(bpw_of "$L") | $ppl | $kld | 1 | $p99 | $top | |"
  for S in $SOLVERS; do
    F="$OUT/triage-$S-$SIZE.gguf"
    if [ ! -f "$F" ]; then
      /usr/bin/time -f "%e" -o "$F.time" "$TRIAGE" compress --model "$BASE" --calib assets/calib.txt --tokens "$CALIB_TOKENS" \
        --budget "size=$SIZE" --solver "$S" $TRIAGE_ARGS --out "$F" >"$F.log" 2>&1
    fi
    read -r tppl tkld tp99 ttop <<<"$(score "$F")"
    ratio=$(awk -v a="$tkld" -v b="$kld" 'BEGIN{printf "%.2f", a/b}')
    echo "| $T | triage $S | $(stat -c %s "$F") | $(bpw_of "$F") | $tppl | $tkld | $ratio | $tp99 | $ttop | $(cat "$F.time") s |"
  done
done

depth() { # file prefix, budget key, count, unit → a table of shortgpt against evo
  echo
  echo "## $TAG: $3 $4 removed (no quantization)"
  echo
  echo "| solver | removed | PPL | mean KL | p99 KL | same top-1 % |"
  echo "|---|---|---:|---:|---:|---:|"
  for S in shortgpt evo; do
    F="$OUT/$1$3-$S.gguf"
    [ -f "$F" ] || "$TRIAGE" compress --model "$BASE" --calib assets/calib.txt --tokens "$CALIB_TOKENS" \
      --budget "$2=$3" --solver "$S" $TRIAGE_ARGS --out "$F" >"$F.log" 2>&1
    read -r ppl kld p99 top <<<"$(score "$F")"
    removed=$(python3 -c "
import json, sys
p = json.load(open(sys.argv[1]))
parts = [('block %s' if p['drop_attention'] or p['drop_mlp'] else '%s') % ','.join(map(str, p['drop_blocks']))] if p['drop_blocks'] else []
parts += ['attention ' + ','.join(map(str, p['drop_attention']))] if p['drop_attention'] else []
parts += ['MLP ' + ','.join(map(str, p['drop_mlp']))] if p['drop_mlp'] else []
print('; '.join(parts))" "${F%.gguf}.plan.json")
    echo "| $S | $removed | $ppl | $kld | $p99 | $top |"
  done
}
if [ "$DROP" -gt 0 ]; then depth drop drop-blocks "$DROP" blocks; fi
if [ "$DROP_SUBLAYERS" -gt 0 ]; then depth sublayers drop-sublayers "$DROP_SUBLAYERS" sublayers; fi

if [ -n "$SPARSITY" ]; then
  echo
  echo "## $TAG: sparsity (SparseGPT, F16; share of the blocks' linear weights pruned)"
  echo
  echo "| sparsity | solver | planned | PPL | mean KL | p99 KL | same top-1 % | compress time |"
  echo "|---:|---|---:|---:|---:|---:|---:|---:|"
  for P in $SPARSITY; do
    for S in $SPARSE_SOLVERS; do
      F="$OUT/sparsity$P-$S.gguf"
      if [ ! -f "$F" ]; then
        /usr/bin/time -f "%e" -o "$F.time" "$TRIAGE" compress --model "$BASE" --calib assets/calib.txt --tokens "$CALIB_TOKENS" \
          --budget "sparsity=$P" --solver "$S" $TRIAGE_ARGS --out "$F" >"$F.log" 2>&1
      fi
      read -r ppl kld p99 top <<<"$(score "$F")"
      planned=$(python3 -c "import json,sys; print('%.4f' % json.load(open(sys.argv[1]))['sparsity']['planned'])" "${F%.gguf}.plan.json")
      echo "| $P | $S | $planned | $ppl | $kld | $p99 | $top | $(cat "$F.time") s |"
    done
  done
fi
