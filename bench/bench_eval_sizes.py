"""Evaluation at real test-set sizes: the released sharded strategy vs rsnb's evaluate vs encode-once.

Three columns, each in its own subprocess so that time and peak memory (ru_maxrss) are its own:

* ``released``: the AMFMN release's strategy, re-implemented here as a labelled baseline: all test
  images held as one float64 array, then the *full* model (CNN + text encoder + attention) run on
  every (128-image shard, 128-caption shard) pair, gradients enabled, each block copied into a
  float64 score matrix.
* ``rsnb``: :func:`rsnb.evaluate.evaluate` on image files written to disk (decode, resize, encode
  each image and caption once, chunked scoring, exact metrics).
* ``bound``: encode-once on tensors already in memory (images channels-last in batches of 8, captions in
  length-sorted batches trimmed to their longest caption, as rsnb encodes them), then scoring: the cost of
  the network alone.

Sets: ``rsitmd`` (452 images x 2,260 captions) and ``rsicd`` (1,093 x 5,465) of 256 px synthetic
scenes with their 5 captions each (``tiny``, 40 images, checks the script). Models: AMFMN ``paper``
(bi-GRU) or ``official`` (skip-thought 620/2400, random stand-in weights of the real shapes) with any
``--vga``, and ``msa`` (the ``msa_synthetic`` preset: ResNet-18 + bi-GRU; no released column, the
sharded strategy is AMFMN's). Usage::

    python bench/bench_eval_sizes.py --set rsitmd --preset paper --vga soft [--columns released,rsnb,bound]
"""

from __future__ import annotations

import argparse
import inspect
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rsnb.data.corpus import Corpus, ImageRecord
from rsnb.data.synthetic import render_scene
from rsnb.data.vocab import Vocab
from rsnb.encode import score_all
from rsnb.evaluate import CPU_IMAGE_BATCH, evaluate, retrieval_metrics
from rsnb.models.amfmn import AMFMN, AMFMNConfig
from rsnb.models.msa import MSA, MSAConfig

SETS = {"rsitmd": 452, "rsicd": 1093, "tiny": 40}
SHARD = 128
IMAGE_BATCH = CPU_IMAGE_BATCH  # images per batch of rsnb's evaluate on a CPU (its default), used by the bound too
TEXT_BATCH = inspect.signature(evaluate).parameters["batch_size"].default  # rsnb's caption batch, the bound's too


def _corpus(n_images: int, size: int, folder: Path) -> Corpus:
    """Synthetic scenes as PNG files with their 5 captions (written once, shared by the columns)."""
    records = []
    for i in range(n_images):
        path = folder / f"{i:05d}.png"
        img, meta = render_scene(i, size)
        if not path.is_file():
            img.save(path, compress_level=1)
        records.append(ImageRecord(filename=path.name, path=path, split="test", captions=meta["captions"]))
    return Corpus(name="bench", root=folder, images=records)


def _model(preset: str, vga: str, vocab: Vocab, size: int) -> AMFMN | MSA:
    torch.manual_seed(0)
    if preset == "msa":  # the msa_synthetic preset's sizes (rsnb/configs/msa_synthetic.yaml)
        return MSA(MSAConfig(backbone="resnet18", pretrained=False, image_size=size, text_encoder="bigru",
                             vocab_size=len(vocab), embed_dim=256, word_dim=128, text_hidden=256, heads=8)).eval()
    kw = dict(vocab_size=len(vocab), image_size=size, pretrained=False, vga=vga)
    cfg = AMFMNConfig.official(**kw) if preset == "official" else AMFMNConfig.paper(**kw)
    return AMFMN(cfg).eval()  # official: skip-thought 620/2400 with random weights (the real shapes)


def _tensors(corpus: Corpus, vocab: Vocab, size: int):
    from rsnb.data.dataset import ImageDataset, TextDataset, collate

    images = torch.stack([ImageDataset(corpus, image_size=size)[i]["image"] for i in range(len(corpus))])
    batch = collate(list(TextDataset(corpus, vocab)))
    return images, batch["tokens"], batch["lengths"]


def released(model, corpus, vocab, size, image_shards: int = 0):
    """The released strategy; ``image_shards`` > 0 runs only that many full image-shard rows (every
    caption shard) and scales the time to all rows: the rows cost the same, the last one excepted."""
    images, tokens, lengths = _tensors(corpus, vocab, size)
    images64 = images.double().numpy()  # the release holds every test image as float64
    n_i, n_t = images64.shape[0], tokens.shape[0]
    rows = range(0, n_i, SHARD)
    run = rows[:image_shards] if 0 < image_shards < len(rows) else rows
    t0, c0 = time.perf_counter(), time.process_time()
    sims = np.zeros((n_i, n_t))
    for i0 in run:  # no no_grad: the release builds the autograd graph each time
        for j0 in range(0, n_t, SHARD):
            img = model.encode_images(torch.from_numpy(images64[i0:i0 + SHARD]).float())
            txt = model.encode_texts(tokens[j0:j0 + SHARD], lengths[j0:j0 + SHARD])
            sims[i0:i0 + SHARD, j0:j0 + SHARD] = model.score(img, txt).detach().double().numpy()
    if len(run) == len(rows):
        return retrieval_metrics(sims, corpus.caption_to_image)
    scale = n_i / (len(run) * SHARD)  # images scored vs all images
    return {"mR": float("nan"), "_seconds": (time.perf_counter() - t0) * scale,
            "_cpu": (time.process_time() - c0) * scale, "_extrapolated": f"{len(run)} of {len(rows)} image shards"}


