"""Figures of notebook 07 / ``make figures`` drawn from trained run folders.

Each function returns ``(Figure, {column: values})``: the figure and the plotted numbers for the CSV
written beside it. They compose the plotting helpers of notebooks 02, 03, 05 and 06
(:mod:`rsnb.viz`, :mod:`rsnb.analysis`, :mod:`rsnb.analysis.mvsa_probe`, :mod:`rsnb.analysis.msa_probe`) on the
best checkpoint of a run trained by :mod:`rsnb.reproduce`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from matplotlib.ticker import MaxNLocator
from PIL import Image

from rsnb import analysis, encode, evaluate, experiment, losses, viz
from rsnb.analysis import msa_probe, mvsa_probe, paper_tables
from rsnb.data.dataset import ImageDataset, TextDataset, collate

TOP_K = 5  # gallery width


@lru_cache(maxsize=4)
def _load(run_dir: str):
    """(model, vocab, cfg, test split) of a run's best checkpoint (cached: several figures use one run)."""
    model, vocab, cfg = experiment.load_run(run_dir, "best")
    return model, vocab, cfg, experiment.prepare_corpus(cfg, progress=False).split("test")


@lru_cache(maxsize=2)
def _scored(run_dir: str):
    """Encoded test split, similarity matrix and ranks of an AMFMN run."""
    model, vocab, cfg, test = _load(run_dir)
    img, txt = analysis.encode_split(model, test, vocab, int(cfg["image_size"]), "cpu")
    sims = encode.score_all(model, img, txt, "cpu")  # (N_images, N_captions)
    _, ranks = evaluate.retrieval_metrics(sims, test.caption_to_image, return_ranks=True)
    return img, txt, sims, ranks


def margin_curves(gammas: Sequence[float], betas: Sequence[float]):
    """AMFMN Figs. 5-6: the dynamic margin gamma (e^beta - e^(beta S)) / (e^beta - 1) (eq. 29) against the
    prior similarity S, one panel per gamma, one curve per beta, beside the paper's Table V."""
    S = np.linspace(0, 1, 101)
    St = torch.tensor(S)
    panels = {f"γ = {g:g}": {f"β = {b:g}": losses.dynamic_margin(St, g, b).numpy() for b in betas} for g in gammas}
    fig = viz.plot_margin_curves(S, panels, fixed=None, paper_rows=paper_tables.PAPER_TABLE_V)
    data = {"S": S, **{f"gamma{g:g}_beta{b:g}": panels[f"γ = {g:g}"][f"β = {b:g}"] for g in gammas for b in betas}}
    return fig, data


def scene_grid(run_dir, n: int = 8):
    """The data (notebook 01): one test scene per class with its first caption and keywords."""
    return viz.scene_grid(_load(str(run_dir))[3].images, n, size=3.2, width=38)


def _objects(records):
    """Synthetic object boxes of some records, or (None, None) for real data."""
    try:
        objs = [mvsa_probe.scene_objects(r) for r in records]
    except ValueError:
        return None, None
    return [o for o, _ in objs], objs[0][1]


def mvsa_maps(run_dir, n_show: int = 3, n_probe: int = 24):
    """MVSA salient maps (notebook 02) of a trained run on the test scenes with the most categories."""
    model, _, cfg, test = _load(str(run_dir))
    probe = test.images[:n_probe]
    try:
        kinds = [len(np.unique(mvsa_probe.category_map(*mvsa_probe.scene_objects(r)))) for r in probe]
    except ValueError:  # real data: no ground truth, the first scenes
        kinds = [0] * len(probe)
    show = [probe[int(i)] for i in np.argsort(kinds, kind="stable")[::-1][:n_show]]
    images = torch.stack([s["image"] for s in ImageDataset(replace(test, images=show), int(cfg["image_size"]))])
    with torch.no_grad():
        maps = model.mvsa_maps(images)
    attr = mvsa_probe.mask_attribution(model.mvsa.mask_fc.weight.detach(), maps["gated"], maps["mask"])
    rows = [{"info v(i)": maps["info"][b], "gate v(w)": maps["gate"][b], "v(i)·v(w)": maps["gated"][b],
             "mask attribution": attr[b]} for b in range(len(show))]
    objects, source = _objects(show)
    fig = viz.map_panels(images, rows, objects, source)
    if objects is not None:
        viz.scale_legend(fig)
    data = {"scene": [r.filename for r in show], "class": [r.cls for r in show],
            **{f"{k}_{s}": [float(getattr(maps[k][b], s)()) for b in range(len(show))]
               for k in ("gate", "gated") for s in ("min", "max")}}
    return fig, data


