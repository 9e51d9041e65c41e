"""Plant known problems into a synthetic dataset folder, with the ground truth recorded.

:func:`plant_problems` rewrites a folder made by :func:`rsnb.data.synthetic.generate` (or any
Karpathy-json folder with its images) so that an audit can be scored against known answers:

* **near-duplicates**: a ``target`` image (by default in the test split) is replaced by a near
  copy of a ``source`` image (by default from the training split, or from another dataset
  folder) and takes over its captions, keywords and class, as a leaked copy would. The copy is
  one of :data:`COPY_KINDS`: JPEG re-encoding, a resize to another resolution, a 90/180/270
  degree rotation, a mirror, a crop of a few pixels per side, a colour jitter, or blur + noise
  (a second acquisition; the generator's scenes depend on the canvas size, so the very same
  scene cannot be re-rendered at another resolution).
* **mismatched pairs**: the captions (and keywords) of two images of different classes are
  swapped, so each image carries five captions of the other.

The ground truth goes to ``planted.json`` next to ``dataset.json`` and under
``dataset.json["meta"]["planted"]``. ``python -m rsnb synth --plant-duplicates N --plant-swaps M``
does the same after generating.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from rsnb.errors import ConfigError

COPY_KINDS = ("jpeg", "resize", "rot90", "mirror", "crop", "jitter", "sensor")


def near_copy(img: Image.Image, kind: str, rng: np.random.Generator) -> Image.Image:
    """A near-duplicate of ``img`` made by one of :data:`COPY_KINDS` (random strength from ``rng``)."""
    img = img.convert("RGB")
    w, h = img.size
    if kind == "jpeg":
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=int(rng.integers(30, 61)))
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    if kind == "resize":
        f = float(rng.uniform(0.6, 0.85))
        return img.resize((max(8, round(w * f)), max(8, round(h * f))), Image.BILINEAR)
    if kind == "rot90":
        return img.transpose((Image.ROTATE_90, Image.ROTATE_180, Image.ROTATE_270)[int(rng.integers(3))])
    if kind == "mirror":
        return img.transpose((Image.FLIP_LEFT_RIGHT, Image.FLIP_TOP_BOTTOM)[int(rng.integers(2))])
    if kind == "crop":
        c = max(1, round(min(w, h) * float(rng.uniform(0.015, 0.035))))  # a few pixels per side
        return img.crop((c, c, w - c, h - c)).resize((w, h), Image.BICUBIC)
    if kind == "jitter":
        for enh in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            img = enh(img).enhance(float(rng.uniform(0.8, 1.2)))
        return img
    if kind == "sensor":
        a = np.asarray(img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.6, 1.2)))), np.float32)
        a = a + rng.normal(0, 6, a.shape)
        return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    raise ValueError(f"copy kind {kind!r}: expected one of {', '.join(COPY_KINDS)}")


def _load(folder: Path) -> tuple[Path, dict]:
    path = folder / "dataset.json" if folder.is_dir() else folder
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no dataset.json to plant problems into")
    return path, json.loads(path.read_text())


def _image_path(json_path: Path, img: dict) -> Path:
    base = json_path.parent / img["filepath"] if img.get("filepath") else json_path.parent / "images"
    return base / img["filename"]


def plant_problems(folder, duplicates: int = 0, swaps: int = 0, source=None, kinds=COPY_KINDS,
                   target_split: str = "test", source_split: str | None = "train", swap_split: str = "test",
                   seed: int = 0) -> dict:
    """Plant near-duplicate images and swapped captions into a dataset folder (in place).

    Args:
        folder: dataset folder (``dataset.json`` + ``images/``) to modify.
        duplicates: number of target images replaced by near copies.
        swaps: number of image pairs whose captions are exchanged.
        source: another dataset folder to copy from (cross-dataset duplicates); default ``folder``.
        kinds: copy kinds used in turn (see :data:`COPY_KINDS`).
        target_split: split of the replaced images (``None``: any split).
        source_split: split the copies come from (``None``: any split).
        swap_split: split of the swapped pairs (``None``: any split).
        seed: random seed.

    Returns:
        The ground truth ``{"duplicates": [{"target", "target_split", "source", "source_split",
        "source_dataset", "kind"}], "swaps": [{"a", "b", "split"}]}``, also written to
        ``planted.json`` and ``dataset.json["meta"]["planted"]``.
    """
    kinds = tuple(kinds)
    for k in kinds:
        if k not in COPY_KINDS:
            raise ValueError(f"copy kind {k!r}: expected one of {', '.join(COPY_KINDS)}")
    rng = np.random.default_rng([int(seed), 0x504C41])
    path, doc = _load(Path(folder))
    images = doc["images"]
    src_path, src_doc = (path, doc) if source is None else _load(Path(source))
    same = source is None
    src_images = src_doc["images"]

    def pool(imgs, split, exclude=()):
        return [i for i, r in enumerate(imgs) if (split is None or r["split"] == split) and i not in exclude]

    targets = pool(images, target_split)
    sources = pool(src_images, source_split, exclude=set(targets) if same else ())
    if duplicates > min(len(targets), len(sources)):
        raise ConfigError(f"plant_problems: {duplicates} duplicates asked, but only {len(targets)} target and "
                         f"{len(sources)} source images are available")
    truth: dict = {"duplicates": [], "swaps": []}
    chosen_t = rng.choice(targets, int(duplicates), replace=False).tolist() if duplicates else []
    chosen_s = rng.choice(sources, int(duplicates), replace=False).tolist() if duplicates else []
    for k, (t, s) in enumerate(zip(chosen_t, chosen_s)):
        kind = kinds[k % len(kinds)]
        tgt, src = images[t], src_images[s]
        with Image.open(_image_path(src_path, src)) as im:
            copy = near_copy(im, kind, rng)
        copy.save(_image_path(path, tgt), format="PNG")
        for key in ("sentences", "class", "keywords", "objects"):
            if key in src:
                tgt[key] = json.loads(json.dumps(src[key]))
        for j, sent in enumerate(tgt.get("sentences", [])):
            if isinstance(sent, dict):
                sent.update(imgid=tgt.get("imgid", t), sentid=5 * int(tgt.get("imgid", t)) + j)
        truth["duplicates"].append({"target": tgt["filename"], "target_split": tgt["split"],
                                    "source": src["filename"], "source_split": src["split"],
                                    "source_dataset": "self" if same else str(src_doc.get("dataset", src_path.parent.name)),
                                    "kind": kind})
    planted = set(chosen_t)
    candidates = [i for i in pool(images, swap_split) if i not in planted]
    used: set[int] = set()
    for _ in range(int(swaps)):
        free = [i for i in candidates if i not in used]
        if len(free) < 2:
            raise ConfigError(f"plant_problems: not enough images in split {swap_split!r} for {swaps} swaps")
        a = int(rng.choice(free))
        others = [i for i in free if i != a and images[i].get("class") != images[a].get("class")] or \
            [i for i in free if i != a]
        b = int(rng.choice(others))
        used.update((a, b))
        for key in ("sentences", "keywords"):
            images[a][key], images[b][key] = images[b].get(key, []), images[a].get(key, [])
        for r in (images[a], images[b]):
            for j, sent in enumerate(r.get("sentences", [])):
                if isinstance(sent, dict):
                    sent.update(imgid=r.get("imgid"), sentid=5 * int(r.get("imgid", 0)) + j)
        truth["swaps"].append({"a": images[a]["filename"], "b": images[b]["filename"], "split": images[a]["split"]})
    doc.setdefault("meta", {})["planted"] = truth
    path.write_text(json.dumps(doc))
    (path.parent / "planted.json").write_text(json.dumps(truth, indent=2))
    return truth
