"""Near-duplicate search cost: rsnb's multi-index Hamming search vs the full distance matrix.

Two parts, each timed side by side in one run:

1. hashing throughput: synthetic scenes decoded and hashed (pHash + dHash under 8 transforms);
2. search: every image's 8 transformed pHash codes against all stored codes within ``--threshold``
   bits, by :func:`rsnb.audit.index.hamming_pairs` and by :func:`rsnb.audit.index.brute_force_pairs`
   (numpy, blocked: the fast way to do all pairs), plus a pure-Python pair loop timed on a subset and
   scaled by the pair count. Codes are the real pHash codes of the hashed scenes, tiled with 24
   random bit flips per replica up to each size, with 1 % of the images planted as near copies.
   Both searches must return identical pairs; ``auto`` is the path ``hamming_pairs`` picks.

Usage::

    python bench/bench_audit.py [--images 300] [--sizes 5000,20000] [--thresholds 8,12]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from rsnb.audit.hashing import hash_images
from rsnb.audit.index import INDEX_BELOW, brute_force_pairs, hamming_pairs, probe_fraction
from rsnb.data.synthetic import generate


def _flip(rng, codes, n_bits):
    out = codes.copy()
    for _ in range(n_bits):
        out ^= np.uint64(1) << rng.integers(0, 64, out.shape).astype(np.uint64)
    return out


def corpus_codes(base: np.ndarray, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """(n, 8) transformed codes and (n,) stored codes grown from real ones by random flips."""
    reps = -(-n // len(base))
    # replicas of a real code 24 random flips apart: as far from each other as distinct real images
    variants = np.concatenate([_flip(rng, base, 0 if r == 0 else 24) for r in range(reps)])[:n]  # (n, 8)
    k = max(1, n // 100)  # 1 % planted near copies of other images
    src, dst = rng.choice(n, k, replace=False), rng.choice(n, k, replace=False)
    variants[dst] = _flip(rng, variants[src], 3)
    return variants, variants[:, 0].copy()


def python_loop_rate(q: np.ndarray, d: np.ndarray, threshold: int, pairs: int = 200_000) -> float:
    """Seconds per pair of a plain Python double loop (timed on ``pairs`` pairs)."""
    qs, ds = [int(x) for x in q[:400]], [int(x) for x in d[: pairs // 400]]
    t = time.perf_counter()
    hits = 0
    for a in qs:
        for b in ds:
            hits += (a ^ b).bit_count() <= threshold
    return (time.perf_counter() - t) / (len(qs) * len(ds))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=300, help="synthetic scenes hashed (default 300)")
    p.add_argument("--size", type=int, default=256, help="scene side in px (default 256)")
    p.add_argument("--sizes", default="5000,20000", help="dataset sizes searched (default 5000,20000)")
    p.add_argument("--thresholds", default="8,12", help="Hamming radii (default 8,12)")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp, a.images, size=a.size, seed=0, progress=False)
        paths = sorted(Path(tmp, "images").glob("*.png"))
        hash_images(paths[:2], progress=False)  # imports and first-call costs out of the timing
        t = time.perf_counter()
        h = hash_images(paths, progress=False)
        dt = time.perf_counter() - t
    print(f"hashing: {len(paths)} scenes of {a.size} px in {dt:.1f} s = {len(paths) / dt:.0f} images/s "
          f"(decode + grey + 16 hashes + thumbnail, one process)")
    rng = np.random.default_rng(0)
    loop = python_loop_rate(h.phash.reshape(-1), h.phash[:, 0], 12)
    print(f"pure-Python pair loop: {loop * 1e9:.0f} ns per pair")
    print(f"\n{'images':>7} {'radius':>6} {'pairs':>14} {'found':>7} {'index s':>8} {'matrix s':>9} "
          f"{'matrix/index':>12} {'auto':>6} {'py loop s (est.)':>17}")
    for n in (int(x) for x in a.sizes.split(",")):
        variants, stored = corpus_codes(h.phash, n, rng)
        query = variants.reshape(-1)  # every image under its 8 transforms
        for radius in (int(x) for x in a.thresholds.split(",")):
            t = time.perf_counter()
            fast = hamming_pairs(query, stored, radius, method="index")
            t_fast = time.perf_counter() - t
            t = time.perf_counter()
            ref = brute_force_pairs(query, stored, radius)
            t_ref = time.perf_counter() - t
            assert all(np.array_equal(x, y) for x, y in zip(fast, ref)), "index and matrix disagree"
            auto = "index" if probe_fraction(radius, n) < INDEX_BELOW else "matrix"
            n_pairs = query.size * stored.size
            print(f"{n:>7} {radius:>6} {n_pairs:>14,} {fast[0].size:>7} {t_fast:>8.2f} {t_ref:>9.2f} "
                  f"{t_ref / t_fast:>11.1f}x {auto:>6} {loop * n_pairs:>17.0f}")


if __name__ == "__main__":
    main()
