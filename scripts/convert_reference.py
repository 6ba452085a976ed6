#!/usr/bin/env python3
"""Run llama.cpp's own converter, convert_hf_to_gguf.py, on a Hugging Face folder: the reference
that `triage compress --model DIR --type F16 --out x.gguf` is checked against.

    .venv/bin/python scripts/convert_reference.py --model DIR --out ref.gguf [--outtype f16] [--pre NAME]

The converter is the one in the llama-cpp-python sdist that scripts/build_llama_cpp.sh unpacks
(tools/llama.cpp/src/llama_cpp_python-*/vendor/llama.cpp), run with the gguf-py beside it.
`--pre NAME` replaces the converter's pre-tokenizer detection (a hash of the token ids of a
fixed text, known only for published vocabularies) with NAME: the tiny fixtures' vocabularies
are our own, so no hash can know them.
"""
from __future__ import annotations

import argparse
import glob
import os
import runpy
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def llama_cpp_dir() -> Path:
    found = sorted(glob.glob(str(REPO / "tools/llama.cpp/src/llama_cpp_python-*/vendor/llama.cpp")))
    if not found:
        raise SystemExit("llama.cpp's sources are missing: run scripts/build_llama_cpp.sh first")
    return Path(found[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--outtype", default="f16")
    ap.add_argument("--pre", help="the pre-tokenizer name to write instead of the detected one")
    args = ap.parse_args()
    root = llama_cpp_dir()
    sys.path.insert(0, str(root / "gguf-py"))
    sys.path.insert(0, str(root))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.pre:
        import conversion.base as base
        base.TextModel.get_vocab_base_pre = lambda self, tok: args.pre
    sys.argv = ["convert_hf_to_gguf.py", str(args.model), "--outtype", args.outtype, "--outfile", str(args.out)]
    runpy.run_path(str(root / "convert_hf_to_gguf.py"), run_name="__main__")


if __name__ == "__main__":
    main()
