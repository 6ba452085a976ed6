#!/usr/bin/env bash
# Build the llama.cpp reference tools used to cross-check triage:
#   llama-quantize, llama-imatrix, llama-perplexity, llama-tokenize
# from the vendor/llama.cpp folder of the PyPI sdist llama-cpp-python==0.3.36
# (llama.cpp commit 0c1e57098bba43ac29e6e3b677cdceebdd22334f), CPU only, Release,
# static libraries, into <repo>/tools/llama.cpp/ (git-ignored):
#   tools/llama.cpp/src/    unpacked sdist (vendor/llama.cpp is the cmake source dir)
#   tools/llama.cpp/build/  cmake build tree
#   tools/llama.cpp/bin/    the binaries (copied from build/bin)
# Idempotent: does nothing when all binaries are already in tools/llama.cpp/bin/.
# Works from any cwd. Environment: JOBS (default 2) = parallel compile jobs; LLAMA_TARGETS =
# the binaries to build (default all four; the test suite needs only llama-perplexity).
# cmake comes from PyPI into tools/llama.cpp/venv when the machine has none. SOURCE_ONLY=1 only
# fetches and unpacks the sdist and prints the llama.cpp source folder as the last line (for
# convert_hf_to_gguf.py and its gguf-py).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$REPO/tools/llama.cpp"
SRC="$OUT/src"
BUILD="$OUT/build"
BIN="$OUT/bin"
JOBS="${JOBS:-2}"

PKG_VERSION="0.3.36"
SDIST="llama_cpp_python-${PKG_VERSION}.tar.gz"
SDIST_SHA256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
read -r -a TARGETS <<<"${LLAMA_TARGETS:-llama-quantize llama-imatrix llama-perplexity llama-tokenize}"
# Portable x86-64 instruction set, never a native build (GGML_NATIVE off): on the Intel Xeon hosts,
# whose CPUs report AVX-512 and AMX, a native build dies with "Illegal instruction", and a native
# build's binaries would not run on the AVX2-only AMD EPYC hosts either. AVX2+FMA+F16C+BMI2 runs on
# every host we get. The flags are stamped beside the binaries; binaries built with other flags (an
# older native build) are rebuilt.
ISA_FLAGS=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
  -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF
  -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DGGML_AVX_VNNI=OFF)
STAMP="$OUT/bin/BUILD_FLAGS"

die() { echo "build_llama_cpp: ERROR: $*" >&2; exit 1; }
log() { echo "build_llama_cpp: $*"; }

have_all() {
  local t
  [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "${ISA_FLAGS[*]}" ] || return 1
  for t in "${TARGETS[@]}"; do [ -x "$BIN/$t" ] || return 1; done
}

print_bins() {
  local t
  log "binaries (built with ${ISA_FLAGS[*]}):"
  for t in "${TARGETS[@]}"; do echo "  $BIN/$t"; done
}

if [ "${SOURCE_ONLY:-0}" != 1 ] && have_all; then
  log "already built, nothing to do"
  print_bins
  exit 0
fi

mkdir -p "$OUT"

# ------------------------------------------------------------ fetch + unpack sdist
LLAMA_SRC="$SRC/llama_cpp_python-${PKG_VERSION}/vendor/llama.cpp"
if [ ! -f "$LLAMA_SRC/CMakeLists.txt" ]; then
  DL="$OUT/download"
  mkdir -p "$DL"
  if [ ! -f "$DL/$SDIST" ] || [ "$(sha256sum "$DL/$SDIST" | awk '{print $1}')" != "$SDIST_SHA256" ]; then
    rm -f "$DL/$SDIST"
    # A venv with the sdist's build backend so that pip can prepare its metadata under
    # --no-build-isolation (and with cmake, for machines without one).
    if [ ! -x "$OUT/venv/bin/python" ]; then
      log "creating venv $OUT/venv"
      python3 -m venv "$OUT/venv"
      "$OUT/venv/bin/python" -m pip install --quiet scikit-build-core cmake
    fi
    log "downloading llama-cpp-python==$PKG_VERSION sdist"
    "$OUT/venv/bin/python" -m pip download --quiet --no-deps --no-binary :all: \
      --no-build-isolation -d "$DL" "llama-cpp-python==$PKG_VERSION"
  fi
  [ -f "$DL/$SDIST" ] || die "$SDIST not downloaded"
  GOT="$(sha256sum "$DL/$SDIST" | awk '{print $1}')"
  [ "$GOT" = "$SDIST_SHA256" ] || die "sha256 mismatch for $SDIST: got $GOT, want $SDIST_SHA256"
  log "sdist sha256 OK"
  rm -rf "$SRC"
  mkdir -p "$SRC"
  tar -xzf "$DL/$SDIST" -C "$SRC"
  [ -f "$LLAMA_SRC/CMakeLists.txt" ] || die "vendor/llama.cpp missing from $SDIST"
fi
if [ "${SOURCE_ONLY:-0}" = 1 ]; then
  echo "$LLAMA_SRC"
  exit 0
fi

# ------------------------------------------------------------ cmake
if ! command -v cmake >/dev/null 2>&1; then
  [ -x "$OUT/venv/bin/cmake" ] || { python3 -m venv "$OUT/venv" && "$OUT/venv/bin/python" -m pip install --quiet cmake; }
  export PATH="$OUT/venv/bin:$PATH"
fi
command -v cmake >/dev/null 2>&1 || die "cmake not found and could not be installed from PyPI"

log "configuring (Release, CPU only)"
# LLAMA_CURL is deprecated/ignored in this llama.cpp version (HTTPS now goes through
# LLAMA_OPENSSL); both are turned off: the tools are only used on local files.
cmake -S "$LLAMA_SRC" -B "$BUILD" \
  -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_CURL=OFF \
  -DLLAMA_OPENSSL=OFF \
  -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_SERVER=OFF \
  -DLLAMA_BUILD_APP=OFF \
  -DLLAMA_BUILD_UI=OFF \
  -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF -DGGML_RPC=OFF \
  "${ISA_FLAGS[@]}" >"$OUT/cmake-configure.log" 2>&1 \
  || { tail -40 "$OUT/cmake-configure.log" >&2; die "cmake configure failed (see $OUT/cmake-configure.log)"; }

log "building ${TARGETS[*]} with -j$JOBS"
cmake --build "$BUILD" --config Release --target "${TARGETS[@]}" -j"$JOBS"

mkdir -p "$BIN"
for t in "${TARGETS[@]}"; do
  [ -x "$BUILD/bin/$t" ] || die "$BUILD/bin/$t not built"
  cp -f "$BUILD/bin/$t" "$BIN/$t"
done
echo "${ISA_FLAGS[*]}" >"$STAMP"
print_bins
