"""Benchmark the synthetic scene generator against a plain PIL PNG save of the same images.

Prints images/s (wall clock and CPU time of this process, which is robust to other load on the
machine) for: rendering only (render_scene), PNG saving only (the baseline: what any image
dataset writer pays), and the whole generate() pipeline with 1 and 2 workers.

    python bench/bench_synthetic.py [--n 300] [--size 256]
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time

import numpy as np

from rsnb.data import synthetic


def _rate(n, fn):
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return n / wall, n / max(cpu, 1e-9)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=300, help="images per measurement")
    p.add_argument("--size", type=int, default=256, help="image side in pixels")
    a = p.parse_args(argv)
    n, size = a.n, a.size
    synthetic.render_scene(0, size)  # warm-up (imports, allocator)

    images = []

    def render():
        images.extend(synthetic.render_scene(np.random.default_rng([0, i]), size)[0] for i in range(n))

    def save(level):
        def run():
            for img in images:
                img.save(io.BytesIO(), format="PNG", compress_level=level)
        return run

    rows = [("render_scene only", *_rate(n, render)),
            ("PIL PNG save, compress_level=1 (as generate)", *_rate(n, save(1))),
            ("PIL PNG save, default compress_level=6", *_rate(n, save(6)))]
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            rows.append((f"generate(), workers={workers} (render+save+json)",
                         *_rate(n, lambda w=workers: synthetic.generate(f"{tmp}/w{w}", n, size, workers=w, progress=False))))
    base_wall, base_cpu = rows[1][1], rows[1][2]
    print(f"synthetic generator, {n} images at {size}x{size} px")
    print(f"{'measurement':48s} {'img/s wall':>10s} {'img/s cpu':>10s} {'vs save (wall)':>15s}")
    for name, wall, cpu in rows:
        print(f"{name:48s} {wall:10.1f} {cpu:10.1f} {wall / base_wall:14.2f}x")
    print(f"render_scene on one core: {rows[0][2]:.0f} images/s of process CPU time "
          f"(target >= 100); render/save ratio {rows[0][2] / base_cpu:.2f} (CPU time)")
    print("note: the workers=2 CPU column counts only the parent process")


if __name__ == "__main__":
    main()
