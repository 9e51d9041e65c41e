"""Evaluation analysis: paper reference numbers, rank histograms, failure breakdowns, galleries, maps.

Everything here works on the outputs of :mod:`rsnb.evaluate` (a score matrix ``sims`` of shape
(N_images, N_captions), per-query ranks from ``retrieval_metrics(..., return_ranks=True)``) and on a
:class:`rsnb.data.corpus.Corpus` split (scene classes, keywords, synthetic object metadata). It also
holds the small "train once, reuse everywhere" cache of runs that notebooks 04 and 05 share.
Shown in notebooks/04_training.ipynb and notebooks/05_evaluation.ipynb.
"""

from __future__ import annotations

import copy
import json
import re
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader

from rsnb.api import encode_queries  # noqa: F401 (moved to the retrieval API; kept importable here)
from rsnb.config import QUICK_RUN_OVERRIDES, cache_dir, is_quick, load_yaml
from rsnb.data.dataset import ImageDataset, TextDataset, collate
from rsnb.data.synthetic import COLOURS, KINDS, OBJECT_NOUNS
from rsnb.evaluate import encode_corpus, resolve_device

# ----------------------------------------------------------------------------------------------
# the paper's numbers (Table II and Table III of the AMFMN paper), R@K in percent

_COLS = ("i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5", "t2i_R@10", "mR")
_TABLE_II = {
    "RSICD": {"VSE++": (3.38, 9.51, 17.46, 2.82, 11.32, 18.10, 10.43),
              "AMFMN-soft": (5.05, 14.53, 21.57, 5.05, 19.74, 31.04, 16.02),
              "AMFMN-fusion": (5.39, 15.08, 23.40, 4.90, 18.28, 31.44, 16.42),
              "AMFMN-sim": (5.21, 14.72, 21.57, 4.08, 17.00, 30.60, 15.53)},
    "RSITMD": {"VSE++": (10.38, 27.65, 39.60, 7.79, 24.87, 38.67, 24.83),
               "AMFMN-soft": (11.06, 25.88, 39.82, 9.82, 33.94, 51.90, 28.74),
               "AMFMN-fusion": (11.06, 29.20, 38.72, 9.96, 34.03, 52.96, 29.32),
               "AMFMN-sim": (10.63, 24.78, 41.81, 11.51, 34.69, 54.87, 29.72)},
    "UCM": {"VSE++": (12.38, 44.76, 65.71, 10.10, 31.80, 56.85, 36.93),
            "AMFMN-soft": (12.86, 51.90, 66.67, 14.19, 51.71, 78.48, 45.97),
            "AMFMN-fusion": (16.67, 45.71, 68.57, 12.86, 53.24, 79.43, 46.08),
            "AMFMN-sim": (14.76, 49.52, 68.10, 13.43, 51.81, 76.48, 45.68)},
    "Sydney": {"VSE++": (24.14, 53.45, 67.24, 6.21, 33.56, 51.03, 39.27),
               "AMFMN-soft": (20.69, 51.72, 74.14, 15.17, 58.62, 80.00, 50.06),
               "AMFMN-fusion": (24.14, 51.72, 75.86, 14.83, 56.55, 77.89, 50.17),
               "AMFMN-sim": (29.31, 58.62, 67.24, 13.45, 60.00, 81.72, 51.72)},
}
#: Paper Table II (sentence <-> image, test split): ``{dataset: {method: metrics}}``. Kept as printed,
#: including RSICD AMFMN-soft, whose mR (16.02) is not the mean of its recalls (16.16).
PAPER_TABLE_II = {d: {m: dict(zip(_COLS, v)) for m, v in rows.items()} for d, rows in _TABLE_II.items()}
#: Paper Table III (keywords <-> image, RSITMD): i2t = image -> keywords ("K"), t2i = keywords -> image ("I").
PAPER_TABLE_III = {m: dict(zip(_COLS, v)) for m, v in {
    "VSE++": (2.43, 8.63, 13.27, 5.31, 18.54, 29.38, 12.93),
    "AMFMN": (7.52, 18.14, 24.34, 8.27, 26.41, 40.13, 20.80)}.items()}


