"""Suspicious image-caption pairs: captions whose own image a trained model ranks far down.

A caption that retrieves its own image only beyond rank ``threshold`` (text-to-image, 1-based)
is either a retrieval failure or a pair that does not match: a mislabelled image, a caption
written for another image, a noisy correspondence. The model cannot tell which; the list is
for a person to look at, with the caption, its image and the image the caption preferred.
"""

from __future__ import annotations

import numpy as np

from rsnb import experiment as ex
from rsnb.data.corpus import Corpus
from rsnb.evaluate import evaluate, retrieval_metrics


def default_threshold(n_images: int) -> int:
    """Default rank threshold: half the gallery (a random score puts the own image there on average)."""
    return max(1, n_images // 2)


def suspicious_from_sims(sims, caption_to_image, threshold: int) -> dict[str, np.ndarray]:
    """Captions ranking their own image beyond ``threshold`` in a score matrix.

    Args:
        sims: (N_images, N_captions) scores, higher is more similar.
        caption_to_image: (N_captions,) image index of each caption.
        threshold: a caption is suspicious when its own image's 1-based rank is > threshold.

    Returns:
        ``{"rank": (N_captions,) 1-based ranks, "top1": (N_captions,) best image per caption,
        "suspicious": (S,) caption indices, worst rank first}``.
    """
    _, ranks = retrieval_metrics(sims, caption_to_image, return_ranks=True)
    rank = ranks["t2i"].astype(np.int64) + 1  # (N_captions,)
    sus = np.nonzero(rank > int(threshold))[0]
    sus = sus[np.lexsort((sus, -rank[sus]))]
    return {"rank": rank, "top1": ranks["t2i_top1"].astype(np.int64), "suspicious": sus}


def suspicious_rows(corpus: Corpus, result: dict[str, np.ndarray]) -> list[dict]:
    """CSV-ready rows (caption, its image, the preferred image) of :func:`suspicious_from_sims`."""
    c2i = corpus.caption_to_image
    caps = corpus.captions
    rows = []
    for j in result["suspicious"].tolist():
        own, top = corpus.images[c2i[j]], corpus.images[int(result["top1"][j])]
        rows.append({"caption_index": j, "rank": int(result["rank"][j]), "caption": caps[j],
                     "image_index": c2i[j], "file": own.filename, "split": own.split, "class": own.cls,
                     "top1_index": int(result["top1"][j]), "top1_file": top.filename, "top1_class": top.cls,
                     "path": str(own.path), "top1_path": str(top.path)})
    return rows


def suspicious_pairs(run_dir, split: str = "test", threshold: int | None = None, data=None, device="auto",
                     tag: str = "best", image_dir=None) -> tuple[list[dict], dict, Corpus]:
    """Score one split with a trained run and list the captions that rank their own image far down.

    Args:
        run_dir: run folder written by ``python -m rsnb train``.
        split: split to score (the model should not have trained on it to judge pairs fairly).
        threshold: 1-based rank above which a caption is listed; default :func:`default_threshold`.
        data: dataset path instead of the run's own (``image_dir``: its image folder).
        device: ``auto``, ``cpu``, ``cuda`` ...
        tag: checkpoint tag.

    Returns:
        ``(rows, summary, corpus_split)``; summary holds the threshold, counts, median rank and the
        metrics of the split.
    """
    model, tokenizer, cfg = ex.load_run(run_dir, tag)
    if data is not None:
        cfg["data"]["path"], cfg["data"]["image_dir"] = str(data), None if image_dir is None else str(image_dir)
    corpus = ex.prepare_corpus(cfg, progress=False).split(split)
    if len(corpus) == 0:
        raise ValueError(f"split {split!r} is empty in the dataset of {run_dir}")
    metrics, sims = evaluate(model, corpus, tokenizer, device=device, batch_size=int(cfg["eval"]["batch_size"]),
                             image_size=int(cfg["image_size"]), return_sims=True)
    threshold = default_threshold(len(corpus)) if threshold is None else int(threshold)
    result = suspicious_from_sims(sims, corpus.caption_to_image, threshold)
    rows = suspicious_rows(corpus, result)
    summary = {"run": str(run_dir), "split": split, "threshold": threshold, "images": len(corpus),
               "captions": len(corpus.captions), "suspicious": len(rows),
               "suspicious_percent": round(100.0 * len(rows) / max(1, len(corpus.captions)), 2),
               "images_all_suspicious": int(sum(np.all(result["rank"][np.asarray(corpus.caption_to_image) == i] > threshold)
                                                for i in range(len(corpus)))),
               "median_rank": float(np.median(result["rank"])), "metrics": metrics}
    return rows, summary, corpus


def pair_scores(rows: list[dict], truth: set[int], n_captions: int) -> dict[str, float]:
    """Precision and recall of listed captions against a set of known mismatched caption indices."""
    listed = {r["caption_index"] for r in rows}
    tp = len(listed & truth)
    return {"listed": len(listed), "planted": len(truth), "found": tp,
            "precision": tp / len(listed) if listed else float("nan"),
            "recall": tp / len(truth) if truth else float("nan"), "captions": n_captions}
