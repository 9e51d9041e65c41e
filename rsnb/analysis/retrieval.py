"""Retrieval analysis of a score matrix (notebooks 04, 05): rank histograms against chance, R@K per
group of queries (scale band, class), class confusion, caption kinds and keyword relevance of the
synthetic scenes, top-k galleries and the hit/miss examples shown in them.

Everything works on the outputs of :mod:`rsnb.evaluate` (a score matrix ``sims`` of shape
(N_images, N_captions), per-query ranks from ``retrieval_metrics(..., return_ranks=True)``) and on a
:class:`rsnb.data.corpus.Corpus` split (scene classes, keywords, synthetic object metadata).
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import torch

from rsnb.data.synthetic.kinds import COLOURS, KINDS, NOUN_RE


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


def caption_kinds(caption: str, present=None) -> set[str]:
    """Synthetic object kinds a caption names (by their nouns), optionally only those in ``present``."""
    text = caption.lower()
    return {k for k, rx in NOUN_RE.items() if (present is None or k in present) and rx.search(text)}


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
