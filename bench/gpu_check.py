"""GPU check: the CUDA, AMP and resume paths end to end, in about five minutes on one GPU.

Run it on a CUDA machine (``make gpu-check``); it is never part of CI. For each model (AMFMN paper
preset, and MSA when its preset exists) it trains one epoch on the synthetic data with bf16
autocast and one with fp16 + GradScaler through the real CLI, resumes the bf16 run for a second
epoch, then times evaluation at RSICD test size (1,093 images x 5,465 captions, 256 px) on random
inputs. It prints pairs/s and evaluation seconds and exits non-zero on the first failure::

    python bench/gpu_check.py [--out /tmp/rsnb-gpu-check] [--images 800]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

from rsnb import experiment as ex
from rsnb.encode import encode_corpus, score_all
from rsnb.evaluate import retrieval_metrics
from rsnb.models import registry

MODELS = {"amfmn": "synthetic", "msa": "msa_synthetic"}  # model -> preset
DEVICE, AMPS = "cuda", ("bf16", "fp16")


def _train(preset: str, out: Path, images: int, amp: str, extra=(), resume=False) -> list[dict]:
    cmd = [sys.executable, "-m", "rsnb", "train", "--config", preset, "--out", str(out),
           "--device", DEVICE, f"train.amp={amp}", f"data.synthetic.images={images}", "train.quiet=true", *extra]
    if resume:
        cmd.append("--resume")
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}")
    hist = json.loads((out / "history.json").read_text())
    print(f"  {out.name:<22} {time.perf_counter() - t0:6.1f} s wall, epochs {len(hist)}, "
          f"last loss {hist[-1]['loss']:.4g}")
    return hist


def _eval_rsicd_size(run: Path, n_img: int = 1093) -> float:
    """Seconds to encode, score and rank n_img images x 5 n_img captions (RSICD test size) on DEVICE."""
    model, tokenizer, cfg = ex.load_run(run, tag="last", device=DEVICE)
    n_txt, size, bs = 5 * n_img, int(cfg["image_size"]), 128
    gen = torch.Generator().manual_seed(0)
    images = [torch.randn(min(bs, n_img - i), 3, size, size, generator=gen) for i in range(0, n_img, bs)]
    words = "many white storage tanks are near a road beside green trees and a large parking lot".split()
    captions = [" ".join(words[(j * 7 + t) % len(words)] for t in range(8 + j % 12)) for j in range(n_txt)]
    texts = [{**registry.text_batch(tokenizer, captions[j:j + bs]),  # any registered model's tokenizer
              "caption_ids": torch.arange(j, min(j + bs, n_txt))} for j in range(0, n_txt, bs)]
    sync = torch.cuda.synchronize if DEVICE == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    img, txt = encode_corpus(model, images, texts, device=DEVICE)
    sims = score_all(model, img, txt, device=DEVICE)
    retrieval_metrics(sims, torch.arange(n_txt) // 5)
    sync()
    return time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="/tmp/rsnb-gpu-check")
    p.add_argument("--images", type=int, default=800, help="synthetic scenes (captions = 5x)")
    p.add_argument("--dry-run-cpu", action="store_true",
                   help="check the script itself on a CPU (no AMP, a 16-image evaluation)")
    a = p.parse_args()
    global DEVICE, AMPS
    if a.dry_run_cpu:
        DEVICE, AMPS = "cpu", ("off",)  # bf16 convolutions are very slow on most CPUs
    elif not torch.cuda.is_available():
        print("gpu_check: no CUDA device visible; run this on a GPU machine", file=sys.stderr)
        return 1
    if DEVICE == "cuda":
        print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, "
              f"bf16 supported: {torch.cuda.is_bf16_supported()}")
    root = Path(a.out)
    shutil.rmtree(root, ignore_errors=True)
    for name, preset in MODELS.items():
        try:
            ex.load_config(preset)
        except (FileNotFoundError, ValueError):
            print(f"{name}: preset {preset!r} not available, skipped")
            continue
        print(f"{name} ({preset}):")
        for amp in AMPS:
            hist = _train(preset, root / f"{name}_{amp}", a.images, amp, ["train.epochs=1"])
            pairs = 5 * a.images * 0.8  # captions of the training split
            print(f"    {amp}: {pairs / hist[0]['time']:8.1f} pairs/s (epoch incl. validation)")
        hist = _train(preset, root / f"{name}_{AMPS[0]}", a.images, AMPS[0], ["train.epochs=2"], resume=True)
        if len(hist) != 2 or [r["epoch"] for r in hist] != [1, 2]:
            raise RuntimeError(f"resume produced epochs {[r['epoch'] for r in hist]}, expected [1, 2]")
        print(f"    resume: ok (epoch 2 loss {hist[1]['loss']:.4g})")
        n_img = 1093 if DEVICE == "cuda" else 16
        secs = _eval_rsicd_size(root / f"{name}_{AMPS[0]}", n_img)
        print(f"    eval {n_img:,} images x {5 * n_img:,} captions: {secs:.1f} s")
    print("gpu_check: all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