def rsnb_eval(model, corpus, vocab, size):
    return evaluate(model, corpus, vocab, device="cpu", image_size=size)  # rsnb's defaults: what a user gets


def _cat(chunks: list[dict]) -> dict:
    return {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}


@torch.inference_mode()
def bound(model, corpus, vocab, size):
    images, tokens, lengths = _tensors(corpus, vocab, size)
    t0, c0 = time.perf_counter(), time.process_time()  # the bound excludes decoding: only the network and scoring
    images = images.contiguous(memory_format=torch.channels_last)  # the encoder settings rsnb's evaluate uses
    img = _cat([model.encode_images(images[i:i + IMAGE_BATCH]) for i in range(0, len(images), IMAGE_BATCH)])
    order = torch.argsort(lengths, descending=True, stable=True)  # length-sorted batches, as rsnb encodes them
    tokens, lengths = tokens[order], lengths[order]
    txt = _cat([model.encode_texts(tokens[j:j + TEXT_BATCH, :int(lengths[j])], lengths[j:j + TEXT_BATCH])
                for j in range(0, len(tokens), TEXT_BATCH)])
    back = torch.argsort(order)  # back to corpus order
    txt = {k: v[back] for k, v in txt.items()}
    metrics = retrieval_metrics(score_all(model, img, txt, "cpu"), corpus.caption_to_image)
    metrics["_seconds"], metrics["_cpu"] = time.perf_counter() - t0, time.process_time() - c0
    return metrics


COLUMNS = {"released": released, "rsnb": rsnb_eval, "bound": bound}


def child(a) -> None:
    folder = Path(a.folder)
    corpus = _corpus(SETS[a.set], a.size, folder)
    vocab = Vocab.build(corpus.captions, min_count=1)
    model = _model(a.preset, a.vga, vocab, a.size)
    t0, c0 = time.perf_counter(), time.process_time()
    kw = {"image_shards": a.released_shards} if a.column == "released" else {}
    metrics = COLUMNS[a.column](model, corpus, vocab, a.size, **kw)
    note = metrics.pop("_extrapolated", "")
    seconds = metrics.pop("_seconds", time.perf_counter() - t0)
    cpu = metrics.pop("_cpu", time.process_time() - c0)  # CPU seconds: what to compare on a shared machine
    print(json.dumps({"column": a.column, "seconds": seconds, "cpu_s": cpu, "mR": metrics["mR"], "note": note,
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def add_set_args(p: argparse.ArgumentParser, presets: tuple[str, ...]) -> None:
    """The set, model and image size options (shared with bench_eval_opts.py)."""
    p.add_argument("--set", choices=sorted(SETS), default="rsitmd")
    p.add_argument("--preset", choices=presets, default="paper")
    p.add_argument("--vga", choices=("soft", "fusion", "sim"), default="soft")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--folder", help=argparse.SUPPRESS)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_set_args(p, ("paper", "official", "msa"))
    p.add_argument("--columns", default="released,rsnb,bound")
    p.add_argument("--released-shards", type=int, default=0,
                   help="run only this many 128-image shard rows of the released strategy and scale its time "
                        "to all rows (its peak memory is measured as is); 0: all")
    p.add_argument("--column", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.column:
        return child(a)
    n = SETS[a.set]
    if a.preset == "msa" and "released" in a.columns.split(","):
        sys.exit("the released column is AMFMN's sharded strategy: use --columns rsnb,bound with --preset msa")
    model = "MSA (msa_synthetic)" if a.preset == "msa" else f"AMFMN {a.preset} preset, vga={a.vga}"
    print(f"{a.set}: {n} images x {5 * n} captions, {a.size} px, {model}, "
          f"shard {SHARD}, torch threads {torch.get_num_threads()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for col in a.columns.split(","):
            cmd = [sys.executable, __file__, "--set", a.set, "--preset", a.preset, "--vga", a.vga,
                   "--size", str(a.size), "--column", col, "--folder", tmp, "--released-shards", str(a.released_shards)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"column {col} failed:\n{out.stderr[-3000:]}")
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    t_rsnb = next((r["seconds"] for r in rows if r["column"] == "rsnb"), None)
    m_rsnb = next((r["peak_mb"] for r in rows if r["column"] == "rsnb"), None)
    c_rsnb = next((r["cpu_s"] for r in rows if r["column"] == "rsnb"), None)
    print(f"{'column':<10}{'seconds':>10}{'CPU s':>8}{'peak MB':>10}{'time / rsnb':>13}{'CPU / rsnb':>12}"
          f"{'mem / rsnb':>12}{'mR':>8}")
    for r in rows:
        rt = f"{r['seconds'] / t_rsnb:.2f}x" if t_rsnb else "-"
        rc = f"{r['cpu_s'] / c_rsnb:.2f}x" if c_rsnb else "-"
        rm = f"{r['peak_mb'] / m_rsnb:.2f}x" if m_rsnb else "-"
        print(f"{r['column']:<10}{r['seconds']:>10.1f}{r['cpu_s']:>8.1f}{r['peak_mb']:>10.0f}{rt:>13}{rc:>12}{rm:>12}"
              f"{r['mR']:>8.2f}" + (f"  (time extrapolated from {r['note']})" if r.get("note") else ""))


if __name__ == "__main__":
    main()
