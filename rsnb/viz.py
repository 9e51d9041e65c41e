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


# ------------------------------------------------------------------ data exploration (notebook 01)
#: colour of each synthetic scale band in figures
SCALE_COLOURS = {"small": "#d62728", "medium": "#ff9f1c", "large": "#1f77b4"}


def draw_objects(ax, image, objects, colours: Mapping[str, str] | None = None, linewidth: float = 1.5,
                 legend: bool = True):
    """Draw ``image`` with its ground-truth boxes: colour = scale band, dashed = no caption mentions it.

    Args:
        ax: matplotlib Axes.
        image: PIL image or (H, W, 3) array.
        objects: synthetic ``meta["objects"]`` entries (``box`` [x0, y0, x1, y1] in pixel edges with
            x1/y1 exclusive, ``scale``, ``mentioned``).
        colours: band -> colour (default :data:`SCALE_COLOURS`).
        linewidth: box line width.
        legend: add a legend (bands present, solid/dashed) to the right of the image.

    Returns:
        ``ax``.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    colours = dict(SCALE_COLOURS if colours is None else colours)
    ax.imshow(image)
    for o in objects:
        x0, y0, x1, y1 = o["box"]
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, linewidth=linewidth,
                               edgecolor=colours.get(o["scale"], "white"),
                               linestyle="-" if o.get("mentioned", True) else "--"))
    ax.axis("off")
    if legend:
        bands = [b for b in colours if any(o["scale"] == b for o in objects)]
        handles = [Line2D([], [], color=colours[b], lw=2, label=f"{b} objects") for b in bands]
        handles += [Line2D([], [], color="0.3", lw=1.5, label="mentioned in a caption"),
                    Line2D([], [], color="0.3", lw=1.5, ls="--", label="not mentioned (redundant)")]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    return ax


def plot_scale_bands(rows: Sequence[Mapping], colours: Mapping[str, str] | None = None):
    """Synthetic object ground truth: object size per scale band, and the share captions mention.

    Args:
        rows: :func:`rsnb.data.stats.object_scales` rows (``scale``, ``side_frac``, ``mentioned``).
        colours: band -> colour (default :data:`SCALE_COLOURS`).

    Returns:
        A Figure with two panels: histogram of longer box side / image side (log x), and one
        100 % bar per band split into mentioned (solid) and not mentioned (hatched).
    """
    colours = dict(SCALE_COLOURS if colours is None else colours)
    bands = [b for b in colours if any(r["scale"] == b for r in rows)]
    sides = [r["side_frac"] for r in rows if r["side_frac"]]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [1.6, 1]})
    bins = np.logspace(np.log10(min(sides)) - 0.05, 0.02, 36) if sides else 10
    for b in bands:
        vals = [r["side_frac"] for r in rows if r["scale"] == b and r["side_frac"]]
        ax1.hist(vals, bins=bins, color=colours[b], alpha=0.65, label=f"{b} ({len(vals):,} objects)")
    ax1.set_xscale("log")
    ax1.set_xlabel("longer box side / image side")
    ax1.set_ylabel("objects")
    ax1.set_title("object size by scale band")
    ax1.legend(fontsize=8)
    for k, b in enumerate(bands):
        sel = [r["mentioned"] for r in rows if r["scale"] == b]
        share = float(np.mean(sel))
        ax2.bar(k, share, color=colours[b])
        ax2.bar(k, 1 - share, bottom=share, color="white", edgecolor=colours[b], hatch="//")
        ax2.text(k, share / 2, f"{100 * share:.0f} %", ha="center", va="center", fontsize=9, color="white")
        ax2.text(k, 1.02, f"n={len(sel):,}", ha="center", va="bottom", fontsize=8)
    ax2.set_xticks(range(len(bands)), bands)
    ax2.set_ylim(0, 1.12)
    ax2.set_ylabel("share of objects")
    ax2.set_title("mentioned (solid) vs not mentioned (hatched)")
    fig.tight_layout()
    return fig


def plot_text_stats(lengths: Mapping[str, Sequence[int]], freqs: Mapping[str, Sequence[tuple[str, int]]]):
    """Caption length distribution and word rank-frequency (Zipf) curve, one line per corpus.

    Args:
        lengths: corpus name -> words per caption (:func:`rsnb.data.stats.caption_lengths`).
        freqs: corpus name -> ``(word, count)`` sorted by count (:func:`rsnb.data.stats.word_frequencies`).

    Returns:
        A Figure with two panels.
    """
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
    for name, lens in lengths.items():
        lens = np.asarray(lens)
        bins = np.arange(0, lens.max() + 2) - 0.5
        ax1.hist(lens, bins=bins, density=True, histtype="step", linewidth=1.8,
                 label=f"{name} (mean {lens.mean():.1f})")
    ax1.set_xlabel("words per caption")
    ax1.set_ylabel("share of captions")
    ax1.set_title("caption length")
    ax1.legend(fontsize=8)
    for name, f in freqs.items():
        counts = np.array([c for _, c in f], dtype=float)
        ax2.loglog(np.arange(1, len(counts) + 1), counts / counts.sum(), linewidth=1.8,
                   label=f"{name} ({len(counts):,} distinct words)")
    ax2.set_xlabel("word rank")
    ax2.set_ylabel("share of word tokens")
    ax2.set_title("word frequency by rank (Zipf plot)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_top_words(freqs: Mapping[str, Sequence[tuple[str, int]]], top: int = 20, skip=frozenset()):
    """Most frequent words of each corpus as horizontal bars (share of all its word tokens, %).

    Args:
        freqs: corpus name -> ``(word, count)`` sorted by count (the full list: shares are
            relative to its total).
        top: bars per panel.
        skip: words left out of the bars (e.g. stop-words); they still count in the total.

    Returns:
        A Figure with one panel per corpus.
    """
    fig, axes = plt.subplots(1, len(freqs), figsize=(4.2 * len(freqs), 0.22 * top + 1.2), squeeze=False)
    for ax, (name, f) in zip(axes.flat, freqs.items()):
        total = sum(c for _, c in f)
        kept = [(w, c) for w, c in f if w not in skip][:top]
        ax.barh(range(len(kept)), [100 * c / total for _, c in kept], color="#4c72b0")
        ax.set_yticks(range(len(kept)), [w for w, _ in kept], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("% of word tokens")
        ax.set_title(name)
    fig.tight_layout()
    return fig


def plot_similarity_groups(groups: Mapping[str, Mapping[str, Sequence[float]]], bins: int = 30):
    """Histograms of caption-pair cosine similarity by relation, one panel per corpus.

    Pairs that share no content word (cosine 0) would dwarf everything else, so they are not drawn;
    the legend gives their share and each group's mean over all pairs.

    Args:
        groups: corpus name -> :func:`rsnb.data.stats.caption_similarity` output
            (``same_image``, ``same_class``, ``other_class`` arrays; empty ones are skipped).
        bins: histogram bins over (0, 1].

    Returns:
        A Figure; bar heights are shares of all pairs of the group, so a curve's area is the share
        of its pairs with a shared word.
    """
    styles = {"same_image": ("same image", "#2ca02c"), "same_class": ("same class, other image", "#ff7f0e"),
              "other_class": ("other class", "#7f7f7f")}
    fig, axes = plt.subplots(1, len(groups), figsize=(5.2 * len(groups), 3.6), squeeze=False)
    edges = np.linspace(0, 1, bins + 1)
    for ax, (name, g) in zip(axes.flat, groups.items()):
        no_classes = len(g.get("other_class", [])) == 0  # a corpus without class labels
        for key, (label, colour) in styles.items():
            vals = np.asarray(g.get(key, []), dtype=float)
            label = "other image (no class labels)" if key == "same_class" and no_classes else label
            if vals.size:
                pos = vals[vals > 1e-6]
                ax.hist(pos, bins=edges, weights=np.full(pos.size, 1.0 / vals.size), histtype="step",
                        linewidth=1.8, color=colour,
                        label=f"{label}: mean {vals.mean():.2f}, {100 * (1 - pos.size / vals.size):.0f} % at 0")
        ax.set_xlabel("caption cosine similarity (content words)")
        ax.set_ylabel("share of pairs")
        ax.set_title(name)
        ax.set_ylim(0, ax.get_ylim()[1] * 1.45)  # head room for the legend
        ax.legend(fontsize=8, loc="upper right", title="pairs with no shared word (0) not drawn", title_fontsize=8)
    fig.tight_layout()
    return fig


def plot_matrix(matrix, labels: Sequence[str], title: str = "", cmap: str = "viridis", colorbar_label: str = ""):
    """Square heatmap with ``labels`` on both axes (e.g. class-to-class similarity); returns the Figure."""
    matrix = np.asarray(matrix, dtype=float)
    n = len(labels)
    side = min(max(4.0, 0.32 * n + 2.0), 13.0)
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    im = ax.imshow(matrix, cmap=cmap)
    ax.set_xticks(range(n), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=colorbar_label)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------ MVSA internals (notebook 02)
#: colour of each gate-mass category (rsnb.inspect.CATEGORIES): the scale bands, then clutter and background
CATEGORY_COLOURS = {**SCALE_COLOURS, "clutter": "#7f7f7f", "background": "#2ca02c"}


def scale_legend(fig, **kw):
    """Add a one-line figure legend for boxes drawn by :func:`draw_objects` (band colours, dashed = clutter)."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, lw=2, label=f"{b} (mentioned)") for b, c in SCALE_COLOURS.items()]
    handles.append(Line2D([], [], color="0.3", lw=1.5, ls="--", label="dashed: unmentioned = clutter"))
    kw = {"loc": "lower center", "ncol": len(handles), "fontsize": 8, "frameon": False, **kw}
    fig.legend(handles=handles, **kw)
    return fig


