"""Figure plumbing shared by every notebook: :func:`save_figure` (``figures/NAME.png`` + CSV, quick runs
in ``figures/quick/``), image grids and overlays, training curves, heat maps and grouped bars."""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch

from rsnb.config import is_quick
from rsnb.data import dataset


def figures_dir() -> Path:
    """Folder that figures are written to: ``RSNB_FIGURES``, else the checkout's ``figures/``
    (``./figures`` when rsnb is installed as a package)."""
    override = os.environ.get("RSNB_FIGURES")
    repo = Path(__file__).resolve().parents[2]  # rsnb/viz/core.py -> the checkout
    default = repo / "figures" if (repo / "pyproject.toml").is_file() else Path.cwd() / "figures"
    base = Path(override) if override else default  # the repo's figures/ in a checkout, else ./figures
    out = base / "quick" if is_quick() else base
    out.mkdir(parents=True, exist_ok=True)
    return out


def save_figure(fig, name: str, data: Mapping[str, Sequence] | None = None, dpi: int = 120,
                out_dir: str | Path | None = None, pdf: bool = False) -> Path:
    """Save ``fig`` as ``figures/NAME.png`` and, if given, the plotted numbers as ``NAME.csv``.

    Args:
        fig: a matplotlib Figure.
        name: file stem, e.g. ``"01_caption_lengths"``.
        data: optional columns (equal length) written as CSV beside the PNG.
        dpi: resolution of the PNG.
        out_dir: folder instead of :func:`figures_dir` (created if needed).
        pdf: also write ``NAME.pdf``.

    Returns:
        Path of the PNG.
    """
    out = figures_dir() if out_dir is None else Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    if pdf:
        fig.savefig(path.with_suffix(".pdf"), bbox_inches="tight")
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
    t = image.detach().cpu() if hasattr(image, "detach") else torch.as_tensor(np.asarray(image))
    return dataset.denormalize(t.float()).permute(1, 2, 0).numpy()


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


def plot_matrix(matrix, labels: Sequence[str], title: str = "", cmap: str = "viridis", colorbar_label: str = ""):
    """Square heatmap with ``labels`` on both axes (e.g. class-to-class similarity); returns the Figure.

    Drawn with seaborn: square cells with thin separators, values written in the cells when the matrix
    is small enough to read them (up to 12 x 12).
    """
    matrix = np.asarray(matrix, dtype=float)
    n = len(labels)
    side = min(max(4.0, 0.32 * n + 2.0), 13.0)
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    sns.heatmap(matrix, ax=ax, cmap=cmap, square=True, linewidths=0.3, linecolor="white",
                annot=n <= 12, fmt=".2f", annot_kws={"fontsize": 7},
                xticklabels=list(labels), yticklabels=list(labels), cbar_kws={"label": colorbar_label, "shrink": 0.8})
    ax.tick_params(axis="x", labelrotation=90, labelsize=8)
    ax.tick_params(axis="y", labelrotation=0, labelsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_grouped_bars(categories, series: Mapping[str, Sequence[float]], ylabel: str = "", title: str = "",
                      rotate: int = 0, ax=None):
    """Bars of several series side by side for each category (e.g. R@K of ours vs the paper); return the Figure."""
    if ax is None:
        _, ax = plt.subplots(figsize=(max(5.0, 0.55 * len(categories) * max(len(series), 2)), 3.2))
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(categories))
    for k, (label, values) in enumerate(series.items()):
        ax.bar(x + (k - (len(series) - 1) / 2) * width, values, width, label=label)
    ax.set_xticks(x, categories, rotation=rotate, ha="right" if rotate else "center", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if len(series) > 1:
        ax.legend(fontsize=7)
    ax.figure.tight_layout()
    return ax.figure
