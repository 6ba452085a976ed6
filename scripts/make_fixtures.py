#!/usr/bin/env python3
"""Generate the small, committed test fixtures under tests/fixtures/.

Run (after scripts/fetch_assets.sh and scripts/setup_python.sh):

    .venv/bin/python scripts/make_fixtures.py

Optionally cross-check the GGUF writer below against llama.cpp's real converter
(the `vendor/llama.cpp` folder of the llama-cpp-python sdist):

    .venv/bin/python scripts/make_fixtures.py --llama-cpp /path/to/vendor/llama.cpp

Everything is deterministic (fixed seeds, CPU, float32, eager attention).
See tests/fixtures/README.md for what every file is.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
FIX = REPO / "tests" / "fixtures"
CALIB = REPO / "assets" / "calib.txt"

VOCAB_SIZE = 300
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 0, 1, 2
N_TOKENS = 24
# Exactly N_TOKENS tokens with the tiny tokenizer under both pre-tokenizers (asserted).
SENTENCES = {
    "tiny-llama": "It's 1801: the nation is at peace.",
    "tiny-qwen2": "It's 1801: the nation is at peace.",
    "tiny-qwen3": "It's 1801: the nation is at peace.",
    "tiny-mistral": "It's 1801: the nation is at peace.",
    "tiny-gemma3": "It's 1801: the nation is at peace.",
    "tiny-smollm3": "It's 1801: the nation is at peace.",
}

LLAMA3_ROPE = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64,
}

# Pre-tokenizer regexes, as llama.cpp (src/llama-vocab.cpp) and HF define them.
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def log(*a):
    print(*a, flush=True)


# ----------------------------------------------------------------------------- tokenizer
def train_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    text = CALIB.read_bytes()[:100_000].decode("utf-8", errors="ignore")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([text], trainer)
    assert tok.get_vocab_size() == VOCAB_SIZE, tok.get_vocab_size()
    for i, s in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(s) == i
    return tok


def tokenizer_for(base, kind: str):
    """Same vocab/merges; the pre-tokenizer matches the GGUF `tokenizer.ggml.pre` we write."""
    from tokenizers import Regex, Tokenizer, pre_tokenizers

    tok = Tokenizer.from_str(base.to_str())
    if kind == "llama":  # SmolLM2 / llama.cpp "smollm": digits split one by one, then GPT-2 regex
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Digits(individual_digits=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
            ]
        )
    else:  # Qwen2 / llama.cpp "qwen2"
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
            ]
        )
    return tok


def save_tokenizer(tok, out: Path, bos: str | None, eos: str):
    tok.save(str(out / "tokenizer.json"))
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": bos,
        "eos_token": eos,
        "unk_token": None,
        "pad_token": None,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 256,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2) + "\n")


# ----------------------------------------------------------------------------- models
def make_config(kind: str):
    from transformers import Gemma3TextConfig, LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config, SmolLM3Config

    common = dict(
        vocab_size=VOCAB_SIZE,
        hidden_size=64,
        intermediate_size=160,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=256,
        hidden_act="silu",
        eos_token_id=2,
    )
    if kind == "llama":
        return LlamaConfig(
            **common,
            bos_token_id=1,
            rms_norm_eps=1e-5,
            tie_word_embeddings=False,
            rope_parameters={"rope_theta": 10000.0, **LLAMA3_ROPE},
            attention_bias=False,
            mlp_bias=False,
        )
    if kind == "mistral":  # a sliding window of 8 tokens, shorter than the 24-token test sentence
        return MistralConfig(
            **common,
            bos_token_id=1,
            rms_norm_eps=1e-5,
            tie_word_embeddings=False,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            sliding_window=8,
        )
    if kind == "gemma3":
        # Six blocks: five windowed (8 tokens, local RoPE base 10 000), the sixth global (base
        # 1e6, linear scaling 2), as llama.cpp's default pattern; (1 + w) norms, GELU-tanh.
        # query_pre_attn_scalar equals head_dim: llama.cpp ignores it outside the 27B model.
        c = {k: v for k, v in common.items() if k not in ("hidden_act", "num_hidden_layers")}
        return Gemma3TextConfig(
            **c,
            num_hidden_layers=6,
            hidden_activation="gelu_pytorch_tanh",
            bos_token_id=0,
            pad_token_id=None,
            rms_norm_eps=1e-6,
            query_pre_attn_scalar=16,
            sliding_window=8,
            rope_parameters={
                "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1000000.0},
                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            },
        )
    if kind == "smollm3":
        # llama with NoPE blocks: four blocks, the fourth without RoPE (every 4th, as llama.cpp
        # assumes); tied output (SmolLM3's default).
        c = {k: v for k, v in common.items() if k != "num_hidden_layers"}
        return SmolLM3Config(
            **c,
            num_hidden_layers=4,
            bos_token_id=1,
            pad_token_id=None,
            rms_norm_eps=1e-6,
            tie_word_embeddings=True,
            rope_parameters={"rope_type": "default", "rope_theta": 100000.0},
            no_rope_layer_interval=4,
            use_sliding_window=False,
        )
    if kind == "qwen3":  # per-head q/k RMSNorm, no biases, untied output
        return Qwen3Config(
            **common,
            bos_token_id=0,
            rms_norm_eps=1e-6,
            tie_word_embeddings=False,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            attention_bias=False,
            use_sliding_window=False,
            sliding_window=None,
        )
    return Qwen2Config(
        **common,
        bos_token_id=0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        use_sliding_window=False,
        sliding_window=None,
    )


def randomize(model, seed: int):
    g = torch.Generator().manual_seed(seed)
    # Gemma scales by 1 + w: its stored norm weights are around 0.
    centre = 0.0 if model.config.model_type.startswith("gemma") else 1.0
    with torch.no_grad():
        for name, p in model.named_parameters():  # tied params appear once
            if "norm" in name:
                p.copy_(centre + 0.25 * torch.randn(p.shape, generator=g))  # around 1
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.08 * torch.randn(p.shape, generator=g))


def classic_config_json(path: Path, dtype: str):
    """Rewrite config.json the way real hub checkpoints spell it (rope_theta + rope_scaling at
    top level, torch_dtype) instead of transformers-5's `rope_parameters`; Gemma 3's as
    google/gemma-3-1b-it's (rope_local_base_freq, sliding_window_pattern, no layer_types)."""
    cfg = json.loads(path.read_text())
    rp = cfg.pop("rope_parameters")
    if "full_attention" in rp:
        cfg["rope_local_base_freq"] = rp["sliding_attention"]["rope_theta"]
        cfg["sliding_window_pattern"] = cfg.pop("_sliding_window_pattern", 6)
        cfg.pop("layer_types", None)
        rp = rp["full_attention"]
    cfg["rope_theta"] = rp["rope_theta"]
    if rp.get("rope_type", "default") != "default":
        cfg["rope_scaling"] = {k: v for k, v in rp.items() if k != "rope_theta"}
    else:
        cfg["rope_scaling"] = None
    cfg.pop("dtype", None)
    cfg["torch_dtype"] = dtype
    path.write_text(json.dumps(dict(sorted(cfg.items())), indent=2) + "\n")


