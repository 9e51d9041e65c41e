"""Caption and scene statistics used by notebook 01 (data exploration).

All functions take a :class:`~rsnb.data.corpus.Corpus` and return plain numpy/dict results so a
notebook can plot them directly. Words are lower-cased ``[a-z]+`` runs, the same counting rule the
dataset README in ``shared/data`` uses.

Shown in notebooks/01_data_exploration.ipynb.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping

import numpy as np

from rsnb.data.corpus import Corpus
from rsnb.data.vocab import STOPWORDS, Vocab, tokenize

#: the synthetic scale bands, smallest first
SCALE_BANDS = ("small", "medium", "large")

_WORD = re.compile(r"[a-z]+")


def words(text: str, drop_stopwords: bool = False) -> list[str]:
    """Lower-cased alphabetic words of ``text`` (without :data:`~rsnb.data.vocab.STOPWORDS` if asked)."""
    found = _WORD.findall(text.lower())
    return [w for w in found if w not in STOPWORDS] if drop_stopwords else found


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


def bow_matrix(
    texts: list[str], vocab: dict[str, int] | None = None, drop_stopwords: bool = False
) -> tuple[np.ndarray, dict[str, int]]:
    """L2-normalised bag-of-words rows for ``texts`` (shape ``(len(texts), V)``).

    Args:
        texts: N strings.
        vocab: word -> column; default all words of ``texts`` in alphabetical order.
        drop_stopwords: leave function words out, so that only content words count.

    Returns:
        ``(matrix (N, V) float32, vocab)``; an all-zero text gives an all-zero row.
    """
    toks = [words(t, drop_stopwords) for t in texts]
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


def _sample_images(corpus: Corpus, max_images: int, seed: int) -> list:
    """At most ``max_images`` records, a seeded random subset kept in corpus order."""
    images = corpus.images
    if len(images) > max_images:
        rng = np.random.default_rng(seed)
        images = [images[i] for i in sorted(rng.choice(len(images), max_images, replace=False))]
    return images


def class_similarity(
    corpus: Corpus, max_images: int = 2000, seed: int = 0, drop_stopwords: bool = True
) -> dict[str, np.ndarray]:
    """Bag-of-words cosine similarity between images' caption sets, split by class relation.

    Each image is represented by the BoW vector of all its captions joined. The function returns
    the cosine similarities of all image pairs of the same class (``intra``) and of different
    classes (``inter``), on a random subset of at most ``max_images`` images. Coarse datasets
    (UCM, Sydney) show well separated distributions (captions say the class and little else).
    ``drop_stopwords`` (default) compares content words only.
    """
    images = _sample_images(corpus, max_images, seed)
    docs = [" ".join(r.captions) for r in images]
    mat, _ = bow_matrix(docs, drop_stopwords=drop_stopwords)
    sims = mat @ mat.T
    cls = np.array([r.cls for r in images])
    same = cls[:, None] == cls[None, :]
    upper = np.triu(np.ones_like(same, dtype=bool), k=1)
    return {"intra": sims[same & upper], "inter": sims[~same & upper]}


def object_scales(corpus: Corpus) -> list[dict]:
    """Flatten synthetic ground truth: one row per object.

    Each row has ``class``, ``name``, ``scale`` (band), ``area`` (box area in px),
    ``side_frac`` (longer box side / canvas side, the quantity the scale bands are defined on;
    None when the json does not record the canvas size) and ``mentioned``. Real datasets carry
    no object metadata and give an empty list.
    """
    rows = []
    for r in corpus.images:
        meta = r.meta or {}
        size = meta.get("size") or (meta.get("dataset") or {}).get("size")
        for obj in meta.get("objects", []):
            x0, y0, x1, y1 = obj["box"]
            w, h = max(x1 - x0, 0), max(y1 - y0, 0)
            rows.append(
                {
                    "class": r.cls,
                    "name": obj["name"],
                    "scale": obj["scale"],
                    "area": float(w * h),
                    "side_frac": float(max(w, h)) / float(size) if size else None,
                    "mentioned": bool(obj.get("mentioned", True)),
                }
            )
    return rows


# ------------------------------------------------------------------ caption-level similarity
def _caption_sims(corpus: Corpus, max_images: int, seed: int, drop_stopwords: bool):
    """(M, M) caption cosine matrix of a seeded image subset, its image index and class per caption."""
    images = _sample_images(corpus, max_images, seed)
    caps = [c for r in images for c in r.captions]
    img = np.array([i for i, r in enumerate(images) for _ in r.captions], dtype=int)  # (M,)
    cls = np.array([r.cls for r in images for _ in r.captions], dtype=object)  # (M,)
    mat, _ = bow_matrix(caps, drop_stopwords=drop_stopwords)  # (M, V)
    return mat @ mat.T, img, cls


def caption_similarity(
    corpus: Corpus, max_images: int = 500, seed: int = 0, drop_stopwords: bool = True
) -> dict[str, np.ndarray]:
    """Cosine similarity of caption pairs, grouped by how the two captions are related.

    Every unordered pair of captions (bag of words, content words only by default) of a seeded
    subset of at most ``max_images`` images falls in one group:

    * ``same_image``: two captions of one image (how consistent the annotators were);
    * ``same_class``: captions of two different images of one scene class;
    * ``other_class``: captions of images of two different classes.

    A caption identifies *its* image only as far as ``same_image`` exceeds ``same_class``; that
    gap is what retrieval has to exploit. Corpora without classes (all ``cls == ""``) put every
    cross-image pair in ``same_class``.

    Returns:
        dict of 1-D float arrays (one entry per pair) under the three keys.
    """
    sims, img, cls = _caption_sims(corpus, max_images, seed, drop_stopwords)
    upper = np.triu(np.ones(sims.shape, dtype=bool), k=1)  # (M, M), each pair once
    same_img = img[:, None] == img[None, :]
    same_cls = cls[:, None] == cls[None, :]
    return {
        "same_image": sims[upper & same_img],
        "same_class": sims[upper & same_cls & ~same_img],
        "other_class": sims[upper & ~same_cls],
    }


def class_similarity_matrix(
    corpus: Corpus, max_images: int = 500, seed: int = 0, drop_stopwords: bool = True
) -> tuple[list[str], np.ndarray]:
    """Mean caption cosine between classes: entry (a, b) averages all caption pairs of *different*
    images with classes a and b (pairs of one image are left out, also on the diagonal).

    Returns:
        ``(classes, matrix)`` with ``matrix`` of shape (C, C), symmetric; NaN where a class has a
        single image in the subset (no diagonal pair).
    """
    sims, img, cls = _caption_sims(corpus, max_images, seed, drop_stopwords)
    classes = sorted(set(cls.tolist()))
    onehot = np.stack([cls == c for c in classes], axis=1).astype(np.float64)  # (M, C)
    valid = (img[:, None] != img[None, :]).astype(np.float64)  # (M, M) pairs of different images
    total = onehot.T @ (sims * valid) @ onehot  # (C, C) summed similarity
    count = onehot.T @ valid @ onehot  # (C, C) number of ordered pairs
    with np.errstate(invalid="ignore", divide="ignore"):
        matrix = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return classes, matrix


def separability(pos, neg) -> float:
    """Probability that a random ``pos`` value exceeds a random ``neg`` value (ties count half).

    This is the ROC AUC (Mann-Whitney U / (n_pos n_neg)) of telling the two groups apart by the
    value alone: 0.5 = indistinguishable, 1.0 = every ``pos`` above every ``neg``. NaN when a
    group is empty.
    """
    pos, neg = np.asarray(pos, dtype=np.float64).ravel(), np.sort(np.asarray(neg, dtype=np.float64).ravel())
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    below = np.searchsorted(neg, pos, side="left")  # (P,) neg values < pos
    ties = np.searchsorted(neg, pos, side="right") - below  # (P,) neg values == pos
    return float((below.sum() + 0.5 * ties.sum()) / (pos.size * neg.size))


# ------------------------------------------------------------------ scale bands (synthetic)
def scale_bands(corpus: Corpus) -> list[dict]:
    """Per scale band: how many objects, how big, and which share the captions mention.

    Returns:
        One dict per band in :data:`SCALE_BANDS` order (bands without objects included, with
        zeros) with ``band``, ``objects``, ``per_image`` (mean objects per image),
        ``mentioned``, ``unmentioned``, ``mentioned_share`` (0..1, NaN for no objects) and
        ``median_side`` (median longer side / canvas side, NaN when unknown). Empty list for a
        corpus without object metadata.
    """
    rows = object_scales(corpus)
    if not rows:
        return []
    out = []
    for band in SCALE_BANDS:
        sel = [r for r in rows if r["scale"] == band]
        n_ment = sum(r["mentioned"] for r in sel)
        sides = [r["side_frac"] for r in sel if r["side_frac"] is not None]
        out.append(
            {
                "band": band,
                "objects": len(sel),
                "per_image": len(sel) / max(len(corpus), 1),
                "mentioned": n_ment,
                "unmentioned": len(sel) - n_ment,
                "mentioned_share": n_ment / len(sel) if sel else float("nan"),
                "median_side": float(np.median(sides)) if sides else float("nan"),
            }
        )
    return out


# ------------------------------------------------------------------ vocabulary
def vocab_split_gap(
    corpus: Corpus, min_count: int = 5, split: str = "test", remove_stopwords: bool = False
) -> dict:
    """Compare a vocabulary built on the train split only with one built on all splits.

    Both are :meth:`rsnb.data.vocab.Vocab.build` over captions and keywords, as the training
    pipeline does. The all-splits vocabulary is what the official AMFMN files did (a mild test
    leak); the train-only one is the clean choice.

    Args:
        corpus: a corpus with a ``train`` split and the split ``split``.
        min_count: minimum word count of both vocabularies.
        split: the held-out split whose tokens are checked (``test`` or ``val``).
        remove_stopwords: passed to :meth:`Vocab.build` (stop-words then never count as unknown).

    Returns:
        dict with ``train_size`` and ``all_size`` (entries incl. ``<pad>``/``<unk>``),
        ``tokens`` (held-out token count), ``unk_rate_train`` and ``unk_rate_all`` (share of
        held-out tokens that map to ``<unk>``) and ``leaked``: ``(word, held-out count, train
        count)`` for held-out words that the all-splits vocabulary knows and the train-only one
        maps to ``<unk>``, most frequent first.
    """
    train, held = corpus.split("train"), corpus.split(split)
    if len(train) == 0 or len(held) == 0:
        raise ValueError(f"vocab_split_gap: corpus {corpus.name!r} needs 'train' and {split!r} images, has {corpus.splits}")

    def texts(c: Corpus) -> list[str]:
        return c.captions + [k for r in c.images for k in r.keywords]

    v_train = Vocab.build(texts(train), min_count=min_count, remove_stopwords=remove_stopwords)
    v_all = Vocab.build(texts(corpus), min_count=min_count, remove_stopwords=remove_stopwords)
    toks = [t for c in held.captions for t in tokenize(c) if not (remove_stopwords and t in STOPWORDS)]
    held_counts = Counter(toks)
    train_counts = Counter(t for c in texts(train) for t in tokenize(c))
    leaked = sorted(
        ((w, held_counts[w], train_counts[w]) for w in v_all.itos[2:] if w not in v_train and held_counts[w]),
        key=lambda x: (-x[1], x[0]),
    )
    n = max(len(toks), 1)
    return {
        "train_size": len(v_train),
        "all_size": len(v_all),
        "tokens": len(toks),
        "unk_rate_train": sum(t not in v_train for t in toks) / n,
        "unk_rate_all": sum(t not in v_all for t in toks) / n,
        "leaked": leaked,
    }


# ------------------------------------------------------------------ tables
def summary_table(corpora: Mapping[str, Corpus]) -> str:
    """:func:`caption_summary` of several corpora as an aligned text table, one row per corpus.

    Columns: images, captions, unique share (%), mean words per caption, vocabulary (distinct
    words), diversity (distinct captions per image; the AMFMN paper's measure).
    """
    head = ("dataset", "images", "captions", "unique %", "mean words", "vocabulary", "diversity")
    rows = []
    for name, corpus in corpora.items():
        s = caption_summary(corpus)
        rows.append((name, f"{s['images']:,}", f"{s['captions']:,}", f"{100 * s['unique_share']:.1f}",
                     f"{s['mean_words']:.1f}", f"{s['vocabulary']:,}", f"{s['diversity']:.2f}"))
    widths = [max(len(r[k]) for r in [head, *rows]) for k in range(len(head))]

    def line(r: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(r, widths)))

    return "\n".join([line(head), "  ".join("-" * w for w in widths), *map(line, rows)])
