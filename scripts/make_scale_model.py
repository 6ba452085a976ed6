#!/usr/bin/env python3
"""Write a synthetic Hugging Face model folder: Llama-3.1-8B's exact configuration with random
bf16 weights of realistic scale. It is for time and memory benchmarks only. Never measure quality
on it. See docs/scale.md, "Synthetic models for scale benchmarks".

    .venv/bin/python scripts/make_scale_model.py --out DIR [--blocks 32] [--shard-bytes 5e9]
        [--seed 0] [--tokenizer assets/tokenizers/llama3] [--threads N]

Needs Python 3.11 and numpy only (no torch), so it also runs on a bare GPU machine. The full
32-block model has 8,030,261,248 parameters and takes 16.06 GB on disk, so check the free space
first. Peak memory stays under ~1 GB whatever the model size.

Output (DIR is created if needed; shards, index and partial files left by an earlier run in DIR
are removed first):
  config.json             LlamaForCausalLM with Llama-3.1-8B's values (hidden 4096, FFN 14336,
                          32 heads, 8 KV heads, head_dim 128, vocab 128256, rope_theta 500000,
                          llama3 rope_scaling, untied lm_head, bf16), except num_hidden_layers = --blocks
  generation_config.json  bos 128000, eos 128001
  tokenizer.json, tokenizer_config.json   copied from --tokenizer (the real Llama-3 tokenizer;
                          scripts/fetch_tokenizers.sh fetches it into assets/tokenizers/llama3)
  model-0000K-of-0000N.safetensors + model.safetensors.index.json   (transformers' naming and
                          index: {"metadata": {"total_size": sum of tensor bytes}, "weight_map"}),
                          or a single model.safetensors without an index when everything fits in
                          one shard (transformers does the same)
  synthetic.json          marks the folder as synthetic and records the seed, the block count and
                          the outlier channels

Tensors: transformers' names and row-major (out, in) shapes, all BF16, in execution order
(embed_tokens; per block input_layernorm, q/k/v/o_proj, post_attention_layernorm,
gate/up/down_proj; model.norm; lm_head). Shards are planned up front, greedily in that order:
a shard is closed when the next tensor would take it past --shard-bytes (a tensor larger than
--shard-bytes gets a shard of its own, as the 1.05 GB embedding does with 1e9). Each shard is
written to NAME.tmp tensor by tensor, in chunks of rows (at most 8M values, 32 MB of float32), and
renamed to NAME when complete. The index is written last.

Values (the design note asks for norms near 1, linear weights ~N(0, 0.02), a few outlier channels):
  - every linear weight (q/k/v/o, gate/up/down), the embedding and lm_head: N(0, 0.02);
  - norm weights (input_layernorm, post_attention_layernorm, model.norm): |1 + N(0, 0.05)|, so
    positive and near 1;
  - outlier channels: 8 residual-stream channels, drawn once from --seed (listed in
    synthetic.json), are scaled x8 wherever something is *written* into the residual stream: those
    columns of the embedding and those output rows of every o_proj and down_proj. The residual
    stream, hence the normed inputs of q/k/v, gate/up and lm_head, then carries a few channels
    ~8x larger than the rest, as real models' activations do (so the Hessians X^T X have a few
    large diagonal entries). Scaling the input columns of the projections that *read* the
    residual instead would give outlier weight columns but no outlier activations.
  The residual grows to a few tens in magnitude over 32 blocks; logits stay finite.

Randomness: every chunk of every tensor has its own numpy Generator,
np.random.default_rng([seed, h(tensor name), chunk index]) with h the first 8 bytes of the
name's SHA-256, drawing standard_normal(dtype=float32). Chunk boundaries depend only on the
tensor's shape, so the files are identical whatever --threads is, and a model cut to N blocks
holds exactly the first N blocks (and the same embedding, final norm and lm_head) of the full one.
float32 -> bf16 is round-to-nearest-even on the bit pattern (uint32 ops; values are finite),
written little-endian.

Speed: generation and conversion run on --threads threads (numpy releases the GIL), default
min(8, CPU count); each thread holds ~80 MB. Measured on this project's 2-core CPU machine with
one thread: --blocks 1 (1.27 B values, 2.54 GB) in 40 s, peak RSS 170 MB, so about 4 minutes for
the full model; with 8 or more cores the disk's write speed sets the pace. Progress goes to stderr at most every 5
seconds, and a one-line summary to stdout at the end.
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import re
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TOKENIZER = REPO / "assets" / "tokenizers" / "llama3"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")

# Llama-3.1-8B.
HIDDEN = 4096
FFN = 14336
HEADS = 32
KV_HEADS = 8
HEAD_DIM = 128
VOCAB = 128256
BOS, EOS = 128000, 128001

LINEAR_STD = 0.02
NORM_STD = 0.05
N_OUTLIERS = 8
OUTLIER_SCALE = 8.0
CHUNK_VALUES = 8 << 20  # values per generated chunk: 32 MB of float32, 16 MB of bf16
PROGRESS_EVERY_S = 5.0


def llama31_8b_config(blocks: int) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": BOS,
        "eos_token_id": EOS,
        "head_dim": HEAD_DIM,
        "hidden_act": "silu",
        "hidden_size": HIDDEN,
        "initializer_range": 0.02,
        "intermediate_size": FFN,
        "max_position_embeddings": 131072,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": HEADS,
        "num_hidden_layers": blocks,
        "num_key_value_heads": KV_HEADS,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-5,
        "rope_scaling": {
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
            "rope_type": "llama3",
        },
        "rope_theta": 500000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "vocab_size": VOCAB,
    }


class Tensor:
    """One tensor to write: name, shape, how its values are drawn, where it goes."""

    def __init__(self, name: str, shape: tuple[int, ...], kind: str, outlier: str | None = None):
        self.name = name
        self.shape = shape
        self.kind = kind  # "normal" (N(0, 0.02)) or "norm" (|1 + N(0, 0.05)|)
        self.outlier = outlier  # None, "cols" or "rows": where the outlier channels are scaled
        self.nbytes = 2 * int(np.prod(shape))
        self.key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
        self.shard = -1
        self.offset = 0  # data offset inside its shard

    def chunks(self) -> list[tuple[int, int]]:
        """Row ranges generated at once; depend only on the shape (determinism)."""
        rows = self.shape[0]
        cols = int(np.prod(self.shape[1:])) if len(self.shape) > 1 else 1
        step = rows if len(self.shape) == 1 else max(1, CHUNK_VALUES // cols)
        return [(r, min(r + step, rows)) for r in range(0, rows, step)]


def plan_tensors(blocks: int) -> list[Tensor]:
    t = [Tensor("model.embed_tokens.weight", (VOCAB, HIDDEN), "normal", "cols")]
    for i in range(blocks):
        p = f"model.layers.{i}."
        t += [
            Tensor(p + "input_layernorm.weight", (HIDDEN,), "norm"),
            Tensor(p + "self_attn.q_proj.weight", (HEADS * HEAD_DIM, HIDDEN), "normal"),
            Tensor(p + "self_attn.k_proj.weight", (KV_HEADS * HEAD_DIM, HIDDEN), "normal"),
            Tensor(p + "self_attn.v_proj.weight", (KV_HEADS * HEAD_DIM, HIDDEN), "normal"),
            Tensor(p + "self_attn.o_proj.weight", (HIDDEN, HEADS * HEAD_DIM), "normal", "rows"),
            Tensor(p + "post_attention_layernorm.weight", (HIDDEN,), "norm"),
            Tensor(p + "mlp.gate_proj.weight", (FFN, HIDDEN), "normal"),
            Tensor(p + "mlp.up_proj.weight", (FFN, HIDDEN), "normal"),
            Tensor(p + "mlp.down_proj.weight", (HIDDEN, FFN), "normal", "rows"),
        ]
    t += [
        Tensor("model.norm.weight", (HIDDEN,), "norm"),
        Tensor("lm_head.weight", (VOCAB, HIDDEN), "normal"),
    ]
    return t


def plan_shards(tensors: list[Tensor], shard_bytes: int) -> list[list[Tensor]]:
    shards: list[list[Tensor]] = [[]]
    size = 0
    for t in tensors:
        if shards[-1] and size + t.nbytes > shard_bytes:
            shards.append([])
            size = 0
        t.shard = len(shards) - 1
        t.offset = size
        shards[-1].append(t)
        size += t.nbytes
    return shards


def shard_names(n: int) -> list[str]:
    if n == 1:
        return ["model.safetensors"]
    return [f"model-{k + 1:05d}-of-{n:05d}.safetensors" for k in range(n)]


def safetensors_header(shard: list[Tensor]) -> bytes:
    head: dict = {"__metadata__": {"format": "pt"}}
    for t in shard:
        head[t.name] = {
            "dtype": "BF16",
            "shape": list(t.shape),
            "data_offsets": [t.offset, t.offset + t.nbytes],
        }
    raw = json.dumps(head, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw


def f32_to_bf16(f: np.ndarray) -> np.ndarray:
    """Round to nearest even on the bit pattern (finite inputs); overwrites f."""
    u = f.view(np.uint32)
    r = u >> 16
    r &= 1
    r += 0x7FFF
    u += r
    u >>= 16
    return u.astype("<u2")


def make_chunk(t: Tensor, k: int, r0: int, r1: int, seed: int, outliers: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng([seed, t.key, k])
    shape = (r1 - r0,) + t.shape[1:]
    f = rng.standard_normal(shape, dtype=np.float32)
    if t.kind == "norm":
        f *= np.float32(NORM_STD)
        f += np.float32(1.0)
        np.abs(f, out=f)
    else:
        f *= np.float32(LINEAR_STD)
        if t.outlier == "cols":
            f[:, outliers] *= np.float32(OUTLIER_SCALE)
        elif t.outlier == "rows":
            rows = outliers[(outliers >= r0) & (outliers < r1)] - r0
            if rows.size:
                f[rows] *= np.float32(OUTLIER_SCALE)
    return f32_to_bf16(f).reshape(-1)


def human_gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


def clean_out_dir(out: Path) -> None:
    pat = re.compile(
        r"^(model\.safetensors|model-\d{5}-of-\d{5}\.safetensors|model\.safetensors\.index\.json)"
        r"(\.tmp)?$"
    )
    for p in sorted(out.iterdir()):
        if p.is_file() and pat.match(p.name):
            print(f"make_scale_model: removing {p.name} from an earlier run", file=sys.stderr)
            p.unlink()


def main() -> int:
    ap = argparse.ArgumentParser(
        description="Write a synthetic Llama-3.1-8B-shaped Hugging Face folder (random bf16 "
        "weights, for time/memory benchmarks only)."
    )
    ap.add_argument("--out", required=True, type=Path, help="output folder")
    ap.add_argument("--blocks", type=int, default=32, help="decoder blocks (default 32)")
    ap.add_argument(
        "--shard-bytes", type=float, default=5e9, help="max bytes per shard (default 5e9)"
    )
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument(
        "--tokenizer",
        type=Path,
        default=DEFAULT_TOKENIZER,
        help="folder with tokenizer.json and tokenizer_config.json (default assets/tokenizers/llama3)",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=min(8, os.cpu_count() or 1),
        help="generator threads (default min(8, CPUs)); output does not depend on it",
    )
    a = ap.parse_args()
    if a.blocks < 1:
        ap.error("--blocks must be at least 1")
    if a.shard_bytes < 1:
        ap.error("--shard-bytes must be positive")
    if a.threads < 1:
        ap.error("--threads must be at least 1")
    if a.seed < 0:
        ap.error("--seed must be non-negative")
    shard_bytes = int(a.shard_bytes)

    missing = [f for f in TOKENIZER_FILES if not (a.tokenizer / f).is_file()]
    if missing:
        print(
            f"make_scale_model: {a.tokenizer} lacks {', '.join(missing)}; "
            "run scripts/fetch_tokenizers.sh first",
            file=sys.stderr,
        )
        return 1

    tensors = plan_tensors(a.blocks)
    shards = plan_shards(tensors, shard_bytes)
    names = shard_names(len(shards))
    total = sum(t.nbytes for t in tensors)
    params = total // 2

    out: Path = a.out
    out.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(out).free
    if free < total + (64 << 20):
        print(
            f"make_scale_model: {out} has {human_gb(free)} free, the model needs {human_gb(total)}",
            file=sys.stderr,
        )
        return 1
    clean_out_dir(out)

    outliers = np.sort(
        np.random.default_rng([a.seed, 0x6F75746C696572]).choice(HIDDEN, N_OUTLIERS, replace=False)
    )

    (out / "config.json").write_text(json.dumps(llama31_8b_config(a.blocks), indent=2) + "\n")
    (out / "generation_config.json").write_text(
        json.dumps({"bos_token_id": BOS, "eos_token_id": EOS}, indent=2) + "\n"
    )
    for f in TOKENIZER_FILES:
        shutil.copyfile(a.tokenizer / f, out / f)
    (out / "synthetic.json").write_text(
        json.dumps(
            {
                "synthetic": True,
                "note": "random weights for time/memory benchmarks only; never measure quality",
                "generator": "scripts/make_scale_model.py",
                "architecture": "Llama-3.1-8B",
                "blocks": a.blocks,
                "seed": a.seed,
                "linear_std": LINEAR_STD,
                "norm": f"|1 + N(0, {NORM_STD})|",
                "outlier_channels": [int(c) for c in outliers],
                "outlier_scale": OUTLIER_SCALE,
                "outliers_in": "embedding columns, o_proj and down_proj output rows",
            },
            indent=2,
        )
        + "\n"
    )

    print(
        f"make_scale_model: {a.blocks} blocks, {params:,} parameters, {human_gb(total)} in "
        f"{len(shards)} shard(s), {a.threads} thread(s) -> {out}",
        file=sys.stderr,
        flush=True,
    )

    # Every chunk of every tensor in file order; generated by the pool, a bounded window ahead.
    jobs = [(t, k, r0, r1) for t in tensors for k, (r0, r1) in enumerate(t.chunks())]
    last_chunk = {id(t): len(t.chunks()) - 1 for t in tensors}
    window = a.threads + 2
    start = time.monotonic()
    last_report = start
    written = 0
    done_tensors = 0
    fh = None
    cur = -1
    with ThreadPoolExecutor(max_workers=a.threads) as pool:
        pending: collections.deque = collections.deque()
        it = iter(jobs)

        def refill() -> None:
            while len(pending) < window:
                j = next(it, None)
                if j is None:
                    return
                pending.append((j, pool.submit(make_chunk, *j, a.seed, outliers)))

        refill()
        while pending:
            (t, k, _r0, _r1), fut = pending.popleft()
            data = fut.result()
            refill()
            if t.shard != cur:
                cur = t.shard
                fh = open(out / (names[cur] + ".tmp"), "wb")
                fh.write(safetensors_header(shards[cur]))
            fh.write(memoryview(data).cast("B"))
            written += data.nbytes
            del data
            if k == last_chunk[id(t)]:
                done_tensors += 1
                if t is shards[cur][-1]:
                    fh.close()
                    fh = None
                    tmp = out / (names[cur] + ".tmp")
                    expect = len(safetensors_header(shards[cur])) + sum(x.nbytes for x in shards[cur])
                    if tmp.stat().st_size != expect:
                        raise RuntimeError(f"{tmp}: {tmp.stat().st_size} bytes, expected {expect}")
                    os.replace(tmp, out / names[cur])
            now = time.monotonic()
            if now - last_report >= PROGRESS_EVERY_S or not pending:
                last_report = now
                el = now - start
                print(
                    f"  {done_tensors}/{len(tensors)} tensors, {human_gb(written)}/{human_gb(total)}, "
                    f"shard {cur + 1}/{len(shards)}, {el:.1f} s ({written / max(el, 1e-9) / 1e6:.0f} MB/s)",
                    file=sys.stderr,
                    flush=True,
                )

    if len(shards) > 1:
        index = {
            "metadata": {"total_size": total},
            "weight_map": {t.name: names[t.shard] for t in tensors},
        }
        tmp = out / "model.safetensors.index.json.tmp"
        tmp.write_text(json.dumps(index, indent=2) + "\n")
        os.replace(tmp, out / "model.safetensors.index.json")

    el = time.monotonic() - start
    print(
        f"make_scale_model: {out}: {params:,} parameters, {total:,} bytes, {len(shards)} shard(s), "
        f"{el:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
