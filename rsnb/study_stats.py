"""Statistics and tables of the ablation study (:mod:`rsnb.study`): Welch's t-test over per-seed mR, the paired
bootstrap over test images of an mR difference, the summary and per-scale-band rows, and their markdown/CSV output.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

BASELINE = "m1"  # the model the others are tested against by default


# ------------------------------------------------------------------------------ statistics
RECALL_KS = (1, 5, 10)


def _hits(ranks: dict, c2i: np.ndarray, n_images: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-image hit tables of one run: i2t (N_img, 3) and summed t2i hits of its captions (N_img, 3)."""
    i2t = np.stack([(np.asarray(ranks["i2t"]) < k) for k in RECALL_KS], 1).astype(float)  # (N_img, 3)
    t2i = np.stack([(np.asarray(ranks["t2i"]) < k) for k in RECALL_KS], 1).astype(float)  # (N_cap, 3)
    cap_sum = np.zeros((n_images, len(RECALL_KS)))
    np.add.at(cap_sum, c2i, t2i)  # (N_img, 3)
    return i2t, cap_sum


def bootstrap_mr_difference(ranks_a: Sequence[dict], ranks_b: Sequence[dict], caption_to_image,
                            n_boot: int = 2000, seed: int = 0) -> dict:
    """Paired bootstrap over test images of mR(A) - mR(B), each model's hits averaged over its seeds.

    Every resample draws the test images with replacement; an image brings its own i2t query and its
    captions' t2i queries, and both models are scored on the same resample.

    Args:
        ranks_a, ranks_b: per-seed ``{"i2t": (N_img,), "t2i": (N_cap,)}`` 0-based ranks.
        caption_to_image: (N_cap,) image index of every caption.
        n_boot: resamples.
        seed: RNG seed of the resampling.

    Returns:
        ``{"diff": observed difference, "lo", "hi": 95% percentile interval, "p": two-sided p}``.
    """
    c2i = np.asarray(caption_to_image, dtype=np.int64)
    n = len(np.asarray(ranks_a[0]["i2t"]))
    caps = np.bincount(c2i, minlength=n).astype(float)  # (N_img,)

    def tables(runs):
        parts = [_hits(r, c2i, n) for r in runs]
        return np.mean([p[0] for p in parts], 0), np.mean([p[1] for p in parts], 0)  # (N_img, 3) x 2

    def mr(w, i2t, cap_sum):  # w (R, N_img) resample counts -> (R,) mR
        r_i2t = (w @ i2t) / w.sum(1, keepdims=True)  # (R, 3)
        r_t2i = (w @ cap_sum) / (w @ caps)[:, None]  # (R, 3)
        return 100.0 * np.concatenate([r_i2t, r_t2i], 1).mean(1)

    (ia, ca), (ib, cb) = tables(ranks_a), tables(ranks_b)
    ones = np.ones((1, n))
    diff = float(mr(ones, ia, ca)[0] - mr(ones, ib, cb)[0])
    rng = np.random.default_rng(seed)
    w = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float)  # (R, N_img)
    d = mr(w, ia, ca) - mr(w, ib, cb)  # (R,)
    p = min(1.0, 2.0 * min(np.mean(d <= 0), np.mean(d >= 0)))
    return {"diff": diff, "lo": float(np.percentile(d, 2.5)), "hi": float(np.percentile(d, 97.5)), "p": float(p)}


def welch(a: Sequence[float], b: Sequence[float]) -> dict:
    """Welch's t-test of two samples of per-seed scores: ``{"t", "p"}`` (NaN with fewer than 2 each)."""
    from scipy import stats

    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2 or (a.std() == 0 and b.std() == 0):
        return {"t": float("nan"), "p": float("nan")}
    r = stats.ttest_ind(a, b, equal_var=False)
    return {"t": float(r.statistic), "p": float(r.pvalue)}


def summary_rows(result: dict, baseline: str = BASELINE, n_boot: int = 2000) -> list[dict]:
    """One row per model: seeds, mean ± std of test metrics, val mR, and the tests against ``baseline``."""
    runs, c2i = result["runs"], result["test"].caption_to_image
    rows = []
    for spec, rs in runs.items():
        mr = [r["test"]["mR"] for r in rs]
        row = {"model": spec, "shares_runs_with": result["shared"].get(spec, ""), "seeds": len(rs),
               "test_mR_mean": float(np.mean(mr)), "test_mR_std": float(np.std(mr, ddof=1)) if len(mr) > 1 else 0.0,
               "test_mR_seeds": " ".join(f"{v:.2f}" for v in mr),
               "val_mR_mean": float(np.mean([r["val_mR"] for r in rs]))}
        for key in ("i2t_R@1", "i2t_R@10", "t2i_R@1", "t2i_R@10"):
            row[f"{key}_mean"] = float(np.mean([r["test"][key] for r in rs]))
        if baseline in runs and spec != baseline:
            base = runs[baseline]
            w = welch(mr, [r["test"]["mR"] for r in base])
            b = bootstrap_mr_difference([r["ranks"] for r in rs], [r["ranks"] for r in base], c2i, n_boot)
            row.update({"delta_vs_base": float(np.mean(mr) - np.mean([r["test"]["mR"] for r in base])),
                        "welch_t": w["t"], "welch_p": w["p"], "boot_lo": b["lo"], "boot_hi": b["hi"],
                        "boot_p": b["p"]})
        rows.append(row)
    return rows