def load_f32(d: Path):
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager")
    return m.eval()


def forward(model, ids):
    with torch.no_grad():
        out = model(torch.tensor([ids]), output_hidden_states=True, use_cache=False)
    return out.logits[0].float(), [h[0].float() for h in out.hidden_states]


def check_hidden_state_layout(model, ids, hidden):
    """Confirm what transformers' hidden_states tuple holds (documented in README)."""
    outs = []
    hooks = [l.register_forward_hook(lambda m, i, o: outs.append((o[0] if isinstance(o, tuple) else o)[0].detach()))
             for l in model.model.layers]
    emb = model.model.embed_tokens(torch.tensor([ids]))[0]
    with torch.no_grad():
        model(torch.tensor([ids]), use_cache=False)
    for h in hooks:
        h.remove()
    L = len(model.model.layers)
    assert len(hidden) == L + 1
    assert torch.equal(hidden[0], emb)
    for i in range(1, L):
        assert torch.allclose(hidden[i], outs[i - 1], atol=0, rtol=0), i
    final = model.model.norm(outs[L - 1][None])[0]
    assert torch.allclose(hidden[L], final, atol=1e-6), "last hidden state is not norm(last layer)"


def rows(t):
    return [[float(x) for x in r] for r in t.tolist()]


def write_expected(path: Path, text, ids, logits, hidden, extra=None):
    obj = {
        "text": text,
        "tokens": ids,
        "logits": rows(logits),
        "hidden_states": [rows(h) for h in hidden],
    }
    if extra:
        obj.update(extra)
    # float32 values printed with the shortest decimal that round-trips through f32
    path.write_text(_shorten_floats(obj) + "\n")


