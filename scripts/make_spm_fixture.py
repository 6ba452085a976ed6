#!/usr/bin/env python3
"""tests/fixtures/tiny-spm/, tiny-gemma2/, tiny-phi3/ and tiny-gemma3-vl/.

tiny-spm: a tiny LlamaForCausalLM whose tokenizer is a SentencePiece BPE model
(tokenizer.model, trained here on the first 200 000 bytes of assets/calib.txt, 400 pieces, byte
fallback, identity normalization, as Llama 2's) with no tokenizer.json, as Llama 2 and Mistral folders
are converted:

    .venv/bin/python scripts/make_spm_fixture.py

tiny-gemma2: a tiny Gemma2ForCausalLM in bf16 with a SentencePiece model trained the same way but
with no dummy prefix, as Gemma's; four blocks alternating windowed (8 tokens) and global, soft caps
small enough to bite (attention 1.0, logits 2.0), and tiny-gemma2.expected.json: transformers'
logits and hidden states on a sentence, in float32.

Deterministic (one training thread, fixed seeds). llama.cpp's converter's output for it is made
by scripts/make_converter_fixtures.sh.
"""
import io
import json
import shutil
import sys
from pathlib import Path

import sentencepiece as spm
import torch
from transformers import LlamaConfig, LlamaForCausalLM

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests/fixtures/tiny-spm"
sys.path.insert(0, str(REPO / "scripts"))
from make_fixtures import check_hidden_state_layout, forward, write_expected  # noqa: E402


def train(add_dummy_prefix: bool) -> io.BytesIO:
    text = (REPO / "assets/calib.txt").read_bytes()[:200_000].decode("utf-8", errors="ignore")
    words = text.split()
    sentences = [" ".join(words[i:i + 30]) for i in range(0, len(words), 30)]  # speeches are one line each
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(sentences), model_writer=model, vocab_size=400,
                                   model_type="bpe", byte_fallback=True, character_coverage=1.0, num_threads=1,
                                   bos_id=1, eos_id=2, unk_id=0, pad_id=-1, normalization_rule_name="identity",
                                   minloglevel=2, **({} if add_dummy_prefix else {"add_dummy_prefix": False}))
    return model


GEMMA2_TEXT = "It was the best of times, it was the worst of times."


def fresh(out: Path, seed: int):
    """An empty place for the fixture `out`, and torch's seed for its weights."""
    if out.exists():
        shutil.rmtree(out)
    torch.manual_seed(seed)


def save_random(m, out: Path, norm_centre: float):
    """`m` with weights ~N(0, 0.08²) and norm weights ~N(norm_centre, 0.25²), saved in bf16."""
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.copy_(norm_centre + 0.25 * torch.randn(p.shape) if "norm" in name else 0.08 * torch.randn(p.shape))
    m.to(torch.bfloat16).save_pretrained(out, safe_serialization=True)


def special_tokens(tokens, rstrip=lambda i: False) -> dict:
    """tokenizer_config.json's `added_tokens_decoder` for the special tokens `tokens` (None: no entry)."""
    return {str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": rstrip(i), "single_word": False, "special": True}
            for i, t in enumerate(tokens) if t}


def save_tokenizer(out: Path, model: io.BytesIO, config: dict):
    (out / "tokenizer.model").write_bytes(model.getvalue())
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


def gemma2():
    from transformers import AutoModelForCausalLM, Gemma2Config, Gemma2ForCausalLM

    out = REPO / "tests/fixtures/tiny-gemma2"
    model = train(add_dummy_prefix=False)
    fresh(out, 2468)
    cfg = Gemma2Config(vocab_size=400, hidden_size=64, intermediate_size=160, num_hidden_layers=4, num_attention_heads=4,
                       num_key_value_heads=2, head_dim=16, max_position_embeddings=256, rms_norm_eps=1e-6,
                       query_pre_attn_scalar=16, sliding_window=8, attn_logit_softcapping=1.0, final_logit_softcapping=2.0,
                       hidden_activation="gelu_pytorch_tanh", bos_token_id=1, eos_token_id=2, pad_token_id=None)
    save_random(Gemma2ForCausalLM(cfg), out, 0.0)
    save_tokenizer(out, model, {
        "add_bos_token": True, "add_eos_token": False, "added_tokens_decoder": special_tokens(["<unk>", "<s>", "</s>"]),
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "tokenizer_class": "GemmaTokenizer"})
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    ids = sp.encode(GEMMA2_TEXT)
    assert sp.id_to_piece(ids[0]) != "\u2581", "no dummy prefix"
    hf = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
    assert hf.config.layer_types == ["sliding_attention", "full_attention"] * 2, hf.config.layer_types
    logits, hidden = forward(hf, ids)
    check_hidden_state_layout(hf, ids, hidden)
    write_expected(REPO / "tests/fixtures/tiny-gemma2.expected.json", GEMMA2_TEXT, ids, logits, hidden,
                   {"pieces": [sp.id_to_piece(i) for i in ids]})
    print(out, len(ids), "tokens;", sum(f.stat().st_size for f in out.iterdir()), "bytes")