def band_rows(result: dict, baseline: str = BASELINE, n_boot: int = 2000, seed: int = 0) -> list[dict]:
    """Text-to-image R@K per caption scale group (synthetic data), mean over seeds, Δ R@10 vs baseline.

    The Δ interval is a paired bootstrap over that group's captions (hits averaged over seeds).
    """
    from rsnb.analysis import caption_scale_groups

    groups = np.asarray(caption_scale_groups(result["test"]), dtype=object)  # (N_cap,)
    runs = result["runs"]
    rng = np.random.default_rng(seed)
    rows = []
    for name in ("small targets only", "small + larger", "medium/large only", "no target named"):
        sel = groups == name
        if not sel.any():
            continue
        idx = rng.integers(0, int(sel.sum()), size=(n_boot, int(sel.sum())))  # (R, n)
        base_hit = (np.mean([np.asarray(r["ranks"]["t2i"])[sel] < 10 for r in runs[baseline]], 0)
                    if baseline in runs else None)
        for spec, rs in runs.items():
            t2i = [np.asarray(r["ranks"]["t2i"])[sel] for r in rs]
            row = {"group": name, "captions": int(sel.sum()), "model": spec}
            for k in RECALL_KS:
                vals = [100.0 * np.mean(t < k) for t in t2i]
                row[f"t2i_R@{k}_mean"], row[f"t2i_R@{k}_std"] = float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
            if base_hit is not None and spec != baseline:
                d = 100.0 * (np.mean([t < 10 for t in t2i], 0) - base_hit)  # (n,)
                boot = d[idx].mean(1)
                row.update({"delta_R@10_vs_base": float(d.mean()), "boot_lo": float(np.percentile(boot, 2.5)),
                            "boot_hi": float(np.percentile(boot, 97.5))})
            rows.append(row)
    return rows


# ------------------------------------------------------------------------------ output
def _fmt(v, nd=2) -> str:
    if isinstance(v, float):
        return "–" if np.isnan(v) else f"{v:.{nd}f}"
    return str(v)


def markdown_table(rows: list[dict], baseline: str = BASELINE) -> str:
    """The summary rows as a markdown table (test mR mean ± std, Δ and the two tests vs baseline)."""
    lines = ["| model | seeds | test mR (mean ± std) | per seed | best val mR | Δ vs " + baseline +
             " | Welch p | bootstrap 95% CI of Δ | bootstrap p |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        name = r["model"] + (f" (= {r['shares_runs_with']})" if r["shares_runs_with"] else "")
        tests = (["–"] * 4 if "delta_vs_base" not in r else
                 [f"{r['delta_vs_base']:+.2f}", _fmt(r["welch_p"], 3), f"[{r['boot_lo']:+.2f}, {r['boot_hi']:+.2f}]",
                  _fmt(r["boot_p"], 3)])
        spread = f"{r['test_mR_mean']:.2f} ± {r['test_mR_std']:.2f}" if r["seeds"] > 1 else f"{r['test_mR_mean']:.2f} (1 seed)"
        lines.append(f"| {name} | {r['seeds']} | {spread} | {r['test_mR_seeds']} | "
                     f"{r['val_mR_mean']:.2f} | " + " | ".join(tests) + " |")
    return "\n".join(lines)


def band_markdown(rows: list[dict], baseline: str = BASELINE) -> str:
    """Band rows as a markdown table."""
    lines = [f"| captions | n | model | t2i R@1 | t2i R@5 | t2i R@10 | Δ R@10 vs {baseline} (95% CI) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        d = (f"{r['delta_R@10_vs_base']:+.1f} [{r['boot_lo']:+.1f}, {r['boot_hi']:+.1f}]"
             if "delta_R@10_vs_base" in r else "–")
        lines.append(f"| {r['group']} | {r['captions']} | {r['model']} | " +
                     " | ".join(f"{r[f't2i_R@{k}_mean']:.1f} ± {r[f't2i_R@{k}_std']:.1f}" for k in RECALL_KS) +
                     f" | {d} |")
    return "\n".join(lines)


def write_csv(rows: list[dict], path: Path) -> None:
    """Rows (dicts, possibly with different keys) as one CSV."""
    import csv

    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