def _shorten_floats(obj):
    def enc(o):
        if isinstance(o, float):
            return np.format_float_positional(np.float32(o), unique=True, trim="-") if abs(o) >= 1e-4 or o == 0 \
                else np.format_float_scientific(np.float32(o), unique=True, trim="-")
        if isinstance(o, list):
            return "[" + ",".join(enc(x) for x in o) + "]"
        if isinstance(o, dict):
            return "{" + ",".join(json.dumps(k) + ":" + enc(v) for k, v in o.items()) + "}"
        return json.dumps(o)
    return enc(obj)


# ----------------------------------------------------------------------------- GGUF
def llama_permute(w: torch.Tensor, n_head: int, n_head_kv: int | None):
    """convert_hf_to_gguf.py LlamaModel.permute (HF half-split rope -> GGUF interleaved pairs)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama3_rope_factors(cfg: dict) -> np.ndarray:
    """convert_hf_to_gguf.py LlamaModel.generate_extra_tensors -> rope_freqs.weight."""
    rs = cfg["rope_scaling"]
    base = cfg["rope_theta"]
    dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    factor = rs.get("factor", 8.0)
    lo = rs.get("low_freq_factor", 1.0)
    hi = rs.get("high_freq_factor", 4.0)
    old = rs.get("original_max_position_embeddings", 8192)
    lo_wl, hi_wl = old / lo, old / hi
    out = []
    for f in freqs:
        wl = 2 * math.pi / f
        if wl < hi_wl:
            out.append(1)
        elif wl > lo_wl:
            out.append(factor)
        else:
            smooth = (old / wl - lo) / (hi - lo)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return torch.tensor(out, dtype=torch.float32).numpy()


TENSOR_MAP = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
    "self_attn.q_norm": "attn_q_norm",
    "self_attn.k_norm": "attn_k_norm",
}


def hf_to_gguf_name(name: str) -> str:
    if name == "model.embed_tokens.weight":
        return "token_embd.weight"
    if name == "model.norm.weight":
        return "output_norm.weight"
    if name == "lm_head.weight":
        return "output.weight"
    parts = name.split(".")  # model.layers.N.<mod>.<sub>.weight
    assert parts[0] == "model" and parts[1] == "layers", name
    bid, rest, suffix = parts[2], ".".join(parts[3:-1]), parts[-1]
    return f"blk.{bid}.{TENSOR_MAP[rest]}.{suffix}"


def write_gguf(hf_dir: Path, out: Path, arch: str, pre: str, size_label: str):
    import gguf
    from safetensors.torch import load_file

    cfg = json.loads((hf_dir / "config.json").read_text())
    tj = json.loads((hf_dir / "tokenizer.json").read_text())
    sd = load_file(str(hf_dir / "model.safetensors"))

    w = gguf.GGUFWriter(str(out), arch)
    # --- tensors (same order as the converter: rope_freqs first, then safetensors key order)
    n_head, n_kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    if arch == "llama" and (cfg.get("rope_scaling") or {}).get("rope_type") == "llama3":
        w.add_tensor("rope_freqs.weight", llama3_rope_factors(cfg))
    for name in sd:  # safetensors keys come back sorted
        t = sd[name].to(torch.float32)
        if arch == "llama":
            if name.endswith(("q_proj.weight", "q_proj.bias")):
                t = llama_permute(t, n_head, n_head)
            if name.endswith(("k_proj.weight", "k_proj.bias")):
                t = llama_permute(t, n_head, n_kv)
        w.add_tensor(hf_to_gguf_name(name), t.contiguous().numpy())

    # --- metadata, in the order convert_hf_to_gguf.py writes it
    w.add_type(gguf.GGUFType.MODEL)
    # general.name: the converter's gguf.Metadata heuristics ("tiny-llama" -> "Tiny Llama")
    w.add_name(gguf.Metadata.load(None, hf_dir, None, 0).name or hf_dir.name)
    w.add_size_label(size_label)
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_freq_base(float(cfg["rope_theta"]))
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    if cfg.get("head_dim") is not None:
        w.add_key_length(cfg["head_dim"])
        w.add_value_length(cfg["head_dim"])
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    if arch == "llama":
        w.add_vocab_size(cfg["vocab_size"])
        w.add_rope_dimension_count(cfg.get("head_dim") or cfg["hidden_size"] // n_head)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    # tokenizer (convert_hf_to_gguf _set_vocab_gpt2 + gguf.SpecialVocab)
    vocab = tj["model"]["vocab"]
    added = {a["content"]: a for a in tj["added_tokens"]}
    rev = {i: t for t, i in vocab.items()}
    tokens, types = [], []
    for i in range(cfg["vocab_size"]):
        if i not in rev:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        t = rev[i]
        tokens.append(t)
        if t in added:
            types.append(gguf.TokenType.CONTROL if added[t]["special"] else gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
    w.add_token_merges(merges)
    if cfg.get("bos_token_id") is not None:
        w.add_bos_token_id(cfg["bos_token_id"])
    w.add_eos_token_id(cfg["eos_token_id"])
    tc = json.loads((hf_dir / "tokenizer_config.json").read_text())
    w.add_add_bos_token(bool(tc.get("add_bos_token", False)))
    w.add_add_eos_token(bool(tc.get("add_eos_token", False)))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def gguf_summary(path: Path):
    import gguf

    r = gguf.GGUFReader(str(path))
    kv = {}
    for k, f in r.fields.items():
        if k.startswith("GGUF."):
            continue
        v = f.contents()
        kv[k] = v
    tensors = {t.name: (tuple(int(x) for x in t.shape), t.tensor_type.name, np.array(t.data).copy())
               for t in r.tensors}
    return kv, tensors


def compare_with_converter(llama_cpp: Path, hf_dir: Path, ours: Path, pre: str):
    """Run llama.cpp's convert_hf_to_gguf.py (pre-tokenizer hash detection patched to `pre`)
    and diff every key and tensor against our file."""
    with tempfile.TemporaryDirectory() as td:
        ref = Path(td) / "ref.gguf"
        code = f"""