def paper_rows(dataset: str = "RSITMD", methods=("AMFMN-soft", "AMFMN-fusion", "AMFMN-sim")) -> dict:
    """Rows of paper Table II labelled ``"paper <dataset> <method>"``, ready for ``format_table``.

    Raises:
        KeyError: unknown dataset or method (the message lists the known ones).
    """
    if dataset not in PAPER_TABLE_II:
        raise KeyError(f"paper_rows: dataset {dataset!r} not in {sorted(PAPER_TABLE_II)}")
    table = PAPER_TABLE_II[dataset]
    for m in methods:
        if m not in table:
            raise KeyError(f"paper_rows: method {m!r} not in {sorted(table)}")
    return {f"paper {dataset} {m}": dict(table[m]) for m in methods}


# ----------------------------------------------------------------------------------------------
# rank histograms


def rank_buckets(edges=(1, 2, 6, 11, 21, 51)) -> list[str]:
    """Labels of the 1-based rank buckets ``[e_k, e_{k+1})`` (last one open), e.g. ``"2-5"``, ``">50"``."""
    labels = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        labels.append(str(lo) if hi == lo + 1 else f"{lo}-{hi - 1}")
    return labels + [f">{edges[-1] - 1}"]


def rank_histogram(ranks, edges=(1, 2, 6, 11, 21, 51)) -> np.ndarray:
    """Fraction of queries whose 1-based rank falls in each bucket of :func:`rank_buckets`.

    Args:
        ranks: (N,) 0-based ranks from ``retrieval_metrics(..., return_ranks=True)``; negative
            entries (images without captions) are ignored.
        edges: increasing 1-based bucket starts; the first must be 1.

    Returns:
        (len(edges),) fractions summing to 1.
    """
    r = np.asarray(ranks)
    r = r[r >= 0] + 1
    if edges[0] != 1 or any(b <= a for a, b in zip(edges[:-1], edges[1:])):
        raise ValueError(f"rank_histogram: edges must start at 1 and increase, got {edges}")
    if r.size == 0:
        raise ValueError("rank_histogram: no valid ranks")
    idx = np.searchsorted(np.asarray(edges), r, side="right") - 1  # bucket of each rank
    return np.bincount(idx, minlength=len(edges)) / r.size


def chance_rank_histogram(n_candidates: int, n_relevant: int = 1, edges=(1, 2, 6, 11, 21, 51)) -> np.ndarray:
    """Bucket fractions of the rank of the first relevant item when the order is random.

    With ``n_relevant`` relevant items among ``n_candidates`` shuffled ones, the 0-based position
    R of the first relevant one has P(R >= r) = prod_{t<r} (n - m - t) / (n - t). ``n_relevant=1`` is
    text -> image (uniform rank); ``n_relevant=5`` is image -> text with five captions per image.
    """
    n, m = int(n_candidates), int(n_relevant)
    if not 1 <= m <= n:
        raise ValueError(f"chance_rank_histogram: need 1 <= n_relevant <= n_candidates, got {m}, {n}")
    t = np.arange(n - m + 1)
    surv = np.concatenate([[1.0], np.cumprod((n - m - t) / (n - t))])  # P(R >= r), r = 0..n-m+1
    bounds = [min(e - 1, n - m + 1) for e in edges] + [n - m + 1]
    return np.array([surv[a] - surv[b] for a, b in zip(bounds[:-1], bounds[1:])])


# ----------------------------------------------------------------------------------------------
# failure breakdowns


def grouped_recall(ranks, groups, ks=(1, 5, 10)) -> dict[str, dict[str, float]]:
    """R@K (percent), median rank and count of the queries in each group.

    Args:
        ranks: (N,) 0-based ranks; negative entries are skipped.
        groups: (N,) group label of each query (scene class, caption type, ...).

    Returns:
        ``{group: {"n", "R@1", "R@5", "R@10", "medr"}}`` in sorted group order.
    """
    r, g = np.asarray(ranks), np.asarray(groups, dtype=object)
    if r.shape != g.shape:
        raise ValueError(f"grouped_recall: {r.size} ranks but {g.size} group labels")
    out = {}
    for name in sorted(set(g[r >= 0].tolist())):
        rr = r[(g == name) & (r >= 0)]
        row = {"n": float(rr.size), **{f"R@{k}": 100.0 * float(np.mean(rr < k)) for k in ks}}
        row["medr"] = float(np.floor(np.median(rr)) + 1)
        out[name] = row
    return out


