#!/usr/bin/env bash
# Screenshot an HTML report with headless Chromium, to check what `triage` reports look like.
#   scripts/screenshot_report.sh REPORT.html OUT.png
# Installs Debian's `chromium` (apt-get, needs root) when no chromium is on PATH.
# Environment: WINDOW (default 1400,5000) = the window size, i.e. the PNG's width,height.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 REPORT.html OUT.png" >&2
    exit 2
fi
REPORT="$1"
OUT="$2"
WINDOW="${WINDOW:-1400,5000}"
[ -f "$REPORT" ] || { echo "$0: no such file: $REPORT" >&2; exit 1; }

if ! command -v chromium >/dev/null 2>&1; then
    echo "installing chromium ..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium >/dev/null
fi

abs() { (cd "$(dirname "$1")" && printf '%s/%s' "$(pwd)" "$(basename "$1")"); }
REPORT_ABS="$(abs "$REPORT")"
mkdir -p "$(dirname "$OUT")"
OUT_ABS="$(abs "$OUT")"
PROFILE_DIR="$(mktemp -d)"
trap 'rm -rf "$PROFILE_DIR"' EXIT

rm -f "$OUT_ABS"
chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run \
    --user-data-dir="$PROFILE_DIR" --window-size="$WINDOW" \
    --screenshot="$OUT_ABS" "file://$REPORT_ABS" 2>"$PROFILE_DIR/chromium.log" || {
    cat "$PROFILE_DIR/chromium.log" >&2
    exit 1
}
if [ ! -s "$OUT_ABS" ]; then
    cat "$PROFILE_DIR/chromium.log" >&2
    echo "$0: chromium wrote no screenshot" >&2
    exit 1
fi
echo "$OUT_ABS"
