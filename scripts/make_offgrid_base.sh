#!/usr/bin/env bash
# Build an "off-grid" base model for benchmarks: SmolLM2-135M-Instruct fine-tuned briefly in f32,
# then rescaled per channel (a function-preserving reparametrization), as a Hugging Face folder
# and as an F16 GGUF made by llama.cpp's own convert_hf_to_gguf.py.
#
# Why: the default model, assets/SmolLM2-135M-Instruct.Q4_1.gguf, only exists as Q4_1 (its
# token embedding as Q8_0), so its linears sit exactly on the Q4_1 grid (re-encoding one as Q4_1
# is lossless, and the 4-bit K-quants' grids are close to it). Users compress f16/bf16 models whose
# weights ignore every quantization grid; measuring a quantizer on grid-aligned weights flatters
# it. Two steps move the weights off the grid:
#   - a short AdamW fine-tune on the calibration text (never the evaluation text) changes every
#     tensor, but only a little: the q4_1 residue (rms Q4_1 re-encoding error over that of weights
#     that ignore the grid; 0 = on the grid, ~0.97 for continuous weights) of the linears is only
#     ~0.014 (median) after it at the defaults, so quantizers still look nearly lossless; raising LR
#     raises it but costs quality fast (LR=3e-4: ~0.17, eval ppl +33 %). The fine-tune also adapts
#     the model to the speeches (KL to the original ~0.08), so this model must be its own reference
#     in benchmarks (the fine-tuned or the final folder; both compute the same function).
#   - RESCALE (default on) then rescales channels with seeded random factors, log-uniform in
#     [0.7, 1.4], in ways that cancel exactly, like the equivalences SmoothQuant and AWQ use:
#     RMSNorm weight * c with the q/k/v (or gate/up) input columns / c; v_proj output rows * e with
#     the o_proj input columns that read them / e (GQA: query head h reads kv head h // 3); up_proj
#     output rows * f with the down_proj input columns / f. q/k rows (RoPE), gate rows (silu), the
#     tied embedding and the final norm are left alone. Every linear gets uneven scales across each
#     Q4_1 block of 32, so its weights leave the grid entirely (residue median ~0.968, min ~0.96,
#     like an f16 model's) while the model computes the same function (checked in float64 before
#     saving: max logit difference ~1e-5; the F16 GGUF's KL to hf-finetuned/ is ~1e-6, the same as
#     the un-rescaled F16's). The embedding needs no rescale: the Q4_1 file stores it as Q8_0,
#     which is already off the Q4_1 grid (residue ~0.97). See make_offgrid_base.py's docstring.
#
#   $WORK/offgrid/hf-finetuned/                the fine-tuned model: model.safetensors (f32),
#                                              config.json, tokenizer files, offgrid.json (knobs,
#                                              losses, grid residue after the fine-tune)
#   $WORK/offgrid/hf/                          the rescaled model, same files; its offgrid.json is
#                                              hf-finetuned's plus a "rescale" record (knobs,
#                                              equivalence check, residues after the rescale)
#   $WORK/offgrid/SmolLM2-offgrid.F16.gguf     hf/ as F16 GGUF (norms F32)
#   $WORK/offgrid/train.log, rescale.log, convert.log   the three steps' logs
#
# Steps, each skipped when its output exists (delete $WORK/offgrid, or one output, to redo it;
# changed knobs do NOT invalidate an existing output, the script only warns; a step that does run
# deletes the outputs of the later steps, which were made from its old output):
#   1. fine-tune with scripts/make_offgrid_base.py in the project venv (.venv, made by
#      scripts/setup_python.sh when missing); model and tokenizer are loaded by transformers from
#      the Q4_1 GGUF (fetched by scripts/fetch_assets.sh when missing), weights as float32;
#      writes hf-finetuned/. (An hf/ made before the rescale step existed, i.e. whose offgrid.json
#      has no "rescale" record, is the fine-tune's output: it is renamed to hf-finetuned/ and the
#      GGUF made from it is deleted, so that no retraining is needed.)
#   2. rescale hf-finetuned/ into hf/ (make_offgrid_base.py --rescale-from; RESCALE=0 copies the
#      weights unchanged, recording rescale.enabled = 0);
#   3. convert hf/ with vendor/llama.cpp/convert_hf_to_gguf.py of the llama-cpp-python sdist that
#      scripts/build_llama_cpp.sh pins (same version and sha256, same place:
#      tools/llama.cpp/src/); the sdist is downloaded from PyPI and unpacked there only when
#      missing; its own gguf-py is put first on PYTHONPATH so that converter and gguf library
#      come from the same llama.cpp commit.
#
# Environment (knobs):
#   WORK     output root (default /tmp/triage-bench); outputs go to $WORK/offgrid
#   STEPS    optimizer steps (default 48)
#   LR       AdamW learning rate, constant, no weight decay (default 2e-5)
#   SEQ_LEN  tokens per training window (default 256)
#   BATCH    windows per step (default 1): tokens per step = BATCH * SEQ_LEN
#   SEED     seed for window order and torch, and for the rescale factors (default 1234)
#   RESCALE  1: rescale channels (default); 0: hf/ holds the fine-tuned weights unchanged
#   THREADS  torch threads (default 2)
# At the defaults: ~3.3 s per step on 2 otherwise idle cores, so ~4 min in all for step 1 (load,
# tokenize, 48 steps, save), ~1 min for step 2 (mostly the float64 check and the residues), ~10 s
# for step 3; the run is deterministic (same seed -> same bytes).
# Torch slows down badly when the cores are shared (30 s per step seen, ~25 min for step 1); run it
# on a quiet machine.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

