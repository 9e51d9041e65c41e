"""What each evaluation setting buys: rsnb's ``evaluate`` at a real test-set size, one change at a time.

Every row is a subprocess (its own time and peak RSS) running :func:`rsnb.evaluate.evaluate` on the
same synthetic set as ``bench_eval_sizes.py`` (PNG files on disk: decode, encode once, score, exact
metrics). Rows are cumulative: each adds one change to the row above, starting from the settings
rsnb had before this benchmark (float images per item, captions in corpus order, NCHW, batch 128,
``no_grad``). Rows marked ``(alt)`` change one setting of the row above instead and are not carried
on. Per row: seconds, peak MB, and how the time splits into image encoding, text encoding and the rest.

The fp32 floor is the FLOPs of one pass over the set (CNN, attention and scoring counted by
``FlopCounterMode`` on a few images and the full score; the bi-GRU counted analytically, since
``aten::gru`` is not counted) divided by this CPU's measured fp32 matrix-product rate. The rate is
measured once before the rows and again in each row's process right after its evaluation, so that
on a shared machine each row is compared with the rate it really had ("x own floor"). Usage::

    python bench/bench_eval_opts.py --set rsitmd --preset paper --vga soft [--steps 0,6] [--repeat 2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_eval_sizes import SETS, _corpus, _model, add_set_args
from bench_train import matmul_gflops
from torch.utils.flop_counter import FlopCounterMode

from rsnb.data.dataset import ImageDataset, TextDataset, collate
from rsnb.data.vocab import Vocab
from rsnb.encode import score_all
from rsnb.evaluate import evaluate

BEFORE = dict(normalize=True, cache_images=True, sort_captions=False, channels_last=False, batch_size=128,
              image_batch_size=None, inference=False, threads=0, interop=0, bf16=False)
#: (label, changes from the previous kept row, kept for the rows below?)
STEPS = [
    ("before: float images per item, cached, corpus order, NCHW, batch 128, no_grad", {}, True),
    ("+ inference_mode", {"inference": True}, True),
    ("+ uint8 images, normalised per batch", {"normalize": False}, True),
    ("+ no image cache (each image is decoded once anyway)", {"cache_images": False}, True),
    ("+ length-sorted caption batches", {"sort_captions": True}, True),
    ("+ channels-last images", {"channels_last": True}, True),
    ("+ image batch 32", {"image_batch_size": 32}, True),
    ("(alt) image batch 64", {"image_batch_size": 64}, False),
    ("(alt) image batch 16", {"image_batch_size": 16}, False),
    ("(alt) image batch 8", {"image_batch_size": 8}, False),
    ("(alt) caption batch 512", {"batch_size": 512}, False),
    ("(alt) 1 intra-op thread", {"threads": 1}, False),
    ("(alt) 1 inter-op thread", {"interop": 1}, False),
    ("(alt) bf16 autocast (not fp32: scores change)", {"bf16": True}, False),
]


def _timed_methods(model, spent: dict) -> None:
    for name in ("encode_images", "encode_texts"):
        fn = getattr(model, name)

        def wrapped(*args, _fn=fn, _name=name, **kw):
            t0 = time.process_time()
            out = _fn(*args, **kw)
            spent[_name] = spent.get(_name, 0.0) + time.process_time() - t0  # CPU seconds
            return out

        setattr(model, name, wrapped)


def child(a) -> None:
    s = json.loads(a.settings)
    if s["threads"]:
        torch.set_num_threads(s["threads"])
    if s["interop"]:
        torch.set_num_interop_threads(s["interop"])
    corpus = _corpus(SETS[a.set], a.size, Path(a.folder))
    vocab = Vocab.build(corpus.captions, min_count=1)
    model = _model(a.preset, a.vga, vocab, a.size)
    spent: dict[str, float] = {}
    _timed_methods(model, spent)
    mode = torch.inference_mode() if s["inference"] else contextlib.nullcontext()
    amp = torch.autocast("cpu", dtype=torch.bfloat16) if s["bf16"] else contextlib.nullcontext()
    t0, c0 = time.perf_counter(), time.process_time()
    with mode, amp:
        metrics = evaluate(model, corpus, vocab, device="cpu", batch_size=s["batch_size"],
                           image_batch_size=s["image_batch_size"], sort_captions=s["sort_captions"],
                           channels_last=s["channels_last"], image_size=a.size, normalize=s["normalize"],
                           cache_images=s["cache_images"])
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "cpu_s": cpu, "img_s": spent["encode_images"], "txt_s": spent["encode_texts"],
                      "mR": metrics["mR"], "peak_mb": peak_mb, "gflops": matmul_gflops()}))  # the rate right after


def pass_gflop(a, folder: Path) -> tuple[float, dict]:
    """FLOPs of one evaluation pass over the set: images, captions and scoring."""
    corpus = _corpus(SETS[a.set], a.size, folder)
    vocab = Vocab.build(corpus.captions, min_count=1)
    model = _model(a.preset, a.vga, vocab, a.size)
    images = torch.stack([ImageDataset(corpus, image_size=a.size)[i]["image"] for i in range(4)])
    texts = collate(list(TextDataset(corpus, vocab)))
    tokens, lengths = texts["tokens"], texts["lengths"]
    n_i, n_t = len(corpus), len(tokens)
    parts = {}
    with torch.inference_mode():
        with FlopCounterMode(display=False) as fc:
            img = model.encode_images(images)
        parts["images"] = fc.get_total_flops() / 4 * n_i
        txt = model.encode_texts(tokens[:64], lengths[:64])
        with FlopCounterMode(display=False) as fc:  # scoring cost is per pair: count 4 x 64, scale
            score_all(model, img, txt, "cpu")
        parts["scoring"] = fc.get_total_flops() / (4 * 64) * n_i * n_t
    enc = model.sentence_encoder
    if hasattr(enc.gru, "bidirectional"):  # nn.GRU: 3 gates, input and hidden products, 2 directions
        e, h = enc.gru.input_size, enc.gru.hidden_size
        parts["captions"] = float(lengths.sum()) * 2 * 3 * 2 * h * (e + h)
    else:  # skip-thought: a Python loop of Linears, counted by FlopCounterMode
        with torch.inference_mode(), FlopCounterMode(display=False) as fc:
            model.encode_texts(tokens, lengths)
        parts["captions"] = fc.get_total_flops()
    return sum(parts.values()) / 1e9, {k: v / 1e9 for k, v in parts.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_set_args(p, ("paper", "official"))
    p.add_argument("--steps", default="all", help="comma-separated row numbers (0-based) or 'all'")
    p.add_argument("--repeat", type=int, default=1, help="runs per row, interleaved; the table shows medians")
    p.add_argument("--jobs", type=int, default=1,
                   help="rows run at once (> 1 only with --threads 1, compare CPU seconds: a shared machine)")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads of every row (0: torch's default)")
    p.add_argument("--settings", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.settings:
        return child(a)
    n = SETS[a.set]
    keep = range(len(STEPS)) if a.steps == "all" else [int(x) for x in a.steps.split(",")]
    print(f"{a.set}: {n} images x {5 * n} captions, {a.size} px, AMFMN {a.preset} preset, vga={a.vga}, "
          f"torch threads {torch.get_num_threads()}", flush=True)
    chosen, cur = [], dict(BEFORE)
    for i, (label, change, kept) in enumerate(STEPS):
        settings = {**cur, **change}
        if kept:
            cur = settings
        if i in keep:
            chosen.append((label, settings))
    runs: dict[str, list[dict]] = {label: [] for label, _ in chosen}
    with tempfile.TemporaryDirectory() as tmp:
        gflop, parts = pass_gflop(a, Path(tmp))
        peak = matmul_gflops()
        print(f"one pass: {gflop:.0f} GFLOP ({', '.join(f'{k} {v:.1f}' for k, v in parts.items())}); "
              f"fp32 matmul peak {peak:.1f} GFLOP/s; floor {gflop / peak:.1f} s", flush=True)
        todo = [(label, settings) for _ in range(a.repeat) for label, settings in chosen]  # interleaved
        while todo:
            batch, todo = todo[:a.jobs], todo[a.jobs:]
            procs = [(label, subprocess.Popen(
                [sys.executable, __file__, "--set", a.set, "--preset", a.preset, "--vga", a.vga, "--size", str(a.size),
                 "--settings", json.dumps({**settings, "threads": settings["threads"] or a.threads}),
                 "--folder", tmp], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)) for label, settings in batch]
            for label, proc in procs:
                out, err = proc.communicate()
                if proc.returncode:
                    sys.exit(f"row {label!r} failed:\n{err[-3000:]}")
                runs[label].append(json.loads(out.strip().splitlines()[-1]))
                print(f"  {label}: {json.dumps(runs[label][-1])}", flush=True)
    rows = [(label, {k: (max if k == "peak_mb" else statistics.median)(r[k] for r in rs) for k in rs[0]})
            for label, rs in runs.items()]
    t0 = rows[0][1]["seconds"]
    print(f"median of {a.repeat} run(s) per row")
    c0 = rows[0][1]["cpu_s"]
    print("wall s and CPU s of the evaluation; img / txt: CPU s inside encode_images / encode_texts")
    print(f"{'row':<72}{'wall s':>8}{'CPU s':>8}{'img':>7}{'txt':>7}{'peak MB':>9}{'wall gain':>10}{'CPU gain':>9}"
          f"{'GFLOP/s':>8}{'x own floor':>12}{'mR':>6}")
    for label, r in rows:
        print(f"{label:<72}{r['seconds']:>8.1f}{r['cpu_s']:>8.1f}{r['img_s']:>7.1f}{r['txt_s']:>7.1f}{r['peak_mb']:>9.0f}"
              f"{t0 / r['seconds']:>9.2f}x{c0 / r['cpu_s']:>8.2f}x{r['gflops']:>8.1f}"
              f"{r['seconds'] / (gflop / r['gflops']):>12.2f}{r['mR']:>6.2f}")

if __name__ == "__main__":
    main()
