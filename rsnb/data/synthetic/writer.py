"""Rendering: :func:`render_scene` (one image and its metadata) and :func:`generate` (a dataset folder,
``dataset.json`` + ``images/``), with the ``rsnb synth`` command line."""

from __future__ import annotations

import argparse
import json
import os
import re
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops
from tqdm import tqdm

from rsnb.data.plant import plant_problems
from rsnb.data.synthetic.captions import Captioner, keywords_of
from rsnb.data.synthetic.kinds import GENERATOR, KINDS, SCENE_CLASSES, SPLITS
from rsnb.data.synthetic.layouts import LAYOUTS
from rsnb.data.synthetic.scene import DIHEDRAL, Scene


def render_scene(rng_or_seed, size: int = 256, cls: str | None = None) -> tuple[Image.Image, dict]:
    """Draw one synthetic aerial scene and describe it.

    Args:
        rng_or_seed: a ``numpy.random.Generator`` or an int seed (same seed -> identical output).
        size: side of the square RGB canvas in pixels (>= 32).
        cls: scene class from :data:`SCENE_CLASSES`; drawn at random when None.

    Returns:
        ``(image, meta)``: a ``size x size`` RGB PIL image and a dict with ``class``, ``objects``
        (each ``{"name", "scale", "box": [x0, y0, x1, y1] (pixel edges, x1/y1 exclusive), "colour",
        "mentioned"}``), ``captions`` (5 distinct strings) and ``keywords`` (1-5 phrases).
    """
    rng = rng_or_seed if isinstance(rng_or_seed, np.random.Generator) else np.random.default_rng(rng_or_seed)
    if int(size) < 32:
        raise ValueError(f"render_scene: size must be >= 32 px, got {size}")
    if cls is None:
        cls = SCENE_CLASSES[int(rng.integers(len(SCENE_CLASSES)))]
    if cls not in LAYOUTS:
        raise ValueError(f"render_scene: unknown scene class {cls!r}; expected one of {', '.join(SCENE_CLASSES)}")
    sc = Scene(rng, int(size))
    sc.clutter(LAYOUTS[cls](sc))
    op, fmap = DIHEDRAL[int(rng.integers(8))]  # random flip/rotation: same class, new layout
    img = sc.img.transpose(op) if op is not None else sc.img
    grain = Image.fromarray(rng.integers(0, 11, (sc.S, sc.S), dtype=np.uint8))  # sensor noise, over objects too
    img = ImageChops.add(img, Image.merge("RGB", [grain] * 3), offset=-5)
    for o in sc.objects:
        (a, b), (c, d) = fmap(*o["box"][:2], sc.S), fmap(*o["box"][2:], sc.S)
        o["box"] = [min(a, c), min(b, d), max(a, c), max(b, d)]
    cap = Captioner(sc, cls)
    captions = cap.captions()
    objects = [{"name": g["kind"], "scale": KINDS[g["kind"]].band, "box": [int(v) for v in sc.objects[j]["box"]],
                "colour": g["colour"], "mentioned": gi in cap.used}
               for gi, g in enumerate(sc.groups) for j in g["idx"]]
    return img, {"class": cls, "objects": objects, "captions": captions,
                 "keywords": keywords_of(cls, sc, cap.used, rng)}


def _tokens(raw: str) -> list[str]:
    return re.findall(r"[a-z]+", raw.lower())


def _plan(n: int, seed: int, splits) -> tuple[list[str], list[str]]:
    """Balanced class per image and a split stratified by class (largest-deficit interleave)."""
    rng = np.random.default_rng([seed, 0xFFFFFFFF, 7])
    classes = [SCENE_CLASSES[int(j) % len(SCENE_CLASSES)] for j in rng.permutation(n)]
    keys = rng.random(n)
    order = sorted(range(n), key=lambda i: (classes[i], keys[i]))
    out, counts = [""] * n, [0, 0, 0]
    for pos, i in enumerate(order):
        s = max(range(3), key=lambda k: (pos + 1) * splits[k] - counts[k])
        counts[s] += 1
        out[i] = SPLITS[s]
    return classes, out


def _make_one(i: int, cls: str, seed: int, size: int, img_dir: str) -> dict:
    img, meta = render_scene(np.random.default_rng([seed, i]), size, cls)
    img.save(os.path.join(img_dir, f"{i:06d}.png"), format="PNG", compress_level=1)
    return meta


