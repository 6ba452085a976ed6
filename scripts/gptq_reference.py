#!/usr/bin/env python3
"""Reference GPTQ in plain PyTorch, to time and score against our Rust GPTQ on identical inputs.

Follows Frantar et al. 2022 as in IST-DASLab/gptq `gptq.py` (`fasterquant`, no act-order, no
static groups), on the CPU, in float32, with the same thread count as the Rust run.

Input: a directory written by the Rust benchmark.
  DIR/manifest.json  {"layers": [{"name": str, "rows": int, "cols": int,
                                  "w": "file.f32", "h": "file.f64"}, ...],
                      "group_size": 32, "bits": 4, "block_size": 128, "damp": 0.01}
  w: row-major (rows = outputs, cols = inputs) little-endian float32 weights.
  h: the (cols x cols) little-endian float64 matrix H = 2·X·Xᵀ/N, already scaled (used as is).

Per layer: dead columns (H_jj = 0) get H_jj = 1 and W[:, j] = 0; H += damp·mean(diag H)·I (in
float64, then converted to float32); U = chol(chol_inverse(chol(H)))ᵀ (upper); columns are quantized
left to right in blocks of block_size with error feedback inside the block and the lazy batch update
W[:, i2:] -= Err·U[i1:i2, i2:] after it. The quantizer is the repo's asymmetric per-row Quantizer
over groups of group_size consecutive columns, its scale/zero taken from the group's current
(error-updated) weights when its first column is reached.

Reported per layer: seconds (median over repeats), loss = Σ (w − q)²/U_jj² / 2 as the repo prints,
and the relative output error tr(ΔW H ΔWᵀ)/tr(W H Wᵀ) from the original W and undamped H.

Usage: gptq_reference.py DIR --threads 2 [--repeat 3] [--json OUT]
"""
import argparse
import json
import os
import statistics
import time

import numpy as np
import torch


def load(directory):
    with open(os.path.join(directory, "manifest.json")) as f:
        manifest = json.load(f)
    layers = []
    for entry in manifest["layers"]:
        rows, cols = entry["rows"], entry["cols"]
        w = np.fromfile(os.path.join(directory, entry["w"]), dtype="<f4")
        h = np.fromfile(os.path.join(directory, entry["h"]), dtype="<f8")
        if w.size != rows * cols or h.size != cols * cols:
            raise SystemExit(f"error: {entry['name']}: expected {rows}x{cols} weights and "
                             f"{cols}x{cols} H, got {w.size} and {h.size} values")
        layers.append((entry["name"], torch.from_numpy(w.reshape(rows, cols).astype(np.float32)),
                       torch.from_numpy(h.reshape(cols, cols).astype(np.float64))))
    return manifest, layers


def find_params(x, maxq):
    """The repo's Quantizer.find_params(weight=True): per-row asymmetric scale and zero."""
    xmin = torch.clamp(x.min(dim=1).values, max=0)
    xmax = torch.clamp(x.max(dim=1).values, min=0)
    both_zero = (xmin == 0) & (xmax == 0)
    xmin[both_zero], xmax[both_zero] = -1, 1
    scale = (xmax - xmin) / maxq
    return scale, torch.round(-xmin / scale)


def quantize(x, scale, zero, maxq):
    q = torch.clamp(torch.round(x / scale) + zero, 0, maxq)
    return scale * (q - zero)


def gptq(w, h, bits, group, block, damp):
    """GPTQ one layer; returns (dequantized weights, loss)."""
    W = w.clone()
    H = h.clone()
    cols = W.shape[1]
    maxq = 2 ** bits - 1
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H.diagonal().add_(damp * torch.mean(torch.diag(H)))
    H = H.float()
    U = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    Q = torch.zeros_like(W)
    loss = 0.0
    scale = zero = None
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Losses1 = torch.zeros_like(W1)
        U1 = U[i1:i2, i1:i2]
        for i in range(i2 - i1):
            j = i1 + i
            if j % group == 0:  # the group's current weights; past this block, add the pending update
                cur = W1[:, i:i + group] if i + group <= i2 - i1 else torch.cat(
                    [W1[:, i:], W[:, i2:j + group] - Err1[:, :i] @ U[i1:j, i2:j + group]], dim=1)
                scale, zero = find_params(cur, maxq)
            x = W1[:, i]
            d = U1[i, i]
            q = quantize(x, scale, zero, maxq)
            Q1[:, i] = q
            Losses1[:, i] = (x - q) ** 2 / d ** 2
            err = (x - q) / d
            W1[:, i:] -= err.unsqueeze(1).matmul(U1[i, i:].unsqueeze(0))
            Err1[:, i] = err
        Q[:, i1:i2] = Q1
        loss += torch.sum(Losses1).item() / 2
        W[:, i2:] -= Err1.matmul(U[i1:i2, i2:])
    return Q, loss


def rel_err(w, q, h):
    """tr(ΔW H ΔWᵀ) / tr(W H Wᵀ) in float64."""
    w, dw = w.double(), (w - q).double()
    return (torch.sum((dw @ h) * dw) / torch.sum((w @ h) * w)).item()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", metavar="OUT")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    m, layers = load(args.dir)
    params = (m["bits"], m["group_size"], m["block_size"], m["damp"])
    totals, seconds, results = [], {name: [] for name, _, _ in layers}, {}
    for _ in range(args.repeat):
        start = time.perf_counter()
        for name, w, h in layers:
            t = time.perf_counter()
            results[name] = gptq(w, h, *params)
            seconds[name].append(time.perf_counter() - t)
        totals.append(time.perf_counter() - start)

    out = []
    print(f"{'layer':<32} {'seconds':>9} {'rel_err':>11} {'loss':>12}")
    for name, w, h in layers:
        q, loss = results[name]
        row = {"name": name, "seconds": statistics.median(seconds[name]),
               "rel_err": rel_err(w, q, h), "loss": loss}
        out.append(row)
        print(f"{name:<32} {row['seconds']:>9.4f} {row['rel_err']:>11.4e} {loss:>12.4e}")
    total = statistics.median(totals)
    print(f"{'total (median of %d, %d threads)' % (args.repeat, args.threads):<32} {total:>9.4f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"total_s_median": total, "layers": out}, f, indent=1)


if __name__ == "__main__":
    main()
