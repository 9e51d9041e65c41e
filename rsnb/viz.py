"""Plotting helpers shared by the notebooks.

Every figure a notebook keeps goes through :func:`save_figure`, which writes
``figures/NAME.png`` (and ``figures/NAME.csv`` with the plotted numbers when given). In quick
mode (``RSNB_QUICK=1``) figures go to ``figures/quick/`` instead, so test runs never overwrite
the figures made with the paper settings.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from rsnb.config import is_quick

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])


def figures_dir() -> Path:
    """Folder that figures are written to (``RSNB_FIGURES`` overrides the repo's ``figures/``)."""
    override = os.environ.get("RSNB_FIGURES")
    base = Path(override) if override else Path(__file__).resolve().parents[1] / "figures"
    out = base / "quick" if is_quick() else base
    out.mkdir(parents=True, exist_ok=True)
    return out


def save_figure(fig, name: str, data: Mapping[str, Sequence] | None = None, dpi: int = 120) -> Path:
    """Save ``fig`` as ``figures/NAME.png`` and, if given, the plotted numbers as ``NAME.csv``.

    Args:
        fig: a matplotlib Figure.
        name: file stem, e.g. ``"01_caption_lengths"``.
        data: optional columns (equal length) written as CSV beside the PNG.
        dpi: resolution of the PNG.

    Returns:
        Path of the PNG.
    """
    out = figures_dir()
    path = out / f"{name}.png"
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    if data:
        cols = list(data)
        rows = zip(*(data[c] for c in cols), strict=True)
        with open(out / f"{name}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(cols)
            writer.writerows(rows)
    return path


def denormalize(image) -> np.ndarray:
    """Turn a normalised (3, H, W) tensor/array back into an (H, W, 3) float image in [0, 1]."""
    arr = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    arr = arr.transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN
    return np.clip(arr, 0.0, 1.0)


def image_grid(images, titles=None, ncols: int = 4, size: float = 3.0):
    """Show a list of images (PIL, HxWx3 arrays or normalised tensors) in a grid; return the Figure."""
    n = len(images)
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        img = images[k]
        if hasattr(img, "detach") or (isinstance(img, np.ndarray) and img.ndim == 3 and img.shape[0] == 3):
            img = denormalize(img)
        ax.imshow(img)
        if titles is not None:
            ax.set_title(titles[k], fontsize=8, wrap=True)
    fig.tight_layout()
    return fig


def overlay_map(ax, image, heat, alpha: float = 0.5, cmap: str = "jet"):
    """Draw ``heat`` (h, w) upsampled over ``image`` on ``ax`` (used for MVSA gates/masks)."""
    img = denormalize(image) if hasattr(image, "detach") else np.asarray(image)
    heat = heat.detach().cpu().numpy() if hasattr(heat, "detach") else np.asarray(heat)
    ax.imshow(img)
    h, w = img.shape[:2]
    ax.imshow(heat, cmap=cmap, alpha=alpha, extent=(0, w, h, 0), interpolation="bilinear")
    ax.axis("off")
    return ax


def plot_history(history: Sequence[Mapping], keys=("loss", "lr", "val_mR"), labels=None):
    """Plot per-epoch training history rows (dicts with an ``epoch`` key) as one panel per key."""
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3), squeeze=False)
    runs = history if history and isinstance(history[0], (list, tuple)) else [history]
    labels = labels or [None] * len(runs)
    for ax, key in zip(axes.flat, keys):
        for run, label in zip(runs, labels):
            xs = [r["epoch"] for r in run if key in r]
            ys = [r[key] for r in run if key in r]
            ax.plot(xs, ys, marker="o", label=label)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        if any(labels):
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
