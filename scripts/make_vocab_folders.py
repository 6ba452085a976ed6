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
OUT_DIR/phi3    Phi3ForCausalLM shaped like Phi-3.5-mini-instruct (vocabulary 32064, LongRoPE over an
                original 4096 of 131072 positions, sliding window 262144, untied) with a 32000-piece
                SentencePiece model (Mistral 7B v0.1's, Phi-3's own is Llama 2's) and Phi-3's added
                tokens <|endoftext|> … <|user|> (ids 32000–32010) and chat template, 2 blocks of width 64

The weights are random (seeded); what is checked is everything but the weights' values: the
metadata, the tokenizer, the tensor layout.
"""
import json
import shutil
import sys
from pathlib import Path

import torch
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Phi3Config, Phi3ForCausalLM,
                          Qwen3Config, Qwen3ForCausalLM)

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

    phi3(out)


PHI3_ADDED = ["<|endoftext|>", "<|assistant|>", "<|placeholder1|>", "<|placeholder2|>", "<|placeholder3|>",
              "<|placeholder4|>", "<|system|>", "<|end|>", "<|placeholder5|>", "<|placeholder6|>", "<|user|>"]
PHI3_TEMPLATE = ("{% for message in messages %}{% if message['role'] == 'system' and message['content'] %}{{'<|system|>\n' + "
                 "message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + "
                 "'<|end|>\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}"
                 "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}")


def phi3(out: Path):
    g = torch.Generator().manual_seed(3)
    short = [round(1.0 + 0.2 * i + 0.05 * float(torch.rand(1, generator=g)), 4) for i in range(8)]
    long = [round(f * 1.5 + i, 4) for i, f in enumerate(short)]
    cfg = Phi3Config(vocab_size=32064, max_position_embeddings=131072, original_max_position_embeddings=4096, rms_norm_eps=1e-5,
                     tie_word_embeddings=False, bos_token_id=1, eos_token_id=32000, pad_token_id=32000, sliding_window=262144,
                     rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0, "short_factor": short, "long_factor": long,
                                      "original_max_position_embeddings": 4096},
                     **{k: v for k, v in SMALL.items() if k != "head_dim"})
    d = out / "phi3"
    save(Phi3ForCausalLM(cfg), d, "mistral", {"bos_token_id": 1, "eos_token_id": [32000, 32001, 32007], "pad_token_id": 32000},
         files=("tokenizer.model",))
    c = json.loads((d / "config.json").read_text())
    rp = c.pop("rope_parameters")
    c["rope_theta"] = rp["rope_theta"]
    c["rope_scaling"] = {"long_factor": rp["long_factor"], "short_factor": rp["short_factor"], "type": "longrope"}
    (d / "config.json").write_text(json.dumps(dict(sorted(c.items())), indent=2) + "\n")
    decoder = {str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True}
               for i, t in enumerate(["<unk>", "<s>", "</s>"])}
    for i, t in enumerate(PHI3_ADDED):
        decoder[str(32000 + i)] = {"content": t, "lstrip": False, "normalized": False, "rstrip": t != "<|endoftext|>",
                                   "single_word": False, "special": True}
    (d / "tokenizer_config.json").write_text(json.dumps({
        "add_bos_token": False, "add_eos_token": False, "added_tokens_decoder": decoder, "bos_token": "<s>",
        "chat_template": PHI3_TEMPLATE, "clean_up_tokenization_spaces": False, "eos_token": "<|endoftext|>", "legacy": False,
        "model_max_length": 131072, "pad_token": "<|endoftext|>", "padding_side": "left", "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizer", "unk_token": "<unk>", "use_default_system_prompt": False}, indent=2) + "\n")
    (d / "added_tokens.json").write_text(json.dumps({t: 32000 + i for i, t in enumerate(PHI3_ADDED)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
