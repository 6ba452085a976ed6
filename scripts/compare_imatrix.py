#!/usr/bin/env python3
"""Compare two importance-matrix files column by column.

    .venv/bin/python scripts/compare_imatrix.py A B [--quiet] [--fail-median X] [--fail-p99 X]

A and B may each be a GGUF imatrix (general.type = "imatrix", tensors "<name>.in_sum2" and
"<name>.counts", as written by llama-imatrix's default --output-format gguf) or a legacy
llama.cpp imatrix.dat file (see docs/imatrix-format.md). The format is detected from the
file's magic bytes, not its suffix.

Compared quantity: the per-column mean activation energy  E[x_j^2] = in_sum2[j] / count
(for .dat files: value[j] / ncall, which is the same quantity; see docs/imatrix-format.md).
A column whose count is 0 gets the value 1.0, as llama-quantize does.

Relative difference per column:  |a - b| / max(|a|, |b|)   (0 when both are 0),
so it lies in [0, 1] and is symmetric in A and B.

Output: one line per tensor present in both files (max and median relative difference),
then the tensors present in only one file, then a summary line:
    SUMMARY common=N only_a=N only_b=N shape_mismatch=N max_median_rel=X p99_rel=X max_rel=X
where max_median_rel is the largest per-tensor median, and p99_rel is the 99th percentile of
the relative differences over all columns of all common tensors.
Exit status: 0, or 1 when --fail-median / --fail-p99 is given and exceeded, or a tensor is
missing / has a different shape while one of those options is given; 2 on a read error.
"""
from __future__ import annotations

import argparse
import struct
import sys
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Entry:
    sums: np.ndarray  # float64, shape (n_mat, n_cols): in_sum2 (gguf) or value (dat)
    counts: np.ndarray  # float64, shape (n_mat,): token counts (gguf) or ncall (dat)

    def mean_energy(self) -> np.ndarray:
        c = self.counts[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            m = np.where(c > 0, self.sums / np.where(c > 0, c, 1.0), 1.0)
        return m


@dataclass
class IMatrix:
    path: str
    fmt: str
    entries: dict[str, Entry] = field(default_factory=dict)
    meta: dict[str, object] = field(default_factory=dict)


def read_gguf(path: str) -> IMatrix:
    from gguf import GGUFReader

    r = GGUFReader(path)
    im = IMatrix(path, "gguf")
    for key in ("general.type", "imatrix.datasets", "imatrix.chunk_count", "imatrix.chunk_size"):
        f = r.fields.get(key)
        if f is not None:
            im.meta[key] = f.contents()
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, np.ndarray] = {}
    for t in r.tensors:
        # ggml ne = [n_cols, n_mat]; numpy data comes back as (n_mat, n_cols) (or flat)
        arr = np.asarray(t.data, dtype=np.float64)
        ne = [int(x) for x in t.shape]
        if t.name.endswith(".in_sum2"):
            n_cols = ne[0]
            sums[t.name[: -len(".in_sum2")]] = arr.reshape(-1, n_cols)
        elif t.name.endswith(".counts"):
            counts[t.name[: -len(".counts")]] = arr.reshape(-1)
    for name in sorted(set(sums) | set(counts)):
        if name not in sums or name not in counts:
            raise ValueError(f"{path}: tensor {name} lacks its .in_sum2 or .counts partner")
        s, c = sums[name], counts[name]
        if s.shape[0] != c.shape[0]:
            raise ValueError(f"{path}: {name}: {s.shape[0]} matrices but {c.shape[0]} counts")
        im.entries[name] = Entry(s, c)
    return im


