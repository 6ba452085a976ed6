#!/usr/bin/env python3
"""tests/fixtures/tiny-spm/: a tiny LlamaForCausalLM whose tokenizer is a SentencePiece BPE model
(tokenizer.model, trained here on the first 200 000 bytes of assets/calib.txt, 400 pieces, byte
fallback, identity normalization, as Llama 2's) with no tokenizer.json, as Llama 2 and Mistral folders
are converted:

    .venv/bin/python scripts/make_spm_fixture.py

Deterministic (one training thread, fixed seeds). llama.cpp's converter's output for it is made
by scripts/make_converter_fixtures.sh.
"""
import io
import json
import shutil
from pathlib import Path

import sentencepiece as spm
import torch
from transformers import LlamaConfig, LlamaForCausalLM

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests/fixtures/tiny-spm"


def main():
    text = (REPO / "assets/calib.txt").read_bytes()[:200_000].decode("utf-8", errors="ignore")
    words = text.split()
    sentences = [" ".join(words[i:i + 30]) for i in range(0, len(words), 30)]  # speeches are one line each
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(sentences), model_writer=model, vocab_size=400,
                                   model_type="bpe", byte_fallback=True, character_coverage=1.0, num_threads=1,
                                   bos_id=1, eos_id=2, unk_id=0, pad_id=-1, normalization_rule_name="identity",
                                   minloglevel=2)
    if OUT.exists():
        shutil.rmtree(OUT)
    torch.manual_seed(4321)
    cfg = LlamaConfig(vocab_size=400, hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=16, max_position_embeddings=256, rms_norm_eps=1e-5,
                      tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    m = LlamaForCausalLM(cfg)
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.copy_(1.0 + 0.25 * torch.randn(p.shape) if "norm" in name else 0.08 * torch.randn(p.shape))
    m.to(torch.bfloat16).save_pretrained(OUT, safe_serialization=True)
    (OUT / "tokenizer.model").write_bytes(model.getvalue())
    special = {str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True}
               for i, t in enumerate(["<unk>", "<s>", "</s>"])}
    (OUT / "tokenizer_config.json").write_text(json.dumps({
        "add_bos_token": True, "add_eos_token": False, "added_tokens_decoder": special, "bos_token": "<s>", "eos_token": "</s>",
        "unk_token": "<unk>", "legacy": True, "tokenizer_class": "LlamaTokenizer"}, indent=2) + "\n")
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    print(OUT, sp.vocab_size(), "pieces;", sum(f.stat().st_size for f in OUT.iterdir()), "bytes")


if __name__ == "__main__":
    main()
