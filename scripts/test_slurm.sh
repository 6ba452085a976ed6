#!/usr/bin/env bash
# The sharded plan on a real (single-node, localhost) Slurm cluster: for 1, 2 and 7 shards, a
# prepare job, a job array and a merge job (scripts/slurm/submit.sh, the merge by `triage compress
# --budget`) must write the plan.json (timings aside) and the GGUF file of a single process, byte
# for byte; and for 4 shards again after one array task is killed mid-work (SIGKILL) and only that
# index is resubmitted. A merge run before every shard is done must fail, naming the missing one.
#
#   scripts/test_slurm.sh        # root; installs slurm-wlm and munge (Debian) if missing
#
# Where the cluster cannot run here (not root, no apt-get, a daemon that does not come up) it
# says why and exits 0. TRIAGE: the binary (default target/release/triage, copied once so every
# run uses the same one). CPUS: CPUs per Slurm task (default 2). COUNTS: the shard counts run
# through submit.sh (default "1 2 7"; 4 is the killed run's). KEEP=1 keeps the work folder
# (caches, logs) after a pass.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
src=${TRIAGE:-target/release/triage}
[ -x "$src" ] || { echo "test_slurm: FAIL: no triage binary at $src (cargo build --release)" >&2; exit 1; }

work=$(mktemp -d /tmp/triage-slurm.XXXXXX)
chmod 755 "$work" # the munge user keeps its files in the cluster folder
state=$work/cluster
cp "$src" "$work/triage"
triage=$work/triage
task=$root/scripts/slurm/plan.sbatch
cpus=${CPUS:-2}
read -r -a counts <<<"${COUNTS:-1 2 7}"
# A plan that mixes two types (Q4_0 where it costs least, this Q4_1 model's own Q4_1 elsewhere) on
# short windows: the database and sensitivities of all 211 tensors in about a minute.
args=(--model "$root/assets/SmolLM2-135M-Instruct.Q4_1.gguf" --calib "$root/assets/calib.txt" --budget bpw=4.75
  --types Q4_0,Q4_1 --tokens 256 --ctx 128 --holdout-windows 2 --frontier 0)

