#!/usr/bin/env bash
# Time and peak memory of streamed commands on a synthetic Llama-3.1-8B-shaped model (random bf16
# weights, the real Llama-3 tokenizer; scripts/make_scale_model.py). For time and memory only:
# never read quality from it. Prints one Markdown table.
#   SCALE_DIR=/tmp/scale scripts/bench_scale.sh          # the whole 32-block model (16 GB on disk)
#   SCALE_BLOCKS=4 scripts/bench_scale.sh                # a cut: 4 blocks, each the 8B's size
#   SCALE_BLOCKS=1 SCALE_ROWS="plan" scripts/bench_scale.sh   # only the rows named
#   SCALE_PLAN_ARGS="--types Q2_K,Q3_K,Q4_K,Q5_K,Q6_K,Q8_0" ...  # more arguments for plan
# Needs a Python with numpy ($PYTHON, default .venv/bin/python: scripts/setup_python.sh), the
# tokenizers (scripts/fetch_tokenizers.sh), a release build, and llama.cpp
# (scripts/build_llama_cpp.sh) to load the file written.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BLOCKS="${SCALE_BLOCKS:-32}"
DIR="${SCALE_DIR:-/tmp/triage-scale}/llama-3.1-8b-shape-$BLOCKS"
RUNS="${SCALE_DIR:-/tmp/triage-scale}/runs-$BLOCKS"
ROWS="${SCALE_ROWS:-eval profile compress hf plan budget}"
mkdir -p "$RUNS"
[ -f "$DIR/config.json" ] || "${PYTHON:-.venv/bin/python}" scripts/make_scale_model.py --out "$DIR" --blocks "$BLOCKS" >&2
cargo build --release --locked >&2
T=target/release/triage
run() { # name, then the command: run when ROWS names it
    local name=$1; shift
    [[ " $ROWS " == *" $name "* ]] || return 0
    rm -f "$RUNS/$name.log"
    TRIAGE_PROGRESS_SECONDS=60 /usr/bin/time -v "$@" >"$RUNS/$name.out" 2>"$RUNS/$name.log"
}
run eval "$T" eval --model "$DIR" --text assets/eval.txt --max-windows 2 --ctx 512 --json
run profile "$T" profile --model "$DIR" --calib assets/calib.txt --tokens 1024 --out "$RUNS/profile"
run compress "$T" compress --model "$DIR" --calib assets/calib.txt --type Q4_K --tokens 2048 --out "$RUNS/q4k.gguf"
[[ " $ROWS " == *" hf "* ]] && rm -rf "$RUNS/drop2-hf"
run hf "$T" compress --model "$DIR" --calib assets/calib.txt --tokens 512 --drop-blocks 2 --hf-dtype bf16 --out "$RUNS/drop2-hf"
# Planned streamed (the default for this size): the layer database (every tensor at every type),
# one sensitivity window per tensor, the plan's KL on 4 hold-out windows; no frontier.
run plan "$T" plan --model "$DIR" --calib assets/calib.txt --budget bpw=4.5 --solver lagrange --tokens 1024 --frontier 0 --no-cache ${SCALE_PLAN_ARGS:-} --out "$RUNS/plan.json"
# The whole budgeted job, plan and file (the defaults for this size: a sampled layer database,
# sensitivities by block gain, the plan's levels made whole and written): the full menu.
run budget "$T" compress --model "$DIR" --calib assets/calib.txt --budget bpw=4.5 --tokens 2048 --frontier 0 --no-cache ${SCALE_PLAN_ARGS:-} --out "$RUNS/b45.gguf"
loads() { # file: whether llama.cpp loads and runs it
    [ -x tools/llama.cpp/bin/llama-perplexity ] && [ -f "$1" ] \
        && tools/llama.cpp/bin/llama-perplexity -m "$1" -f assets/eval.txt -c 128 --chunks 1 -t 2 >"$1.llama.log" 2>&1 \
        && echo yes || echo no
}
python3 - "$RUNS" "$BLOCKS" "$(loads "$RUNS/q4k.gguf")" "$ROWS" "${SCALE_PLAN_ARGS:-}" "$(loads "$RUNS/b45.gguf")" <<'PY'
import json, re, sys
runs, blocks, loads, rows, plan_args, budget_loads = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].split(), sys.argv[5], sys.argv[6]
def stat(name):
    log = open(f"{runs}/{name}.log").read()
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", log).group(1)
    parts = [float(p) for p in wall.split(":")]
    secs = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", log).group(1)) / 1024 / 1024  # GiB
    return secs, rss
print(f"| command (Llama-3.1-8B shape, {blocks} blocks, streamed) | wall s | wall s / blocks | peak RSS GiB |")
print("|---|---:|---:|---:|")
for name, what in [("eval", "eval, 2 windows of 512"), ("profile", "profile --tokens 1024"), ("compress", "compress --type Q4_K --tokens 2048 (GPTQ)"), ("hf", "compress --drop-blocks 2 to a bf16 Hugging Face folder"), ("plan", f"plan --budget bpw=4.5 --solver lagrange --tokens 1024 {plan_args}".strip()), ("budget", f"compress --budget bpw=4.5 --tokens 2048 {plan_args} (plan and file)".strip())]:
    if name in rows:
        s, r = stat(name)
        print(f"| {what} | {s:.0f} | {s / blocks:.1f} | {r:.2f} |")
if "plan" in rows:
    t = json.load(open(f"{runs}/plan.json"))["timings"]
    print("\nplan stages, s: " + ", ".join(f"{k[:-2]} {v:.0f}" for k, v in t.items() if k.endswith("_s")))
if "budget" in rows:
    t = json.load(open(f"{runs}/b45.plan.json"))["timings"]
    print("\nbudget's plan stages, s: " + ", ".join(f"{k[:-2]} {v:.0f}" for k, v in t.items() if k.endswith("_s")))
    print(f"llama.cpp loads and runs the budgeted file: {budget_loads}")
if "compress" in rows:
    print(f"\nllama.cpp loads and runs the Q4_K file: {loads}")
PY
