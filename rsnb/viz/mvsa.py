"""Figures of MVSA's internals (notebook 02): gate and mask maps over the scene, gate mass per category."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from rsnb.analysis.mvsa_probe import CATEGORIES
from rsnb.viz.core import denormalize
from rsnb.viz.data import SCALE_COLOURS, draw_objects

#: colour of each gate-mass category (rsnb.analysis.mvsa_probe.CATEGORIES): the scale bands, then clutter and background
CATEGORY_COLOURS = {**SCALE_COLOURS, "clutter": "#7f7f7f", "background": "#2ca02c"}


def scale_legend(fig, **kw):
    """Add a one-line figure legend for boxes drawn by :func:`draw_objects` (band colours, dashed = clutter)."""
    handles = [Line2D([], [], color=c, lw=2, label=f"{b} (mentioned)") for b, c in SCALE_COLOURS.items()]
    handles.append(Line2D([], [], color="0.3", lw=1.5, ls="--", label="dashed: unmentioned = clutter"))
    kw = {"loc": "upper center", "bbox_to_anchor": (0.5, 0.0), "ncol": len(handles), "fontsize": 8,
          "frameon": False, **kw}
    fig.legend(handles=handles, **kw)
    return fig


def map_panels(images, rows: Sequence[Mapping[str, object]], objects=None, source_size: int | None = None,
               size: float = 2.3, cmap: str = "jet", alpha: float = 0.55, interpolation: str = "nearest"):
    """Grid of spatial maps over their images: one row per image, the image first, then each map.

    Args:
        images: N normalised (3, H, W) tensors (or HxWx3 arrays).
        rows: N dicts ``{title: (h, w) map}``, the same titles in every row.
        objects: optional N object lists drawn on the first panel (:func:`draw_objects`, no legend;
            add one with :func:`scale_legend`).
        source_size: side the boxes refer to (needed with ``objects``).
        size: panel side in inches.
        cmap, alpha: colour map and opacity of the maps.
        interpolation: ``"nearest"`` shows the map's grid cells, ``"bilinear"`` smooths them.

    Returns:
        The Figure. Each map is min-max scaled on its own; the range is printed under its title.
    """
    n, titles = len(images), list(rows[0])
    fig, axes = plt.subplots(n, len(titles) + 1, figsize=(size * (len(titles) + 1), size * n + 0.3), squeeze=False)
    for r in range(n):
        img = denormalize(images[r]) if hasattr(images[r], "detach") else np.asarray(images[r])
        if objects is not None:
            k = img.shape[0] / source_size
            scaled = [dict(o, box=[v * k for v in o["box"]]) for o in objects[r]]
            draw_objects(axes[r, 0], img, scaled, linewidth=1.0, legend=False)
        else:
            axes[r, 0].imshow(img)
            axes[r, 0].axis("off")
        for c, title in enumerate(titles, start=1):
            heat = rows[r][title]
            heat = heat.detach().cpu().numpy() if hasattr(heat, "detach") else np.asarray(heat)
            heat = np.squeeze(heat)
            lo, hi = float(heat.min()), float(heat.max())
            ax = axes[r, c]
            ax.imshow(img)
            ax.imshow((heat - lo) / (hi - lo + 1e-12), cmap=cmap, alpha=alpha, vmin=0, vmax=1,
                      extent=(0, img.shape[1], img.shape[0], 0), interpolation=interpolation)
            ax.axis("off")
            ax.set_title(f"{title}\n[{lo:.3g}, {hi:.3g}]" if r == 0 else f"[{lo:.3g}, {hi:.3g}]", fontsize=8)
    axes[0, 0].set_title("image", fontsize=8)
    fig.tight_layout()
    return fig


def plot_mass_ratios(tables: Mapping[str, Mapping], categories=None, ax=None, title: str | None = None,
                     colours: Sequence[str] | None = None):
    """Grouped bars of gate-mass ratios (``rsnb.analysis.mvsa_probe.gate_mass_table``) per category, drawn from 1.

    Bars start at the no-preference line (ratio 1), so they point up where the map prefers a category
    and down where it avoids it.

    Args:
        tables: ``{label: table}``, one bar per label within each category.
        categories: which categories to show (default: those present in the first table).
        ax: axis to draw on (default: a new figure).
        title: axis title.
        colours: one bar colour per table (default: the matplotlib cycle).

    Returns:
        The Figure.
    """
    labels = list(tables)
    first = tables[labels[0]]
    cats = list(categories or [c for c in CATEGORIES if first[c].get("images", 1) > 0])
    if ax is None:
        _, ax = plt.subplots(figsize=(1.3 * len(cats) + 2, 3.2))
    width = 0.8 / len(labels)
    x = np.arange(len(cats))
    for k, label in enumerate(labels):
        ys = np.array([tables[label][c]["ratio"] for c in cats])
        ax.bar(x + (k - (len(labels) - 1) / 2) * width, ys - 1.0, width, bottom=1.0, label=label,
               color=None if colours is None else colours[k])
    ax.axhline(1.0, color="k", linestyle="--", linewidth=0.8)
    ax.set_xticks(x, cats)
    ax.set_ylabel("mass share / area share")
    ax.set_title(title or "where the map puts its weight (1 = no preference)", fontsize=10)
    ax.legend(fontsize=8)
    return ax.figure


def plot_ratio_history(epochs: Sequence[int], tables: Sequence[Mapping], categories=None, ax=None,
                       title: str | None = None):
    """Gate-mass ratio per category against training epoch (epoch 0 = before training).

    Args:
        epochs: the epoch of each table.
        tables: ``rsnb.analysis.mvsa_probe.gate_mass_table`` results, one per epoch.
        categories: which categories to draw (default: those present).
        ax: axis to draw on (default: a new figure).
        title: axis title.

    Returns:
        The Figure.
    """
    cats = list(categories or [c for c in CATEGORIES if tables[0][c].get("images", 1) > 0])
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 3.2))
    for c in cats:
        ax.plot(epochs, [t[c]["ratio"] for t in tables], marker="o", color=CATEGORY_COLOURS[c], label=c)
    ax.axhline(1.0, color="k", linestyle="--", linewidth=0.8)
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.set_xlabel("epoch (0 = fresh model)")
    ax.set_ylabel("mass share / area share")
    ax.set_title(title or "gate preference during training", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return ax.figure