def read_dat(path: str) -> IMatrix:
    with open(path, "rb") as fh:
        buf = fh.read()
    im = IMatrix(path, "dat")
    off = 0

    def take(fmt: str):
        nonlocal off
        size = struct.calcsize(fmt)
        if off + size > len(buf):
            raise ValueError(f"{path}: truncated at byte {off}")
        vals = struct.unpack_from(fmt, buf, off)
        off += size
        return vals

    (n_entries,) = take("<i")
    if n_entries < 1:
        raise ValueError(f"{path}: n_entries = {n_entries}")
    for _ in range(n_entries):
        (nlen,) = take("<i")
        name = buf[off : off + nlen].decode("utf-8")
        off += nlen
        ncall, nval = take("<ii")
        if off + 4 * nval > len(buf):
            raise ValueError(f"{path}: truncated values of {name}")
        vals = np.frombuffer(buf, dtype="<f4", count=nval, offset=off).astype(np.float64)
        off += 4 * nval
        # legacy files carry no per-matrix dimension: a single row of nval columns
        im.entries[name] = Entry(vals.reshape(1, nval), np.array([float(ncall)]))
    if off < len(buf):  # optional trailer: last chunk count, dataset name
        (chunks,) = take("<i")
        im.meta["chunk_count"] = chunks
        if off + 4 <= len(buf):
            (dlen,) = take("<i")
            im.meta["dataset"] = buf[off : off + dlen].decode("utf-8", "replace")
            off += dlen
        if off != len(buf):
            im.meta["trailing_bytes"] = len(buf) - off
    return im


def read_any(path: str) -> IMatrix:
    with open(path, "rb") as fh:
        magic = fh.read(4)
    return read_gguf(path) if magic == b"GGUF" else read_dat(path)


def rel_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    den = np.maximum(np.abs(a), np.abs(b))
    num = np.abs(a - b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--quiet", action="store_true", help="print only the summary line")
    ap.add_argument("--fail-median", type=float, default=None, help="exit 1 if max_median_rel > X")
    ap.add_argument("--fail-p99", type=float, default=None, help="exit 1 if p99_rel > X")
    args = ap.parse_args()

    try:
        A, B = read_any(args.a), read_any(args.b)
    except (OSError, ValueError) as e:
        print(f"compare_imatrix: ERROR: {e}", file=sys.stderr)
        return 2

    for im, tag in ((A, "A"), (B, "B")):
        print(f"# {tag}: {im.path} [{im.fmt}] {len(im.entries)} tensors {im.meta}")

    names_a, names_b = set(A.entries), set(B.entries)
    common = sorted(names_a & names_b)
    only_a, only_b = sorted(names_a - names_b), sorted(names_b - names_a)

    all_rel = []
    medians = []
    mismatched = []
    if not args.quiet and common:
        print(f"{'tensor':<40} {'cols':>6} {'max_rel':>12} {'median_rel':>12}")
    for name in common:
        ma, mb = A.entries[name].mean_energy(), B.entries[name].mean_energy()
        if ma.size != mb.size:
            mismatched.append(name)
            if not args.quiet:
                print(f"{name:<40} SHAPE MISMATCH {ma.shape} vs {mb.shape}")
            continue
        rd = rel_diff(ma.reshape(-1), mb.reshape(-1))
        med = float(np.median(rd))
        medians.append(med)
        all_rel.append(rd)
        if not args.quiet:
            print(f"{name:<40} {rd.size:>6} {float(rd.max()):>12.4e} {med:>12.4e}")
    if not args.quiet:
        for n in only_a:
            print(f"{n:<40} only in A")
        for n in only_b:
            print(f"{n:<40} only in B")

    if all_rel:
        cat = np.concatenate(all_rel)
        max_med = max(medians)
        p99 = float(np.percentile(cat, 99))
        mx = float(cat.max())
    else:
        max_med = p99 = mx = float("nan")
    print(
        f"SUMMARY common={len(common)} only_a={len(only_a)} only_b={len(only_b)} "
        f"shape_mismatch={len(mismatched)} max_median_rel={max_med:.4e} p99_rel={p99:.4e} max_rel={mx:.4e}"
    )

    gated = args.fail_median is not None or args.fail_p99 is not None
    if gated:
        bad = bool(only_a or only_b or mismatched or not all_rel)
        if args.fail_median is not None and not (max_med <= args.fail_median):
            bad = True
        if args.fail_p99 is not None and not (p99 <= args.fail_p99):
            bad = True
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
