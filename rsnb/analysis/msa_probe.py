"""Looking inside MSA (notebook 06): per-scale score matrices, per-scale retrieval, re-ranking.

* :func:`encode_with_tokens` encodes a split once, keeping each caption's token states (MSCMAT's input).
* :func:`scale_matrices` runs MSCMAT on every (image, caption) pair of a split, block by block:
  four (N_img, N_cap) matrices, one per scale. Only for analysis (cost N_img · N_cap · L · D);
  the model itself retrieves with the global embeddings.
* :func:`rerank` is an **rsnb extension, not in the paper**: each query's top-k of the dual-encoder
  ranking is re-ordered by MSCMAT scores (largest scale or the mean of the scales).
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

from rsnb.device import resolve_device
from rsnb.encode import encode_corpus
from rsnb.evaluate import retrieval_metrics


def encode_with_tokens(model, image_loader, text_loader, device="cpu") -> tuple[dict, dict]:
    """:func:`rsnb.encode.encode_corpus` with MSA's token states kept (``tok``, ``mask``)."""
    net = model.module if hasattr(model, "module") else model
    keep = net.keep_local
    net.keep_local = True
    try:
        return encode_corpus(net, image_loader, text_loader, device, use_keywords=False)
    finally:
        net.keep_local = keep


@torch.no_grad()
def scale_matrices(model, img: dict, txt: dict, device="cpu", block: tuple[int, int] = (64, 256)) -> Tensor:
    """MSCMAT scores of every image with every caption: (4, N_img, N_cap) on the CPU.

    Args:
        model: an MSA model. img, txt: features of :func:`encode_with_tokens`.
        block: (images, captions) per MSCMAT call; memory ~ block[0] · block[1] · heads · L floats.

    Returns:
        The matrices the losses see (raw scores; post-sigmoid for ``alignment="released"``).
    """
    dev = resolve_device(device)
    model.eval()
    n_i, n_t = img["g"].shape[0], txt["g"].shape[0]
    out = torch.empty(4, n_i, n_t)
    for i0 in range(0, n_i, block[0]):
        q = img["q"][i0:i0 + block[0]].to(dev)  # (bi, 4, D)
        for j0 in range(0, n_t, block[1]):
            sl = slice(j0, j0 + block[1])
            s = model.scale_scores(q, txt["g"][sl].to(dev), txt["tok"][sl].to(dev), txt["mask"][sl].to(dev).bool())
            out[:, i0:i0 + block[0], sl] = s.float().cpu()  # (4, bi, bt)
    return out


@torch.no_grad()
def _pair_scores(model, img: dict, txt: dict, pi: Tensor, pj: Tensor, scales: str, device, chunk: int = 2048):
    dev = resolve_device(device)
    out = torch.empty(len(pi))
    mask_on = model.cfg.mask_padding
    for a in range(0, len(pi), chunk):
        i, j = pi[a:a + chunk], pj[a:a + chunk]
        raw = model.mscmat.pairs(img["q"][i].to(dev), txt["g"][j].to(dev), txt["tok"][j].to(dev),
                                 txt["mask"][j].to(dev).bool() if mask_on else None)  # (4, P)
        out[a:a + chunk] = (raw[-1] if scales == "largest" else raw.mean(0)).float().cpu()
    return out


def _reorder(sims: Tensor, top: Tensor, new: Tensor, dim: int) -> Tensor:
    """Lift each query's re-scored top-k above all other candidates, ordered by the new scores.

    ``dim=1``: queries are rows (``top`` holds column indices, (N_img, k)); ``dim=0``: columns.
    """
    shifted = sims.max() + 1.0 + (new - new.amin(dim=1, keepdim=True))  # (Q, k), above every old score
    if dim == 1:
        return sims.clone().scatter_(1, top, shifted)
    return sims.T.clone().scatter_(1, top, shifted).T


def rerank(model, sims: Tensor, img: dict, txt: dict, k: int | None = None, scales: str | None = None,
           device="cpu") -> dict:
    """Re-rank each query's top-k by MSCMAT (an rsnb extension, not in the MSA paper).

    Args:
        model: an MSA model. sims: (N_img, N_cap) dual-encoder scores. img, txt: from :func:`encode_with_tokens`.
        k: candidates per query (default ``model.cfg.rerank_k``, 20).
        scales: ``"largest"`` (scale 4) or ``"mean"`` of the four (default ``model.cfg.rerank``).

    Returns:
        ``{"i2t": (N_img, N_cap) scores whose rows are re-ranked, "t2i": ... columns re-ranked,
        "pairs": number of MSCMAT pair evaluations, "seconds": time spent}``.
    """
    k = int(k or model.cfg.rerank_k)
    scales = scales or model.cfg.rerank
    t0 = time.perf_counter()
    n_i, n_t = sims.shape
    top_i2t = sims.topk(min(k, n_t), dim=1).indices  # (N_img, k) captions per image
    top_t2i = sims.T.topk(min(k, n_i), dim=1).indices  # (N_cap, k) images per caption
    pi = torch.arange(n_i)[:, None].expand_as(top_i2t).reshape(-1)
    new_i2t = _pair_scores(model, img, txt, pi, top_i2t.reshape(-1), scales, device).view_as(top_i2t.float())
    pj = torch.arange(n_t)[:, None].expand_as(top_t2i).reshape(-1)
    new_t2i = _pair_scores(model, img, txt, top_t2i.reshape(-1), pj, scales, device).view_as(top_t2i.float())
    return {"i2t": _reorder(sims, top_i2t, new_i2t, 1), "t2i": _reorder(sims, top_t2i, new_t2i, 0),
            "pairs": int(top_i2t.numel() + top_t2i.numel()), "seconds": time.perf_counter() - t0}


def rerank_metrics(reranked: dict, caption_to_image) -> dict:
    """Retrieval metrics of :func:`rerank`: i2t from the row-re-ranked, t2i from the column-re-ranked scores."""
    a = retrieval_metrics(reranked["i2t"], caption_to_image)
    b = retrieval_metrics(reranked["t2i"], caption_to_image)
    out = {k: a[k] if k.startswith("i2t") else b[k] for k in a if k != "mR"}
    out["mR"] = sum(out[f"{d}_R@{x}"] for d in ("i2t", "t2i") for x in (1, 5, 10)) / 6
    return out
