"""MSA's three losses against values worked out by hand on 3 x 3 matrices (paper and released forms)."""

import math

import pytest
import torch

from rsnb.losses import alignment_loss, consistency_loss, triplet_loss

S = [[2.0, 0.5, -1.0], [0.0, 1.0, 0.5], [1.5, -0.5, 0.2]]
IDS = torch.tensor([0, 1, 1])  # samples 1 and 2 show the same image: (1, 2) and (2, 1) are not negatives


def _ce(logits, target):
    """-log softmax(logits)[target] over the entries that are not None (masked ones)."""
    kept = [v for v in logits if v is not None]
    return -(logits[target] - math.log(sum(math.exp(v) for v in kept)))


def test_alignment_paper_form_both_directions_temperature_and_same_image_mask():
    tau = 0.5
    z = [[v / tau for v in row] for row in S]  # [[4, 1, -2], [0, 2, 1], [3, -1, 0.4]]
    rows = [_ce([4, 1, -2], 0), _ce([0, 2, None], 1), _ce([3, None, 0.4], 2)]
    cols = [_ce([4, 0, 3], 0), _ce([1, 2, None], 1), _ce([-2, None, 0.4], 2)]
    assert z[2][2] == 0.4
    expected = 0.5 * (sum(rows) / 3 + sum(cols) / 3)
    got = alignment_loss(torch.tensor(S), IDS, form="paper", temperature=tau)
    assert float(got) == pytest.approx(expected, rel=1e-6)
    # without the mask the same-image entries are ordinary negatives: a larger loss here
    unmasked = alignment_loss(torch.tensor(S), IDS, form="paper", temperature=tau, mask_same_image=False)
    rows_u = [_ce([4, 1, -2], 0), _ce([0, 2, 1], 1), _ce([3, -1, 0.4], 2)]
    cols_u = [_ce([4, 0, 3], 0), _ce([1, 2, -1], 1), _ce([-2, 1, 0.4], 2)]
    assert float(unmasked) == pytest.approx(0.5 * (sum(rows_u) + sum(cols_u)) / 3, rel=1e-6)
    # a learnable temperature receives a gradient
    t = torch.tensor(tau, requires_grad=True)
    alignment_loss(torch.tensor(S), IDS, temperature=t).backward()
    assert t.grad is not None and t.grad != 0


def test_alignment_released_form_sigmoid_scores_as_logits_rows_only():
    P = [[1 / (1 + math.exp(-v)) for v in row] for row in S]  # the released post-sigmoid scores
    expected = sum(_ce(P[i], i) for i in range(3)) / 3
    got = alignment_loss(torch.sigmoid(torch.tensor(S)), IDS, form="released", mask_same_image=False)
    assert float(got) == pytest.approx(expected, rel=1e-6)
    assert expected > 0.9 * math.log(3)  # post-sigmoid logits in (0, 1): nearly uniform softmax, weak signal


def _col_softmax(M, T, drop=()):
    out = [[0.0] * 3 for _ in range(3)]
    for j in range(3):
        keep = [i for i in range(3) if (i, j) not in drop]
        den = sum(math.exp(M[i][j] / T) for i in keep)
        for i in keep:
            out[i][j] = math.exp(M[i][j] / T) / den
    return out


TEACHER = [[3.0, 0.0, 1.0], [-1.0, 2.0, 0.0], [0.5, 1.0, 2.5]]


@pytest.mark.parametrize("form", ["paper", "released"])
def test_consistency_kl_over_images_per_caption_in_both_orders(form):
    ps, pt = _col_softmax(S, 2.0), _col_softmax(TEACHER, 2.0)
    a, b = (pt, ps) if form == "paper" else (ps, pt)  # paper KL(teacher || student); released the other order
    expected = sum(a[i][j] * math.log(a[i][j] / b[i][j]) for i in range(3) for j in range(3)) / 9
    student = torch.tensor(S, requires_grad=True)
    teacher = torch.tensor(TEACHER, requires_grad=True)
    got = consistency_loss(student, teacher, IDS, form=form, temperature=2.0, mask_same_image=False)
    assert float(got.detach()) == pytest.approx(expected, rel=1e-6)
    got.backward()
    assert teacher.grad is None and student.grad.abs().sum() > 0  # the largest scale is a detached teacher
    assert float(consistency_loss(torch.tensor(S), torch.tensor(S), form=form)) == pytest.approx(0.0, abs=1e-7)


def test_consistency_masks_other_copies_of_the_same_image():
    drop = {(1, 2), (2, 1)}
    ps, pt = _col_softmax(S, 2.0, drop), _col_softmax(TEACHER, 2.0, drop)
    expected = sum(pt[i][j] * math.log(pt[i][j] / ps[i][j]) for i in range(3) for j in range(3)
                   if (i, j) not in drop) / 9
    got = consistency_loss(torch.tensor(S), torch.tensor(TEACHER), IDS)
    assert math.isfinite(float(got)) and float(got) == pytest.approx(expected, rel=1e-6)


def test_global_triplet_hardest_negative_margin_half():
    sims = torch.tensor([[0.9, 0.3, 0.5], [0.2, 0.6, 0.8], [0.1, 0.7, 0.4]])
    # masked (default): caption direction 0.1 + 0.1 + 0.2, image direction 0 + 0.2 + 0.6
    got = triplet_loss(sims, IDS, 0.5, negatives="hardest", mask_same_image=True)
    assert float(got) == pytest.approx(1.2, abs=1e-6)
    # released: another caption of the same image can be the hardest negative
    # caption direction 0.1 + 0.7 + 0.8, image direction 0 + 0.6 + 0.9
    got = triplet_loss(sims, IDS, 0.5, negatives="hardest", mask_same_image=False)
    assert float(got) == pytest.approx(3.1, abs=1e-6)
