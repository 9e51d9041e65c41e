"""Diagnostics of the AMFMN triplet loss: prior similarity by pair type, active triplets, gradients.

The dynamic margin of the paper (eq. 29, :func:`rsnb.losses.dynamic_margin`) shrinks the margin of a
negative pair whose caption resembles the image's own captions (high prior similarity S). This module
measures where that happens and what it changes:

* :func:`pair_groups` labels every (image, caption) pair as a positive, a same-class negative or an
  other-class negative; :func:`prior_by_group` collects S (and its BLEU / word-overlap parts) per label.
* :func:`loss_diagnostics` evaluates the four losses fixed/dynamic margin x sum/hardest negative on one
  (B, B) similarity matrix: loss, active (violating) triplets per pair type, and the gradient
  dL/dsims that the encoders would receive.
* The loss ablation reported in the paper (Table V) is :data:`rsnb.analysis.paper_tables.PAPER_TABLE_V`.

Shown in notebooks/03_loss_behaviour.ipynb.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from rsnb.data.vocab import STOPWORDS, tokenize
from rsnb.losses import dynamic_margin, triplet_loss

GROUPS = ("positive", "same-class negative", "other-class negative")
"""Pair types, in the order of the integer codes returned by :func:`pair_groups`."""

def inverse_dynamic_margin(alpha, gamma: float = 0.6, beta: float = 5.0):
    """The prior similarity S at which :func:`rsnb.losses.dynamic_margin` equals ``alpha``.

    Solves ``alpha = gamma (e^beta - e^(beta S)) / (e^beta - 1)`` for S:
    ``S = log(e^beta - (alpha / gamma) (e^beta - 1)) / beta`` (``1 - alpha / gamma`` for beta = 0).
    The margin is below ``alpha`` exactly for S above the returned value.

    Args:
        alpha: a margin in [0, gamma] (float or array).
        gamma, beta: the dynamic margin parameters.

    Returns:
        S in [0, 1], same shape as ``alpha``.
    """
    ratio = np.asarray(alpha, dtype=np.float64) / gamma
    if np.any((ratio < 0) | (ratio > 1)):
        raise ValueError(f"inverse_dynamic_margin: alpha must lie in [0, gamma={gamma}], got {alpha}")
    if beta == 0:
        out = 1 - ratio
    else:  # log(e^beta - r (e^beta - 1)) / beta = 1 + log1p(r * expm1(-beta)) / beta
        out = 1 + np.log1p(ratio * np.expm1(-beta)) / beta
    return float(out) if np.ndim(out) == 0 else out


def pair_groups(row_image_ids, col_image_ids, image_classes: Sequence[str]) -> np.ndarray:
    """Label each (image, caption) pair by how the caption relates to the image.

    Args:
        row_image_ids: (I,) image index of each row (the image side).
        col_image_ids: (J,) image index that each column's caption belongs to.
        image_classes: scene class of every image index (``len`` > max id).

    Returns:
        int8 array (I, J): 0 = positive (the caption describes this image), 1 = same-class negative
        (another image of the same scene class), 2 = other-class negative; names in :data:`GROUPS`.
    """
    rows = np.asarray(row_image_ids, dtype=np.int64).reshape(-1)
    cols = np.asarray(col_image_ids, dtype=np.int64).reshape(-1)
    n = len(image_classes)
    for what, ids in (("row", rows), ("column", cols)):
        bad = np.flatnonzero((ids < 0) | (ids >= n))
        if bad.size:
            raise IndexError(f"pair_groups: {what} image id {ids[bad[0]]} at position {bad[0]} is outside [0, {n})")
    _, cls = np.unique(np.asarray(image_classes, dtype=object).astype(str), return_inverse=True)
    same_image = rows[:, None] == cols[None, :]  # (I, J)
    same_class = cls[rows][:, None] == cls[cols][None, :]  # (I, J)
    return np.where(same_image, 0, np.where(same_class, 1, 2)).astype(np.int8)


def prior_by_group(prior, image_classes: Sequence[str], image_ids=None) -> dict[str, dict[str, np.ndarray]]:
    """Prior similarity S of the chosen images against every caption, split by pair type.

    Args:
        prior: a :class:`rsnb.prior.PriorSimilarity` over a corpus.
        image_classes: scene class of each image of that corpus.
        image_ids: (I,) images to use as rows (default all); the block is I x N_captions, so pass a
            subset for large corpora (memory about 50 * I * N_captions bytes).

    Returns:
        ``{group: {"S", "score1", "score2", "bleu"}}`` with one 1-D array of values per pair of
        that group (groups as in :data:`GROUPS`).
    """
    imgs = np.arange(prior.n_images) if image_ids is None else np.asarray(image_ids, dtype=np.int64)
    caps = np.arange(prior.n_captions)
    parts = prior.parts(imgs, caps)
    parts["S"] = (parts["score1"] + parts["score2"]) / 2
    groups = pair_groups(imgs, prior.caption_to_image[caps], image_classes)  # (I, J)
    return {name: {k: parts[k][groups == g] for k in ("S", "score1", "score2", "bleu")}
            for g, name in enumerate(GROUPS)}


def bow_similarities(captions_per_image, image_ids, caption_ids) -> Tensor:
    """Scores of a bag-of-words "caption oracle": a stand-in for a well-trained retrieval model.

    Image i is represented by its own reference captions: the sum of their L2-normalised TF-IDF
    vectors (content words only, IDF over all captions given). Caption j is its normalised TF-IDF
    vector. For a positive pair the caption itself is left out of the image's sum, so a caption never
    scores against itself. The score is the cosine of the two.

    Args:
        captions_per_image: a ``Corpus`` or a list of per-image caption lists (captions numbered in
            image order, as ``Corpus.captions``).
        image_ids: (I,) image indices (rows).
        caption_ids: (J,) caption indices (columns).

    Returns:
        float32 tensor (I, J) of cosines in [0, 1].
    """
    per_image = [list(r.captions) for r in captions_per_image.images] \
        if hasattr(captions_per_image, "images") else [list(c) for c in captions_per_image]
    c2i = np.array([i for i, caps in enumerate(per_image) for _ in caps], dtype=np.int64)
    words: dict[str, int] = {}
    rows, cols = [], []
    for j, text in enumerate(c for caps in per_image for c in caps):
        for w in set(tokenize(text)) - STOPWORDS:
            rows.append(j)
            cols.append(words.setdefault(w, len(words)))
    n_cap = len(c2i)
    tf = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_cap, max(len(words), 1)))
    idf = np.log((1 + n_cap) / (1 + np.asarray((tf > 0).sum(0)).ravel())) + 1
    t = tf @ sp.diags(idf)  # (N_cap, V)
    norms = np.sqrt(np.asarray(t.multiply(t).sum(1)).ravel())
    t = sp.diags(1 / np.maximum(norms, 1e-12)) @ t  # unit rows (empty captions stay 0)
    img = sp.csr_matrix((np.ones(n_cap), (c2i, np.arange(n_cap))), shape=(len(per_image), n_cap)) @ t  # (N_img, V)
    imgs = np.asarray(image_ids, dtype=np.int64).reshape(-1)
    caps = np.asarray(caption_ids, dtype=np.int64).reshape(-1)
    for what, ids, n in (("image", imgs, len(per_image)), ("caption", caps, n_cap)):
        bad = np.flatnonzero((ids < 0) | (ids >= n))
        if bad.size:
            raise IndexError(f"bow_similarities: {what} id {ids[bad[0]]} at position {bad[0]} is outside [0, {n})")
    dot = (img[imgs] @ t[caps].T).toarray()  # (I, J) V_i . t_j
    vv = np.asarray(img[imgs].multiply(img[imgs]).sum(1)).ravel()  # (I,) |V_i|^2
    tt = np.asarray(t[caps].multiply(t[caps]).sum(1)).ravel()  # (J,) |t_j|^2 (1, or 0 if empty)
    own = (c2i[caps][None, :] == imgs[:, None]).astype(np.float64)  # (I, J) caption j is image i's
    num = dot - own * tt[None, :]  # (V_i - own t_j) . t_j
    den = np.sqrt(np.maximum(vv[:, None] - 2 * own * dot + own * tt[None, :], 0)) * np.sqrt(tt)[None, :]
    return torch.as_tensor(np.where(den > 1e-12, num / np.maximum(den, 1e-12), 0.0), dtype=torch.float32)


@torch.no_grad()
def model_similarities(model, batch: dict) -> Tensor:
    """The (B, B) in-batch score matrix a model's loss would see (rows images, columns captions).

    Runs ``model(batch)`` and ``model.score`` in eval mode without gradients (batch on the model's
    device); the model's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    try:
        feats = model(batch)
        img = {k[4:]: v for k, v in feats.items() if k.startswith("img_")}
        txt = {k[4:]: v for k, v in feats.items() if k.startswith("txt_")}
        return model.score(img, txt).float()  # (B, B)
    finally:
        model.train(was_training)


