#!/usr/bin/env bash
# triage's tokenizers against llama.cpp's on real vocabularies: the ggml-vocab-NAME.gguf files
# of the sdist our llama.cpp is built from (every vocabulary whose pre-tokenizer we run, byte-level
# BPE and SentencePiece), tokenized by llama-tokenize (--no-bos --no-escape --no-parse-special)
# and by triage (examples/tokenize.rs) over tests/fixtures/unicode.txt and assets/eval.txt.
# Prints one table (the README's). tests/vocab.rs runs llama.cpp's own cases for the same files.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/fetch_assets.sh >/dev/null
LLAMA_TARGETS="llama-perplexity llama-tokenize" scripts/build_llama_cpp.sh >/dev/null
M="$(SOURCE_ONLY=1 scripts/build_llama_cpp.sh | tail -1)/models"
cargo build --release --quiet --example tokenize
echo "| vocabulary | tokenizer | pre-tokenizer | unicode.txt: ids equal | eval.txt: ids equal |"
echo "|---|---|---|---|---|"
for v in llama-spm phi-3 gpt-2 llama-bpe qwen2 starcoder refact command-r mpt; do
  f="$M/ggml-vocab-$v.gguf"
  row="| $v |"
  meta=$(python3 - "$f" <<'PY'
import struct, sys
# tokenizer.ggml.model and .pre from the GGUF header (strings only; enough for the table)
d = open(sys.argv[1], "rb").read(1 << 16)
def find(key):
    k = key.encode(); i = d.find(k)
    if i < 0: return "-"
    i += len(k) + 4
    n = struct.unpack("<Q", d[i:i + 8])[0]
    return d[i + 8:i + 8 + n].decode()
print(find("tokenizer.ggml.model"), find("tokenizer.ggml.pre"))
PY
)
  row="$row ${meta% *} | ${meta#* } |"
  for t in tests/fixtures/unicode.txt assets/eval.txt; do
    a=$(tools/llama.cpp/bin/llama-tokenize -m "$f" -f "$t" --ids --log-disable --no-bos --no-escape --no-parse-special 2>/dev/null | tail -1)
    b=$(./target/release/examples/tokenize "$f" "$t")
    n=$(tr ',' '\n' <<< "$a" | wc -l)
    [ "$a" = "$b" ] && row="$row yes ($n tokens) |" || row="$row **no** |"
  done
  echo "$row"
done
