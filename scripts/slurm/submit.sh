#!/usr/bin/env bash
# Submit a sharded `triage plan` to Slurm: a prepare job, a job array of N shards after it, and
# a merge job after the array, which writes plan.json (the same file as one process would), or,
# for an --out ending in .gguf, the compressed model and its plan (`triage compress --budget`).
#
#   scripts/slurm/submit.sh [--wait] [--triage BIN] [--cpus C] [--logs DIR] \
#       --shards N --cache DIR --out plan.json|model.gguf -- PLAN_ARGS...
#
#   e.g. scripts/slurm/submit.sh --shards 8 --cache /shared/triage-cache --out /shared/plan.json \
#          -- --model /shared/m.gguf --calib /shared/calib.txt --budget bpw=4.5
#
# BIN (default: $TRIAGE, else triage on PATH), the model, the cache folder and OUT must be on
# storage every node sees. Prints the three job ids. --wait: wait for the merge job and exit
# with its status (a failed shard cancels the merge: rerun that index, then the merge, as
# printed). Partition, account, time limit ...: sbatch's own SBATCH_PARTITION, SBATCH_ACCOUNT,
# SBATCH_TIMELIMIT ... environment variables apply to all three jobs.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 1; }

wait=0 triage=${TRIAGE:-} cpus=2 logs=slurm-logs shards='' cache='' out=''
while [ $# -gt 0 ]; do
  case $1 in
    --wait) wait=1 ;;
    --triage) triage=$2; shift ;;
    --cpus) cpus=$2; shift ;;
    --logs) logs=$2; shift ;;
    --shards) shards=$2; shift ;;
    --cache) cache=$2; shift ;;
    --out) out=$2; shift ;;
    --) shift; break ;;
    *) usage ;;
  esac
  shift
done
[ -n "$shards" ] && [ -n "$cache" ] && [ -n "$out" ] && [ $# -gt 0 ] || usage
[ "$shards" -ge 1 ] 2>/dev/null || { echo "--shards: '$shards' is not a count of at least 1" >&2; exit 1; }
[ -n "$triage" ] || triage=$(command -v triage) || { echo "no triage: give --triage BIN or set TRIAGE" >&2; exit 1; }

# Absolute paths: the jobs may start in another folder (or on another node).
triage=$(realpath "$triage") cache=$(realpath -m "$cache") out=$(realpath -m "$out")
mkdir -p "$cache" "$logs"
logs=$(realpath "$logs")
task=$here/plan.sbatch
step_args=("$triage" "$cache" "$out" "$@")
# --parsable prints "id" or "id;cluster".
submit() { sbatch --parsable --cpus-per-task="$cpus" "$@" | cut -d';' -f1; }

prepare=$(submit --job-name=triage-prepare --output="$logs/%x-%j.out" "$task" prepare "${step_args[@]}")
# The array after a successful prepare; --kill-on-invalid-dep: if prepare fails the array (and
# then the merge) is cancelled instead of pending forever.
array=$(submit --job-name=triage-shard --array=0-$((shards - 1)) --output="$logs/%x-%A_%a.out" \
  --dependency=afterok:"$prepare" --kill-on-invalid-dep=yes "$task" "auto/$shards" "${step_args[@]}")
merge_opts=(--job-name=triage-merge --output="$logs/%x-%j.out" --dependency=afterok:"$array" --kill-on-invalid-dep=yes)
echo "prepare: $prepare"
echo "shards: $array (array 0-$((shards - 1)))"

if [ $wait -eq 0 ]; then
  echo "merge: $(submit "${merge_opts[@]}" "$task" merge "${step_args[@]}")"
  echo "logs: $logs"
  exit 0
fi

# sbatch --wait prints the id at once and returns when the job ends, with its exit code; but a
# job cancelled (a shard failed: its dependency can never be met) ends with code 0, so ask
# slurmctld for the state too.
shopt -s lastpipe
status=0 merge=''
sbatch --parsable --cpus-per-task="$cpus" "${merge_opts[@]}" --wait "$task" merge "${step_args[@]}" |
  { IFS=';' read -r merge _; echo "merge: $merge"; cat >/dev/null; } || status=$?
state=$(scontrol show job -o "$merge" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2 || true)
if [ $status -eq 0 ] && [ -n "$state" ] && [ "$state" != COMPLETED ]; then status=1; fi
echo "logs: $logs"
if [ $status -ne 0 ]; then
  q=$(printf ' %q' "${step_args[@]}")
  echo "merge did not succeed (${state:-exit $status}, exit $status): see $logs. Rerun a failed shard I, then the merge:" >&2
  echo "  sbatch --array=I --cpus-per-task=$cpus $task auto/$shards$q" >&2
  echo "  sbatch --dependency=afterok:<that job> --cpus-per-task=$cpus $task merge$q" >&2
fi
exit $status
