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
from rsnb.data.dataset import IMAGENET_MEAN, IMAGENET_STD


def figures_dir() -> Path:
    """Folder that figures are written to: ``RSNB_FIGURES``, else the checkout's ``figures/``
    (``./figures`` when rsnb is installed as a package)."""
    override = os.environ.get("RSNB_FIGURES")
    repo = Path(__file__).resolve().parents[1]
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
    arr = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    arr = arr.transpose(1, 2, 0) * np.asarray(IMAGENET_STD) + np.asarray(IMAGENET_MEAN)
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
    """Square heatmap with ``labels`` on both axes (e.g. class-to-class similarity); returns the Figure.

    Drawn with seaborn: square cells with thin separators, values written in the cells when the matrix
    is small enough to read them (up to 12 x 12).
    """
    import seaborn as sns

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


# ------------------------------------------------------------------ MVSA internals (notebook 02)
#: colour of each gate-mass category (rsnb.mvsa_analysis.CATEGORIES): the scale bands, then clutter and background
CATEGORY_COLOURS = {**SCALE_COLOURS, "clutter": "#7f7f7f", "background": "#2ca02c"}


def scale_legend(fig, **kw):
    """Add a one-line figure legend for boxes drawn by :func:`draw_objects` (band colours, dashed = clutter)."""
    from matplotlib.lines import Line2D

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
    """Grouped bars of gate-mass ratios (``rsnb.mvsa_analysis.gate_mass_table``) per category, drawn from 1.

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
    from rsnb.mvsa_analysis import CATEGORIES

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
        tables: ``rsnb.mvsa_analysis.gate_mass_table`` results, one per epoch.
        categories: which categories to draw (default: those present).
        ax: axis to draw on (default: a new figure).
        title: axis title.

    Returns:
        The Figure.
    """
    from rsnb.mvsa_analysis import CATEGORIES

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


# ---------------------------------------------------------------- evaluation (notebooks 04, 05)
_METRIC_COLS = ("i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5", "t2i_R@10", "mR")


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


def plot_metric_bars(rows: Mapping[str, Mapping[str, float]], keys=_METRIC_COLS, title: str = "R@K and mR (%)"):
    """Grouped bars of retrieval metrics, one series per row (``{name: metrics}``); return the Figure."""
    return plot_grouped_bars(list(keys), {name: [m[k] for k in keys] for name, m in rows.items()},
                             ylabel="%", title=title)


def _frame(ax, colour: str, width: float = 4.0) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(width)


def plot_t2i_gallery(queries: Sequence[str], images, hits, notes=None, wrap: int = 30):
    """Text -> image gallery: one row per query, its text then its top-k images (green frame = hit).

    Args:
        queries: query texts. images: per query, a list of k images (PIL or HxWx3 arrays).
        hits: per query, k booleans. notes: optional per-query line under the text (e.g. the true rank).
    """
    import textwrap

    k = max(len(row) for row in images)
    fig, axes = plt.subplots(len(queries), k + 1, figsize=(1.7 * (k + 1.4), 1.75 * len(queries) + 0.3), squeeze=False,
                             gridspec_kw={"width_ratios": [1.4] + [1] * k})
    for r, (q, row, hit) in enumerate(zip(queries, images, hits)):
        ax = axes[r, 0]
        ax.axis("off")
        text = textwrap.fill(q, wrap) + (f"\n\n{notes[r]}" if notes is not None else "")
        ax.text(0.0, 0.5, text, va="center", ha="left", fontsize=8, transform=ax.transAxes)
        for c in range(k):
            ax = axes[r, c + 1]
            if c >= len(row):
                ax.axis("off")
                continue
            ax.imshow(np.asarray(row[c]))
            _frame(ax, "tab:green" if hit[c] else "tab:red", 4.0 if hit[c] else 1.5)
            if r == 0:
                ax.set_title(f"top {c + 1}", fontsize=8)
    fig.tight_layout()
    return fig


