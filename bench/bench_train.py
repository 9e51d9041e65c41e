"""Training-step throughput per preset, its distance from the fp32 compute floor, and data-loading wait.

For each preset, on the same batches of synthetic scenes (default 256 px, batch 32):

* **step**: median wall time of forward + loss + backward + Adam over ``--steps`` steps (after one
  warm-up), on batches already in memory: the model's own cost. Reported as image-caption pairs/s.
* **floor**: the step's FLOPs (counted by ``torch.utils.flop_counter.FlopCounterMode``: convolutions
  and matrix products, forward and backward) divided by this CPU's measured fp32 matmul rate (a
  large ``sgemm`` loop, same thread count): the time a perfectly efficient step would take.
* **data wait**: time the default ``DataLoader`` (the preset's ``train.num_workers``) takes to deliver
  a batch of the real ``CaptionDataset`` (decode-once cache warm, augmentation on), as a share of
  (wait + step) when loading is not overlapped with compute (``num_workers=0``).

Usage::

    python bench/bench_train.py [--presets paper,official,m1] [--size 256] [--batch 32] [--steps 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from rsnb import experiment as ex
from rsnb.data.dataset import CaptionDataset, collate
from rsnb.models import registry


def matmul_gflops(n: int = 2048, reps: int = 5) -> float:
    """Achieved fp32 GFLOP/s of an n x n matrix product on this machine (best of ``reps``)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(reps))
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _setup(preset: str, size: int, batch: int, images: int):
    base, model_over = ("msa_synthetic", []) if preset == "msa" else ("synthetic", [f"model.preset={preset}"])
    cfg = ex.load_config(base, [f"image_size={size}", f"data.synthetic.images={images}",
                                f"data.synthetic.size={size}", "model.pretrained=false", *model_over],
                         quick=False)
    builder = registry.builder_for(cfg)
    train_split = ex.prepare_corpus(cfg, progress=False).split("train")
    tok = builder.make_tokenizer(cfg, train_split, None)
    torch.manual_seed(0)
    model = builder.build(builder.make_config(cfg, len(tok)), tok, False)
    data = CaptionDataset(train_split, tok, image_size=size, train=True)
    hook = builder.batch_hook(builder.make_config(cfg, len(tok)), train_split)
    return model, data, hook


def bench_preset(preset: str, a, peak: float, channels_last: bool = False) -> dict:
    model, data, hook = _setup(preset, a.size, a.batch, a.images)
    if channels_last:  # weights and images in NHWC, oneDNN's native layout (rsnb.train does this on a CPU)
        model = model.to(memory_format=torch.channels_last)
    data.preload()  # decode once: the wait below is augmentation + collate, as in every epoch but the first
    it = iter(DataLoader(data, batch_size=a.batch, shuffle=True, collate_fn=collate, num_workers=0))
    waits = [_timed(lambda: next(it)) for _ in range(a.steps)]
    batches = [next(it) for _ in range(a.steps + 1)]
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()

    def step(b):
        b = hook(dict(b)) if hook else b
        if channels_last:
            b = {**b, "images": b["images"].contiguous(memory_format=torch.channels_last)}
        loss, _ = model.loss(model(b), b)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step(batches[0])  # warm-up
    times, cpus = [], []
    for b in batches[1:]:
        c0 = time.process_time()
        times.append(_timed(lambda b=b: step(b)))
        cpus.append(time.process_time() - c0)  # CPU seconds: steadier than wall time on a shared machine
    with FlopCounterMode(display=False) as fc:
        step(batches[0])
    flops = fc.get_total_flops()
    t = statistics.median(times)
    floor = flops / (peak * 1e9)
    w = statistics.median(waits)
    return {"preset": preset + (" NHWC" if channels_last else ""), "step_s": t, "cpu_s": statistics.median(cpus), "pairs_s": a.batch / t, "gflop": flops / 1e9, "floor_s": floor,
            "vs_floor": t / floor, "wait_s": w, "wait_share": w / (w + t), "params_m": sum(p.numel() for p in model.parameters()) / 1e6}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", default="paper,official,m1,msa",
                   help="AMFMN presets (paper, official, m1..m9) and msa (the msa_synthetic preset)")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--images", type=int, default=200, help="synthetic scenes to draw batches from")
    p.add_argument("--layouts", default="nchw", help="nchw, nhwc (channels-last) or both: nchw,nhwc")
    a = p.parse_args()
    peak = matmul_gflops()
    print(f"{a.size} px, batch {a.batch}, {a.steps} timed steps, torch threads {torch.get_num_threads()}, "
          f"measured fp32 matmul peak {peak:.1f} GFLOP/s")
    rows = [bench_preset(x, a, peak, layout == "nhwc") for x in a.presets.split(",") for layout in a.layouts.split(",")]
    ref = rows[0]["pairs_s"]
    print(f"{'preset':<14}{'params M':>9}{'step s':>8}{'CPU s':>7}{'pairs/s':>9}{'ratio':>7}{'GFLOP':>8}{'floor s':>9}"
          f"{'x floor':>8}{'data wait s':>12}{'wait share':>11}")
    for r in rows:
        print(f"{r['preset']:<14}{r['params_m']:>9.1f}{r['step_s']:>8.2f}{r['cpu_s']:>7.2f}{r['pairs_s']:>9.1f}{r['pairs_s'] / ref:>7.2f}"
              f"{r['gflop']:>8.0f}{r['floor_s']:>9.2f}{r['vs_floor']:>8.2f}{r['wait_s']:>12.3f}"
              f"{100 * r['wait_share']:>10.1f}%")


if __name__ == "__main__":
    main()
