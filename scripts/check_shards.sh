#!/usr/bin/env bash
# Sharded plans against the single process on the default model: for each shard count, the
# shards run one after another on this machine (prepare, every index, the merge by
# `triage compress --budget`), and the plan.json (timings aside) and GGUF must be the single
# process's, byte for byte. Prints a table of wall times (seconds).
#   scripts/check_shards.sh [COUNTS...]        (default: 1 2 4 7)
# Extra plan arguments come from $ARGS (default: a plan that mixes Q4_0 and this Q4_1 model's own
# Q4_1, on 1024 tokens).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/fetch_assets.sh >/dev/null
cargo build --release --locked --quiet
T=target/release/triage
COUNTS=("${@:-1 2 4 7}")
read -r -a COUNTS <<<"${COUNTS[*]}"
ARGS=${ARGS:---budget bpw=4.75 --types Q4_0,Q4_1 --tokens 1024 --frontier 0}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
run() { "$T" "$@" --model assets/SmolLM2-135M-Instruct.Q4_1.gguf --calib assets/calib.txt $ARGS >>"$W/log" 2>&1; }
secs() { local t0=$1; echo $(( $(date +%s) - t0 )); }
same_plan() {
  python3 - "$1" "$2" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
for j in (a, b):
    j.pop("timings")
print("yes" if a == b else "NO")
PY
}
t=$(date +%s); run compress --cache "$W/single" --out "$W/single.gguf"; single=$(secs "$t")
printf '%-7s %8s %10s %12s %8s %8s %6s\n' shards prepare "shards(Σ)" "slowest" merge plan gguf
printf '%-7s %8s %10s %12s %8s %8s %6s\n' 1-proc - "$single" - - - -
fail=0
for n in "${COUNTS[@]}"; do
  c="$W/c$n"
  t=$(date +%s); run plan --cache "$c" --out "$W/unused.json" --shard prepare; prep=$(secs "$t")
  sum=0; slowest=0
  for ((i = 0; i < n; i++)); do
    t=$(date +%s); run plan --cache "$c" --out "$W/unused.json" --shard "$i/$n"; s=$(secs "$t")
    sum=$((sum + s)); ((s > slowest)) && slowest=$s
  done
  t=$(date +%s); run compress --cache "$c" --out "$W/s$n.gguf"; merge=$(secs "$t")
  p=$(same_plan "$W/single.plan.json" "$W/s$n.plan.json")
  g=$(cmp -s "$W/single.gguf" "$W/s$n.gguf" && echo yes || echo NO)
  [[ $p == yes && $g == yes ]] || fail=1
  printf '%-7s %8s %10s %12s %8s %8s %6s\n' "$n" "$prep" "$sum" "$slowest" "$merge" "$p" "$g"
done
if ((fail)); then
  echo "a sharded run differs from the single process; log:" >&2
  tail -20 "$W/log" >&2
  exit 1
fi
