"""Caption and scene statistics used by notebook 01 (data exploration).

All functions take a :class:`~rsnb.data.corpus.Corpus` and return plain numpy/dict results so a
notebook can plot them directly. Words are lower-cased ``[a-z]+`` runs, the same counting rule the
dataset README in ``shared/data`` uses.

Shown in notebooks/01_data_exploration.ipynb.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from rsnb.data.corpus import Corpus

_WORD = re.compile(r"[a-z]+")


def words(text: str) -> list[str]:
    """Lower-cased alphabetic words of ``text``."""
    return _WORD.findall(text.lower())


def caption_summary(corpus: Corpus) -> dict[str, float]:
    """Headline numbers: images, captions, unique-caption share, mean length, vocabulary size.

    Returns:
        dict with ``images``, ``captions``, ``unique_share`` (0..1), ``mean_words``,
        ``vocabulary`` and ``diversity`` (distinct captions per image, the paper's measure).
    """
    caps = corpus.captions
    norm = [" ".join(words(c)) for c in caps]
    vocab = {w for c in norm for w in c.split()}
    n_img = max(len(corpus), 1)
    return {
        "images": len(corpus),
        "captions": len(caps),
        "unique_share": len(set(norm)) / max(len(norm), 1),
        "mean_words": float(np.mean([len(c.split()) for c in norm])) if norm else 0.0,
        "vocabulary": len(vocab),
        "diversity": len(set(norm)) / n_img,
    }


def caption_lengths(corpus: Corpus) -> np.ndarray:
    """Number of words of every caption, in caption order."""
    return np.array([len(words(c)) for c in corpus.captions], dtype=int)


def word_frequencies(corpus: Corpus, top: int | None = None) -> list[tuple[str, int]]:
    """``(word, count)`` pairs sorted by descending count (ties alphabetical)."""
    counts = Counter(w for c in corpus.captions for w in words(c))
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ranked[:top] if top else ranked


def bow_matrix(texts: list[str], vocab: dict[str, int] | None = None) -> tuple[np.ndarray, dict[str, int]]:
    """L2-normalised bag-of-words rows for ``texts`` (shape ``(len(texts), V)``)."""
    toks = [words(t) for t in texts]
    if vocab is None:
        vocab = {w: i for i, w in enumerate(sorted({w for t in toks for w in t}))}
    mat = np.zeros((len(texts), len(vocab)), dtype=np.float32)
    for i, t in enumerate(toks):
        for w in t:
            j = vocab.get(w)
            if j is not None:
                mat[i, j] += 1.0
    norms = np.linalg.norm(mat, axis=1, keepdims=True)
    return mat / np.maximum(norms, 1e-12), vocab


def class_similarity(corpus: Corpus, max_images: int = 2000, seed: int = 0) -> dict[str, np.ndarray]:
    """Bag-of-words cosine similarity between images' caption sets, split by class relation.

    Each image is represented by the mean BoW vector of its captions. The function returns the
    cosine similarities of all image pairs of the same class (``intra``) and of different
    classes (``inter``), on a random subset of at most ``max_images`` images. RSITMD's
    difficulty shows as a large overlap of the two distributions.
    """
    images = corpus.images
    if len(images) > max_images:
        rng = np.random.default_rng(seed)
        images = [images[i] for i in sorted(rng.choice(len(images), max_images, replace=False))]
    docs = [" ".join(r.captions) for r in images]
    mat, _ = bow_matrix(docs)
    sims = mat @ mat.T
    cls = np.array([r.cls for r in images])
    same = cls[:, None] == cls[None, :]
    upper = np.triu(np.ones_like(same, dtype=bool), k=1)
    return {"intra": sims[same & upper], "inter": sims[~same & upper]}


def object_scales(corpus: Corpus) -> list[dict]:
    """Flatten synthetic ground truth: one row per object with class, name, scale, area, mentioned.

    Real datasets carry no object metadata and give an empty list.
    """
    rows = []
    for r in corpus.images:
        for obj in (r.meta or {}).get("objects", []):
            x0, y0, x1, y1 = obj["box"]
            rows.append(
                {
                    "class": r.cls,
                    "name": obj["name"],
                    "scale": obj["scale"],
                    "area": float(max(x1 - x0, 0) * max(y1 - y0, 0)),
                    "mentioned": bool(obj.get("mentioned", True)),
                }
            )
    return rows