def class_confusion(true_classes, retrieved_classes, classes=None) -> tuple[list[str], np.ndarray]:
    """Row-normalised confusion between a query's true class and the class of its top-1 result.

    Returns:
        ``(classes, matrix)`` with matrix[a, b] = fraction of class-a queries whose top result is of
        class b (rows of absent classes are 0).
    """
    t, p = list(true_classes), list(retrieved_classes)
    if len(t) != len(p):
        raise ValueError(f"class_confusion: {len(t)} true labels but {len(p)} retrieved labels")
    classes = sorted(set(t) | set(p)) if classes is None else list(classes)
    pos = {c: i for i, c in enumerate(classes)}
    m = np.zeros((len(classes), len(classes)))
    for a, b in zip(t, p):
        m[pos[a], pos[b]] += 1
    return classes, m / np.maximum(m.sum(1, keepdims=True), 1)


#: object kind -> regex of its nouns (singular and plural), from the synthetic generator
_NOUN_RE = {k: re.compile(r"\b(" + "|".join(map(re.escape, v)) + r")\b") for k, v in OBJECT_NOUNS.items()}


def caption_kinds(caption: str, present=None) -> set[str]:
    """Synthetic object kinds a caption names (by their nouns), optionally only those in ``present``."""
    text = caption.lower()
    return {k for k, rx in _NOUN_RE.items() if (present is None or k in present) and rx.search(text)}


def scale_group(bands) -> str:
    """Caption type from the scale bands it names: small only / small + larger / medium-large only / none."""
    b = set(bands)
    if not b:
        return "no target named"
    if b == {"small"}:
        return "small targets only"
    return "small + larger" if "small" in b else "medium/large only"


def caption_scale_groups(corpus) -> list[str]:
    """:func:`scale_group` of every caption of a synthetic corpus split (``"unknown"`` without metadata).

    Object kinds are matched only against the kinds present in the caption's own image
    (``ImageRecord.meta["objects"]``), so a noun that also names a scene ("pond") is not miscounted.
    """
    out = []
    for rec in corpus.images:
        objects = (rec.meta or {}).get("objects")
        present = {o["name"] for o in objects} if objects else None
        for cap in rec.captions:
            out.append("unknown" if present is None else
                       scale_group({KINDS[k].band for k in caption_kinds(cap, present)}))
    return out


def phrase_relevance(corpus, phrase: str) -> np.ndarray:
    """Which images of a split match a keyword phrase such as ``"white tanks"`` or ``"- port"``.

    An image matches when the phrase is one of its keywords, or (synthetic metadata) when it holds
    an object whose noun is named in the phrase and, if the phrase names a colour, has that colour.
    Returns a (N_images,) bool array.
    """
    p = phrase.lower().strip()
    kinds = caption_kinds(p)
    colour = max((c for c in COLOURS if re.search(rf"\b{c}\b", p)), key=len, default=None)
    rel = np.zeros(len(corpus.images), dtype=bool)
    for i, rec in enumerate(corpus.images):
        if p in (k.lower() for k in rec.keywords):
            rel[i] = True
            continue
        for o in (rec.meta or {}).get("objects", []):
            if o["name"] in kinds and (colour is None or o["colour"] == colour):
                rel[i] = True
                break
    return rel


def frequent_keywords(corpus, n: int = 5, min_images: int = 1) -> list[tuple[str, int]]:
    """The ``n`` most frequent keyword phrases of a split as ``(phrase, images)``, ties by phrase."""
    counts = Counter(k for rec in corpus.images for k in set(rec.keywords))
    ranked = sorted(((p, c) for p, c in counts.items() if c >= min_images), key=lambda x: (-x[1], x[0]))
    return ranked[:n]


# ----------------------------------------------------------------------------------------------
# galleries


def top_k(sims, k: int = 5, direction: str = "t2i") -> np.ndarray:
    """Indices of the ``k`` best candidates of every query, best first (ties by index).

    ``direction="t2i"``: queries are the columns of ``sims`` (N_images, N_captions), result
    (N_captions, k) image indices; ``"i2t"``: queries are rows, result (N_images, k) caption indices.
    """
    s = torch.as_tensor(np.asarray(sims, dtype=np.float64))
    if direction not in ("t2i", "i2t"):
        raise ValueError(f"top_k: direction must be 't2i' or 'i2t', got {direction!r}")
    s = s.T if direction == "t2i" else s  # (queries, candidates)
    k = min(k, s.shape[1])
    order = torch.sort(-s, dim=1, stable=True).indices  # stable: equal scores keep index order
    return order[:, :k].numpy()