def t2i_gallery(run_dir, n_queries: int = 4, seed: int = 0):
    """Text -> image gallery (notebook 05): one hit and the worst misses, top-5 images each."""
    _, _, _, test = _load(str(run_dir))
    _, _, sims, ranks = _scored(str(run_dir))
    c2i = np.asarray(test.caption_to_image)
    top = analysis.top_k(sims, TOP_K, "t2i")  # (N_captions, K)
    queries = analysis.pick_examples(ranks["t2i"], n_hits=1, n_misses=n_queries - 1, seed=seed, distinct=c2i)
    fig = viz.plot_t2i_gallery([test.captions[j] for j in queries],
                               [[Image.open(test.images[i].path) for i in top[j]] for j in queries],
                               [[i == c2i[j] for i in top[j]] for j in queries],
                               notes=[f"true image: rank {ranks['t2i'][j] + 1}, class {test.images[c2i[j]].cls}"
                                      for j in queries])
    return fig, {"caption": queries, "text": [test.captions[j] for j in queries],
                 "rank": [int(ranks["t2i"][j]) + 1 for j in queries],
                 "top_images": [" ".join(str(int(i)) for i in top[j]) for j in queries]}


def i2t_lists(run_dir, seed: int = 0):
    """Image -> text lists (notebook 05): one hit and two misses, top-5 captions each."""
    _, _, _, test = _load(str(run_dir))
    _, _, sims, ranks = _scored(str(run_dir))
    c2i = np.asarray(test.caption_to_image)
    top = analysis.top_k(sims, TOP_K, "i2t")  # (N_images, K)
    picked = analysis.pick_examples(ranks["i2t"], n_hits=1, n_misses=2, seed=seed)
    fig = viz.plot_i2t_lists([Image.open(test.images[i].path) for i in picked],
                             [[test.captions[j] for j in top[i]] for i in picked],
                             [[c2i[j] == i for j in top[i]] for i in picked])
    return fig, {"image": picked, "file": [test.images[i].filename for i in picked],
                 "rank": [int(ranks["i2t"][i]) + 1 for i in picked]}


def _pca_2d(*blocks) -> list[np.ndarray]:
    """Joint 2-D PCA of several blocks (the fallback when umap-learn is not installed)."""
    x = np.concatenate([np.asarray(b, dtype=np.float64) for b in blocks])
    x = x - x.mean(0)
    xy = x @ np.linalg.svd(x, full_matrices=False)[2][:2].T  # (N, 2)
    return np.split(xy, np.cumsum([len(b) for b in blocks])[:-1])


