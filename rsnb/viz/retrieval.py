"""Figures of retrieval results (notebooks 04, 05): metric bars, text-to-image galleries, image-to-text
lists, 2-D embeddings, confusion matrices."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from rsnb.evaluate import TABLE_KEYS
from rsnb.viz.core import plot_grouped_bars


def plot_metric_bars(rows: Mapping[str, Mapping[str, float]], keys=TABLE_KEYS, title: str = "R@K and mR (%)"):
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