WORK="${WORK:-/tmp/triage-bench}"
STEPS="${STEPS:-48}"
LR="${LR:-2e-5}"
SEQ_LEN="${SEQ_LEN:-256}"
BATCH="${BATCH:-1}"
SEED="${SEED:-1234}"
THREADS="${THREADS:-2}"
RESCALE="${RESCALE:-1}"
case "$RESCALE" in 0|1) ;; *) echo "make_offgrid_base: ERROR: RESCALE must be 0 or 1, got '$RESCALE'" >&2; exit 1 ;; esac

OUT="$WORK/offgrid"
FT="$OUT/hf-finetuned"
HF="$OUT/hf"
GGUF_OUT="$OUT/SmolLM2-offgrid.F16.gguf"
BASE="$REPO/assets/SmolLM2-135M-Instruct.Q4_1.gguf"
CALIB="$REPO/assets/calib.txt"
PY="$REPO/.venv/bin/python"

die() { echo "make_offgrid_base: ERROR: $*" >&2; exit 1; }
log() { echo "make_offgrid_base: $*"; }

export HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error TOKENIZERS_PARALLELISM=false
export OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS"

mkdir -p "$OUT"

# ------------------------------------------------------------ prerequisites
if [ ! -f "$BASE" ] || [ ! -f "$CALIB" ]; then
  log "assets missing, running scripts/fetch_assets.sh"
  "$REPO/scripts/fetch_assets.sh"
fi
[ -f "$BASE" ] || die "$BASE missing"
[ -f "$CALIB" ] || die "$CALIB missing"
if [ ! -x "$PY" ] || ! "$PY" -c 'import torch, transformers, gguf, safetensors' 2>/dev/null; then
  log "project venv missing or incomplete, running scripts/setup_python.sh"
  "$REPO/scripts/setup_python.sh"
fi