def loss_diagnostics(sims: Tensor, image_ids, prior: Tensor, groups=None, *, margin: float = 0.2,
                     gamma: float = 0.6, beta: float = 5.0, mask_same_image: bool = True) -> list[dict]:
    """Loss, active triplets and gradient of the four losses fixed/dynamic x sum/hardest on one batch.

    A triplet (anchor, positive, negative) is active when its hinge is positive; each negative pair
    (i, j) is counted twice, once per direction (image i with wrong caption j; caption j with wrong
    image i). Active counts ignore the reduction (the hardest-negative loss sends gradient to at most
    one negative per anchor, see ``neg_with_grad``).

    Args:
        sims: (B, B) model scores, rows images, columns captions, positives on the diagonal.
        image_ids: (B,) image id of each sample.
        prior: (B, B) prior similarity S[image of row i, caption of column j].
        groups: optional (B, B) pair types from :func:`pair_groups`; adds per-type statistics.
        margin: the fixed margin.
        gamma, beta: the dynamic margin parameters.
        mask_same_image: drop pairs of two samples of one image from the negatives.

    Returns:
        Four dicts (fixed-sum, fixed-hardest, dynamic-sum, dynamic-hardest) with ``margin`` and
        ``negatives`` (names), ``loss``, ``active``, ``total``, ``active_frac``, ``mean_margin`` (over
        valid negatives), ``grad_norm`` (Frobenius norm of dL/dsims), ``grad_pos`` / ``grad_neg``
        (sum of |dL/dsims| on the diagonal / on the negatives), ``neg_with_grad`` (negative entries
        that receive gradient); with ``groups``, for each negative type t (``image``: another caption
        of the anchor's image, a negative only without ``mask_same_image``; ``same``: same class;
        ``other``): ``active_frac_t``, ``mean_margin_t`` and ``grad_share_t`` (its fraction of
        ``grad_neg``); a type without pairs gets 0, 0 and NaN for the mean margin.
    """
    sims = sims.detach().float()
    B = sims.shape[0]
    prior = torch.as_tensor(prior, dtype=sims.dtype, device=sims.device)
    if prior.shape != sims.shape:
        raise ValueError(f"loss_diagnostics: prior has shape {tuple(prior.shape)}, sims {tuple(sims.shape)}")
    ids = torch.as_tensor(image_ids, device=sims.device).reshape(-1)
    invalid = torch.eye(B, dtype=torch.bool, device=sims.device)
    if mask_same_image:
        invalid |= ids[:, None] == ids[None, :]
    valid = ~invalid  # (B, B) negatives that count
    kinds = {}
    if groups is not None:
        g = torch.as_tensor(np.asarray(groups), device=sims.device)
        if g.shape != sims.shape:
            raise ValueError(f"loss_diagnostics: groups has shape {tuple(g.shape)}, sims {tuple(sims.shape)}")
        kinds = {"image": valid & (g == 0), "same": valid & (g == 1), "other": valid & (g == 2)}
    diag = sims.diagonal()  # (B,)
    rows = []
    for kind in ("fixed", "dynamic"):
        m = torch.full_like(sims, margin) if kind == "fixed" else dynamic_margin(prior, gamma, beta)  # (B, B)
        act_s = valid & (m + sims - diag[:, None] > 0)  # image i, wrong caption j
        act_im = valid & (m + sims - diag[None, :] > 0)  # caption j, wrong image i
        for negatives in ("sum", "hardest"):
            x = sims.clone().requires_grad_(True)
            loss, stats = triplet_loss(x, ids, m, negatives=negatives, mask_same_image=mask_same_image,
                                       return_stats=True)
            (grad,) = torch.autograd.grad(loss, x)  # (B, B)
            gabs = grad.abs()
            off = gabs.masked_fill(torch.eye(B, dtype=torch.bool, device=sims.device), 0)
            row = {"margin": kind, "negatives": negatives, "loss": float(loss.detach()),
                   "active": stats["active"], "total": stats["total"],
                   "active_frac": stats["active"] / max(stats["total"], 1),
                   "mean_margin": float(m[valid].mean()) if valid.any() else float("nan"),
                   "grad_norm": float(grad.norm()), "grad_pos": float(gabs.diagonal().sum()),
                   "grad_neg": float(off.sum()), "neg_with_grad": int((off > 0).sum())}
            for name, mask in kinds.items():
                n = int(mask.sum())
                row[f"active_frac_{name}"] = float((act_s & mask).sum() + (act_im & mask).sum()) / max(2 * n, 1)
                row[f"mean_margin_{name}"] = float(m[mask].mean()) if n else float("nan")
                row[f"grad_share_{name}"] = float(off[mask].sum()) / row["grad_neg"] if row["grad_neg"] > 0 else 0.0
            rows.append(row)
    return rows


def format_diagnostics(rows: Sequence[dict], keys: Sequence[str] = ("loss", "active_frac", "grad_norm")) -> str:
    """Plain-text table of :func:`loss_diagnostics` rows (one line per loss, optional ``model`` column)."""
    lead = ["model"] if any("model" in r for r in rows) else []
    head = lead + ["loss type"] + list(keys)
    lines = [head]
    for r in rows:
        cells = [str(r.get("model", ""))] if lead else []
        cells.append(f"{r['margin']}-{r['negatives']}")
        cells += [f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k]) for k in keys]
        lines.append(cells)
    widths = [max(len(line[c]) for line in lines) for c in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)) for line in lines)
