#!/usr/bin/env bash
# Intel AutoRound's GGUF exports against `triage compress --budget size=<the same bytes>`, both
# from one base, every file scored by llama-perplexity --kl-divergence against that base on the
# evaluation text. Prints a markdown table.
#
#   scripts/bench_peers.sh [FORMATS]        (default: "q4_k_m q3_k_m q2_k_s+plain")
#   OFFGRID=/tmp/triage-bench/offgrid scripts/bench_peers.sh [FORMATS]
#
# Bases: the default model (its Q4_1 GGUF), or with OFFGRID the off-grid base that
# scripts/make_offgrid_base.sh writes there (run it first): AutoRound and triage both read its
# Hugging Face folder (OFFGRID/hf, f32), and the files are scored against its F16 GGUF.
#
# A format with "+plain" runs AutoRound's plain RTN (--disable_opt_rtn) instead of its default
# optimized RTN at ITERS=0. "autoscheme@B" runs AutoScheme, AutoRound's mixed-bits allocation:
# a scheme per layer among AUTOSCHEME_OPTIONS (default the GGUF k-quant recipes Q2_K_S, Q3_K_S,
# Q4_K_S, Q5_K_S and Q6_K) averaging B bits, exported with --format gguf:q4_k_m.
#
# AutoRound (PyPI auto-round, AR_VERSION) runs on the CPU from a Hugging Face folder (for the
# default model, one that triage writes from the Q4_1 GGUF: the dequantized Q4_1 weights in f16;
# AutoRound loads either folder in bf16, its default), calibrated on the same first
# NSAMPLES windows of SEQLEN tokens of assets/calib.txt that triage uses (16 384 tokens; given to
# AutoRound as a local JSONL file, no dataset hub is reachable). ITERS=0 is AutoRound's RTN mode
# (its default "optimized RTN" for GGUF k-quants); ITERS>0 tunes each block by signed gradient
# descent (its default recipe is ITERS=200, NSAMPLES=128, SEQLEN=2048, far beyond a 2-core CPU).
# triage plans under a size budget of the AutoRound file's bytes (lagrange solver, no frontier).
# Scoring as scripts/bench_vs_llama.sh: 40 windows of 512 tokens of assets/eval.txt.
#
# Environment: ITERS (0), NSAMPLES (32), SEQLEN (512), AR_VERSION (0.16.1), EVAL_CHUNKS (40),
# THREADS (2), WORK (/tmp/peers; /tmp/peers-offgrid with OFFGRID), KLBASE (the base's logits,
# made if missing: /tmp/triage-bench/base.kld; OFFGRID/base.kld),
# AUTOSCHEME_OPTIONS, TRIAGE and BIN (this checkout's builds unless given), TRIAGE_CACHE (passed
# to triage).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
FORMATS="${1:-q4_k_m q3_k_m q2_k_s+plain}"
ITERS="${ITERS:-0}"
NSAMPLES="${NSAMPLES:-32}"
SEQLEN="${SEQLEN:-512}"
AR_VERSION="${AR_VERSION:-0.16.1}"
EVAL_CHUNKS="${EVAL_CHUNKS:-40}"
THREADS="${THREADS:-2}"
AUTOSCHEME_OPTIONS="${AUTOSCHEME_OPTIONS:-GGUF:Q2_K_S,GGUF:Q3_K_S,GGUF:Q4_K_S,GGUF:Q5_K_S,GGUF:Q6_K}"
if [ -n "${OFFGRID:-}" ]; then
  HF="$OFFGRID/hf"
  BASE="$OFFGRID/SmolLM2-offgrid.F16.gguf"
  [ -f "$HF/config.json" ] && [ -f "$BASE" ] || { echo "bench_peers: $OFFGRID holds no off-grid base; run scripts/make_offgrid_base.sh" >&2; exit 1; }
  WORK="${WORK:-/tmp/peers-offgrid}"
  KLBASE="${KLBASE:-$OFFGRID/base.kld}"
  MODEL="$HF"
else
  WORK="${WORK:-/tmp/peers}"
  HF="$WORK/smol-hf"
  BASE=assets/SmolLM2-135M-Instruct.Q4_1.gguf
  KLBASE="${KLBASE:-/tmp/triage-bench/base.kld}"
  MODEL="$BASE"
fi
mkdir -p "$WORK" "$(dirname "$KLBASE")"
bash scripts/fetch_assets.sh >/dev/null
if [ -z "${BIN:-}" ]; then bash scripts/build_llama_cpp.sh >/dev/null; BIN=tools/llama.cpp/bin; fi
if [ -z "${TRIAGE:-}" ]; then cargo build --release --locked -q; TRIAGE=target/release/triage; fi

