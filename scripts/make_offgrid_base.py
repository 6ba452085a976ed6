#!/usr/bin/env python3
"""Fine-tune the default Q4_1 model briefly in f32 so that its weights leave the Q4_1 grid, and
save it as a Hugging Face folder; or (--rescale-from) apply a function-preserving per-channel
rescaling to such a folder that moves every linear's weights off the grid. Called by
scripts/make_offgrid_base.sh (read its header).

    .venv/bin/python scripts/make_offgrid_base.py --gguf assets/SmolLM2-135M-Instruct.Q4_1.gguf \
        --calib assets/calib.txt --out DIR [--steps 48] [--lr 2e-5] [--seq-len 256] [--batch 1] \
        [--seed 1234] [--threads 2]
    .venv/bin/python scripts/make_offgrid_base.py --rescale-from DIR --out DIR2 [--rescale 1] \
        [--seed 1234] [--threads 2]

Model and tokenizer both come from the GGUF (transformers `gguf_file=`, weights dequantized to
float32). Training data: non-overlapping windows of --seq-len tokens of the calibration text
(never the evaluation text), tokenized as a whole with no special tokens; the windows are
shuffled with --seed and the first 4 are held out as a fixed probe batch whose loss is measured
before and after training. Each step takes --batch windows (batch * seq-len tokens). AdamW,
constant learning rate, no weight decay (every weight moves by about lr per step whatever its
gradient's size, decay would only add a systematic shrink), gradient norm clipped at 1.0.

DIR gets model.safetensors (f32, tied embeddings stored once), config.json (with a top-level
`rope_theta` added next to transformers 5's `rope_parameters`, for readers that only know the
older key), generation_config.json, the tokenizer files, and offgrid.json (the knobs, the losses
and how many weights changed).

Rescale (--rescale-from DIR --out DIR2): reads DIR's model.safetensors (f32) and config, and for
each decoder layer draws seeded factors log-uniformly in [0.7, 1.4] (numpy default_rng((seed,
layer)), one vector per equivalence) and applies, in f32, four exact equivalences (x' = x*s into
a linear whose input column is divided by s gives the same output):
  1. input_layernorm.weight[j] *= c_j; q_proj, k_proj, v_proj weight[:, j] /= c_j
  2. post_attention_layernorm.weight[j] *= d_j; gate_proj, up_proj weight[:, j] /= d_j
  3. v_proj.weight[i, :] *= e_i; o_proj.weight[:, h*hd + t] /= e_{(h // g)*hd + t} for every
     query head h (GQA: query head h reads kv head h // g, g = n_heads / n_kv_heads; hd = head_dim)
     -- attention probabilities do not depend on v, so scaling a v channel scales exactly the
     attention outputs that read it
  4. up_proj.weight[i, :] *= f_i; down_proj.weight[:, i] /= f_i (silu(gate) * up is linear in up)
q/k rows (RoPE mixes pairs of rows), gate rows (silu), the (tied) embedding and the final norm are
left alone. Every linear gets a per-input-column scale, so each Q4_1 block of 32 along a row is
stretched unevenly and leaves the grid (a per-row scale alone would not: Q4_1's grid scales with
the row). The script then checks the equivalence: both models run in float64 on seeded random
tokens and the largest absolute logit difference must stay under 1e-3 (it is ~1e-5, the f32
rounding of the rescaled weights; a wrong mapping gives differences of order 1). --rescale 0 copies
the weights unchanged. DIR2 gets the weights, DIR's other files, and DIR's offgrid.json plus a
"rescale" record (knobs, check, residues of the rescaled weights).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np
import torch


def log(msg: str) -> None:
    print(f"make_offgrid_base.py: {msg}", flush=True)


def grid_residue(tensors: dict) -> dict:
    """Per 2-D tensor: rms(W - Q4_1(W)) / sqrt(mean(d^2) / 12), d = (max - min) / 15 of each block of
    32 along a row: 0 when W is on the Q4_1 grid (re-encoding is lossless), about 1 for weights
    that ignore the grid (uniform rounding error), as those of an f16/bf16 model do."""
    from gguf import quants
    from gguf.constants import GGMLQuantizationType as T

    out = {}
    for n, t in tensors.items():
        if t.dim() != 2 or t.shape[1] % 32:
            continue
        x = t.detach().float().cpu().numpy()
        rt = quants.dequantize(quants.quantize(x, T.Q4_1), T.Q4_1)
        b = x.reshape(-1, 32)
        d = (b.max(axis=1) - b.min(axis=1)) / 15.0
        expected = math.sqrt(float((d.astype(np.float64) ** 2).mean()) / 12.0)
        err = math.sqrt(float(((x - rt).astype(np.float64) ** 2).mean()))
        out[n] = err / expected if expected > 0 else 0.0
    return out


RESCALE_LO, RESCALE_HI = 0.7, 1.4


def rescale_factors(rng: np.random.Generator, n: int) -> torch.Tensor:
    """n factors log-uniform in [RESCALE_LO, RESCALE_HI], as float32."""
    u = rng.uniform(math.log(RESCALE_LO), math.log(RESCALE_HI), size=n)
    return torch.from_numpy(np.exp(u).astype(np.float32))


def rescale_state(sd: dict, cfg: dict, seed: int) -> dict:
    """Apply the four per-channel equivalences (module docstring) to every decoder layer of the
    f32 state dict sd, in place. Returns per-layer factor summaries."""
    n_layers = int(cfg["num_hidden_layers"])
    n_heads = int(cfg["num_attention_heads"])
    n_kv = int(cfg.get("num_key_value_heads") or n_heads)
    hd = int(cfg.get("head_dim") or cfg["hidden_size"] // n_heads)
    if n_heads % n_kv:
        raise ValueError(f"num_attention_heads {n_heads} not a multiple of num_key_value_heads {n_kv}")
    group = n_heads // n_kv
    summary = {}
    for L in range(n_layers):
        p = f"model.layers.{L}."
        w = {k: sd[p + k] for k in (
            "input_layernorm.weight", "post_attention_layernorm.weight",
            "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
            "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
            "mlp.down_proj.weight")}
        for k, t in w.items():
            if t.dtype != torch.float32:
                raise ValueError(f"{p + k} is {t.dtype}, expected float32")
        hidden = w["input_layernorm.weight"].shape[0]
        inter = w["mlp.up_proj.weight"].shape[0]
        if w["self_attn.v_proj.weight"].shape[0] != n_kv * hd or w["self_attn.o_proj.weight"].shape[1] != n_heads * hd:
            raise ValueError(f"layer {L}: v/o shapes do not match {n_heads} heads, {n_kv} kv heads, head_dim {hd}")
        rng = np.random.default_rng((seed, L))
        c = rescale_factors(rng, hidden)
        d = rescale_factors(rng, hidden)
        e = rescale_factors(rng, n_kv * hd)
        f = rescale_factors(rng, inter)
        # 1. attention RMSNorm output -> q, k, v inputs
        w["input_layernorm.weight"].mul_(c)
        for k in ("self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"):
            w[k].div_(c[None, :])
        # 2. MLP RMSNorm output -> gate, up inputs
        w["post_attention_layernorm.weight"].mul_(d)
        for k in ("mlp.gate_proj.weight", "mlp.up_proj.weight"):
            w[k].div_(d[None, :])
        # 3. v channel (kv head g, dim t) -> o_proj input columns h*hd + t of every query head h
        #    with h // group == g; o column h*hd + t reads v channel (h // group)*hd + t
        w["self_attn.v_proj.weight"].mul_(e[:, None])
        kv_of_col = (torch.arange(n_heads * hd) // hd // group) * hd + torch.arange(n_heads * hd) % hd
        w["self_attn.o_proj.weight"].div_(e[kv_of_col][None, :])
        # 4. up output channel -> down input column
        w["mlp.up_proj.weight"].mul_(f[:, None])
        w["mlp.down_proj.weight"].div_(f[None, :])
        summary[L] = {k: [float(v.min()), float(v.max())] for k, v in (("c", c), ("d", d), ("e", e), ("f", f))}
    return summary


def rescale_main(args) -> int:
    """--rescale-from: rescale (or, --rescale 0, copy) an HF folder; see the module docstring."""
    import shutil
    from safetensors.torch import load_file, save_file

    torch.set_num_threads(args.threads)
    src, dst = args.rescale_from, args.out
    st = sorted(src.glob("*.safetensors"))
    if [q.name for q in st] != ["model.safetensors"]:
        log(f"{src}: expected exactly one model.safetensors, found {[q.name for q in st]}")
        return 1
    meta_path = src / "offgrid.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if "rescale" in meta:
        log(f"{src} is already rescaled (its offgrid.json has a rescale record); rescale the fine-tuned folder")
        return 1
    cfg = json.loads((src / "config.json").read_text())
    t0 = time.time()
    orig = load_file(str(st[0]))
    sd = {k: v.clone() for k, v in orig.items()}
    record = {"enabled": args.rescale, "seed": args.seed, "source": str(src)}
    if args.rescale:
        record.update({"range": [RESCALE_LO, RESCALE_HI], "distribution": "log-uniform",
                       "rng": "numpy default_rng((seed, layer)): c, d, e, f in that order"})
        summary = rescale_state(sd, cfg, args.seed)
        lo = min(min(v[0] for v in s.values()) for s in summary.values())
        hi = max(max(v[1] for v in s.values()) for s in summary.values())
        log(f"rescaled {len(summary)} layers in {time.time() - t0:.1f} s (factors in [{lo:.4f}, {hi:.4f}])")

        # ---------------------------------------------------------------- check: same function
        from transformers import AutoConfig, AutoModelForCausalLM

        t0 = time.time()
        config = AutoConfig.from_pretrained(str(src))
        g = torch.Generator().manual_seed(args.seed)
        ids = torch.randint(0, int(cfg["vocab_size"]), (1, 96), generator=g)
        logits = []
        for state in (orig, sd):
            m = AutoModelForCausalLM.from_config(config, dtype=torch.float64)
            missing, unexpected = m.load_state_dict({k: v.double() for k, v in state.items()}, strict=False)
            # a tied lm_head is not stored; anything else missing is an error
            missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
            if missing or unexpected:
                log(f"state dict does not fit the config: missing {missing}, unexpected {unexpected}")
                return 1
            if config.tie_word_embeddings:
                m.tie_weights()
            m.eval()
            with torch.no_grad():
                logits.append(m(input_ids=ids).logits[0])
            del m
        diff = (logits[0] - logits[1]).abs().max().item()
        lp0, lp1 = torch.log_softmax(logits[0], -1), torch.log_softmax(logits[1], -1)
        kl = (lp0.exp() * (lp0 - lp1)).sum(-1).mean().item()
        record["check"] = {"tokens": int(ids.numel()), "dtype": "float64", "max_abs_logit_diff": diff,
                           "logit_abs_max": logits[0].abs().max().item(), "kl_mean": kl}
        log(f"equivalence check (float64, {ids.numel()} random tokens): max |logit diff| {diff:.3e} "
            f"(logits up to {logits[0].abs().max().item():.1f}), KL {kl:.3e} ({time.time() - t0:.1f} s)")
        if not diff < 1e-3:
            log("rescaled model does not compute the same function; refusing to save")
            return 1
    else:
        log("RESCALE=0: weights copied unchanged")
    del orig

    res = {}
    for name, tensors in (("f32", sd), ("f16-rounded", {n: t.half().float() for n, t in sd.items()})):
        t0 = time.time()
        res[name] = r = grid_residue(tensors)
        vals = list(r.values())
        lin = [v for n, v in r.items() if "embed_tokens" not in n]
        lo = min(r, key=r.get)
        log(f"Q4_1 grid residue ({name}): min {min(vals):.4f} ({lo}), median {float(np.median(vals)):.4f}, "
            f"max {max(vals):.4f}; linears only: min {min(lin):.4f}, median {float(np.median(lin)):.4f} "
            f"({time.time() - t0:.1f} s)")
    record["q4_1_residue_f32"] = res["f32"]
    record["q4_1_residue_f16"] = res["f16-rounded"]
    lin16 = [v for n, v in res["f16-rounded"].items() if "embed_tokens" not in n]
    record["q4_1_residue_f16_linears_min"] = min(lin16)
    record["q4_1_residue_f16_linears_median"] = float(np.median(lin16))

    dst.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(dst / "model.safetensors"), metadata={"format": "pt"})
    for q in src.iterdir():
        if q.is_file() and q.name not in ("model.safetensors", "offgrid.json"):
            shutil.copy2(q, dst / q.name)
    meta["rescale"] = record
    (dst / "offgrid.json").write_text(json.dumps(meta, indent=2) + "\n")
    log(f"saved {dst}: {sorted(q.name for q in dst.iterdir())}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", type=Path)
    ap.add_argument("--calib", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--rescale-from", type=Path, help="rescale this HF folder instead of fine-tuning")
    ap.add_argument("--rescale", type=int, default=1, choices=(0, 1), help="with --rescale-from: 0 copies")
    ap.add_argument("--steps", type=int, default=48)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.rescale_from is not None:
        return rescale_main(args)
    if args.gguf is None or args.calib is None:
        ap.error("--gguf and --calib are required unless --rescale-from is given")
    if "eval" in args.calib.name:
        log(f"refusing to train on {args.calib} (evaluation text)")
        return 2

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.time()
    d, f = str(args.gguf.resolve().parent), args.gguf.name
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
    model.train()
    log(f"loaded {args.gguf} in {time.time() - t0:.1f} s "
        f"({sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters, "
        f"tie_word_embeddings={model.config.tie_word_embeddings})")

    # ---------------------------------------------------------------- data
    t0 = time.time()
    text = args.calib.read_text(encoding="utf-8")
    ids = tok(text, add_special_tokens=False)["input_ids"]
    n_win = len(ids) // args.seq_len
    windows = torch.tensor(ids[: n_win * args.seq_len], dtype=torch.long).view(n_win, args.seq_len)
    g = torch.Generator().manual_seed(args.seed)
    order = torch.randperm(n_win, generator=g)
    n_probe = 4
    need = n_probe + args.steps * args.batch
    if need > n_win:
        log(f"calibration text too short: {n_win} windows of {args.seq_len}, need {need}")
        return 1
    probe = windows[order[:n_probe]]
    train = windows[order[n_probe:need]].view(args.steps, args.batch, args.seq_len)
    log(f"calibration: {len(ids)} tokens, {n_win} windows of {args.seq_len}; "
        f"{args.steps} steps x {args.batch} x {args.seq_len} = {args.steps * args.batch * args.seq_len} "
        f"training tokens, probe {n_probe} x {args.seq_len} (tokenized in {time.time() - t0:.1f} s)")

    def probe_loss() -> float:
        model.eval()
        with torch.no_grad():
            losses = [model(input_ids=w[None], labels=w[None]).loss.item() for w in probe]
        model.train()
        return float(sum(losses) / len(losses))

    # ---------------------------------------------------------------- train
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    residue0 = grid_residue(before)
    log(f"Q4_1 grid residue before (0 = on the grid, ~1 = as off-grid as continuous weights): "
        f"min {min(residue0.values()):.4f}, median {float(np.median(list(residue0.values()))):.4f}, "
        f"max {max(residue0.values()):.4f} over {len(residue0)} matrices")
    probe0 = probe_loss()
    log(f"probe loss before: {probe0:.4f} (ppl {math.exp(probe0):.3f})")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)
    step_losses = []
    t0 = time.time()
    for step in range(args.steps):
        batch = train[step]
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step_losses.append(loss.item())
        if step == 0 or (step + 1) % 8 == 0 or step + 1 == args.steps:
            log(f"step {step + 1}/{args.steps}: train loss {loss.item():.4f} "
                f"({(time.time() - t0) / (step + 1):.2f} s/step)")
    train_s = time.time() - t0
    probe1 = probe_loss()
    k = min(8, args.steps)
    first, last = sum(step_losses[:k]) / k, sum(step_losses[-k:]) / k
    log(f"training: {train_s:.1f} s; train loss start {step_losses[0]:.4f} (mean of first {k}: {first:.4f}), "
        f"end {step_losses[-1]:.4f} (mean of last {k}: {last:.4f})")
    log(f"probe loss after: {probe1:.4f} (ppl {math.exp(probe1):.3f}); before {probe0:.4f}")

    # ---------------------------------------------------------------- how far off the grid
    changed = {}
    for n, p in model.named_parameters():
        diff = p.detach() != before[n]
        changed[n] = {"frac_changed": diff.float().mean().item(),
                      "max_abs_delta": (p.detach() - before[n]).abs().max().item(),
                      "shape": list(p.shape)}
    worst = min(changed, key=lambda n: changed[n]["frac_changed"])
    log(f"weights changed: {len(changed)} tensors; least-changed {worst}: "
        f"{100 * changed[worst]['frac_changed']:.4f} % of elements changed")
    del before
    residue1 = grid_residue({n: p.detach() for n, p in model.named_parameters()})
    residue1_f16 = grid_residue({n: p.detach().half().float() for n, p in model.named_parameters()})
    for name, r in (("f32", residue1), ("f16-rounded", residue1_f16)):
        vals = list(r.values())
        lo = min(r, key=r.get)
        log(f"Q4_1 grid residue after ({name}): min {min(vals):.4f} ({lo}), median {float(np.median(vals)):.4f}, "
            f"max {max(vals):.4f}")

    # ---------------------------------------------------------------- save
    args.out.mkdir(parents=True, exist_ok=True)
    # The GGUF-loaded model carries transformers' gguf "quantizer" (its weights are plain f32
    # already), and save_pretrained refuses such a model; a fresh model without the
    # quantization_config, holding the trained weights, saves normally.
    from transformers import AutoModelForCausalLM as _Auto

    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    fresh = _Auto.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(model.state_dict(), strict=True)
    fresh.eval()
    for n, p in fresh.named_parameters():
        if not torch.equal(p, dict(model.named_parameters())[n]):
            log(f"copy of {n} differs")
            return 1
    fresh.save_pretrained(str(args.out), safe_serialization=True)
    tok.save_pretrained(str(args.out))
    cfg_path = args.out / "config.json"
    cfg = json.loads(cfg_path.read_text())
    rp = cfg.get("rope_parameters") or {}
    if "rope_theta" not in cfg:
        theta = rp.get("rope_theta", getattr(model.config, "rope_theta", None))
        if theta is None:
            log("config has no rope_theta anywhere")
            return 1
        cfg["rope_theta"] = theta
    cfg.setdefault("tie_word_embeddings", bool(model.config.tie_word_embeddings))
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    meta = {
        "source": str(args.gguf), "calib": str(args.calib), "steps": args.steps, "lr": args.lr,
        "seq_len": args.seq_len, "batch": args.batch, "seed": args.seed, "threads": args.threads,
        "train_seconds": round(train_s, 1), "train_loss_first": step_losses[0],
        "train_loss_last": step_losses[-1], f"train_loss_mean_first_{k}": first,
        f"train_loss_mean_last_{k}": last, "probe_loss_before": probe0, "probe_loss_after": probe1,
        "min_frac_changed": changed[worst]["frac_changed"], "min_frac_changed_tensor": worst,
        "q4_1_residue_before_max": max(residue0.values()),
        "q4_1_residue_after_f32": residue1, "q4_1_residue_after_f16": residue1_f16,
        "torch": torch.__version__,
    }
    (args.out / "offgrid.json").write_text(json.dumps(meta, indent=2) + "\n")
    for need_file in ("config.json", "tokenizer.json"):
        if not (args.out / need_file).is_file():
            log(f"{need_file} was not written to {args.out}")
            return 1
    if not list(args.out.glob("*.safetensors")):
        log(f"no safetensors written to {args.out}")
        return 1
    log(f"saved {args.out}: {sorted(p.name for p in args.out.iterdir())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