PHI3_TEXT = "It was the age of wisdom, it was the age of foolishness."


def phi3():
    """tiny-phi3: Phi3ForCausalLM in bf16 with the Llama-style SentencePiece model and two added
    tokens past it (<|endoftext|> and <|end|>, as Phi-3's); fused qkv_proj and gate_up_proj;
    LongRoPE with short and long factors (original context 64 of 256: 128-token windows take the
    long ones)."""
    from transformers import AutoModelForCausalLM, Phi3Config, Phi3ForCausalLM

    out = REPO / "tests/fixtures/tiny-phi3"
    model = train(add_dummy_prefix=True)
    fresh(out, 1357)
    g = torch.Generator().manual_seed(1357)
    short = [round(1.0 + 0.5 * i + 0.1 * float(torch.rand(1, generator=g)), 4) for i in range(8)]
    long = [round(f * 2.0, 4) for f in short]
    cfg = Phi3Config(vocab_size=402, hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, max_position_embeddings=256, original_max_position_embeddings=64,
                     rms_norm_eps=1e-5, sliding_window=None, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
                     pad_token_id=None,
                     rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0, "short_factor": short, "long_factor": long,
                                      "original_max_position_embeddings": 64})
    save_random(Phi3ForCausalLM(cfg), out, 1.0)
    # config.json as Phi-3.5-mini-instruct's spells it: rope_theta and rope_scaling {"type": "longrope"}.
    c = json.loads((out / "config.json").read_text())
    rp = c.pop("rope_parameters")
    c["rope_theta"] = rp["rope_theta"]
    c["rope_scaling"] = {"long_factor": rp["long_factor"], "short_factor": rp["short_factor"], "type": "longrope"}
    c["torch_dtype"] = c.pop("dtype")
    (out / "config.json").write_text(json.dumps(dict(sorted(c.items())), indent=2) + "\n")
    # llama.cpp marks Phi-3's <|endoftext|> by name (a model named phi3 must have it).
    tokens = ["<unk>", "<s>", "</s>"] + [None] * 397 + ["<|endoftext|>", "<|end|>"]
    save_tokenizer(out, model, {
        "add_bos_token": False, "add_eos_token": False, "added_tokens_decoder": special_tokens(tokens, lambda i: i >= 400),
        "bos_token": "<s>", "eos_token": "<|end|>", "unk_token": "<unk>", "legacy": False, "tokenizer_class": "LlamaTokenizer",
        "chat_template": "{% for m in messages %}{{ '<|' + m['role'] + '|>' + m['content'] + '<|end|>' }}{% endfor %}"})
    (out / "added_tokens.json").write_text(json.dumps({"<|endoftext|>": 400, "<|end|>": 401}, indent=2) + "\n")
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    ids = sp.encode(PHI3_TEXT)
    hf = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
    assert hf.config.rope_parameters["rope_type"] == "longrope", hf.config.rope_parameters
    logits, hidden = forward(hf, ids)
    check_hidden_state_layout(hf, ids, hidden)
    # Past the original context (64) LongRoPE takes the long factors.
    long_ids = ids * 3
    long_logits, _ = forward(hf, long_ids)
    write_expected(REPO / "tests/fixtures/tiny-phi3.expected.json", PHI3_TEXT, ids, logits, hidden,
                   {"pieces": [sp.id_to_piece(i) for i in ids], "long_tokens": long_ids, "long_logits": [[float(x) for x in r] for r in long_logits.tolist()]})
    print(out, len(ids), "tokens;", sum(f.stat().st_size for f in out.iterdir()), "bytes")