# The summary: one row per step, its seconds and what came of it.
rows=()
t_start=$SECONDS
row() { rows+=("$(printf '%-52s %5s s  %s' "$1" "$2" "$3")"); }
summary() {
  echo
  echo "step                                                 time  result"
  printf '%s\n' "${rows[@]}"
  echo "total: $((SECONDS - t_start)) s"
  local d f start what
  for d in "$work"/logs*; do
    [ -d "$d" ] || continue
    echo "jobs in ${d##*/}: start, seconds (its log's first line to its last write), outcome"
    for f in "$d"/*.out; do
      start=$(head -n1 "$f" | cut -d' ' -f1)
      what=$(grep -h -o '^shard [0-9/]*: [^;]*\|^prepared the states entering [0-9]* blocks\|^wrote [^:]*\|not done ([^)]*)' "$f" | head -n1 || true)
      printf '  %-20s %s %4s s  %s\n' "$(basename "$f" .out)" "${start:11:8}" \
        $(($(stat -c %Y "$f") - $(date -d "$start" +%s 2>/dev/null || stat -c %Y "$f"))) "${what:-no result (cancelled?)}"
    done | sort -b -k2,2
  done
}
passed=0
finish() {
  local rc=$?
  set +e
  summary
  "$root/scripts/slurm/cluster.sh" stop "$state" >/dev/null 2>&1 || true
  if [ $passed -eq 1 ] && [ "${KEEP:-0}" != 1 ]; then rm -rf "$work"; else echo "work folder kept: $work"; fi
  exit $rc
}
fail() {
  echo "test_slurm: FAIL: $*" >&2
  exit 1
}

t=$SECONDS
rc=0
line=$("$root/scripts/slurm/cluster.sh" start "$state" 2>&1) || rc=$?
if [ $rc -eq 2 ]; then
  echo "test_slurm: $(echo "$line" | tail -n1)"
  rm -rf "$work"
  exit 0
fi
trap finish EXIT
[ $rc -eq 0 ] || fail "cluster.sh start exited $rc: $line"
echo "$line"
row "cluster up (1 node, $(nproc) CPUs)" $((SECONDS - t)) ok
export SLURM_CONF=$state/slurm.conf

# Two plan.json files equal, "timings" aside.
same_plan() {
  python3 - "$1" "$2" <<'EOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
for d in (a, b):
    d.pop("timings", None)
if a != b:
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    print(f"differ in {', '.join(keys)}")
    sys.exit(1)
EOF
}
# The compressed model $2.gguf and its plan $2.plan.json are those of one process ($1.*).
same_model() {
  local why
  why=$(same_plan "$1.plan.json" "$2.plan.json") || { echo "plan.json $why"; return 1; }
  cmp -s "$1.gguf" "$2.gguf" || { echo "GGUF files differ ($(cmp "$1.gguf" "$2.gguf" 2>&1 | head -n1))"; return 1; }
}
# The lines triage's shard runs printed ("shard I/N: ...") in log folder $1.
shard_lines() { cat "$1"/*.out 2>/dev/null | grep -h '^shard ' | sort | sed 's/^/  /' || true; }

# 1. One process.
echo "== single process (cache C1)"
t=$SECONDS
"$triage" compress "${args[@]}" --cache "$work/C1" --out "$work/single.gguf" >"$work/single.log" 2>&1 ||
  { tail -n 5 "$work/single.log" >&2; fail "single-process compress failed"; }
row "single process: triage compress --budget" $((SECONDS - t)) "$(grep -o 'tensors: .*(' "$work/single.log" | head -n1 | tr -d '(')"

# 2. prepare + N-task array + merge through submit.sh.
for n in "${counts[@]}"; do
  echo "== Slurm: prepare, array 0-$((n - 1)), merge (cache C$n)"
  t=$SECONDS
  "$root/scripts/slurm/submit.sh" --wait --triage "$triage" --cpus "$cpus" --shards "$n" --cache "$work/C$n" \
    --out "$work/sharded$n.gguf" --logs "$work/logs$n" -- "${args[@]}" ||
    { tail -n 3 "$work/logs$n"/*.out >&2; fail "submit.sh --wait --shards $n failed"; }
  shard_lines "$work/logs$n"
  why=$(same_model "$work/single" "$work/sharded$n") || fail "$n Slurm shards' model differs from one process's: $why"
  row "Slurm: submit.sh --wait (prepare, $n shards, merge)" $((SECONDS - t)) "plan.json and GGUF = single's"
done

# 3. A shard killed mid-work, the merge run too early, the shard resubmitted alone.
echo "== Slurm: array task 1 of 4 killed, early merge, task 1 resubmitted (cache C4)"
logs=$work/logsK
mkdir -p "$logs"
step=("$triage" "$work/C4" "$work/killed.gguf" "${args[@]}")
sub() { sbatch --parsable --cpus-per-task="$cpus" "$@" | cut -d';' -f1; }
t=$SECONDS
prep=$(sub --job-name=k-prepare --output="$logs/%x-%j.out" "$task" prepare "${step[@]}")
# Task 1 owns blocks 9-18: TRIAGE_FAILPOINT ends it by SIGKILL once block 11 is saved (step 12),
# a shard killed midway at an exact point; the other tasks never reach that step.
arr=$(sub --job-name=k-shard --array=0-3 --output="$logs/%x-%A_%a.out" --dependency=afterok:"$prep" \
  --kill-on-invalid-dep=yes --export=ALL,TRIAGE_FAILPOINT=database-block:12:kill "$task" auto/4 "${step[@]}")
echo "prepare: $prep, array: $arr (task 1 killed after its block 11)"
row "Slurm: prepare + array 0-3, task 1 killed (SIGKILL)" $((SECONDS - t)) "submitted"

# Chained, so no poll stands between them: a merge after the array (tasks 0, 2 and 3 done, 1
# not), which must fail; index 1 alone again only if it did (afternotok); the merge after that.
t=$SECONDS
early=$(sub --job-name=k-merge-early --output="$logs/%x-%j.out" --dependency=afterany:"$arr" "$task" merge "${step[@]}")
again=$(sub --job-name=k-shard --array=1 --output="$logs/%x-%A_%a.out" --dependency=afternotok:"$early" \
  --kill-on-invalid-dep=yes "$task" auto/4 "${step[@]}")
rc=0
merge=$(sub --job-name=k-merge --output="$logs/%x-%j.out" --dependency=afterok:"$again" --kill-on-invalid-dep=yes \
  --wait "$task" merge "${step[@]}") || rc=$?
echo "early merge: $early, index 1 again: array $again, merge: $merge (exit $rc)"
msg=$(grep -h 'not done' "$logs/k-merge-early-$early.out" || true)
echo "early merge said: $msg"
[ -n "$msg" ] || fail "the early merge's log has no 'not done' line: $(tail -n 3 "$logs/k-merge-early-$early.out")"
echo "$msg" | grep -q '1/4' || fail "the early merge does not name shard 1/4: $msg"
[ -f "$logs/k-shard-${again}_1.out" ] || fail "index 1 was not run again: the early merge did not fail"
grep -q 'block 11 was built by an earlier run' "$logs/k-shard-${again}_1.out" ||
  fail "index 1 run again did not take the blocks its killed run saved: $(grep -h resuming "$logs/k-shard-${again}_1.out")"
row "Slurm: rest of array, merge (fails), index 1, merge" $((SECONDS - t)) "early merge: 'not done (1/4)'"
shard_lines "$logs"
[ $rc -eq 0 ] && [ -f "$work/killed.gguf" ] || { tail -n 3 "$logs"/*.out >&2; fail "resubmitted shard 1 + merge failed (exit $rc)"; }
why=$(same_model "$work/single" "$work/killed") || fail "the model after the resubmitted shard differs from one process's: $why"
rows[-1]="${rows[-1]}; plan.json and GGUF = single's"

passed=1
echo "test_slurm: PASS"
