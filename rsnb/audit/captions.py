"""Caption hygiene: blank and near-empty captions, exact and near-duplicate captions, images whose
captions are all one sentence, and sentences shared by images of different scene classes.

Captions are compared after :func:`normalise` (lower case, words and numbers only, single
spaces), so "A plane." and "a plane" are one caption. Near-duplicates are pairs of different
normalised captions whose word sets have a Jaccard similarity of at least ``jaccard``; they are
found with prefix filtering (Bayardo et al., "Scaling Up All Pairs Similarity Search", WWW 2007;
Xiao et al., ppjoin, WWW 2008: two sets with Jaccard >= t must share a word among their rarest
``|x| - ceil(t |x|) + 1``), so only pairs sharing a rare word are compared. :func:`jaccard_pairs_brute` is the reference.
The corpus should be read with ``blank="keep"`` so that blank captions are still in place.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict

from rsnb.data.corpus import Corpus

_WORD = re.compile(r"[a-z0-9]+")


def normalise(text: str) -> str:
    """Lower-case words and numbers of a caption joined by single spaces (punctuation dropped)."""
    return " ".join(_WORD.findall(str(text).lower()))


def caption_rows(corpus: Corpus) -> list[dict]:
    """One row per caption: image index, position among the image's captions, raw and normalised text."""
    rows = []
    for i, r in enumerate(corpus.images):
        for k, c in enumerate(r.captions):
            rows.append({"image": i, "position": k, "file": r.filename, "split": r.split, "class": r.cls,
                         "caption": c, "normalised": normalise(c)})
    return rows


def short_captions(corpus: Corpus, min_words: int = 3) -> list[dict]:
    """Blank captions (no word at all) and near-empty ones (fewer than ``min_words`` words)."""
    out = []
    for row in caption_rows(corpus):
        n = len(row["normalised"].split())
        if n < min_words:
            out.append({**row, "words": n, "kind": "blank" if n == 0 else "near-empty"})
    return out


def duplicate_groups(corpus: Corpus) -> list[dict]:
    """Normalised captions used more than once, most frequent first.

    Returns:
        ``[{"caption", "count" (captions), "images" (distinct images), "classes" (sorted distinct
        non-empty classes), "splits", "image_ids"}]``; blank captions are left out.
    """
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in caption_rows(corpus):
        if row["normalised"]:
            groups[row["normalised"]].append(row)
    out = []
    for text, rows in groups.items():
        if len(rows) < 2:
            continue
        ids = sorted({r["image"] for r in rows})
        out.append({"caption": text, "count": len(rows), "images": len(ids),
                    "classes": sorted({r["class"] for r in rows if r["class"]}),
                    "splits": sorted({r["split"] for r in rows}), "image_ids": ids})
    return sorted(out, key=lambda g: (-g["count"], g["caption"]))


def identical_caption_images(corpus: Corpus) -> list[dict]:
    """Images with at least two non-blank captions that all normalise to one sentence."""
    out = []
    for i, r in enumerate(corpus.images):
        texts = [t for t in (normalise(c) for c in r.captions) if t]
        if len(texts) >= 2 and len(set(texts)) == 1:
            out.append({"image": i, "file": r.filename, "split": r.split, "class": r.cls,
                        "captions": len(texts), "caption": texts[0]})
    return out


def distinct_per_image(corpus: Corpus) -> dict[int, int]:
    """Histogram: number of distinct normalised non-blank captions -> number of images."""
    hist = Counter(len({t for t in (normalise(c) for c in r.captions) if t}) for r in corpus.images)
    return dict(sorted(hist.items()))


def cross_class_groups(groups: list[dict]) -> list[dict]:
    """Duplicate groups (from :func:`duplicate_groups`) whose images belong to two or more classes."""
    return [g for g in groups if len(g["classes"]) >= 2]


def _jaccard(a: frozenset, b: frozenset) -> float:
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter) if a or b else 1.0


