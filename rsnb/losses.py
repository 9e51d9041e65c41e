"""Losses: AMFMN's bidirectional hinge triplet loss with fixed or dynamic (prior-based) margin, MSA's
alignment and consistency losses.

AMFMN's loss is configured in one place, :class:`rsnb.models.amfmn.AMFMNConfig` (``loss``,
``margin``, ``gamma``, ``beta``, ``negatives``, ``mask_same_image``): ``AMFMN.loss`` passes those
fields to :func:`margin_matrix` and :func:`triplet_loss`. The paper's values are the defaults; the
released code's are the ``official`` preset (:meth:`AMFMNConfig.official`).

* CODE (``utils.calcul_loss`` of the released AMFMN): fixed margin 0.2, sum over all in-batch
  negatives, plain sum (no division by the batch size), duplicate images in a batch still count
  as negatives (``mask_same_image=False`` reproduces this).
* PAPER (eqs. 28-30): the margin of pair (image i, caption j) is
  ``alpha_ct = gamma * (e^beta - e^(beta*S)) / (e^beta - 1)`` with S the prior caption similarity
  of :mod:`rsnb.prior`; best setting gamma = 0.6, beta = 5 (Table V, RSITMD).

Shown in notebooks/03_loss_behaviour.ipynb.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

NEGATIVES = ("sum", "hardest")


def dynamic_margin(S, gamma: float = 0.6, beta: float = 5.0):
    """Dynamic variable margin of the paper (eq. 29).

    ``alpha = gamma * (e^beta - e^(beta*S)) / (e^beta - 1)``, computed in the overflow-free form
    ``gamma * expm1(beta*(S-1)) / expm1(-beta)``. S = 0 gives gamma, S = 1 gives 0. For beta > 0
    the curve lies above the straight line gamma*(1-S) (flat near S = 0, what the paper calls
    "convex"; mathematically concave), for beta < 0 below it; beta = 0 is that line (the limit).

    Args:
        S: prior similarity, a float or a tensor of any shape (elementwise).
        gamma: maximum margin (at S = 0).
        beta: decay coefficient.

    Returns:
        The margin, same type and shape as ``S``.
    """
    if beta == 0:
        return gamma * (1 - S)
    if torch.is_tensor(S):
        return gamma * torch.expm1(beta * (S - 1)) / math.expm1(-beta) + 0.0  # + 0.0: no -0.0 at S = 1
    return gamma * math.expm1(beta * (S - 1)) / math.expm1(-beta) + 0.0


def triplet_loss(sims: Tensor, image_ids: Tensor | None = None, margin: float | Tensor = 0.2, *,
                 negatives: str = "sum", mask_same_image: bool = True, return_stats: bool = False):
    """Bidirectional hinge triplet loss over an in-batch similarity matrix.

    With m the margin, for every negative pair (i, j):
    caption direction ``c_s[i,j] = max(0, m_ij + S[i,j] - S[i,i])`` (image i, wrong caption j) and
    image direction ``c_im[i,j] = max(0, m_ij + S[i,j] - S[j,j])`` (caption j, wrong image i).
    A per-pair margin is used at (i, j) in both terms: eq. 30 gives one margin per
    (caption, image) pair, and in both terms (i, j) pairs caption j with image i.

    Args:
        sims: (B, B) scores; row i = image of sample i, column j = caption of sample j, the
            diagonal holds the positives.
        image_ids: (B,) image id of each sample; needed for ``mask_same_image``.
        margin: a float, or a (B, B) tensor of per-pair margins (e.g. :func:`dynamic_margin`
            of the prior matrix).
        negatives: ``"sum"`` (all negatives, the official setting) or ``"hardest"`` (VSE++: the
            hardest caption per row of c_s plus the hardest image per column of c_im).
        mask_same_image: drop pairs whose two samples show the same image (the official code
            keeps them: ``False`` reproduces it).
        return_stats: also return a dict of diagnostics.

    Returns:
        The scalar loss (a plain sum, not divided by B); with ``return_stats`` a tuple
        ``(loss, stats)`` where stats holds ``active`` (violating triplets, both directions,
        among all valid negatives whatever the reduction), ``total`` (valid negative entries,
        both directions), ``mean_violation`` (mean hinge value of the active ones),
        ``loss_caption`` and ``loss_image`` (the two terms).
    """
    if sims.dim() != 2 or sims.shape[0] != sims.shape[1]:
        raise ValueError(f"triplet_loss: sims must be square (B, B), got {tuple(sims.shape)}")
    if negatives not in NEGATIVES:
        raise ValueError(f"triplet_loss: negatives must be one of {NEGATIVES}, got {negatives!r}")
    B = sims.shape[0]
    if torch.is_tensor(margin) and margin.dim() > 0 and margin.shape != sims.shape:
        raise ValueError(f"triplet_loss: margin must be a float or ({B}, {B}), got {tuple(margin.shape)}")
    diag = sims.diagonal()  # (B,)
    cost_s = (margin + sims - diag[:, None]).clamp(min=0)  # (B, B) caption direction
    cost_im = (margin + sims - diag[None, :]).clamp(min=0)  # (B, B) image direction
    invalid = torch.eye(B, dtype=torch.bool, device=sims.device)  # (B, B)
    if mask_same_image and image_ids is not None:
        ids = torch.as_tensor(image_ids, device=sims.device).reshape(-1)
        if ids.numel() != B:
            raise ValueError(f"triplet_loss: image_ids has {ids.numel()} entries for a batch of {B}")
        invalid = invalid | (ids[:, None] == ids[None, :])
    cost_s = cost_s.masked_fill(invalid, 0)
    cost_im = cost_im.masked_fill(invalid, 0)
    if negatives == "sum":
        loss_s, loss_im = cost_s.sum(), cost_im.sum()
    else:
        loss_s, loss_im = cost_s.max(dim=1).values.sum(), cost_im.max(dim=0).values.sum()
    loss = loss_s + loss_im
    if not return_stats:
        return loss
    with torch.no_grad():
        active = int((cost_s > 0).sum() + (cost_im > 0).sum())
        stats = {
            "active": active,
            "total": 2 * int((~invalid).sum()),
            "mean_violation": float((cost_s.sum() + cost_im.sum()) / active) if active else 0.0,
            "loss_caption": float(loss_s),
            "loss_image": float(loss_im),
        }
    return loss, stats


MARGINS = ("dynamic", "fixed")


def margin_matrix(sims: Tensor, prior: Tensor | None = None, *, kind: str = "dynamic", margin: float = 0.2,
                  gamma: float = 0.6, beta: float = 5.0) -> float | Tensor:
    """The margin of every (image i, caption j) pair of an in-batch score matrix.

    ``kind="dynamic"`` (the paper's L_ct, eqs. 29-30): ``dynamic_margin(prior, gamma, beta)``, one
    margin per pair from the (B, B) prior caption similarity; ``kind="fixed"`` (the released code):
    the float ``margin`` for every pair.

    Raises:
        ValueError: dynamic without a prior, or a prior whose shape is not ``sims.shape``.
    """
    if kind not in MARGINS:
        raise ValueError(f"margin kind must be one of {MARGINS}, got {kind!r}")
    if kind == "fixed":
        return margin
    if prior is None:
        raise ValueError("the dynamic margin needs batch['prior'], the (B, B) prior caption similarity "
                         "(rsnb.prior.PriorSimilarity.batch_matrix), or use loss='fixed'")
    if prior.shape != sims.shape:
        raise ValueError(f"prior has shape {tuple(prior.shape)}, expected {tuple(sims.shape)}")
    return dynamic_margin(prior.to(sims), gamma, beta)  # (B, B)


@torch.no_grad()
def pair_stats(sims: Tensor, image_ids: Tensor) -> dict[str, float]:
    """Training-log statistics of an in-batch score matrix: mean positive (diagonal) score
    ``sim_pos`` and mean score ``sim_neg`` of the pairs whose two samples show different images."""
    neg = image_ids[:, None] != image_ids[None]  # (B, B)
    return {"sim_pos": float(sims.diagonal().mean()),
            "sim_neg": float(sims[neg].mean()) if neg.any() else float("nan")}


# ------------------------------------------------------------------------------------ MSA
FORMS = ("paper", "released")


def same_image_off_diagonal(image_ids: Tensor | None, B: int, device) -> Tensor:
    """(B, B) bool, True where samples i != j show the same image (never negatives); all False without ids."""
    if image_ids is None:
        return torch.zeros(B, B, dtype=torch.bool, device=device)
    ids = torch.as_tensor(image_ids, device=device).reshape(-1)
    if ids.numel() != B:
        raise ValueError(f"image_ids has {ids.numel()} entries for a batch of {B}")
    return (ids[:, None] == ids[None, :]) & ~torch.eye(B, dtype=torch.bool, device=device)


def alignment_loss(scores: Tensor, image_ids: Tensor | None = None, *, form: str = "paper",
                   temperature: float | Tensor = 1.0, mask_same_image: bool = True) -> Tensor:
    """MSA's per-scale alignment loss (MSCMA) on one in-batch score matrix, diagonal = positives.

    * ``paper`` (default): cross-entropy of ``scores / temperature`` in both directions (rows:
      image -> captions, columns: caption -> images), the mean of the two, each a mean over the batch.
    * ``released``: the row direction only, ``scores`` (the released code's post-sigmoid values) used
      as the logits directly, a mean over the batch.

    With ``mask_same_image`` the other captions of a row's image (and the other copies of a column's
    image) are removed from the softmax: they are not negatives.

    Args:
        scores: (B, B), rows images, columns captions.
        image_ids: (B,) image of each sample (for the mask).
        form: ``"paper"`` or ``"released"``.
        temperature: a float or a scalar tensor (learnable), paper form only.
        mask_same_image: see above.

    Returns:
        The scalar loss.
    """
    if form not in FORMS:
        raise ValueError(f"alignment_loss: form must be one of {FORMS}, got {form!r}")
    if scores.dim() != 2 or scores.shape[0] != scores.shape[1]:
        raise ValueError(f"alignment_loss: scores must be square (B, B), got {tuple(scores.shape)}")
    B = scores.shape[0]
    target = torch.arange(B, device=scores.device)
    logits = scores / temperature if form == "paper" else scores  # (B, B)
    if mask_same_image:
        logits = logits.masked_fill(same_image_off_diagonal(image_ids, B, scores.device), float("-inf"))
    rows = nn.functional.cross_entropy(logits, target)
    if form == "released":
        return rows
    return 0.5 * (rows + nn.functional.cross_entropy(logits.T, target))


def consistency_loss(student: Tensor, teacher: Tensor, image_ids: Tensor | None = None, *,
                     form: str = "paper", temperature: float = 2.0, mask_same_image: bool = True) -> Tensor:
    """MSA's cross-scale consistency loss (CSMMC): the largest scale teaches a smaller one.

    Both (B, B) matrices become, for every caption (column), a distribution over the images:
    ``P = softmax(S / temperature, dim=0)``; the teacher is detached. The loss is a KL divergence
    averaged over all B^2 entries (the released reduction):

    * ``paper`` (default): KL(teacher || student) = mean P_t (log P_t - log P_s), the distillation order;
    * ``released``: the released argument order, mean P_s (log P_s - log P_t) = KL(student || teacher).

    With ``mask_same_image`` the other copies of a caption's image leave both distributions.

    Args:
        student, teacher: (B, B) score matrices of a smaller scale and of the largest scale.
        image_ids: (B,) image of each sample (for the mask).
        form: ``"paper"`` or ``"released"``.
        temperature: softmax temperature (2 as released).
        mask_same_image: see above.

    Returns:
        The scalar loss (0 when the two distributions agree).
    """
    if form not in FORMS:
        raise ValueError(f"consistency_loss: form must be one of {FORMS}, got {form!r}")
    if student.shape != teacher.shape or student.dim() != 2:
        raise ValueError(f"consistency_loss: student {tuple(student.shape)} and teacher {tuple(teacher.shape)} "
                         "must be the same (B, B) shape")
    B = student.shape[0]
    drop = same_image_off_diagonal(image_ids, B, student.device) if mask_same_image else None
    logs = []
    for s in (student, teacher.detach()):
        z = s / temperature
        if drop is not None:
            z = z.masked_fill(drop, float("-inf"))
        logs.append(torch.log_softmax(z, dim=0))  # (B, B), each column sums to 1 in probability
    log_s, log_t = logs
    p, log_p, log_q = (log_t.exp(), log_t, log_s) if form == "paper" else (log_s.exp(), log_s, log_t)
    terms = p * (log_p - log_q)  # (B, B)
    if drop is not None:
        terms = terms.masked_fill(drop, 0.0)  # 0 * (-inf - -inf) would be NaN
    return terms.mean()