def joint_space(run_dir, n_captions: int = 400, seed: int = 0):
    """UMAP (PCA without umap-learn) of image vectors Fv and their own captions' guided vectors Ft."""
    model, _, _, test = _load(str(run_dir))
    img, txt, _, _ = _scored(str(run_dir))
    c2i = np.asarray(test.caption_to_image)
    img_cls = np.array([r.cls for r in test.images])
    caps = np.sort(np.random.default_rng(seed).choice(len(c2i), min(n_captions, len(c2i)), replace=False))
    ft = analysis.guided_text_vectors(model, img, txt, c2i)[caps]  # (n, D)
    try:
        xy_img, xy_txt = analysis.embed_2d(img["v"].numpy(), ft.numpy(), seed=seed)
        method = "UMAP (cosine)"
    except ImportError:  # umap-learn is optional
        xy_img, xy_txt = _pca_2d(img["v"].numpy(), ft.numpy())
        method = "PCA (umap-learn not installed)"
    fig = viz.plot_embedding_2d({"image Fv": xy_img, "caption Ft (own image)": xy_txt},
                                {"image Fv": img_cls, "caption Ft (own image)": img_cls[c2i[caps]]},
                                title=f"{method} of the joint space, test split")
    return fig, {"x": np.r_[xy_img[:, 0], xy_txt[:, 0]], "y": np.r_[xy_img[:, 1], xy_txt[:, 1]],
                 "modality": ["image"] * len(xy_img) + ["caption"] * len(xy_txt),
                 "class": list(img_cls) + list(img_cls[c2i[caps]]), "method": [method] * (len(xy_img) + len(xy_txt))}


def msa_scale_matrices(run_dir, n: int = 16):
    """MSA's global cosine and per-scale MSCMAT matrices (notebook 06) on one caption of n test images."""
    import seaborn as sns
    from matplotlib import pyplot as plt

    msa, tok, cfg, test = _load(str(run_dir))
    size = int(cfg["image_size"])
    il = torch.utils.data.DataLoader(ImageDataset(test, image_size=size), batch_size=64, collate_fn=collate)
    tl = torch.utils.data.DataLoader(TextDataset(test, tok), batch_size=64, collate_fn=collate)
    img, txt = msa_probe.encode_with_tokens(msa, il, tl)
    c2i = np.asarray(test.caption_to_image)
    first = np.unique(c2i, return_index=True)[1][:n]  # one caption of each of n images
    cap_idx, img_idx = torch.as_tensor(first), torch.as_tensor(c2i[first])
    with torch.no_grad():
        glob = msa.score({"g": img["g"][img_idx]}, {"g": txt["g"][cap_idx]})
        scales = msa.scale_scores(img["q"][img_idx], txt["g"][cap_idx], txt["tok"][cap_idx],
                                  txt["mask"][cap_idx].bool())  # (S, n, n)
    mats = [("global cosine", glob)] + [(f"MSCMAT scale {s + 1}", scales[s]) for s in range(len(scales))]
    fig, axes = plt.subplots(1, len(mats), figsize=(3.6 * len(mats), 3.4))
    for ax, (title, mat) in zip(axes, mats):
        sns.heatmap(mat.numpy(), ax=ax, cmap="viridis", square=True, xticklabels=False, yticklabels=False)
        ax.set(title=title, xlabel="caption", ylabel="image")
    fig.tight_layout()
    data = {"image": img_idx.tolist(), "global_diag": glob.diagonal().tolist(),
            **{f"scale{s + 1}_diag": scales[s].diagonal().tolist() for s in range(len(scales))},
            **{f"scale{s + 1}_diag_beats_row": (scales[s].diagonal()[:, None] >= scales[s]).float().mean(1).tolist()
               for s in range(len(scales))}}
    return fig, data


def training_curves(runs: Mapping[str, str | Path], keys=("loss", "val_mR")):
    """Per-epoch training loss and validation mR of several runs (one curve each)."""
    hists = {k: json.loads((Path(d) / "history.json").read_text()) for k, d in runs.items()}
    fig = viz.plot_history(list(hists.values()), keys=keys, labels=list(hists))
    if "loss" in keys:
        fig.axes[list(keys).index("loss")].set_yscale("log")  # AMFMN sums over negatives, MSA does not
    for ax in fig.axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    n = max(len(h) for h in hists.values())
    data = {"epoch": list(range(1, n + 1))}
    for name, h in hists.items():
        for k in keys:
            vals = [r.get(k, float("nan")) for r in h]
            data[f"{name} {k}"] = vals + [float("nan")] * (n - len(vals))
    return fig, data
