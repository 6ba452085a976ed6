#!/usr/bin/env bash
# Run deploy/k8s/plan-job.yaml's three Jobs in order: prepare, then the Indexed Job of shards,
# then the merge, each applied only after the one before it has completed (applying the file
# whole would start all three at once). Jobs left from an earlier run are deleted first; the
# cache on the shared volume is kept, so a rerun redoes only what is missing.
#
#   deploy/k8s/run.sh [kubectl options, e.g. -n NAMESPACE]
#
# Afterwards plan.json is in the volume's cache/ folder; the merge pod's log says what it chose
# (kubectl logs job/triage-plan-merge).
set -euo pipefail
manifest=$(dirname "${BASH_SOURCE[0]}")/plan-job.yaml
opts=("$@")

# Wait until Job $1 has condition Complete (0) or Failed (1), polling every 10 s.
wait_job() {
  local conds
  while :; do
    conds=$(kubectl "${opts[@]}" get job "$1" -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type}{" "}{end}')
    case " $conds " in
      *" Complete "*) echo "$1: complete"; return 0 ;;
      *" Failed "*) echo "$1: failed; kubectl logs job/$1 (or its pods: kubectl get pods -l job-name=$1)" >&2; return 1 ;;
    esac
    sleep 10
  done
}

kubectl "${opts[@]}" apply -f "$manifest" -l triage.step=volume
for step in prepare shards merge; do
  kubectl "${opts[@]}" delete job "triage-plan-$step" --ignore-not-found --wait=true
  kubectl "${opts[@]}" apply -f "$manifest" -l "triage.step=$step"
  wait_job "triage-plan-$step"
done
