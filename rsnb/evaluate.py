"""Retrieval evaluation: exact R@K / medr / meanr, single-pass cached encoding, k-fold helpers.

The protocol follows the AMFMN code (``engine.validate``) with its bugs removed:

* **i2t** ("sentence retrieval"): every image ranks all captions; the rank of an image is the best
  (smallest) 0-based position of any of *its* captions. R@K = 100 · #{rank < K} / #images.
* **t2i** ("image retrieval"): every caption ranks all images; its rank is the position of its own image.
  R@K = 100 · #{rank < K} / #captions.
* ``mR`` = mean of the six recalls; ``medr = floor(median(rank)) + 1``; ``meanr = mean(rank) + 1``.
* Captions per image may be irregular (1–7, any order): ground truth comes from ``caption_to_image``,
  never from blocks of 5. Images that have no caption are left out of the i2t metrics.
* **Tie rule** (deterministic, neither optimistic nor pessimistic): candidates are ordered by
  descending score, ties by ascending index (a stable sort). The rank of the target is therefore
  ``#(candidates with a strictly greater score) + #(tied candidates with a smaller index)``. It is
  computed by vectorised counting on row/column chunks, never by a full argsort.

Encoding runs each image and each caption through the model exactly once
(:func:`rsnb.encode.encode_corpus`); :func:`rsnb.encode.score_all` then calls ``model.score`` on bounded
blocks of the cached features, so RSICD-size test sets (1,093 × 5,465) and larger fit in a fixed amount of memory.
Shown in notebooks/05_evaluation.ipynb.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from rsnb.device import resolve_device, unwrap  # resolve_device re-exported: rsnb.evaluate.resolve_device
from rsnb.encode import _rows, encode_and_score, encode_corpus, score_all  # noqa: F401  (re-exported: rsnb.evaluate.*)
from rsnb.topk import search  # noqa: F401  (re-exported: rsnb.evaluate.search)

RECALL_KS = (1, 5, 10)
METRIC_KEYS = ("i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5", "t2i_R@10", "mR",
               "i2t_medr", "t2i_medr", "i2t_meanr", "t2i_meanr")
TABLE_KEYS = METRIC_KEYS[:7]  # the six recalls and mR: the columns of every results table and bar chart
CPU_IMAGE_BATCH = 8  # evaluate's image batch on a CPU: as fast as 32 or 128, least memory (bench_eval_opts.py)
_CHUNK_ELEMS = 1 << 22  # elements compared at once when counting ranks (~4 M, a few tens of MB)


# ----------------------------------------------------------------------------------------------
# metrics


def _as_tensor(sims) -> Tensor:
    t = torch.as_tensor(np.asarray(sims)) if not isinstance(sims, Tensor) else sims.detach().cpu()
    if not t.is_floating_point():
        t = t.double()
    elif t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()  # exact widening: order and ties are preserved
    return t


def _stable_ranks_t2i(sims: Tensor, c2i: Tensor) -> Tensor:
    """0-based rank of each caption's own image in its column (stable tie rule), shape (N_c,)."""
    n_img, n_cap = sims.shape
    ranks = torch.empty(n_cap, dtype=torch.long)
    rows = torch.arange(n_img).unsqueeze(1)  # (N_i, 1)
    step = max(1, _CHUNK_ELEMS // max(n_img, 1))
    for c0 in range(0, n_cap, step):
        block = sims[:, c0:c0 + step]  # (N_i, C)
        gt = c2i[c0:c0 + step]  # (C,)
        target = block[gt, torch.arange(block.shape[1])]  # (C,)
        greater = (block > target).sum(0)
        tied_before = ((block == target) & (rows < gt)).sum(0)
        ranks[c0:c0 + step] = greater + tied_before
    return ranks


def _stable_ranks_i2t(sims: Tensor, c2i: Tensor) -> Tensor:
    """0-based rank of each image's best own caption in its row (stable tie rule), shape (N_i,).

    The best own caption in the stable order is the one with the highest score and, among equal
    scores, the smallest index; its position is the image's rank. Images without captions get -1.
    """
    n_img, n_cap = sims.shape
    cap_idx = torch.arange(n_cap)
    own = sims[c2i, cap_idx]  # (N_c,) score of every caption with its own image
    best = torch.full((n_img,), -math.inf, dtype=sims.dtype)
    best = best.scatter_reduce(0, c2i, own, reduce="amax")  # (N_i,)
    is_best = own == best[c2i]
    first = torch.full((n_img,), n_cap, dtype=torch.long)
    first = first.scatter_reduce(0, c2i[is_best], cap_idx[is_best], reduce="amin")  # (N_i,)
    ranks = torch.full((n_img,), -1, dtype=torch.long)
    step = max(1, _CHUNK_ELEMS // max(n_cap, 1))
    for r0 in range(0, n_img, step):
        block = sims[r0:r0 + step]  # (R, N_c)
        b, f = best[r0:r0 + step, None], first[r0:r0 + step, None]  # (R, 1)
        r = (block > b).sum(1) + ((block == b) & (cap_idx < f)).sum(1)
        has = f.squeeze(1) < n_cap
        ranks[r0:r0 + step] = torch.where(has, r, torch.full_like(r, -1))
    return ranks


def _summary(ranks: np.ndarray, prefix: str) -> dict[str, float]:
    out = {f"{prefix}_R@{k}": 100.0 * float(np.mean(ranks < k)) for k in RECALL_KS}
    out[f"{prefix}_medr"] = float(math.floor(np.median(ranks)) + 1)
    out[f"{prefix}_meanr"] = float(np.mean(ranks) + 1)
    return out


def retrieval_metrics(sims, caption_to_image, return_ranks: bool = False):
    """Exact bidirectional retrieval metrics of a similarity matrix.

    Args:
        sims: (N_images, N_captions) scores, numpy array or tensor; higher means more similar.
        caption_to_image: (N_captions,) image index of every caption (any order, any count per image).
        return_ranks: also return per-query 0-based ranks and top-1 indices for failure analysis.

    Returns:
        A dict with keys ``i2t_R@1 i2t_R@5 i2t_R@10 t2i_R@1 t2i_R@5 t2i_R@10 mR i2t_medr t2i_medr
        i2t_meanr t2i_meanr`` (recalls in percent). With ``return_ranks=True`` a tuple
        ``(metrics, ranks)`` where ``ranks`` holds numpy arrays ``i2t`` (N_images,; -1 for images
        without captions), ``t2i`` (N_captions,), ``i2t_top1`` (best caption per image) and
        ``t2i_top1`` (best image per caption), ties resolved by the same stable rule.

    Raises:
        ValueError: on a shape mismatch, an out-of-range image index, or a non-finite score.
    """
    s = _as_tensor(sims)
    if s.ndim != 2:
        raise ValueError(f"sims must be 2-D (N_images, N_captions), got shape {tuple(s.shape)}")
    c2i = torch.as_tensor(np.asarray(caption_to_image, dtype=np.int64))
    if c2i.ndim != 1 or c2i.numel() != s.shape[1]:
        raise ValueError(f"caption_to_image has {c2i.numel()} entries but sims has {s.shape[1]} captions")
    if s.shape[1] == 0 or s.shape[0] == 0:
        raise ValueError(f"sims is empty: shape {tuple(s.shape)}")
    bad = torch.nonzero((c2i < 0) | (c2i >= s.shape[0]))
    if bad.numel():
        j = int(bad[0])
        raise ValueError(f"caption_to_image[{j}] = {int(c2i[j])} is outside 0..{s.shape[0] - 1}")
    finite = torch.isfinite(s)
    if not bool(finite.all()):
        i, j = (int(v) for v in torch.nonzero(~finite)[0])
        raise ValueError(f"sims[{i}, {j}] = {float(s[i, j])} is not finite")
    r_i2t = _stable_ranks_i2t(s, c2i).numpy()
    r_t2i = _stable_ranks_t2i(s, c2i).numpy()
    out = _summary(r_i2t[r_i2t >= 0], "i2t")
    out.update(_summary(r_t2i, "t2i"))
    out["mR"] = float(np.mean([out[f"{d}_R@{k}"] for d in ("i2t", "t2i") for k in RECALL_KS]))
    metrics = {k: out[k] for k in METRIC_KEYS}
    if not return_ranks:
        return metrics
    ranks = {
        "i2t": r_i2t,
        "t2i": r_t2i,
        "i2t_top1": s.argmax(1).numpy(),  # torch returns the first maximal index: same tie rule
        "t2i_top1": s.argmax(0).numpy(),
    }
    return metrics, ranks


def chance_metrics(n_images: int, caption_to_image, trials: int = 20, seed: int = 0) -> dict:
    """Mean metrics of ``trials`` uniform random score matrices: the level a model must beat."""
    rng = np.random.default_rng(seed)
    rows = [retrieval_metrics(rng.random((n_images, len(caption_to_image))), caption_to_image) for _ in range(trials)]
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


# ----------------------------------------------------------------------------------------------
# evaluation of loaders, corpus splits and keyword queries


def evaluate_loaders(model, image_loader, text_loader, caption_to_image, device="auto", *,
                     use_keywords: bool = True, chunk=(256, 1024), return_sims: bool = False,
                     channels_last: bool = True):
    """Encode once, score all pairs, compute :func:`retrieval_metrics`; optionally return the sims."""
    sims, _, _ = encode_and_score(model, image_loader, text_loader, device, use_keywords=use_keywords, chunk=chunk,
                                  channels_last=channels_last)
    metrics = retrieval_metrics(sims, caption_to_image)
    return (metrics, sims) if return_sims else metrics


def make_val_fn(image_loader, text_loader, caption_to_image, device="auto", **kw) -> Callable:
    """Return ``val_fn(model) -> metrics`` for :func:`rsnb.train.train` (validation split only)."""
    return lambda model: evaluate_loaders(model, image_loader, text_loader, caption_to_image, device, **kw)


def _image_loader(corpus_split, batch_size, num_workers, **dataset_kw):
    from rsnb.data import dataset as ds  # lazy: the data layer is optional for the engine

    return DataLoader(ds.ImageDataset(corpus_split, **dataset_kw), batch_size=batch_size,
                      num_workers=num_workers, collate_fn=ds.collate)


def text_inputs(model) -> tuple[str, ...]:
    """What a model's text side reads: ``("sentence",)``, ``("keywords",)`` or both (default sentence)."""
    return tuple(getattr(unwrap(model), "text_inputs", ("sentence",)))


def _length_sorted_batches(texts, batch_size: int) -> list[list[int]]:
    """Caption indices in batches of similar token length (shortest first); ids restore the order."""
    order = sorted(range(len(texts)), key=lambda j: len(texts.tokens[j]))
    return [order[b:b + batch_size] for b in range(0, len(order), batch_size)]


def evaluate(model, corpus_split, vocab, *, device="auto", batch_size: int = 64, num_workers: int = 0,
             return_sims: bool = False, use_keywords: bool = True, keyword_rules=None,
             image_batch_size: int | None = None, sort_captions: bool = True, channels_last: bool = True,
             **dataset_kw):
    """Evaluate a model on one corpus split with the package's eval datasets.

    A keyword-only model (``text_inputs == ("keywords",)``: ablations m2, m4, m7) is evaluated with
    one keyword query per image (:func:`evaluate_keywords`, paper Table III): its text side never
    sees the captions, so five caption queries of an image would be five copies of one query.

    Args:
        model: a RetrievalModel.
        corpus_split: a :class:`rsnb.data.corpus.Corpus` holding one split (e.g. ``corpus.split("test")``).
        vocab: the training vocab (:class:`rsnb.data.vocab.Vocab`).
        device, batch_size, num_workers: loader and device settings (``batch_size`` captions and
            images per batch).
        image_batch_size: images per batch; None: 8 on a CPU (larger batches cost activation memory
            and buy no speed there, bench/RESULTS.md), ``batch_size`` elsewhere.
        sort_captions: batch captions of similar length together (less padding; scores and metrics
            come back in corpus order).
        channels_last: see :func:`rsnb.encode.encode_corpus`.
        return_sims: also return the (N_images, N_captions) score matrix.
        use_keywords: feed each caption's image keywords to the text encoder (sentence + keywords).
        keyword_rules: the paper's keyword input rules (:class:`rsnb.data.keywords.KeywordRules`).
        **dataset_kw: passed to ``ImageDataset`` (``image_size``, ``cache_images``, ``normalize``;
            default ``normalize=False``: uint8 images, normalised per batch, and ``cache_images=False``:
            each image is decoded once per call anyway).

    Returns:
        The metrics dict, or ``(metrics, sims)``.
    """
    from rsnb.data import dataset as ds

    if text_inputs(model) == ("keywords",):
        if return_sims:
            raise ValueError("evaluate: return_sims is not available for keyword-only models (one query per image)")
        return evaluate_keywords(model, corpus_split, vocab, device=device, batch_size=batch_size,
                                 num_workers=num_workers, keyword_rules=keyword_rules, **dataset_kw)
    dataset_kw.setdefault("normalize", False)
    dataset_kw.setdefault("cache_images", False)  # one call decodes each image once: a cache would only hold memory
    if image_batch_size is None:
        image_batch_size = CPU_IMAGE_BATCH if resolve_device(device).type == "cpu" else batch_size
    il = _image_loader(corpus_split, image_batch_size, num_workers, **dataset_kw)
    texts = ds.TextDataset(corpus_split, vocab, keyword_rules)
    batching = ({"batch_sampler": _length_sorted_batches(texts, batch_size)} if sort_captions
                else {"batch_size": batch_size})
    tl = DataLoader(texts, num_workers=num_workers, collate_fn=ds.collate, **batching)
    return evaluate_loaders(model, il, tl, corpus_split.caption_to_image, device,
                            use_keywords=use_keywords, return_sims=return_sims, channels_last=channels_last)


def evaluate_keywords(model, corpus_split, vocab, *, device="auto", batch_size: int = 64, num_workers: int = 0,
                      keyword_rules=None, **dataset_kw) -> dict[str, float]:
    """Keyword queries on a corpus split (paper Table III): one query per image, made of its keywords.

    Each query's ``tokens`` are the image's keyword phrases concatenated (``-`` dropped) and its
    ``keywords`` the phrases themselves; see :func:`keyword_query_metrics`. With
    ``keyword_rules.from_sentence``, an image without keywords gets those filtered from its captions.

    Raises:
        ValueError: an image has no keyword (names the image index and file).
    """
    from rsnb.data import dataset as ds

    items = []
    for i, rec in enumerate(corpus_split.images):
        phrases = ds.encode_phrases(vocab, rec.keywords)
        if not phrases and keyword_rules is not None and keyword_rules.from_sentence:
            phrases = ds.encode_phrases(vocab, keyword_rules.keywords_of(rec.captions))
        if not phrases:
            raise ValueError(f"evaluate_keywords: image {i} ({rec.filename}) has no keywords")
        items.append({"tokens": torch.cat(phrases), "image_id": i, "caption_id": i, "keywords": phrases})
    queries = [ds.collate(items[b:b + batch_size]) for b in range(0, len(items), batch_size)]
    il = _image_loader(corpus_split, batch_size, num_workers, **dataset_kw)
    return keyword_query_metrics(model, il, queries, device)


def keywords_as_sentence(keywords: Tensor, keyword_mask: Tensor) -> tuple[Tensor, Tensor]:
    """Concatenate each sample's keyword phrases into one token sequence (the paper's keyword-only input).

    Args:
        keywords: (B, K, Lk) token ids, 0-padded. keyword_mask: (B, K) True where a keyword exists.

    Returns:
        ``(tokens, lengths)``: (B, L) right-padded ids and (B,) lengths (≥ 1).
    """
    seqs = []
    for kw, m in zip(keywords, keyword_mask):  # kw (K, Lk)
        ids = kw[m.bool()].flatten()
        seqs.append(ids[ids != 0])
    lengths = torch.tensor([max(1, len(s)) for s in seqs], dtype=torch.long)
    tokens = torch.zeros(len(seqs), int(lengths.max()), dtype=torch.long)
    for b, s in enumerate(seqs):
        tokens[b, :len(s)] = s
    return tokens, lengths


def keyword_query_metrics(model, image_loader, keyword_loader, device="auto", chunk=(256, 1024)):
    """RSITMD keyword queries (paper Table III): each image's keyword set is one query, its own image the target.

    ``keyword_loader`` yields one item per image, in image order, as dicts with ``keywords``
    (B, K, Lk) and ``keyword_mask`` (B, K); missing ``tokens``/``lengths`` are built by
    concatenating the keyword phrases (:func:`keywords_as_sentence`). The model's text encoder sees
    only keywords. For sentence + keyword queries use :func:`evaluate_loaders` with a caption loader
    whose batches carry keywords (``use_keywords=True``).

    Returns:
        The :func:`retrieval_metrics` dict with ``caption_to_image = arange(N_images)``.
    """
    def queries():
        for b in keyword_loader:
            if "tokens" not in b:
                b = dict(b)
                b["tokens"], b["lengths"] = keywords_as_sentence(b["keywords"], b["keyword_mask"])
            yield b

    img, txt = encode_corpus(model, image_loader, queries(), device, use_keywords=True)
    n_img, n_q = _rows(img), _rows(txt)
    if n_q != n_img:
        raise ValueError(f"keyword_query_metrics: {n_q} keyword queries for {n_img} images (need one per image)")
    sims = score_all(model, img, txt, device, chunk=chunk)
    return retrieval_metrics(sims, np.arange(n_img))


# ----------------------------------------------------------------------------------------------
# k-fold and tables


def kfold_splits(n_images: int, k: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fixed-seed k-fold split of image indices into (train, val) pairs.

    Unlike the official code (an unseeded, independent 80/20 reshuffle per fold), the folds here are
    disjoint: the images are permuted once with ``seed`` and cut into ``k`` near-equal parts; fold
    ``f`` validates on part ``f`` and trains on the rest. Indices are sorted within each side.
    """
    if not 2 <= k <= n_images:
        raise ValueError(f"k-fold needs 2 <= k <= n_images, got k={k}, n_images={n_images}")
    perm = np.random.default_rng(seed).permutation(n_images)
    parts = np.array_split(perm, k)
    return [(np.sort(np.concatenate(parts[:f] + parts[f + 1:])), np.sort(parts[f])) for f in range(k)]


def summarise_folds(rows: Sequence[dict]) -> dict[str, tuple[float, float]]:
    """Mean and sample standard deviation (ddof=1; 0 for one fold) of every numeric key over folds."""
    if not rows:
        raise ValueError("summarise_folds: no fold results given")
    out = {}
    for key in rows[0]:
        vals = np.array([float(r[key]) for r in rows])
        out[key] = (float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0)
    return out




def _cell(v) -> str:
    return f"{v[0]:.2f}±{v[1]:.2f}" if isinstance(v, tuple | list) else f"{float(v):.2f}"


def format_table(metrics_or_rows, names: Sequence[str] | None = None) -> str:
    """Plain-text R@K table (i2t = sentence retrieval, t2i = image retrieval).

    Args:
        metrics_or_rows: one metrics dict, a list of them, or a ``{name: metrics}`` dict. Values may
            be floats or ``(mean, std)`` pairs from :func:`summarise_folds`.
        names: row labels for a list (default ``0, 1, ...``).
    """
    if isinstance(metrics_or_rows, dict) and all(isinstance(v, dict) for v in metrics_or_rows.values()):
        labels, rows = list(metrics_or_rows), list(metrics_or_rows.values())
    elif isinstance(metrics_or_rows, dict):
        labels, rows = [""], [metrics_or_rows]
    else:
        rows = list(metrics_or_rows)
        labels = list(names) if names is not None else [str(i) for i in range(len(rows))]
    cells = [[_cell(r[c]) for c in TABLE_KEYS] for r in rows]
    w0 = max([len(x) for x in labels] + [5])
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(TABLE_KEYS)]
    lines = [[lab.ljust(w0)] + [v.rjust(w) for v, w in zip(vals, widths)]
             for lab, vals in [("model", TABLE_KEYS), *zip(labels, cells)]]
    return "\n".join("  ".join(parts) for parts in lines)