import sys, runpy
sys.path.insert(0, {str(llama_cpp)!r})
sys.path.insert(1, {str(llama_cpp / 'gguf-py')!r})
import conversion.base as b
b.TextModel.get_vocab_base_pre = lambda self, tok: {pre!r}
sys.argv = ['convert_hf_to_gguf.py', {str(hf_dir)!r}, '--outtype', 'f32', '--outfile', {str(ref)!r}]
runpy.run_path({str(llama_cpp / 'convert_hf_to_gguf.py')!r}, run_name='__main__')
"""
        env = dict(os.environ, NO_LOCAL_GGUF="")
        env.pop("NO_LOCAL_GGUF")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        if r.returncode != 0:
            log(r.stdout[-3000:], r.stderr[-3000:])
            raise SystemExit("convert_hf_to_gguf.py failed")
        kv_ref, t_ref = gguf_summary(ref)
    kv, t = gguf_summary(ours)
    ok = True
    for k in sorted(set(kv) | set(kv_ref)):
        a, b = kv.get(k, "<missing>"), kv_ref.get(k, "<missing>")
        if a != b and not (isinstance(a, float) and isinstance(b, float) and abs(a - b) < 1e-12):
            ok = False
            log(f"  KV DIFF {k}: ours={str(a)[:80]} converter={str(b)[:80]}")
    for k in sorted(set(t) | set(t_ref)):
        if k not in t or k not in t_ref:
            ok = False
            log(f"  TENSOR only in {'ours' if k in t else 'converter'}: {k}")
            continue
        (sa, ta, da), (sb, tb, db) = t[k], t_ref[k]
        if sa != sb or ta != tb or not np.array_equal(da, db):
            ok = False
            log(f"  TENSOR DIFF {k}: {sa} {ta} vs {sb} {tb} maxdiff="
                f"{np.abs(da.astype(np.float64) - db.astype(np.float64)).max() if da.shape == db.shape else 'shape'}")
    log(f"  converter cross-check {ours.name}: {'IDENTICAL keys+tensors' if ok else 'DIFFERENCES above'}")
    return ok


# ----------------------------------------------------------------------------- main
def build(kind: str, base_tok, llama_cpp: Path | None, seed: int):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = f"tiny-{kind}"
    arch = kind
    pre = "smollm" if kind in ("llama", "mistral", "smollm3") else "qwen2"
    out = FIX / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)

    torch.manual_seed(seed)
    cfg = make_config(kind)
    cfg._attn_implementation = "eager"
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32, attn_implementation="eager")
    randomize(model, seed)
    model.eval()
    model.save_pretrained(out, safe_serialization=True)
    classic_config_json(out / "config.json", "float32")
    tok = tokenizer_for(base_tok, "llama" if kind in ("mistral", "smollm3") else kind)
    save_tokenizer(tok, out, SPECIAL_TOKENS[cfg.bos_token_id], SPECIAL_TOKENS[cfg.eos_token_id])

    # reload exactly what is on disk
    model = load_f32(out)
    if kind == "llama":
        rp = model.config.rope_parameters
        assert rp["rope_type"] == "llama3" and rp["factor"] == 8.0 and rp["original_max_position_embeddings"] == 64, rp
    elif kind == "mistral":
        assert model.config.sliding_window == 8
    elif kind == "gemma3":
        assert model.config.layer_types == ["sliding_attention"] * 5 + ["full_attention"], model.config.layer_types
        assert model.config.tie_word_embeddings
    elif kind == "smollm3":
        assert model.config.no_rope_layers == [1, 1, 1, 0], model.config.no_rope_layers
        assert [l.self_attn.use_rope for l in model.model.layers] == [1, 1, 1, 0]
        assert model.config.tie_word_embeddings
    elif kind == "qwen3":
        assert model.model.layers[0].self_attn.q_norm.weight.shape == (16,)
        assert not model.config.tie_word_embeddings
    else:
        assert model.config.rope_parameters["rope_theta"] == 1e6
        assert model.config.tie_word_embeddings
        assert model.model.layers[0].self_attn.q_proj.bias is not None
    hf_tok = AutoTokenizer.from_pretrained(out)
    text = SENTENCES[name]
    ids = hf_tok(text, add_special_tokens=False)["input_ids"]
    assert ids == tok.encode(text).ids
    assert len(ids) == N_TOKENS, (name, len(ids), hf_tok.convert_ids_to_tokens(ids))
    assert hf_tok.decode(ids) == text
    logits, hidden = forward(model, ids)
    check_hidden_state_layout(model, ids, hidden)
    n_params = sum(p.numel() for p in model.parameters())
    size_label = f"{round(n_params / 1000)}K"
    write_expected(FIX / f"{name}.expected.json", text, ids, logits, hidden,
                   {"pieces": hf_tok.convert_ids_to_tokens(ids)})
    log(f"{name}: {n_params} params, tokens={ids}")
    log(f"  pieces={hf_tok.convert_ids_to_tokens(ids)}")

    # Mistral: llama.cpp runs no window; Gemma 3, SmolLM3: the converter's file is the GGUF fixture.
    if kind in ("mistral", "gemma3", "smollm3"):
        return

    # GGUF
    gpath = FIX / f"{name}.gguf"
    write_gguf(out, gpath, arch, pre, size_label)
    try:
        gm = AutoModelForCausalLM.from_pretrained(FIX, gguf_file=gpath.name, dtype=torch.float32,
                                                  attn_implementation="eager").eval()
        gl, _ = forward(gm, ids)
        log(f"  GGUF -> transformers (config from GGUF) max|dlogits| = {(gl - logits).abs().max().item():.3e}")
    except Exception as e:  # transformers' GGUF loader does not know every architecture
        log(f"  GGUF -> transformers: not loadable ({str(e)[:100]})")
    if kind == "llama":
        # transformers' GGUF loader ignores rope_freqs.weight (llama3 scaling); load the GGUF
        # weights under the true config to check the tensors themselves.
        gm2 = AutoModelForCausalLM.from_pretrained(FIX, gguf_file=gpath.name, config=model.config,
                                                   dtype=torch.float32, attn_implementation="eager").eval()
        gl2, _ = forward(gm2, ids)
        log(f"  GGUF -> transformers (true config.json)  max|dlogits| = {(gl2 - logits).abs().max().item():.3e}")
    gtok = AutoTokenizer.from_pretrained(FIX, gguf_file=gpath.name)
    gids = gtok(text, add_special_tokens=False)["input_ids"]
    log(f"  GGUF tokenizer (transformers) ids equal: {gids == ids}" + ("" if gids == ids else f" {gids}"))
    if llama_cpp:
        compare_with_converter(llama_cpp, out, gpath, pre)

    # sharded bf16 copy of tiny-llama
    if kind == "llama":
        sh = FIX / "tiny-llama-sharded"
        if sh.exists():
            shutil.rmtree(sh)
        model.to(torch.bfloat16).save_pretrained(sh, safe_serialization=True, max_shard_size="150KB")
        classic_config_json(sh / "config.json", "bfloat16")
        save_tokenizer(tok, sh, SPECIAL_TOKENS[cfg.bos_token_id], SPECIAL_TOKENS[cfg.eos_token_id])
        shards = sorted(p.name for p in sh.glob("model-*.safetensors"))
        assert (sh / "model.safetensors.index.json").exists() and 2 <= len(shards) <= 3, shards
        sm = load_f32(sh)  # bf16 weights upcast to f32
        assert sm.model.embed_tokens.weight.dtype == torch.float32
        sl, shid = forward(sm, ids)
        write_expected(FIX / "tiny-llama-sharded.expected.json", text, ids, sl, shid,
                       {"pieces": hf_tok.convert_ids_to_tokens(ids)})
        log(f"  sharded bf16: {shards}; max|dlogits| vs f32 model = {(sl - logits).abs().max().item():.3e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-cpp", type=Path, help="vendor/llama.cpp dir to cross-check GGUFs with its converter")
    ap.add_argument("--only", help="build only this fixture kind (llama, qwen2, qwen3, mistral, gemma3, smollm3)")
    args = ap.parse_args()
    if not CALIB.exists():
        raise SystemExit(f"{CALIB} missing: run scripts/fetch_assets.sh first")
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    FIX.mkdir(parents=True, exist_ok=True)
    base = train_tokenizer()
    for kind, seed in [("llama", 1234), ("qwen2", 5678), ("qwen3", 9012), ("mistral", 3456), ("gemma3", 7890), ("smollm3", 2468)]:
        if args.only in (None, kind):
            build(kind, base, args.llama_cpp, seed=seed)
    total = sum(p.stat().st_size for p in FIX.rglob("*") if p.is_file())
    log(f"fixtures total: {total} bytes")


if __name__ == "__main__":
    main()
