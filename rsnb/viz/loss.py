"""Figures of the loss behaviour (notebook 03): margin curves, prior similarity by pair type, the
margin matrix of a batch, loss diagnostics per loss."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np


def plot_margin_curves(S, panels: Mapping[str, Mapping[str, Sequence[float]]], fixed: float | None = 0.2,
                       paper_rows: Sequence[Mapping] | None = None):
    """Margin against prior similarity, one panel per family of curves, plus the paper's Table V.

    Args:
        S: (N,) prior similarity values (x axis).
        panels: ``{panel title: {curve label: (N,) margins}}``.
        fixed: a fixed margin drawn as a dashed line in every panel (None: none).
        paper_rows: rows of ``rsnb.analysis.paper_tables.PAPER_TABLE_V``; adds a bar panel of their mR
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
        groups: ``rsnb.analysis.loss_probe.prior_by_group`` output (``{type: {"S", "score1", "score2"}}``).
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
        groups: (B, B) pair types from ``rsnb.analysis.loss_probe.pair_groups`` (0 positive, 1 same-class, 2 other).
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
    """Grouped bars of ``rsnb.analysis.loss_probe.loss_diagnostics`` rows: one panel per key.

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
