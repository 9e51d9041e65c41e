"""Exact top-k search of query embeddings over a large gallery in bounded memory.

The dual-encoder case (MSA at test time, AMFMN without visual-guided attention, any L2-normalised
embedding): the score of query q and gallery item g is the dot product ``q · g``. A gallery of a
million 512-d vectors is 2 GB in float32 (1 GB in float16); the full ``(N_q, N_g)`` score matrix of
a thousand queries would be another 4 GB, so it is never formed. Instead the gallery is scanned in
blocks of ``chunk`` rows: each block's ``(N_q, chunk)`` scores are merged into a running
``(N_q, k)`` top-k, so extra memory is ``N_q · (chunk + 2k)`` floats whatever the gallery size
(``chunk`` defaults to 2 M / max(N_q, D) rows: 8 MB of scores and 8 MB of gallery block, which stay in
cache while the block is ranked: 1.06x the queries/s of 64 MB blocks, measured on the development CPU).

Backends: ``"torch"`` (always available) and ``"faiss"`` (exact ``IndexFlatIP`` from the optional
``faiss-cpu`` package; same results up to float rounding and tie order).

AMFMN's visual-guided variants score a pair with a small network, not a dot product: their cost is
``N_q · N_g`` network evaluations. For those, the two-stage route is a dual-encoder recall with this
function (e.g. the image vector against the un-guided text vector) and a visual-guided re-score of
each query's top-k only (see ``bench/RESULTS.md``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

BACKENDS = ("torch", "faiss")
_BLOCK_FLOATS = 1 << 21  # scores held per gallery block (8 MB of float32)


def _merge_topk(best_s: Tensor, best_i: Tensor, s: Tensor, idx0: int, k: int) -> tuple[Tensor, Tensor]:
    """Merge a block of scores (Nq, C) whose columns are gallery rows idx0.. into the running top-k."""
    kb = min(k, s.shape[1])
    bs, bi = s.topk(kb, dim=1)  # (Nq, kb) block top-k first: the concat stays small
    cat_s = torch.cat([best_s, bs], dim=1)  # (Nq, k + kb)
    cat_i = torch.cat([best_i, bi + idx0], dim=1)
    top_s, pos = cat_s.topk(min(k, cat_s.shape[1]), dim=1)  # (Nq, k)
    return top_s, cat_i.gather(1, pos)


@torch.inference_mode()
def search(queries, gallery, k: int = 10, *, chunk: int | None = None, backend: str = "torch",
           device: str | torch.device = "cpu") -> tuple[Tensor, Tensor]:
    """Top-``k`` gallery items for every query by dot product, never forming the full score matrix.

    Args:
        queries: (N_q, D) float tensor or array (normalise it yourself for cosine scores).
        gallery: (N_g, D) float16/float32/float64 tensor or array; kept in its dtype (float16 halves
            storage) and cast to float32 one block at a time.
        k: results per query; capped at N_g.
        chunk: gallery rows scored at once; default: as many as keep both the block of scores and
            the block's float32 copy at about 2 M floats (8 MB) each, for any N_q and D.
        backend: ``"torch"`` or ``"faiss"`` (needs ``pip install faiss-cpu``).
        device: where the torch backend scores (the gallery block is moved there).

    Returns:
        ``(scores, indices)``: (N_q, k) float32 scores in descending order and (N_q, k) int64 gallery
        row indices, both CPU tensors.

    Raises:
        ValueError: on mismatched dimensions, an empty gallery, k < 1 or an unknown backend.
        ImportError: ``backend="faiss"`` without faiss installed (one line saying how to install it).
    """
    q = torch.as_tensor(np.asarray(queries) if not torch.is_tensor(queries) else queries)
    g = torch.as_tensor(np.asarray(gallery) if not torch.is_tensor(gallery) else gallery)
    if q.ndim == 1:
        q = q[None]
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise ValueError(f"search: queries {tuple(q.shape)} and gallery {tuple(g.shape)} must be (N, D) with the same D")
    if g.shape[0] == 0:
        raise ValueError("search: the gallery is empty")
    if k < 1:
        raise ValueError(f"search: k must be >= 1, got {k}")
    if backend not in BACKENDS:
        raise ValueError(f"search: backend must be one of {BACKENDS}, got {backend!r}")
    k = min(k, g.shape[0])
    if backend == "faiss":
        return _search_faiss(q, g, k)
    dev = torch.device(device)
    # default block: <= 2 M scores and <= 2 M gallery floats (the float32 copy of a float16 block)
    chunk = chunk or max(256, _BLOCK_FLOATS // max(q.shape[0], g.shape[1], 1))
    qf = q.to(dev, torch.float32)  # (Nq, D)
    best_s = torch.full((qf.shape[0], 0), -torch.inf, device=dev)
    best_i = torch.zeros((qf.shape[0], 0), dtype=torch.long, device=dev)
    for g0 in range(0, g.shape[0], chunk):
        block = g[g0:g0 + chunk].to(dev, torch.float32)  # (C, D)
        best_s, best_i = _merge_topk(best_s, best_i, qf @ block.T, g0, k)  # scores (Nq, C)
    return best_s.cpu(), best_i.cpu()


def _search_faiss(q: Tensor, g: Tensor, k: int) -> tuple[Tensor, Tensor]:
    try:
        import faiss  # optional dependency, imported only when asked for
    except ImportError:
        raise ImportError("search(backend='faiss') needs faiss: pip install faiss-cpu") from None
    index = faiss.IndexFlatIP(g.shape[1])
    for g0 in range(0, g.shape[0], 65536):  # faiss copies float32 rows in; add in blocks
        index.add(np.ascontiguousarray(g[g0:g0 + 65536].float().numpy()))
    scores, idx = index.search(np.ascontiguousarray(q.float().numpy()), k)
    return torch.from_numpy(scores), torch.from_numpy(idx.astype(np.int64))