def pick_examples(ranks, n_hits: int = 2, n_misses: int = 2, seed: int = 0, distinct=None) -> list[int]:
    """Query indices for a gallery: ``n_hits`` with rank 0 and ``n_misses`` with the worst ranks.

    Hits are drawn at random (fixed seed); misses are the worst-ranked queries (ties by index).
    ``distinct`` (one label per query, e.g. the caption's image) keeps at most one query per label
    among the misses. Fewer are returned when there are not enough of either kind.
    """
    r = np.asarray(ranks)
    valid = np.flatnonzero(r >= 0)
    hits = valid[r[valid] == 0]
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(hits, min(n_hits, hits.size), replace=False).tolist()) if hits.size else []
    misses, seen = [], set()
    for j in sorted(valid[r[valid] > 0], key=lambda j: (-r[j], j)):
        label = None if distinct is None else distinct[j]
        if len(misses) < n_misses and (label is None or label not in seen):
            misses.append(int(j))
            seen.add(label)
    return [int(j) for j in chosen] + misses


# ----------------------------------------------------------------------------------------------
# embeddings and free-text queries


def encode_split(model, corpus_split, vocab, image_size: int, device="auto", batch_size: int = 64,
                 use_keywords: bool = True) -> tuple[dict, dict]:
    """Encode every image and caption of a split once: ``(img_feats, txt_feats)`` on the CPU.

    The features feed ``rsnb.evaluate.score_all`` (the (N_images, N_captions) matrix of
    ``rsnb.evaluate.evaluate``), :func:`guided_text_vectors` and :func:`embed_2d` without re-encoding.
    """
    il = DataLoader(ImageDataset(corpus_split, image_size=image_size), batch_size, collate_fn=collate)
    tl = DataLoader(TextDataset(corpus_split, vocab), batch_size, collate_fn=collate)
    return encode_corpus(model, il, tl, device, use_keywords=use_keywords)


@torch.no_grad()
def guided_text_vectors(model, img_feats: dict, txt_feats: dict, image_index) -> torch.Tensor:
    """Text vectors Ft as seen by a given image, for matched (image, text) pairs.

    AMFMN has no image-independent text embedding: VGA builds the text vector from the image it is
    compared with, and sim = cos(Fv_i, Ft_ij). This returns Ft for the pairs (image_index[j], j).

    Args:
        model: an :class:`rsnb.models.amfmn.AMFMN`.
        img_feats: {"v": (N_i, D)}; txt_feats: {"s"/"k": (N_t, D)} (from ``encode_corpus``).
        image_index: (N_t,) image paired with each text.

    Returns:
        (N_t, D) CPU text vectors; cos(img_feats["v"][image_index[j]], out[j]) equals ``model.score``.
    """
    dev = next(model.parameters()).device  # features may live on the CPU, the model on a GPU
    v = img_feats["v"][torch.as_tensor(np.asarray(image_index), dtype=torch.long)].to(dev)  # (N_t, D)
    parts = []
    for key, vga in (("s", model.vga_sentence), ("k", model.vga_keywords)):
        if key in txt_feats and vga is not None:
            parts.append(vga(v, txt_feats[key].to(dev)))  # (N_t, D)
        elif key in txt_feats and not model.cfg.use_vga:
            parts.append(txt_feats[key].to(dev))
    if not parts:
        raise ValueError("guided_text_vectors: txt_feats has neither 's' nor 'k' for this model")
    if len(parts) == 1:
        return parts[0].float().cpu()
    ft = model.vgmf(*parts) if model.cfg.use_vgmf else 0.5 * (parts[0] + parts[1])  # as AMFMN._fuse
    return ft.float().cpu()


def embed_2d(*blocks, n_neighbors: int = 15, seed: int = 0, metric: str = "cosine") -> list[np.ndarray]:
    """Joint 2-D UMAP of several (N_k, D) feature blocks; returns one (N_k, 2) array per block.

    The first call compiles umap-learn's numba kernels (about 20 s). ``n_neighbors`` is lowered to
    fit small inputs.
    """
    import umap

    x = np.concatenate([np.asarray(b, dtype=np.float32) for b in blocks])
    reducer = umap.UMAP(n_neighbors=max(2, min(n_neighbors, len(x) - 1)), metric=metric,
                        random_state=seed, n_jobs=1)
    xy = reducer.fit_transform(x)
    cuts = np.cumsum([len(b) for b in blocks])[:-1]
    return np.split(xy, cuts)