def plot_i2t_lists(images, captions, hits, wrap: int = 100):
    """Image -> text lists: each query image beside its top-k captions (green = one of its own)."""
    import textwrap

    fig, axes = plt.subplots(len(images), 2, figsize=(10, 2.1 * len(images)), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 4]})
    for r, (img, caps, hit) in enumerate(zip(images, captions, hits)):
        axes[r, 0].imshow(np.asarray(img))
        _frame(axes[r, 0], "black", 1.0)
        ax = axes[r, 1]
        ax.axis("off")
        for c, (cap, h) in enumerate(zip(caps, hit)):
            line = textwrap.shorten(f"{c + 1}. {'[own] ' if h else ''}{cap}", wrap)
            ax.text(0.0, 1 - (c + 0.5) / len(caps), line, va="center", fontsize=8, transform=ax.transAxes,
                    color="tab:green" if h else "0.25", fontweight="bold" if h else "normal")
    fig.tight_layout()
    return fig


def plot_embedding_2d(points: Mapping[str, np.ndarray], classes: Mapping[str, Sequence[str]], title: str = ""):
    """2-D map (e.g. UMAP) of several modalities: colour = class, marker = modality; return the Figure."""
    names = sorted({c for cl in classes.values() for c in cl})
    cmap = plt.get_cmap("tab20")
    colour = {c: cmap(i % 20) for i, c in enumerate(names)}
    markers = ["o", "x", "^", "s"]
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    for m, (modality, xy) in enumerate(points.items()):
        cols = [colour[c] for c in classes[modality]]
        ax.scatter(xy[:, 0], xy[:, 1], c=cols, marker=markers[m % 4], s=22 if m == 0 else 14,
                   linewidths=1.0, alpha=0.85)
    handles = [plt.Line2D([], [], marker="o", ls="", color=colour[c], label=c) for c in names]
    handles += [plt.Line2D([], [], marker=markers[m % 4], ls="", color="0.3", label=mod)
                for m, mod in enumerate(points)]
    ax.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_confusion(matrix, labels: Sequence[str], title: str = "", xlabel: str = "retrieved",
                   ylabel: str = "query", ax=None):
    """Row-normalised confusion matrix as a seaborn heat map, fractions written in the non-zero cells; return the Figure."""
    import seaborn as sns

    matrix = np.asarray(matrix, dtype=float)
    if ax is None:
        _, ax = plt.subplots(figsize=(0.42 * len(labels) + 2.2, 0.38 * len(labels) + 1.6))
    text = np.where(matrix > 0, np.char.mod("%.2f", matrix), "")  # empty cells stay blank
    sns.heatmap(matrix, ax=ax, cmap="Blues", vmin=0, vmax=1, square=True, linewidths=0.3, linecolor="0.9",
                annot=text if len(labels) <= 15 else False, fmt="", annot_kws={"fontsize": 6},
                xticklabels=list(labels), yticklabels=list(labels), cbar_kws={"shrink": 0.8})
    ax.set_xticklabels(ax.get_xticklabels(), rotation=60, ha="right", fontsize=7)
    ax.tick_params(axis="y", labelrotation=0, labelsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.figure.tight_layout()
    return ax.figure


# ---------------------------------------------------------------------------- loss behaviour (notebook 03)
def plot_margin_curves(S, panels: Mapping[str, Mapping[str, Sequence[float]]], fixed: float | None = 0.2,
                       paper_rows: Sequence[Mapping] | None = None):
    """Margin against prior similarity, one panel per family of curves, plus the paper's Table V.

    Args:
        S: (N,) prior similarity values (x axis).
        panels: ``{panel title: {curve label: (N,) margins}}``.
        fixed: a fixed margin drawn as a dashed line in every panel (None: none).
        paper_rows: rows of ``rsnb.loss_analysis.PAPER_TABLE_V``; adds a bar panel of their mR
            (fixed margin alpha vs L_ct for each beta, grouped by alpha / gamma).

    Returns:
        The Figure.
    """
    n = len(panels) + (1 if paper_rows else 0)
    fig, axes = plt.subplots(1, n, figsize=(4.4 * n, 3.6), squeeze=False)
    for ax, (title, curves) in zip(axes.flat, panels.items()):
        colours = plt.cm.viridis(np.linspace(0.0, 0.9, len(curves)))
        for (label, ys), c in zip(curves.items(), colours):
            ax.plot(S, ys, color=c, label=label)
        if fixed is not None:
            ax.axhline(fixed, color="0.4", ls="--", lw=1, label=f"fixed α = {fixed:g}")
        ax.set(xlabel="prior similarity S", ylabel="margin α", title=title, xlim=(0, 1), ylim=(0, None))
        ax.legend(fontsize=7)
    if paper_rows:
        ax = axes.flat[-1]
        fixed_rows = [r for r in paper_rows if r["beta"] is None]
        betas = sorted({r["beta"] for r in paper_rows if r["beta"] is not None})
        gammas = sorted({r["gamma"] for r in paper_rows})
        series = [("fixed α", fixed_rows)] + [(f"L_ct β = {b:g}", [r for r in paper_rows if r["beta"] == b])
                                              for b in betas]
        width = 0.8 / len(series)
        for k, (label, rows) in enumerate(series):
            by_g = {r["gamma"]: r["mR"] for r in rows}
            xs = np.arange(len(gammas)) + (k - (len(series) - 1) / 2) * width
            ax.bar(xs, [by_g.get(g, np.nan) for g in gammas], width, label=label,
                   color="0.6" if k == 0 else plt.cm.viridis(0.2 + 0.6 * (k - 1) / max(len(betas) - 1, 1)))
        lo = min(r["mR"] for r in paper_rows)
        ax.set(ylim=(np.floor(lo) - 0.5, max(r["mR"] for r in paper_rows) + 0.6), ylabel="mR (%)",
               xlabel="α (fixed) or γ (L_ct)", title="paper Table V (RSITMD, as reported)")
        ax.set_xticks(np.arange(len(gammas)), [f"{g:g}" for g in gammas])
        ax.legend(fontsize=7, ncol=2, loc="upper left")
    fig.tight_layout()
    return fig


def plot_prior_groups(groups: Mapping[str, Mapping[str, np.ndarray]], margin_fn=None, bins: int = 40):
    """Distribution of the prior similarity S per pair type, and what S is made of.

    Args:
        groups: ``rsnb.loss_analysis.prior_by_group`` output (``{type: {"S", "score1", "score2"}}``).
        margin_fn: optional ``f(S) -> margin`` drawn over the histogram on a second axis.
        bins: histogram bins over [0, 1].

    Returns:
        The Figure: (a) density of S per type, (b) mean S split into its BLEU-4 half (score1 / 2)
        and its word-overlap half (score2 / 2).
    """
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [3, 2]})
    edges = np.linspace(0, 1, bins + 1)
    for name, g in groups.items():
        ax.hist(g["S"], bins=edges, density=True, histtype="stepfilled", alpha=0.35, label=f"{name} (n={len(g['S'])})")
    ax.set(xlabel="prior similarity S", ylabel="density", title="S by pair type", xlim=(0, 1))
    ax.legend(fontsize=7, loc="upper center")
    if margin_fn is not None:
        tw = ax.twinx()
        s = np.linspace(0, 1, 101)
        tw.plot(s, margin_fn(s), color="k", lw=1.5)
        tw.set_ylabel("dynamic margin α(S) (black line)")
        tw.set_ylim(0, None)
    names = list(groups)
    s1 = [float(np.mean(groups[n]["score1"])) / 2 for n in names]
    s2 = [float(np.mean(groups[n]["score2"])) / 2 for n in names]
    x = np.arange(len(names))
    bx.bar(x, s1, 0.6, label="BLEU-4 part (score1 / 2)", color="tab:purple")
    bx.bar(x, s2, 0.6, bottom=s1, label="word-overlap part (score2 / 2)", color="tab:olive")
    bx.set_xticks(x, [n.replace(" ", "\n", 1) for n in names], fontsize=8)
    bx.set(ylabel="mean S", title="what S is made of", ylim=(0, 1))
    bx.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_batch_margins(margin, sample_classes: Sequence[str], groups, fixed: float | None = 0.2):
    """One batch's per-pair dynamic margin: the (B, B) matrix sorted by class, and its spread per pair type.

    Args:
        margin: (B, B) margins (rows images, columns captions).
        sample_classes: (B,) scene class of each sample.
        groups: (B, B) pair types from ``rsnb.loss_analysis.pair_groups`` (0 positive, 1 same-class, 2 other).
        fixed: fixed margin drawn for comparison.

    Returns:
        The Figure.
    """
    margin = margin.detach().cpu().numpy() if hasattr(margin, "detach") else np.asarray(margin)
    groups = np.asarray(groups)
    order = np.argsort(np.asarray(sample_classes, dtype=str), kind="stable")
    m, cls = margin[np.ix_(order, order)], np.asarray(sample_classes, dtype=str)[order]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [1.1, 1]})
    vmax = max(float(margin.max()), 1e-6)
    m = np.where(np.eye(len(m), dtype=bool), np.nan, m)  # positives take no margin
    cmap = plt.get_cmap("magma").with_extremes(bad="0.75")
    im = ax.imshow(m, cmap=cmap, vmin=0, vmax=vmax)
    cuts = np.flatnonzero(cls[1:] != cls[:-1]) + 0.5
    for c in cuts:
        ax.axhline(c, color="0.35", lw=0.5)
        ax.axvline(c, color="0.35", lw=0.5)
    ax.set(title="dynamic margin α[i, j]\n(batch sorted by class; grey: positives)", xlabel="caption j",
           ylabel="image i")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    off = ~np.eye(len(margin), dtype=bool)
    data = [margin[off & (groups == g)] for g in (0, 1, 2)]
    labels = ["same image\n(other caption)", "same-class\nnegative", "other-class\nnegative"]
    keep = [k for k, d in enumerate(data) if d.size]
    bx.boxplot([data[k] for k in keep], showfliers=False)
    bx.set_xticks(np.arange(1, len(keep) + 1), [labels[k] for k in keep], fontsize=8)
    if fixed is not None:
        bx.axhline(fixed, color="0.4", ls="--", lw=1, label=f"fixed α = {fixed:g}")
        bx.legend(fontsize=8)
    bx.set(ylabel="margin α", title="margin per pair type", ylim=(0, None))
    fig.tight_layout()
    return fig


