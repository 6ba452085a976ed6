#!/usr/bin/env python3
"""llama-tokenize's ids for whole texts on the real vocabularies of llama.cpp's sources, committed as
tests/fixtures/vocab-expected.json for tests/vocab.rs:

    .venv/bin/python scripts/make_vocab_expectations.py

For each ggml-vocab-NAME.gguf below (vendor/llama.cpp/models of the sdist scripts/build_llama_cpp.sh
unpacks), llama-tokenize (--ids --no-bos --no-escape --no-parse-special) tokenizes
tests/fixtures/unicode.txt and assets/eval.txt; the count and the sha256 of the ids as it prints
them are kept.
"""
import glob
import hashlib
import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NAMES = ["llama-spm", "phi-3", "gpt-2", "llama-bpe", "qwen2", "starcoder", "refact", "command-r", "mpt"]


def main():
    models = Path(sorted(glob.glob(str(REPO / "tools/llama.cpp/src/llama_cpp_python-*/vendor/llama.cpp/models")))[-1])
    out = {}
    for name in NAMES:
        out[name] = {}
        for key, text in [("unicode", REPO / "tests/fixtures/unicode.txt"), ("eval", REPO / "assets/eval.txt")]:
            r = subprocess.run([str(REPO / "tools/llama.cpp/bin/llama-tokenize"), "-m", str(models / f"ggml-vocab-{name}.gguf"),
                                "-f", str(text), "--ids", "--log-disable", "--no-bos", "--no-escape", "--no-parse-special"],
                               capture_output=True, text=True, check=True)
            ids = r.stdout.strip().splitlines()[-1]
            out[name][key] = {"tokens": len(json.loads(ids)), "sha256": hashlib.sha256(ids.encode()).hexdigest()}
        print(name, out[name]["unicode"]["tokens"], out[name]["eval"]["tokens"])
    (REPO / "tests/fixtures/vocab-expected.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
