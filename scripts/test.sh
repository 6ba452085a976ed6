#!/usr/bin/env bash
# The whole test suite: fetch the assets (default model, texts), then every unit, conformance,
# bad-input and real-model test, in release mode (the real-model tests run full forward passes).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/fetch_assets.sh
cargo test --release --locked "$@"
