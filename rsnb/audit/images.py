"""Near-duplicate images within a dataset (across and inside splits) and between two datasets.

Each image is hashed once under its 8 rotations/flips (:mod:`rsnb.audit.hashing`); the rotated
codes of one side are searched against the stored codes of the other with multi-index hashing
(:mod:`rsnb.audit.index`), so the cost follows the number of close pairs, not N x M. A candidate
pair within ``threshold`` bits of the chosen hash is *confirmed* when the normalised correlation
of the two grey thumbnails, after the transform the hash found, reaches ``min_corr``: textures
that hash alike by chance (fields, sea, bare soil) rarely correlate pixel by pixel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from rsnb.audit.hashing import DIHEDRAL_NAMES, ImageHashes, correlation, dihedral_inverse, hash_images
from rsnb.audit.index import hamming, hamming_pairs
from rsnb.data.corpus import Corpus

SPLIT_ORDER = ("train", "val", "test")


def image_pairs(a: ImageHashes, b: ImageHashes | None = None, hash: str = "phash", threshold: int = 12,
                other_threshold: int = 14, min_corr: float = 0.8, progress: bool = False) -> dict[str, np.ndarray]:
    """Candidate near-duplicate pairs between two hash sets (or within one when ``b`` is None).

    Args:
        a: hashes of the first image set.
        b: hashes of the second set; None searches ``a`` against itself (pairs ``i < j``).
        hash: ``phash`` or ``dhash``: the code searched (the other is reported).
        threshold: largest Hamming distance (of 64 bits) of a candidate on the searched hash.
        other_threshold: largest distance on the other hash (same transform) for a confirmation.
        min_corr: thumbnail correlation a candidate also needs to be confirmed.
        progress: tqdm bar over the search.

    Returns:
        Arrays of equal length P: ``a``, ``b`` (image rows), ``transform`` (g with
        ``dihedral(image_a, g) ~ image_b``), ``distance`` (searched hash), ``other_distance``,
        ``corr`` and ``confirmed`` (bool); sorted by (a, b).
    """
    within = b is None
    b = a if within else b
    other = "dhash" if hash == "phash" else "phash"
    rows_a, rows_b = np.nonzero(a.ok)[0], np.nonzero(b.ok)[0]
    query = a.codes(hash)[rows_a].reshape(-1)  # (Na * 8,): all transforms of every image of a
    qi, di, dist = hamming_pairs(query, b.codes(hash)[rows_b, 0], threshold, progress=progress)
    ia, ib, g = rows_a[qi // 8], rows_b[di], qi % 8
    if within:
        keep = ia != ib
        ia, ib, g, dist = ia[keep], ib[keep], g[keep], dist[keep]
        swap = ia > ib  # dihedral(x, g) ~ y  <=>  dihedral(y, g^-1) ~ x
        ia, ib = np.where(swap, ib, ia), np.where(swap, ia, ib)
        g = np.where(swap, [dihedral_inverse(k) for k in g] if g.size else g, g)
    order = np.lexsort((g, dist, ib, ia))  # per pair: the transform with the smallest distance first
    ia, ib, g, dist = ia[order], ib[order], g[order], dist[order]
    first = np.r_[True, (ia[1:] != ia[:-1]) | (ib[1:] != ib[:-1])] if ia.size else np.zeros(0, bool)
    ia, ib, g, dist = ia[first], ib[first], g[first].astype(np.int64), dist[first]
    other_dist = hamming(a.codes(other)[ia, g], b.codes(other)[ib, 0])
    corr = correlation(a.thumbs[ia], b.thumbs[ib], g)
    return {"a": ia, "b": ib, "transform": g, "distance": dist, "other_distance": other_dist,
            "corr": corr, "confirmed": (corr >= min_corr) & (other_dist <= other_threshold)}


@dataclass
class ImageAudit:
    """Result of :func:`audit_images`.

    Attributes:
        pairs: one dict per candidate pair (see :func:`pair_rows`), confirmed or not.
        summary: counts and leak fractions (see :func:`leak_summary`).
        hashes: the hashes of ``corpus`` (and of ``against`` under ``"against"``).
        missing: unreadable or missing image files, one line each.
    """

    pairs: list[dict]
    summary: dict
    hashes: dict = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)


def pair_rows(pairs: dict[str, np.ndarray], ca: Corpus, cb: Corpus, hash: str = "phash") -> list[dict]:
    """Turn :func:`image_pairs` arrays into CSV-ready rows naming files, splits and classes."""
    other = "dhash" if hash == "phash" else "phash"
    rows = []
    for k in range(len(pairs["a"])):
        ra, rb = ca.images[int(pairs["a"][k])], cb.images[int(pairs["b"][k])]
        rows.append({"dataset_a": ca.name, "index_a": int(pairs["a"][k]), "file_a": ra.filename,
                     "split_a": ra.split, "class_a": ra.cls,
                     "dataset_b": cb.name, "index_b": int(pairs["b"][k]), "file_b": rb.filename,
                     "split_b": rb.split, "class_b": rb.cls,
                     hash: int(pairs["distance"][k]), other: int(pairs["other_distance"][k]),
                     "transform": DIHEDRAL_NAMES[int(pairs["transform"][k])],
                     "corr": round(float(pairs["corr"][k]), 4), "confirmed": bool(pairs["confirmed"][k])})
    return rows


def _splits(corpus: Corpus) -> list[str]:
    present = {r.split for r in corpus.images}
    return [s for s in SPLIT_ORDER if s in present] + sorted(present - set(SPLIT_ORDER))


def leak_summary(pairs: dict[str, np.ndarray], ca: Corpus, cb: Corpus | None, hashed_a: np.ndarray,
                 hashed_b: np.ndarray | None = None) -> dict:
    """Share of each split's images that have a confirmed near-duplicate in each split of the other side.

    Args:
        pairs: :func:`image_pairs` output.
        ca: first corpus; cb: second corpus, or None for a within-dataset audit.
        hashed_a: (Na,) bool, images of ``ca`` that could be hashed; hashed_b likewise.

    Returns:
        ``{"leaks": [{"split": s, "in": t, "images": n, "with_duplicate": k, "percent": p}],
        "confirmed_pairs", "candidate_pairs", "images_in_groups", "groups"}`` (within a dataset,
        ``in`` is a split of the same dataset; between datasets ``"against:<split>"`` and ``"against"``).
    """
    within = cb is None
    cb = ca if within else cb
    hashed_b = hashed_a if hashed_b is None else hashed_b
    conf = pairs["confirmed"]
    ia, ib = pairs["a"][conf], pairs["b"][conf]
    split_a = np.array([r.split for r in ca.images])
    split_b = np.array([r.split for r in cb.images])
    partners: list[tuple[np.ndarray, np.ndarray]] = [(ia, ib)] + ([(ib, ia)] if within else [])
    leaks = []
    for s in _splits(ca):
        members = np.nonzero((split_a == s) & hashed_a)[0]
        targets = [(t, split_b == t) for t in _splits(cb)] + ([] if within else [("", np.ones(len(cb), bool))])
        for t, in_t in targets:
            hit = set()
            for x, y in partners:
                sel = (split_a[x] == s) & in_t[y]
                hit.update(x[sel].tolist())
            label = t if within else (f"against:{t}" if t else "against")
            leaks.append({"split": s, "in": label, "images": int(members.size), "with_duplicate": len(hit),
                          "percent": round(100.0 * len(hit) / max(1, members.size), 2)})
    groups = _groups(ia, ib) if within else []
    return {"leaks": leaks, "confirmed_pairs": int(conf.sum()), "candidate_pairs": int(conf.size),
            "images_in_groups": int(sum(len(g) for g in groups)), "groups": len(groups),
            "hashed": int(hashed_a.sum()), "hashed_against": None if within else int(hashed_b.sum())}


def _groups(ia: np.ndarray, ib: np.ndarray) -> list[list[int]]:
    """Connected components of the confirmed-pair graph (images that are copies of each other)."""
    if ia.size == 0:
        return []
    nodes = np.unique(np.r_[ia, ib])
    pos = {int(n): k for k, n in enumerate(nodes)}
    r = np.array([pos[int(x)] for x in ia])
    c = np.array([pos[int(x)] for x in ib])
    graph = coo_matrix((np.ones(r.size), (r, c)), shape=(nodes.size, nodes.size))
    _, labels = connected_components(graph, directed=False)
    return [nodes[labels == k].tolist() for k in range(labels.max() + 1)]


def leak_fraction(summary: dict, split: str = "test", within: str = "train") -> float:
    """Percent of ``split`` images with a confirmed near-duplicate in ``within`` (from :func:`leak_summary`)."""
    for row in summary["leaks"]:
        if row["split"] == split and row["in"] == within:
            return float(row["percent"])
    return float("nan")


def audit_images(corpus: Corpus, against: Corpus | None = None, hash: str = "phash", threshold: int = 12,
                 other_threshold: int = 14, min_corr: float = 0.8, thumb_size: int = 16, workers: int = 1,
                 progress: bool = True, hashes: dict | None = None) -> ImageAudit:
    """Hash a corpus (and ``against``), search near-duplicates, and summarise leaks between splits.

    Args:
        corpus: the dataset audited.
        against: a second dataset; pairs then go from ``corpus`` to ``against`` only.
        hash, threshold, other_threshold, min_corr: see :func:`image_pairs`.
        thumb_size, workers, progress: see :func:`rsnb.audit.hashing.hash_images`.
        hashes: precomputed ``{"corpus": ImageHashes, "against": ImageHashes}`` to reuse.

    Returns:
        An :class:`ImageAudit`.
    """
    hashes = dict(hashes or {})
    if "corpus" not in hashes:
        hashes["corpus"] = hash_images([r.path for r in corpus.images], thumb_size, workers, progress,
                                       desc=f"hashing {corpus.name}")
    if against is not None and "against" not in hashes:
        hashes["against"] = hash_images([r.path for r in against.images], thumb_size, workers,
                                        progress, desc=f"hashing {against.name}")
    ha, hb = hashes["corpus"], hashes.get("against")
    pairs = image_pairs(ha, hb, hash, threshold, other_threshold, min_corr, progress)
    summary = leak_summary(pairs, corpus, against, ha.ok, None if hb is None else hb.ok)
    summary.update(hash=hash, threshold=int(threshold), other_threshold=int(other_threshold),
                   min_corr=float(min_corr), images=len(corpus),
                   images_against=None if against is None else len(against))
    rows = pair_rows(pairs, corpus, against if against is not None else corpus, hash)
    return ImageAudit(rows, summary, hashes, ha.errors + ([] if hb is None else hb.errors))