def generate(out_dir, n_images: int, size: int = 256, seed: int = 0, splits=(0.8, 0.1, 0.1),
             workers: int = 1, progress: bool = True) -> Path:
    """Render ``n_images`` scenes into ``out_dir/images/NNNNNN.png`` plus ``out_dir/dataset.json``.

    The json is Karpathy style (``images[*].filename/imgid/split/sentences[*].raw|tokens``) plus
    ``class``, ``keywords`` and ``objects`` per image and ``meta`` (size, seed, generator). Classes are
    balanced; the split is stratified by class. Output is identical for any ``workers``.

    Args:
        out_dir: folder to create or overwrite.
        n_images: number of images (>= 1).
        size: image side in pixels (>= 32).
        seed: dataset seed; image ``i`` uses ``np.random.default_rng([seed, i])``.
        splits: train/val/test fractions (non-negative, summing to 1).
        workers: processes rendering images in parallel (1: in this process).
        progress: show a tqdm bar.

    Returns:
        Path to the written ``dataset.json``.
    """
    if int(n_images) < 1:
        raise ValueError(f"generate: n_images must be >= 1, got {n_images}")
    if int(size) < 32:
        raise ValueError(f"generate: size must be >= 32 px, got {size}")
    splits = tuple(float(f) for f in splits)
    if len(splits) != 3 or min(splits) < 0 or abs(sum(splits) - 1) > 1e-6:
        raise ValueError(f"generate: splits must be 3 non-negative fractions summing to 1, got {splits}")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    n, classes_split = int(n_images), _plan(int(n_images), int(seed), splits)
    classes, split_of = classes_split
    job = partial(_make_one, seed=int(seed), size=int(size), img_dir=str(out / "images"))
    if workers > 1:
        with ProcessPoolExecutor(int(workers)) as ex:
            metas = list(tqdm(ex.map(job, range(n), classes, chunksize=8), total=n, disable=not progress, desc="synth"))
    else:
        metas = [job(i, c) for i, c in tqdm(enumerate(classes), total=n, disable=not progress, desc="synth")]
    images = []
    for i, m in enumerate(metas):
        sents = [{"raw": c, "tokens": _tokens(c), "sentid": 5 * i + k, "imgid": i} for k, c in enumerate(m["captions"])]
        images.append({"filename": f"{i:06d}.png", "imgid": i, "split": split_of[i], "class": m["class"],
                       "sentences": sents, "sentids": [s["sentid"] for s in sents], "keywords": m["keywords"],
                       "objects": m["objects"]})
    doc = {"dataset": "synthetic", "images": images, "meta": {"size": int(size), "seed": int(seed), "generator": GENERATOR}}
    path, tmp = out / "dataset.json", out / "dataset.json.tmp"
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)
    return path


def build_parser() -> argparse.ArgumentParser:
    """Parser of ``rsnb synth`` (every option has a help text)."""
    p = argparse.ArgumentParser(prog="rsnb synth", description="Write a synthetic aerial image-caption dataset.")
    p.add_argument("--out", required=True, help="output folder (dataset.json + images/)")
    p.add_argument("--images", type=int, default=1000, help="number of images (default 1000)")
    p.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    p.add_argument("--splits", default="0.8,0.1,0.1", help="train,val,test fractions (default 0.8,0.1,0.1)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--plant-duplicates", type=int, default=0,
                   help="replace N test images by near copies of training images (rsnb.data.plant; default 0)")
    p.add_argument("--plant-swaps", type=int, default=0,
                   help="swap the captions of N pairs of test images of different classes (default 0)")
    return p


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m rsnb synth --out DIR --images N --size S --seed K [--workers W]``."""
    p = build_parser()
    a = p.parse_args(argv)
    try:
        splits = tuple(float(v) for v in a.splits.split(","))
    except ValueError:
        p.error(f"--splits: expected three comma-separated numbers, got {a.splits!r}")
    path = generate(a.out, a.images, a.size, a.seed, splits, a.workers, not a.no_progress)
    print(f"wrote {a.images} images to {path.parent} ({path})")
    if a.plant_duplicates or a.plant_swaps:
        truth = plant_problems(a.out, a.plant_duplicates, a.plant_swaps, seed=a.seed)
        print(f"planted {len(truth['duplicates'])} near-duplicates and {len(truth['swaps'])} caption swaps "
              f"(ground truth: {path.parent / 'planted.json'})")
    return 0
