#!/usr/bin/env python3
"""Reference perplexity with transformers, for comparison with `triage`.

    .venv/bin/python scripts/reference_eval.py --gguf assets/SmolLM2-135M-Instruct.Q4_1.gguf \
        --text assets/eval.txt --ctx 512 --max-windows 40 [--dump-tokens FILE]

Model and tokenizer both come from the GGUF (transformers `gguf_file=`, weights dequantized
to float32, eager attention), or with --hf DIR from a Hugging Face folder. The WHOLE text is tokenized with add_special_tokens=False, cut
into non-overlapping windows of --ctx tokens (the remainder is dropped), and the first
--max-windows windows are each run on their own (no BOS is added, no state carried over).
In every window the ctx-1 positions whose next token lies inside the window are scored; the
result is exp(mean NLL) over all scored positions. Prints one JSON object:
{"ppl", "tokens_scored", "windows", "ctx", "n_tokens_total"} (plus "nll_mean").
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch


def load(gguf_path: Path | None, hf_dir: Path | None):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if hf_dir is not None:
        tok = AutoTokenizer.from_pretrained(str(hf_dir))
        model = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32, attn_implementation="eager")
        return tok, model.eval()
    d, f = str(gguf_path.resolve().parent), gguf_path.name
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32,
                                                 attn_implementation="eager")
    return tok, model.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--gguf", type=Path)
    src.add_argument("--hf", type=Path, help="a Hugging Face folder (e.g. one triage compress wrote)")
    ap.add_argument("--text", type=Path, required=True)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--max-windows", type=int, default=40)
    ap.add_argument("--dump-tokens", type=Path, help="write all token ids of the whole text, one per line")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    ap.add_argument("--show-tokenization", metavar="TEXT", help="print ids/pieces of TEXT to stderr and continue")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    t0 = time.time()
    tok, model = load(args.gguf, args.hf)
    print(f"loaded in {time.time() - t0:.1f}s; pre_tokenizer={tok.backend_tokenizer.pre_tokenizer}",
          file=sys.stderr)
    if args.show_tokenization is not None:
        ids = tok(args.show_tokenization, add_special_tokens=False)["input_ids"]
        print(json.dumps({"text": args.show_tokenization, "ids": ids,
                          "pieces": tok.convert_ids_to_tokens(ids)}, ensure_ascii=False), file=sys.stderr)

    text = args.text.read_text(encoding="utf-8")
    ids = tok(text, add_special_tokens=False)["input_ids"]
    n_total = len(ids)
    if args.dump_tokens:
        args.dump_tokens.write_text("".join(f"{i}\n" for i in ids))

    n_windows = min(n_total // args.ctx, args.max_windows)
    nll_sum, scored = 0.0, 0
    with torch.no_grad():
        for w in range(n_windows):
            x = torch.tensor([ids[w * args.ctx:(w + 1) * args.ctx]])
            logits = model(x, use_cache=False).logits[0].float()
            lp = torch.log_softmax(logits[:-1].double(), dim=-1)
            nll = -lp.gather(1, x[0, 1:, None]).squeeze(1)
            nll_sum += nll.sum().item()
            scored += nll.numel()
            print(f"window {w + 1}/{n_windows}: mean nll {nll.mean().item():.4f} "
                  f"(running ppl {math.exp(nll_sum / scored):.4f}, {time.time() - t0:.0f}s)", file=sys.stderr)
    mean = nll_sum / scored if scored else float("nan")
    print(json.dumps({"ppl": math.exp(mean), "tokens_scored": scored, "windows": n_windows,
                      "ctx": args.ctx, "n_tokens_total": n_total, "nll_mean": mean}))


if __name__ == "__main__":
    main()