def jaccard_pairs(sets, threshold: float) -> list[tuple[int, int, float]]:
    """All pairs ``i < j`` of word sets with Jaccard similarity >= ``threshold`` (prefix filtering).

    Args:
        sets: word sets (any iterables of hashable tokens); empty sets never match.
        threshold: Jaccard threshold in (0, 1].

    Returns:
        ``[(i, j, jaccard)]`` sorted by (i, j).
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"jaccard threshold must be in (0, 1], got {threshold}")
    sets = [frozenset(s) for s in sets]
    freq = Counter(t for s in sets for t in s)
    rank = {t: k for k, (t, _) in enumerate(sorted(freq.items(), key=lambda kv: (kv[1], str(kv[0]))))}
    order = sorted((i for i, s in enumerate(sets) if s), key=lambda i: (len(sets[i]), i))
    index: dict = defaultdict(list)  # rare token -> ids already seen (no larger than the current set)
    out = []
    for i in order:
        s = sets[i]
        toks = sorted(s, key=rank.__getitem__)
        probe = toks[: len(s) - math.ceil(threshold * len(s) - 1e-9) + 1]
        seen = set()
        for t in probe:
            for j in index[t]:
                if j in seen or len(sets[j]) < threshold * len(s) - 1e-9:
                    continue
                seen.add(j)
                jac = _jaccard(s, sets[j])
                if jac >= threshold - 1e-12:
                    out.append((min(i, j), max(i, j), jac))
        # sets come in increasing size, so a later partner y (|y| >= |x|) overlapping x in at least
        # 2t/(1+t) |x| words must hit one of x's rarest |x| - ceil(2t/(1+t) |x|) + 1 (ppjoin's index prefix)
        for t in toks[: len(s) - math.ceil(2 * threshold / (1 + threshold) * len(s) - 1e-9) + 1]:
            index[t].append(i)
    return sorted(out)


def jaccard_pairs_brute(sets, threshold: float) -> list[tuple[int, int, float]]:
    """Reference for :func:`jaccard_pairs`: every pair compared."""
    sets = [frozenset(s) for s in sets]
    return [(i, j, _jaccard(sets[i], sets[j])) for i in range(len(sets)) for j in range(i + 1, len(sets))
            if sets[i] and sets[j] and _jaccard(sets[i], sets[j]) >= threshold - 1e-12]


def near_duplicate_captions(corpus: Corpus, threshold: float = 0.8) -> list[dict]:
    """Pairs of different normalised captions whose word sets overlap with Jaccard >= ``threshold``.

    Returns:
        ``[{"caption_a", "caption_b", "jaccard", "images_a", "images_b", "classes"}]``, most similar first.
    """
    where: dict[str, set[int]] = defaultdict(set)
    for row in caption_rows(corpus):
        if row["normalised"]:
            where[row["normalised"]].add(row["image"])
    texts = sorted(where)
    pairs = jaccard_pairs([t.split() for t in texts], threshold)
    out = []
    for i, j, jac in pairs:
        imgs = where[texts[i]] | where[texts[j]]
        out.append({"caption_a": texts[i], "caption_b": texts[j], "jaccard": round(jac, 4),
                    "images_a": len(where[texts[i]]), "images_b": len(where[texts[j]]),
                    "classes": sorted({corpus.images[k].cls for k in imgs if corpus.images[k].cls})})
    return sorted(out, key=lambda r: (-r["jaccard"], r["caption_a"], r["caption_b"]))


def caption_audit(corpus: Corpus, min_words: int = 3, jaccard: float | None = 0.8) -> dict:
    """Every caption check on one corpus.

    Args:
        corpus: read with ``blank="keep"`` to see blank captions.
        min_words: captions with fewer words are near-empty.
        jaccard: near-duplicate threshold; None or 0 skips the near-duplicate search.

    Returns:
        ``{"summary": {...}, "short": [...], "groups": [...], "identical": [...], "cross_class": [...],
        "near": [...]}`` (lists of CSV-ready rows; see the functions of this module).
    """
    rows = caption_rows(corpus)
    short = short_captions(corpus, min_words)
    groups = duplicate_groups(corpus)
    identical = identical_caption_images(corpus)
    cross = cross_class_groups(groups)
    near = near_duplicate_captions(corpus, jaccard) if jaccard else []
    texts = [r["normalised"] for r in rows if r["normalised"]]
    has_classes = any(r.cls for r in corpus.images)
    summary = {
        "images": len(corpus), "captions": len(rows),
        "blank": sum(s["kind"] == "blank" for s in short),
        "near_empty": sum(s["kind"] == "near-empty" for s in short),
        "images_with_blank": len({s["image"] for s in short if s["kind"] == "blank"}),
        "unique_captions": len(set(texts)),
        "unique_percent": round(100.0 * len(set(texts)) / max(1, len(texts)), 2),
        "duplicate_groups": len(groups),
        "captions_in_duplicate_groups": sum(g["count"] for g in groups),
        "identical_caption_images": len(identical),
        "identical_caption_percent": round(100.0 * len(identical) / max(1, len(corpus)), 2),
        "distinct_per_image": distinct_per_image(corpus),
        "cross_class_groups": len(cross) if has_classes else None,
        "cross_class_captions": sum(g["count"] for g in cross) if has_classes else None,
        "near_duplicate_pairs": len(near) if jaccard else None,
        "jaccard": jaccard or None, "min_words": int(min_words),
    }
    return {"summary": summary, "short": short, "groups": groups, "identical": identical,
            "cross_class": cross, "near": near}