def gemma3_vl():
    """tiny-gemma3-vl: a Gemma3ForConditionalGeneration in bf16 (a one-layer SigLIP vision tower and
    its projector beside a six-block text model, tensors named `language_model.model.…`), whose
    config.json gives the text model's settings in `text_config` and, as google/gemma-3-4b-it's,
    leaves out those at their defaults (RoPE bases, norm epsilon, window pattern); the SentencePiece
    model without a leading space. triage reads and writes its text model."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3TextConfig, SiglipVisionConfig

    out = REPO / "tests/fixtures/tiny-gemma3-vl"
    model = train(add_dummy_prefix=False)
    fresh(out, 8642)
    text = dict(vocab_size=402, hidden_size=64, intermediate_size=160, num_hidden_layers=6, num_attention_heads=4,
                num_key_value_heads=2, head_dim=16, max_position_embeddings=256, query_pre_attn_scalar=16, sliding_window=8)
    tc = Gemma3TextConfig(**text, bos_token_id=1, eos_token_id=2, pad_token_id=None,
                          rope_parameters={"full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1000000.0},
                                           "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}})
    vc = SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=28, patch_size=14)
    m = Gemma3ForConditionalGeneration(Gemma3Config(text_config=tc, vision_config=vc, mm_tokens_per_image=4, image_token_index=401,
                                                    boi_token_index=399, eoi_token_index=398))
    save_random(m, out, 0.0)
    c = json.loads((out / "config.json").read_text())
    c["text_config"] = {**text, "model_type": "gemma3_text", "rope_scaling": {"factor": 2.0, "rope_type": "linear"}}
    c["torch_dtype"] = c.pop("dtype", "bfloat16")
    c["eos_token_id"] = [2, 400]
    (out / "config.json").write_text(json.dumps(dict(sorted(c.items())), indent=2) + "\n")
    tokens = ["<unk>", "<s>", "</s>"] + [None] * 395 + ["<eoi>", "<boi>", "<end_of_turn>", "<image_soft_token>"]
    save_tokenizer(out, model, {
        "add_bos_token": True, "add_eos_token": False, "added_tokens_decoder": special_tokens(tokens), "bos_token": "<s>",
        "eos_token": "<end_of_turn>", "unk_token": "<unk>", "tokenizer_class": "GemmaTokenizer"})
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    ids = sp.encode(GEMMA2_TEXT)
    # The text model as transformers runs it from this very folder.
    full = Gemma3ForConditionalGeneration.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
    lm = full.model.language_model
    assert lm.config.layer_types == ["sliding_attention"] * 5 + ["full_attention"], lm.config.layer_types
    with torch.no_grad():
        o = full(input_ids=torch.tensor([ids]), output_hidden_states=True, use_cache=False)
    logits, hidden = o.logits[0].float(), [h[0].float() for h in o.hidden_states]
    write_expected(REPO / "tests/fixtures/tiny-gemma3-vl.expected.json", GEMMA2_TEXT, ids, logits, hidden,
                   {"pieces": [sp.id_to_piece(i) for i in ids]})
    print(out, len(ids), "tokens;", sum(f.stat().st_size for f in out.iterdir()), "bytes")


def main():
    model = train(add_dummy_prefix=True)
    fresh(OUT, 4321)
    cfg = LlamaConfig(vocab_size=400, hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=16, max_position_embeddings=256, rms_norm_eps=1e-5,
                      tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    save_random(LlamaForCausalLM(cfg), OUT, 1.0)
    save_tokenizer(OUT, model, {
        "add_bos_token": True, "add_eos_token": False, "added_tokens_decoder": special_tokens(["<unk>", "<s>", "</s>"]),
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "legacy": True, "tokenizer_class": "LlamaTokenizer"})
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    print(OUT, sp.vocab_size(), "pieces;", sum(f.stat().st_size for f in OUT.iterdir()), "bytes")


if __name__ == "__main__":
    main()
    gemma2()
    phi3()
    gemma3_vl()
