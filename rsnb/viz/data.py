"""Figures of the data (notebook 01): ground-truth boxes per scale band, scale bands, caption lengths,
word frequencies, caption-similarity groups."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from PIL import Image

from rsnb.viz.core import image_grid

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


def scene_grid(records, n: int = 8, size: float = 3.4, width: int = 40):
    """One scene per class (the first of each, in order) with its first caption and keywords.

    Returns ``(Figure, {column: values})`` for :func:`rsnb.viz.save_figure`; used by notebook 01 and
    notebook 07's ``07_scene_grid``.
    """
    first = {}
    for rec in records:
        first.setdefault(rec.cls, rec)
    shown = list(first.values())[:n]
    titles = [f"{r.cls}\n{textwrap.fill(r.captions[0], width)}\n" + textwrap.fill("keywords: " + ", ".join(r.keywords), width)
              for r in shown]
    fig = image_grid([Image.open(r.path).convert("RGB") for r in shown], titles, ncols=4, size=size)
    return fig, {"file": [r.filename for r in shown], "class": [r.cls for r in shown],
                 "caption": [r.captions[0] for r in shown], "keywords": ["; ".join(r.keywords) for r in shown]}