# ------------------------------------------------------------ 1. fine-tune -> hf-finetuned/
folder_done() { [ -f "$1/config.json" ] && [ -f "$1/tokenizer.json" ] && [ -f "$1/offgrid.json" ] \
  && ls "$1"/*.safetensors >/dev/null 2>&1; }
has_rescale_record() { "$PY" -c 'import json, sys; sys.exit(0 if "rescale" in json.load(open(sys.argv[1])) else 1)' "$1"; }

# Migration: an hf/ without a rescale record was written by the fine-tune before step 2 existed.
if [ ! -e "$FT" ] && folder_done "$HF" && ! has_rescale_record "$HF/offgrid.json"; then
  log "$HF has no rescale record: it is the fine-tuned model, renaming it to $FT (and deleting the GGUF made from it)"
  mv "$HF" "$FT"
  rm -f "$GGUF_OUT"
fi

if folder_done "$FT"; then
  log "fine-tuned folder present, skipping fine-tune: $FT"
  "$PY" - "$FT/offgrid.json" "$STEPS" "$LR" "$SEQ_LEN" "$BATCH" "$SEED" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
want = dict(steps=int(sys.argv[2]), lr=float(sys.argv[3]), seq_len=int(sys.argv[4]), batch=int(sys.argv[5]), seed=int(sys.argv[6]))
diff = {k: (m.get(k), v) for k, v in want.items() if m.get(k) != v}
if diff:
    print(f"make_offgrid_base: WARNING: existing {sys.argv[1].rsplit('/', 1)[0]} was made with other knobs "
          f"(have, asked): {diff}; delete it to rebuild", file=sys.stderr)
EOF
else
  log "fine-tuning (STEPS=$STEPS LR=$LR SEQ_LEN=$SEQ_LEN BATCH=$BATCH SEED=$SEED THREADS=$THREADS)"
  TMP_FT="$OUT/hf-finetuned.partial"
  rm -rf "$TMP_FT"
  T0=$(date +%s)
  if ! "$PY" "$REPO/scripts/make_offgrid_base.py" --gguf "$BASE" --calib "$CALIB" --out "$TMP_FT" \
    --steps "$STEPS" --lr "$LR" --seq-len "$SEQ_LEN" --batch "$BATCH" --seed "$SEED" --threads "$THREADS" \
    2>&1 | grep --line-buffered -v 'it/s\]' | tee "$OUT/train.log"; then
    die "fine-tune failed (see $OUT/train.log)"
  fi
  rm -rf "$FT" "$HF" "$GGUF_OUT"   # the later steps' outputs came from the old fine-tune
  mv "$TMP_FT" "$FT"
  chmod -R a+rX "$FT"   # safetensors writes its file 0600
  folder_done "$FT" || die "fine-tune left an incomplete folder $FT"
  log "fine-tune done in $(( $(date +%s) - T0 )) s: $FT"
fi

# ------------------------------------------------------------ 2. hf-finetuned/ -> rescaled hf/
if folder_done "$HF" && has_rescale_record "$HF/offgrid.json"; then
  log "rescaled folder present, skipping rescale: $HF"
  "$PY" - "$HF/offgrid.json" "$RESCALE" "$SEED" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))["rescale"]
want = dict(enabled=int(sys.argv[2]), seed=int(sys.argv[3]))
diff = {k: (r.get(k), v) for k, v in want.items() if r.get(k) != v}
if diff:
    print(f"make_offgrid_base: WARNING: existing {sys.argv[1].rsplit('/', 1)[0]} was made with other rescale knobs "
          f"(have, asked): {diff}; delete it to redo the rescale (and the conversion)", file=sys.stderr)
EOF
else
  log "rescaling (RESCALE=$RESCALE SEED=$SEED THREADS=$THREADS): $FT -> $HF"
  TMP_HF="$OUT/hf.partial"
  rm -rf "$TMP_HF"
  T0=$(date +%s)
  if ! "$PY" "$REPO/scripts/make_offgrid_base.py" --rescale-from "$FT" --out "$TMP_HF" \
    --rescale "$RESCALE" --seed "$SEED" --threads "$THREADS" 2>&1 | tee "$OUT/rescale.log"; then
    die "rescale failed (see $OUT/rescale.log)"
  fi
  rm -rf "$HF" "$GGUF_OUT"   # the GGUF came from the old hf/
  mv "$TMP_HF" "$HF"
  chmod -R a+rX "$HF"
  folder_done "$HF" && has_rescale_record "$HF/offgrid.json" || die "rescale left an incomplete folder $HF"
  log "rescale done in $(( $(date +%s) - T0 )) s: $HF"
fi

# ------------------------------------------------------------ 3. hf/ -> F16 GGUF
if [ -f "$GGUF_OUT" ]; then
  log "F16 GGUF present, skipping conversion: $GGUF_OUT"
else
  # The converter of the llama.cpp that scripts/build_llama_cpp.sh pins (same sdist, same place).
  LLAMA_SRC="$(SOURCE_ONLY=1 "$REPO/scripts/build_llama_cpp.sh" | tail -1)"
  CONVERT="$LLAMA_SRC/convert_hf_to_gguf.py"
  [ -f "$CONVERT" ] || die "convert_hf_to_gguf.py missing from $LLAMA_SRC"
  log "converting with $CONVERT"
  TMP_GGUF="$OUT/SmolLM2-offgrid.F16.partial.gguf"
  rm -f "$TMP_GGUF"
  T0=$(date +%s)
  PYTHONPATH="$LLAMA_SRC/gguf-py${PYTHONPATH:+:$PYTHONPATH}" "$PY" "$CONVERT" "$HF" \
    --outtype f16 --outfile "$TMP_GGUF" >"$OUT/convert.log" 2>&1 \
    || { tail -30 "$OUT/convert.log" >&2; die "conversion failed (see $OUT/convert.log)"; }
  mv "$TMP_GGUF" "$GGUF_OUT"
  log "converted in $(( $(date +%s) - T0 )) s"
fi

log "outputs:"
echo "  $FT"
echo "  $HF"
echo "  $GGUF_OUT"
