#!/usr/bin/env python3
"""Small random Hugging Face folders that carry the real tokenizers of published models
(assets/tokenizers/, from scripts/fetch_tokenizers.sh), for scripts/check_hf_gguf.sh:

    .venv/bin/python scripts/make_vocab_folders.py OUT_DIR

OUT_DIR/llama3  LlamaForCausalLM shaped like Llama-3.2-1B-Instruct (vocabulary 128256, llama3 RoPE
                scaling, tied embeddings, bos 128000, eos [128001, 128008, 128009]) but 2 blocks
                of width 64, in bfloat16, with Llama 3's tokenizer.json and tokenizer_config.json
OUT_DIR/qwen3   Qwen3ForCausalLM shaped like Qwen3-0.6B (vocabulary 151936, tied embeddings,
                per-head q/k norms, head_dim 16 ≠ width/heads) with Qwen3's tokenizer files,
                2 blocks of width 64, in bfloat16

OUT_DIR/mistral MistralForCausalLM shaped like Mistral-7B (vocabulary 32000, no sliding window, untied)
                with Mistral 7B v0.1's SentencePiece tokenizer.model and its tokenizer_config.json
                (written here), no tokenizer.json, 2 blocks of width 64, in bfloat16

The weights are random (seeded); what is checked is everything but the weights' values: the
metadata, the tokenizer, the tensor layout.
"""
import json
import shutil
import sys
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen3Config, Qwen3ForCausalLM

REPO = Path(__file__).resolve().parent.parent
SMALL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, head_dim=16, hidden_act="silu")


def save(model, out: Path, tokenizer: str, generation: dict, files=("tokenizer.json", "tokenizer_config.json")):
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(1.0 + 0.1 * torch.randn(p.shape) if "norm" in name else 0.05 * torch.randn(p.shape))
    if out.exists():
        shutil.rmtree(out)
    model.to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
    for f in files:
        shutil.copy(REPO / "assets/tokenizers" / tokenizer / f, out / f)
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    print(out, sum(p.numel() for p in model.parameters()), "parameters")


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    llama = LlamaConfig(vocab_size=128256, max_position_embeddings=131072, rms_norm_eps=1e-5,
                        rope_theta=500000.0, tie_word_embeddings=True, bos_token_id=128000,
                        eos_token_id=[128001, 128008, 128009],
                        rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                      "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
                        **SMALL)
    save(LlamaForCausalLM(llama), out / "llama3", "llama3",
         {"bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "do_sample": True, "temperature": 0.6, "top_p": 0.9})
    qwen = Qwen3Config(vocab_size=151936, max_position_embeddings=40960, rms_norm_eps=1e-6, rope_theta=1000000.0,
                       tie_word_embeddings=True, bos_token_id=151643, eos_token_id=151645, attention_bias=False,
                       use_sliding_window=False, sliding_window=None, **{**SMALL, "num_attention_heads": 2, "num_key_value_heads": 1})
    save(Qwen3ForCausalLM(qwen), out / "qwen3", "qwen3",
         {"bos_token_id": 151643, "eos_token_id": [151645, 151643], "pad_token_id": 151643, "do_sample": True, "temperature": 0.7})

    mistral = MistralConfig(vocab_size=32000, max_position_embeddings=32768, rms_norm_eps=1e-5, rope_theta=10000.0,
                            tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, sliding_window=None, **SMALL)
    save(MistralForCausalLM(mistral), out / "mistral", "mistral", {"bos_token_id": 1, "eos_token_id": 2}, files=("tokenizer.model",))
    special = {str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True}
               for i, t in enumerate(["<unk>", "<s>", "</s>"])}
    (out / "mistral" / "tokenizer_config.json").write_text(json.dumps({
        "add_bos_token": True, "add_eos_token": False, "added_tokens_decoder": special, "bos_token": "<s>",
        "clean_up_tokenization_spaces": False, "eos_token": "</s>", "legacy": True, "model_max_length": 1000000000000000019884624838656,
        "pad_token": None, "sp_model_kwargs": {}, "spaces_between_special_tokens": False, "tokenizer_class": "LlamaTokenizer",
        "unk_token": "<unk>", "use_default_system_prompt": False}, indent=2) + "\n")


if __name__ == "__main__":
    main()
