"""Top-k search over a large gallery: rsnb.evaluate.search (chunked torch) vs faiss IndexFlatIP.

Each column runs in its own subprocess so its peak memory (ru_maxrss) is its own. The gallery is
N random L2-normalised D-d vectors (float32, or float16 storage with ``--fp16``); the queries are
perturbed gallery rows, so the expected top-1 is known and checked. Usage::

    python bench/bench_search.py [--gallery 1000000] [--dim 512] [--queries 1000] [--k 10]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import subprocess
import sys
import time

import torch


def _make(n: int, d: int, nq: int, fp16: bool):
    """Gallery filled block by block, so building it never holds more than the gallery + one block."""
    gen = torch.Generator().manual_seed(0)
    g = torch.empty(n, d, dtype=torch.float16 if fp16 else torch.float32)
    for g0 in range(0, n, 65536):
        g[g0:g0 + 65536] = torch.nn.functional.normalize(torch.randn(min(65536, n - g0), d, generator=gen), dim=1)
    target = torch.randint(0, n, (nq,), generator=torch.Generator().manual_seed(1))
    q = torch.nn.functional.normalize(g[target].float() + 0.02 * torch.randn(nq, d, generator=gen), dim=1)
    return q, g, target


def child(args) -> None:
    from rsnb.evaluate import search

    q, g, target = _make(args.gallery, args.dim, args.queries, args.fp16)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MB, with the gallery built
    search(q[:8], g, k=args.k, backend=args.backend)  # warm-up (faiss builds its index here too)
    t0 = time.perf_counter()
    _, idx = search(q, g, k=args.k, backend=args.backend)
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gallery_mb = g.numel() * g.element_size() / 2**20
    print(json.dumps({"backend": args.backend, "fp16": args.fp16, "seconds": dt, "qps": args.queries / dt,
                      "peak_mb": peak, "before_search_mb": base, "gallery_mb": gallery_mb,
                      "top1_ok": float((idx[:, 0] == target).float().mean())}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gallery", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--backend", default=None, help=argparse.SUPPRESS)
    p.add_argument("--fp16", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.backend:
        return child(a)
    cols = [("torch", False), ("torch", True)]
    if importlib.util.find_spec("faiss") is not None:
        cols.append(("faiss", False))
    print(f"gallery {a.gallery:,} x {a.dim}, {a.queries} queries, k={a.k}, torch threads {torch.get_num_threads()}")
    rows = []
    for backend, fp16 in cols:
        cmd = [sys.executable, __file__, "--gallery", str(a.gallery), "--dim", str(a.dim), "--queries",
               str(a.queries), "--k", str(a.k), "--backend", backend] + (["--fp16"] if fp16 else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        rows.append(json.loads(out))
    ref = rows[0]["qps"]
    print(f"{'backend':<14}{'queries/s':>10}{'ratio':>8}{'gallery MB':>12}{'search +MB':>12}{'peak MB':>10}{'top-1 ok':>10}")
    for r in rows:
        name = r["backend"] + (" fp16" if r["fp16"] else " fp32")
        # search +MB: peak RSS growth while searching, over the process holding its gallery
        # (torch itself, ~0.7 GB RSS, and the gallery are in the baseline; faiss adds its own float32 copy)
        print(f"{name:<14}{r['qps']:>10.1f}{r['qps'] / ref:>8.2f}{r['gallery_mb']:>12.0f}"
              f"{r['peak_mb'] - r['before_search_mb']:>12.0f}{r['peak_mb']:>10.0f}{r['top1_ok']:>10.3f}")


if __name__ == "__main__":
    main()
