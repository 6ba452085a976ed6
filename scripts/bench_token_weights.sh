#!/usr/bin/env bash
# Token weights and rotation (RSQ) against neither: each uniform GPTQ type of $TYPES and each
# budget of $BUDGETS, compressed with every variant of $WEIGHTS — a --token-weights name, with
# "+rotate" for --rotate — scored on the evaluation text (mean and p99 KL to the source model,
# compress --eval-text; the file's size in MB). Prints a table; the files and logs stay in $OUT
# (a rerun with the same OUT takes the runs already made).
#   scripts/bench_token_weights.sh
#   MODEL=m.gguf TYPES="Q4_K Q3_K" BUDGETS="bpw=3.5" WEIGHTS="equal attention-mild equal+rotate" scripts/bench_token_weights.sh
# Budgets build one layer database per weighting and rotation (cached by key in the cache folder).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/fetch_assets.sh >/dev/null
cargo build --release --locked --quiet
T=target/release/triage
MODEL=${MODEL:-assets/SmolLM2-135M-Instruct.Q4_1.gguf}
read -r -a types <<<"${TYPES-Q4_K Q3_K IQ3_XXS IQ2_XS}"
read -r -a budgets <<<"${BUDGETS-}"
read -r -a weights <<<"${WEIGHTS:-equal attention attention-mild actnorm}"
EVAL_WINDOWS=${EVAL_WINDOWS:-40}
OUT=${OUT:-$(mktemp -d /tmp/triage-token-weights.XXXXXX)}
mkdir -p "$OUT"
common=(--model "$MODEL" --calib assets/calib.txt --eval-text assets/eval.txt --eval-windows "$EVAL_WINDOWS")

# "mean / p99 (MB)" of the evaluation report compress printed to $1 and the file $2.
kl() {
  python3 - "$1" "$2" <<'PY'
import json, os, sys
r = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")][-1]
print(f"{r['kld_mean']:.5f} / {r['kld_p99']:.4f} ({os.path.getsize(sys.argv[2]) / 1e6:.1f})")
PY
}

header="| run |"
rule="|---|"
for w in "${weights[@]}"; do header+=" $w |"; rule+="---:|"; done
rows=()
for run in "${types[@]}" "${budgets[@]}"; do
  case $run in
    *=*) what=(--budget "$run" --frontier 0) ;;
    IQ*) what=(--type "$run" --method gptq --embeddings-type Q8_0) ;;
    *) what=(--type "$run" --method gptq) ;;
  esac
  row="| ${what[*]} |"
  for variant in "${weights[@]}"; do
    w=${variant%+rotate}
    rotate=()
    [ "$w" = "$variant" ] || rotate=(--rotate)
    f="$OUT/${run//=/-}-$variant"
    t=$SECONDS
    # A run whose log holds its evaluation is taken as it is (a stopped bench resumes).
    grep -q '^{' "$f.log" 2>/dev/null ||
      "$T" compress "${common[@]}" "${what[@]}" --token-weights "$w" "${rotate[@]}" --cache "$OUT/cache" --out "$f.gguf" >"$f.log" 2>&1 ||
      { tail -n 3 "$f.log" >&2; exit 1; }
    row+=" $(kl "$f.log" "$f.gguf") |"
    echo "$run $variant: $(kl "$f.log" "$f.gguf") ($((SECONDS - t)) s)" >&2
  done
  rows+=("$row")
done
echo "mean / p99 KL to $(basename "$MODEL") on assets/eval.txt ($EVAL_WINDOWS windows), (file MB)"
echo "$header"
echo "$rule"
printf '%s\n' "${rows[@]}"