# Python: torch/transformers as the other scripts pin them, then AutoRound.
bash scripts/setup_python.sh >/dev/null
PY=.venv/bin/python
"$PY" -m pip install --quiet "auto-round==$AR_VERSION"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1

# The default model as a Hugging Face folder: the Q4_1 weights dequantized, in f16 (exact for most).
if [ ! -f "$HF/model.safetensors" ]; then
  "$TRIAGE" compress --model "$BASE" --calib assets/calib.txt --type F32 --method rtn --hf-dtype f16 \
    --out "$HF" >"$WORK/hf.log" 2>&1
fi
# Calibration: the first NSAMPLES windows of SEQLEN tokens of assets/calib.txt, one JSON line each
# (a few tokens of slack: AutoRound re-tokenizes, truncates to SEQLEN and drops shorter samples).
CALIB="$WORK/calib-${NSAMPLES}x${SEQLEN}.jsonl"
if [ ! -f "$CALIB" ]; then
  "$PY" - "$HF" assets/calib.txt "$CALIB" "$NSAMPLES" "$SEQLEN" <<'EOF'
import json, sys
from transformers import AutoTokenizer
hf, src, out, n, L = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
tok = AutoTokenizer.from_pretrained(hf)
ids = tok(open(src, encoding="utf-8").read()[: 40 * n * L], add_special_tokens=False)["input_ids"]
with open(out, "w") as f:
    for i in range(n):
        f.write(json.dumps({"text": tok.decode(ids[i * L : (i + 1) * L + 16])}) + "\n")
EOF
fi

. scripts/llama_kld.sh

echo "| format | file | bytes | bits/weight | PPL (llama.cpp) | mean KL | KL ratio | p99 KL | same top-1 % | time (s) |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for FF in $FORMATS; do
  case "$FF" in
    *+plain) F="${FF%+plain}"; MODE=plainrtn-; EXTRA=--disable_opt_rtn; FMT="gguf:$F" ;;
    autoscheme@*) F="autoscheme-${FF#autoscheme@}"; MODE=; FMT=gguf:q4_k_m
      EXTRA="--schemes $AUTOSCHEME_OPTIONS --bits ${FF#autoscheme@}" ;;
    *) F="$FF"; MODE=; EXTRA=; FMT="gguf:$F" ;;
  esac
  OUT="$WORK/ar-iters$ITERS-$MODE$F"
  if [ -z "$(find "$OUT" -name '*.gguf' 2>/dev/null)" ]; then
    t0=$(date +%s)
    "$REPO/.venv/bin/auto-round" --model "$HF" --device cpu --iters "$ITERS" --nsamples "$NSAMPLES" \
      --seqlen "$SEQLEN" --dataset "$CALIB" --format "$FMT" --output_dir "$OUT" $EXTRA >"$OUT.log" 2>&1
    echo $(($(date +%s) - t0)) >"$OUT.seconds"
  fi
  t_ar=$(cat "$OUT.seconds" 2>/dev/null || echo "?")
  AR=$(find "$OUT" -name '*.gguf' | head -1)
  bytes=$(stat -c %s "$AR")
  T="$WORK/triage-$MODE$F.gguf"
  t0=$(date +%s)
  "$TRIAGE" compress --model "$MODEL" --calib assets/calib.txt --budget "size=$bytes" --solver lagrange \
    --frontier 0 --out "$T" >"$T.log" 2>&1 || { echo "| $F | triage (failed: $(tail -1 "$T.log")) | | | | | | | | |"; T=; }
  t_tr=$(($(date +%s) - t0))
  read -r bpw ppl kld p99 top <<<"$(score "$AR")"
  ar_kld=$kld
  echo "| $F | AutoRound iters=$ITERS${EXTRA:+ $EXTRA} | $bytes | $bpw | $ppl | $kld | 1 | $p99 | $top | $t_ar |"
  if [ -n "$T" ]; then
    read -r bpw ppl kld p99 top <<<"$(score "$T")"
    # KL ratio: triage's mean KL over AutoRound's at the same budget.
    ratio=$(awk -v a="$kld" -v b="$ar_kld" 'BEGIN { printf "%.2f", a / b }')
    echo "| $F | triage --budget size=$bytes | $(stat -c %s "$T") | $bpw | $ppl | $kld | $ratio | $p99 | $top | $t_tr |"
  fi
done