# ----------------------------------------------------------------------------------------------
# runs shared by notebooks 04 and 05

def variant_config(vga: str = "sim", quick: bool | None = None) -> dict:
    """Config of the AMFMN-``vga`` synthetic runs of notebooks 04/05 (paper settings, or quick mode
    with :data:`rsnb.config.QUICK_RUN_OVERRIDES`)."""
    from rsnb.experiment import load_config

    quick = is_quick() if quick is None else quick
    overrides = [f"model.vga={vga}", *(QUICK_RUN_OVERRIDES if quick else ())]
    return load_config("synthetic", overrides, quick=quick)


def run_path(name: str) -> Path:
    """``cache_dir()/runs/<name>-quick`` or ``-full``: quick and full runs never overwrite each other."""
    return cache_dir() / "runs" / f"{name}-{'quick' if is_quick() else 'full'}"


def evaluation_split(cfg: dict, split: str = "test"):
    """A split of a run's dataset before the quick-mode ``max_images`` subsample.

    The subsample keeps every image's split label, so the full test split holds no training image;
    in quick mode it gives 30 test images instead of the handful left in the subsample.
    """
    from rsnb.experiment import prepare_corpus

    full = {**cfg, "data": {**cfg["data"], "max_images": None}}
    return prepare_corpus(full, progress=False).split(split)


def _with_init_request(cfg: dict, requested: dict) -> dict:
    """``cfg`` with ``model.pretrained`` as a request: a run folder records what the backbone really
    used (``imagenet``, ``random`` or a path); ``random`` after a failed ImageNet download still
    answers a request for ImageNet weights."""
    out = copy.deepcopy(cfg)
    m, want = out.get("model") or {}, (requested.get("model") or {}).get("pretrained")
    if "pretrained" in m:
        aliases = {True: "imagenet", False: "random", None: "random"}
        value = aliases.get(m["pretrained"], m["pretrained"]) if isinstance(m["pretrained"], bool | None) else m["pretrained"]
        want = aliases.get(want, want) if isinstance(want, bool | None) else want
        m["pretrained"] = want if (value, want) == ("random", "imagenet") else value
    return out


def run_status(cfg: dict, run_dir) -> str:
    """``"complete"`` (same config, all epochs), ``"partial"`` (same config, resumable) or ``"absent"``."""
    run = Path(run_dir)
    files = [run / f for f in ("config.yaml", "last.json", "history.json")]
    if not all(f.is_file() for f in files):
        return "absent"
    from rsnb.experiment import resolve_protocol

    stored = load_yaml(files[0].read_text())
    wanted = load_yaml(yaml.safe_dump(resolve_protocol(copy.deepcopy(cfg))))  # compare as stored
    if _with_init_request(stored, wanted) != _with_init_request(wanted, wanted):
        return "absent"
    done = len(json.loads((run / "history.json").read_text()))
    return "complete" if done >= int(cfg["train"].get("epochs", 0)) else "partial"


def cached_run(cfg: dict, run_dir, device="auto", retrain: bool = False) -> dict:
    """Load the run in ``run_dir`` if it was trained with ``cfg``; otherwise train (or resume) it.

    Returns:
        ``{"run_dir", "history", "model" (best checkpoint, eval mode), "vocab", "corpus", "trained"}``.
    """
    from rsnb import experiment as ex

    status = "absent" if retrain else run_status(cfg, run_dir)
    if status == "complete":
        try:
            model, vocab, _ = ex.load_run(run_dir, "best", device=resolve_device(device))
        except RuntimeError as e:  # CheckpointError, or weights from an older version of the model code
            warnings.warn(f"{run_dir}: cached run does not load ({str(e)[:200]}); training it again", stacklevel=2)
            status = "absent"
    if status != "complete":
        # train_run builds the model before train() seeds the RNGs: seed here so the initial weights
        # (and hence the whole run) are the same in every process
        ex.train_run(cfg, run_dir, resume=status == "partial", device=device,
                     overwrite=status == "absent" and Path(run_dir).is_dir() and any(Path(run_dir).iterdir()))
        model, vocab, _ = ex.load_run(run_dir, "best", device=resolve_device(device))
    trained = status != "complete"
    history = json.loads((Path(run_dir) / "history.json").read_text())
    return {"run_dir": Path(run_dir), "history": history, "model": model, "vocab": vocab,
            "corpus": ex.prepare_corpus(cfg, progress=False), "trained": trained}
