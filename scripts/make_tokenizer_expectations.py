#!/usr/bin/env python3
"""What llama.cpp's llama-tokenize gives for each pre-tokenizer group we run, committed for
tests/hf_gguf.rs:

    .venv/bin/python scripts/make_tokenizer_expectations.py

tests/fixtures/bpe2k.gguf: a byte-level BPE vocabulary of 2000 tokens (tokenizer metadata
only, no tensors: llama-tokenize loads the vocabulary alone), trained with the `tokenizers`
library on lines of assets/calib.txt and tests/fixtures/unicode.txt *without* a pre-tokenizer
split, so that its merges cross the boundaries the pre-tokenizers draw (digits, spaces,
punctuation, newlines) and each pre-tokenizer gives other ids.

tests/fixtures/tokenize-expected.json: for each name below, bpe2k.gguf with `tokenizer.ggml.pre`
set to it, tokenized by llama-tokenize (tools/llama.cpp/bin, `--ids --no-bos --no-escape`):
the ids of tests/fixtures/unicode.txt, and the count and sha256 of the ids (as llama-tokenize
prints them) of assets/eval.txt.
"""
import glob
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, sorted(glob.glob(str(REPO / "tools/llama.cpp/src/llama_cpp_python-*/vendor/llama.cpp/gguf-py")))[-1])
import gguf  # noqa: E402

# One name per group of llama.cpp's pre-tokenizers that we run (src/model/tokenizer.rs).
NAMES = ["gpt-2", "smollm", "qwen2", "llama-bpe", "smaug-bpe"]


def train_bpe2k():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    text = (REPO / "assets/calib.txt").read_text()[:400_000] + (REPO / "tests/fixtures/unicode.txt").read_text()
    lines = [l + "\n" for l in text.split("\n")]
    lines = [" ".join(l.split(" ")[i:i + 40]) for l in lines for i in range(0, len(l.split(" ")), 40)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=2000, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(lines, trainer)
    return json.loads(tok.to_str())["model"]


def write_vocab(dst: Path, model: dict, pre: str):
    """A llama GGUF with tokenizer metadata only (and the hyper-parameters a loader asks for)."""
    vocab = sorted(model["vocab"].items(), key=lambda kv: kv[1])
    assert [i for _, i in vocab] == list(range(len(vocab)))
    w = gguf.GGUFWriter(str(dst), arch="llama")
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name("bpe2k")
    w.add_block_count(1)
    w.add_context_length(256)
    w.add_embedding_length(64)
    w.add_feed_forward_length(128)
    w.add_head_count(4)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(len(vocab))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list([t for t, _ in vocab])
    w.add_token_types([gguf.TokenType.CONTROL if t == "<|endoftext|>" else gguf.TokenType.NORMAL for t, _ in vocab])
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in model["merges"]])
    w.add_eos_token_id(0)
    w.add_add_bos_token(False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def tokenize(model: Path, text: Path) -> str:
    out = subprocess.run([str(REPO / "tools/llama.cpp/bin/llama-tokenize"), "-m", str(model), "-f", str(text),
                          "--ids", "--log-disable", "--no-bos", "--no-escape"], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def main():
    expected = {}
    model = train_bpe2k()
    write_vocab(REPO / "tests/fixtures/bpe2k.gguf", model, "gpt-2")
    with tempfile.TemporaryDirectory() as td:
        for pre in NAMES:
            g = Path(td) / f"{pre}.gguf"
            write_vocab(g, model, pre)
            uni = json.loads(tokenize(g, REPO / "tests/fixtures/unicode.txt"))
            ev = tokenize(g, REPO / "assets/eval.txt")
            expected[pre] = {"unicode": uni, "eval_tokens": len(json.loads(ev)), "eval_sha256": hashlib.sha256(ev.encode()).hexdigest()}
            print(pre, len(uni), expected[pre]["eval_tokens"])
    (REPO / "tests/fixtures/tokenize-expected.json").write_text(json.dumps(expected) + "\n")


if __name__ == "__main__":
    main()