def map_panels(images, rows: Sequence[Mapping[str, object]], objects=None, source_size: int | None = None,
               size: float = 2.3, cmap: str = "jet", alpha: float = 0.55):
    """Grid of spatial maps over their images: one row per image, the image first, then each map.

    Args:
        images: N normalised (3, H, W) tensors (or HxWx3 arrays).
        rows: N dicts ``{title: (h, w) map}``, the same titles in every row.
        objects: optional N object lists drawn on the first panel (:func:`draw_objects`, no legend;
            add one with :func:`scale_legend`).
        source_size: side the boxes refer to (needed with ``objects``).
        size: panel side in inches.

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
            overlay_map(axes[r, c], img, (heat - lo) / (hi - lo + 1e-12), alpha=alpha, cmap=cmap)
            axes[r, c].set_title(f"{title}\n[{lo:.3g}, {hi:.3g}]" if r == 0 else f"[{lo:.3g}, {hi:.3g}]",
                                 fontsize=8)
    axes[0, 0].set_title("image", fontsize=8)
    fig.tight_layout()
    return fig


def plot_mass_ratios(tables: Mapping[str, Mapping], categories=None, ax=None, title: str | None = None):
    """Grouped bars of gate-mass ratios (``rsnb.inspect.gate_mass_table``) per category.

    Args:
        tables: ``{label: table}``, one bar per label within each category.
        categories: which categories to show (default: those present in the first table).
        ax: axis to draw on (default: a new figure).

    Returns:
        The Figure.
    """
    from rsnb.inspect import CATEGORIES

    labels = list(tables)
    first = tables[labels[0]]
    cats = list(categories or [c for c in CATEGORIES if first[c].get("images", 1) > 0])
    if ax is None:
        _, ax = plt.subplots(figsize=(1.3 * len(cats) + 2, 3.2))
    width = 0.8 / len(labels)
    x = np.arange(len(cats))
    for k, label in enumerate(labels):
        ys = [tables[label][c]["ratio"] for c in cats]
        ax.bar(x + (k - (len(labels) - 1) / 2) * width, ys, width, label=label)
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
        tables: ``rsnb.inspect.gate_mass_table`` results, one per epoch.
        categories: which categories to draw (default: those present).
        ax: axis to draw on (default: a new figure).

    Returns:
        The Figure.
    """
    from rsnb.inspect import CATEGORIES

    cats = list(categories or [c for c in CATEGORIES if tables[0][c].get("images", 1) > 0])
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 3.2))
    for c in cats:
        ax.plot(epochs, [t[c]["ratio"] for t in tables], marker="o", color=CATEGORY_COLOURS[c], label=c)
    ax.axhline(1.0, color="k", linestyle="--", linewidth=0.8)
    ax.set_xlabel("epoch (0 = fresh model)")
    ax.set_ylabel("mass share / area share")
    ax.set_title(title or "gate preference during training", fontsize=10)
    ax.legend(fontsize=8)
    return ax.figure
