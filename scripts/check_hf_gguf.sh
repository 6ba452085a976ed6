#!/usr/bin/env bash
# Hugging Face folders → GGUF, checked against llama.cpp's own tools on real vocabularies:
# for each folder, llama.cpp's convert_hf_to_gguf.py --outtype f16 (pre-tokenizer detected by its
# own hash table; the fixtures' own vocabularies are named for it) against
# `triage compress --type F16`, key by key and tensor by tensor, and llama-perplexity on both
# files (4 windows of 128 tokens of assets/eval.txt); then llama-tokenize on the triage file
# against triage's tokenizer on tests/fixtures/unicode.txt and assets/eval.txt. tiny-qwen2 is
# also checked copied under a checkpoint's name, whose naming keys the converter reads in it.
# Prints one table (the README's). Needs scripts/setup_python.sh and scripts/build_llama_cpp.sh
# (with LLAMA_TARGETS="llama-perplexity llama-tokenize").
#
#   scripts/check_hf_gguf.sh [WORK_DIR]     (default out/hf-check)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
WORK="${1:-out/hf-check}"
mkdir -p "$WORK"
scripts/fetch_assets.sh >/dev/null
scripts/fetch_tokenizers.sh >/dev/null
LLAMA_TARGETS="llama-perplexity llama-tokenize" scripts/build_llama_cpp.sh >/dev/null
cargo build --release --quiet --bin triage --example tokenize
[ -d "$WORK/llama3" ] && [ -d "$WORK/qwen3" ] && [ -d "$WORK/mistral" ] && [ -d "$WORK/phi3" ] || .venv/bin/python scripts/make_vocab_folders.py "$WORK" >/dev/null 2>&1
rm -rf "$WORK/qwen2.5-coder-0.5b-instruct" && cp -r tests/fixtures/tiny-qwen2 "$WORK/qwen2.5-coder-0.5b-instruct"
TOKENIZE=tools/llama.cpp/bin/llama-tokenize
cmp_py='
import sys, glob, numpy as np
sys.path.insert(0, sorted(glob.glob("tools/llama.cpp/src/llama_cpp_python-*/vendor/llama.cpp/gguf-py"))[-1])
import gguf
def read(p):
    r = gguf.GGUFReader(p)
    kv = {k: f.contents() for k, f in r.fields.items() if not k.startswith("GGUF.")}
    return kv, {t.name: (t.tensor_type.name, bytes(np.array(t.data).tobytes())) for t in r.tensors}
(ka, ta), (kb, tb) = read(sys.argv[1]), read(sys.argv[2])
ours = {"general.quantized_by", "triage.bits_per_weight"}
same_k = sum(1 for k in kb if k in ka and ka[k] == kb[k])
extra = sorted(set(ka) - set(kb) - ours)
same_t = sum(1 for k in tb if k in ta and ta[k] == tb[k])
print(f"{same_k}/{len(kb)}" + (f" (+{extra})" if extra else ""), f"{same_t}/{len(tb)}", ka.get("tokenizer.ggml.model", "-") + " " + ka.get("tokenizer.ggml.pre", "-"), len(ka.get("tokenizer.ggml.tokens", [])), sep="\t")
'
# llama.cpp logs from a thread whose last lines are sometimes lost at exit (one tiny-model run in ten): up to eight tries.
ppl() {
  local p=""
  for _ in 1 2 3 4 5 6 7 8; do
    p=$(tools/llama.cpp/bin/llama-perplexity -m "$1" -f assets/eval.txt -c 128 -b 128 --chunks 4 -t 2 2>&1 | sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p')
    [ -n "$p" ] && break
  done
  echo "$p"
}
printf '| folder | vocabulary | keys equal to the converter'"'"'s | tensors byte-identical | tokenizer, pre-tokenizer | llama-perplexity: ours / converter'"'"'s | ids = llama-tokenize (unicode.txt) | ids = llama-tokenize (eval.txt) |\n|---|---|---|---|---|---|---|---|\n'
for case in tests/fixtures/tiny-llama:smollm tests/fixtures/tiny-llama-sharded:smollm tests/fixtures/tiny-qwen2:qwen2 tests/fixtures/tiny-qwen3:qwen2 tests/fixtures/tiny-spm: tests/fixtures/tiny-gemma3:qwen2 tests/fixtures/tiny-gemma2: tests/fixtures/tiny-phi3: tests/fixtures/tiny-gemma3-vl: tests/fixtures/tiny-smollm3:smollm "$WORK/qwen2.5-coder-0.5b-instruct:qwen2" "$WORK/llama3:" "$WORK/qwen3:" "$WORK/mistral:" "$WORK/phi3:"; do
  dir=${case%%:*}
  pre=${case##*:}
  name=$(basename "$dir")
  conv="$WORK/$name.converter.F16.gguf"
  ours="$WORK/$name.triage.F16.gguf"
  .venv/bin/python scripts/convert_reference.py --model "$dir" --out "$conv" ${pre:+--pre "$pre"} > "$WORK/$name.converter.log" 2>&1
  ./target/release/triage compress --model "$dir" --calib assets/calib.txt --tokens 1024 --ctx 128 --type F16 --out "$ours" > "$WORK/$name.triage.log" 2>&1
  IFS=$'\t' read -r keys tensors pre_name vocab < <(.venv/bin/python -c "$cmp_py" "$ours" "$conv")
  row="| $name | $vocab | $keys | $tensors | $pre_name | $(ppl "$ours") / $(ppl "$conv") |"
  for text in tests/fixtures/unicode.txt assets/eval.txt; do
    a=$("$TOKENIZE" -m "$ours" -f "$text" --ids --log-disable --no-bos --no-escape 2>/dev/null | tail -1)
    b=$(./target/release/examples/tokenize "$ours" "$text")
    n=$(python3 -c "import sys; print(len(eval(sys.stdin.read())))" <<< "$a")
    [ "$a" = "$b" ] && row="$row yes ($n tokens) |" || row="$row **no** |"
  done
  echo "$row"
done