def plot_loss_diagnostics(rows: Sequence[Mapping], keys: Mapping[str, str], ncols: int | None = None):
    """Grouped bars of ``rsnb.loss_analysis.loss_diagnostics`` rows: one panel per key.

    Args:
        rows: dicts with ``margin``, ``negatives``, the keys, and optionally ``model`` (one bar colour each).
        keys: ``{row key: panel title}``.
        ncols: panels per row (default: all in one row); the legend goes below the panels.

    Returns:
        The Figure.
    """
    combos = list(dict.fromkeys(f"{r['margin']}\n{r['negatives']}" for r in rows))
    models = list(dict.fromkeys(r.get("model", "") for r in rows))
    ncols = ncols or len(keys)
    nrows = -(-len(keys) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False)
    for ax in axes.flat[len(keys):]:
        ax.axis("off")
    width = 0.8 / len(models)
    for ax, (key, title) in zip(axes.flat, keys.items()):
        for k, model in enumerate(models):
            vals = {f"{r['margin']}\n{r['negatives']}": r[key] for r in rows if r.get("model", "") == model}
            xs = np.arange(len(combos)) + (k - (len(models) - 1) / 2) * width
            ax.bar(xs, [vals.get(c, np.nan) for c in combos], width, label=model or None)
        ax.set_xticks(np.arange(len(combos)), combos, fontsize=8)
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    if any(models):
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(models), fontsize=8,
                   frameon=False)
    return fig
