import math

import pytest
import torch

from rsnb import losses

# Hand-worked 3x3 case. Rows = images, columns = captions, diagonal = positives (0.9, 0.4, 0.7).
SIMS = [[0.9, 0.5, 0.1],
        [0.6, 0.4, 0.3],
        [0.2, 0.8, 0.7]]
# Fixed margin 0.2:
#   c_s[i,j]  = max(0, 0.2 + S[i,j] - S[i,i]): (1,0)=0.2+0.6-0.4=0.4, (1,2)=0.2+0.3-0.4=0.1,
#               (2,1)=0.2+0.8-0.7=0.3, all others <= 0            -> sum 0.8, row maxima 0, 0.4, 0.3
#   c_im[i,j] = max(0, 0.2 + S[i,j] - S[j,j]): (0,1)=0.2+0.5-0.4=0.3, (2,1)=0.2+0.8-0.4=0.6,
#               all others <= 0                                   -> sum 0.9, column maxima 0, 0.6, 0
#   sum = 1.7, hardest = (0.4 + 0.3) + 0.6 = 1.3; 5 active of 12 entries, mean violation 1.7/5.
# Per-pair margin M (diagonal irrelevant):
MARGIN = [[9.0, 0.1, 0.5],
          [0.0, 9.0, 0.3],
          [0.4, 0.2, 9.0]]
#   c_s: (1,0)=0.0+0.6-0.4=0.2, (1,2)=0.3+0.3-0.4=0.2, (2,1)=0.2+0.8-0.7=0.3; (0,1)=-0.3, (0,2)=-0.3,
#        (2,0)=-0.1                                                -> sum 0.7, row maxima 0, 0.2, 0.3
#   c_im: (0,1)=0.1+0.5-0.4=0.2, (2,1)=0.2+0.8-0.4=0.6; (1,0)=-0.3, (2,0)=-0.3, (0,2)=-0.1, (1,2)=-0.1
#                                                                  -> sum 0.8, column maxima 0, 0.6, 0
#   sum = 1.5, hardest = 0.5 + 0.6 = 1.1.


def t(x):
    return torch.tensor(x, dtype=torch.float64)


@pytest.mark.parametrize("negatives, margin, expected", [
    ("sum", 0.2, 1.7), ("hardest", 0.2, 1.3), ("sum", MARGIN, 1.5), ("hardest", MARGIN, 1.1)])
def test_hand_computed(negatives, margin, expected):
    m = t(margin) if isinstance(margin, list) else margin
    loss = losses.triplet_loss(t(SIMS), None, m, negatives=negatives)
    assert loss.item() == pytest.approx(expected, abs=1e-12)


def test_stats_hand_computed():
    loss, stats = losses.triplet_loss(t(SIMS), torch.arange(3), 0.2, return_stats=True)
    assert loss.item() == pytest.approx(1.7)
    assert stats["active"] == 5 and stats["total"] == 12
    assert stats["mean_violation"] == pytest.approx(1.7 / 5)
    assert stats["loss_caption"] == pytest.approx(0.8) and stats["loss_image"] == pytest.approx(0.9)


def test_mask_same_image_hand_computed():
    # samples 1 and 2 share an image: (1,2) and (2,1) stop being negatives.
    # sum: 1.7 - c_s(1,2)=0.1 - c_s(2,1)=0.3 - c_im(2,1)=0.6 - c_im(1,2)=0 = 0.7
    # hardest: rows 0, 0.4, 0 + columns 0, 0.3 (c_im(0,1)), 0 = 0.7
    ids = torch.tensor([0, 1, 1])
    assert losses.triplet_loss(t(SIMS), ids, 0.2).item() == pytest.approx(0.7)
    assert losses.triplet_loss(t(SIMS), ids, 0.2, negatives="hardest").item() == pytest.approx(0.7)
    # the official code counts them
    assert losses.triplet_loss(t(SIMS), ids, 0.2, mask_same_image=False).item() == pytest.approx(1.7)
    _, stats = losses.triplet_loss(t(SIMS), ids, 0.2, return_stats=True)
    assert stats["total"] == 8 and stats["active"] == 2


def naive_loss(sims, ids, margin, negatives, mask):
    B = sims.shape[0]
    m = (lambda i, j: margin[i][j]) if torch.is_tensor(margin) else (lambda i, j: margin)
    valid = [[i != j and not (mask and ids[i] == ids[j]) for j in range(B)] for i in range(B)]
    zero = sims.new_zeros(())
    c_s = [[torch.clamp(m(i, j) + sims[i, j] - sims[i, i], min=0) if valid[i][j] else zero
            for j in range(B)] for i in range(B)]
    c_im = [[torch.clamp(m(i, j) + sims[i, j] - sims[j, j], min=0) if valid[i][j] else zero
             for j in range(B)] for i in range(B)]
    if negatives == "sum":
        return sum(c_s[i][j] + c_im[i][j] for i in range(B) for j in range(B))
    return (sum(max(c_s[i][j] for j in range(B)) for i in range(B))
            + sum(max(c_im[i][j] for i in range(B)) for j in range(B)))


@pytest.mark.parametrize("negatives", ["sum", "hardest"])
@pytest.mark.parametrize("mask", [True, False])
@pytest.mark.parametrize("per_pair", [True, False])
def test_matches_naive_double_loop_with_gradients(negatives, mask, per_pair):
    g = torch.Generator().manual_seed(0)
    B = 7
    ids = torch.tensor([0, 3, 0, 1, 3, 3, 2])
    sims = (torch.rand(B, B, generator=g, dtype=torch.float64) * 2 - 1).requires_grad_()
    margin = torch.rand(B, B, generator=g, dtype=torch.float64) * 0.6 if per_pair else 0.35
    loss = losses.triplet_loss(sims, ids, margin, negatives=negatives, mask_same_image=mask)
    (grad,) = torch.autograd.grad(loss, sims)
    ref = naive_loss(sims, ids.tolist(), margin, negatives, mask)
    (ref_grad,) = torch.autograd.grad(ref, sims)
    assert loss.item() == pytest.approx(ref.item(), abs=1e-12)
    assert loss.item() > 0
    assert torch.allclose(grad, ref_grad, atol=1e-12)
    assert grad.abs().sum() > 0  # gradient flows to the similarities


def test_gradient_values_sum():
    # Active terms of the fixed-margin hand case, each +1 at S[i,j] and -1 at its positive:
    # c_s(1,0), c_s(1,2) -> -1 at S11 each; c_s(2,1) -> -1 at S22; c_im(0,1), c_im(2,1) -> -1 at S11 each.
    # So S01 = S10 = S12 = 1, S21 = 2 (c_s and c_im), S11 = -4, S22 = -1, S00 and the rest 0.
    sims = t(SIMS).requires_grad_()
    losses.triplet_loss(sims, None, 0.2).backward()
    expected = t([[0.0, 1.0, 0.0],
                  [1.0, -4.0, 1.0],
                  [0.0, 2.0, -1.0]])
    assert torch.equal(sims.grad, expected)


def test_zero_loss_when_positives_win_and_margin_monotone():
    sims = torch.full((4, 4), 0.1, dtype=torch.float64)
    sims.fill_diagonal_(0.5)
    assert losses.triplet_loss(sims, None, 0.2).item() == 0.0  # 0.5 - 0.1 = 0.4 > 0.2
    # margin 0.5: every one of the 24 negative entries violates by 0.1
    assert losses.triplet_loss(sims, None, 0.5).item() == pytest.approx(24 * 0.1)
    assert losses.triplet_loss(sims, None, 0.6).item() == pytest.approx(24 * 0.2)


def test_dynamic_margin_endpoints_and_shape():
    for beta in (5.0, 0.5, -3.0, 0.0):
        assert losses.dynamic_margin(0.0, 0.6, beta) == pytest.approx(0.6)
        assert losses.dynamic_margin(1.0, 0.6, beta) == pytest.approx(0.0, abs=1e-15)
    S = torch.linspace(0, 1, 11, dtype=torch.float64)
    out = losses.dynamic_margin(S, 0.6, 5.0)
    assert out.shape == S.shape and torch.is_tensor(out)
    assert isinstance(losses.dynamic_margin(0.3), float)
    # the paper's formula, written directly (beta = 5 does not overflow)
    direct = 0.6 * (math.exp(5) - torch.exp(5 * S)) / (math.exp(5) - 1)
    assert torch.allclose(out, direct, atol=1e-14)
    # S = 0.5, beta = 5: 0.6 (e^5 - e^2.5) / (e^5 - 1) = 0.6 * 136.18 / 147.41
    assert losses.dynamic_margin(0.5, 0.6, 5.0) == pytest.approx(0.6 * (math.exp(5) - math.exp(2.5)) / (math.exp(5) - 1))


def test_dynamic_margin_shape_of_curve():
    S = torch.linspace(0, 1, 101, dtype=torch.float64)
    chord = 0.6 * (1 - S)
    big = losses.dynamic_margin(S, 0.6, 800.0)  # no overflow for a large beta
    assert torch.isfinite(big).all() and (big[1:] <= big[:-1]).all() and big[0] == 0.6
    for beta in (0.5, 5.0, 10.0):
        m = losses.dynamic_margin(S, 0.6, beta)
        assert (m[1:] < m[:-1]).all()  # strictly decreasing
        assert (m[1:-1] > chord[1:-1]).all()  # above the chord: flat near 0 ("convex" in the paper)
        assert (m[2:] - 2 * m[1:-1] + m[:-2] < 0).all()  # negative second difference
    m = losses.dynamic_margin(S, 0.6, -5.0)
    assert (m[1:-1] < chord[1:-1]).all() and (m[2:] - 2 * m[1:-1] + m[:-2] > 0).all()
    # beta -> 0 tends to the chord; beta == 0 is exactly the chord
    assert torch.allclose(losses.dynamic_margin(S, 0.6, 1e-7), chord, atol=1e-7)
    assert torch.equal(losses.dynamic_margin(S, 0.6, 0.0), chord)


def test_dynamic_margin_gradient():
    S = torch.tensor([0.2, 0.7], dtype=torch.float64, requires_grad=True)
    losses.dynamic_margin(S, 0.6, 5.0).sum().backward()
    expected = -0.6 * 5 * torch.exp(5 * S.detach()) / (math.exp(5) - 1)
    assert torch.allclose(S.grad, expected)


def test_margin_matrix_fixed_and_dynamic():
    sims = t(SIMS)
    assert losses.margin_matrix(sims, kind="fixed", margin=0.3) == 0.3
    # prior S = 0 -> gamma, S = 1 -> 0, S = 0.5 -> gamma (e^b - e^(b/2)) / (e^b - 1)
    prior = t([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.5, 0.5, 1.0]])
    m = losses.margin_matrix(sims, prior, kind="dynamic", gamma=0.6, beta=5.0)
    half = 0.6 * (math.exp(5) - math.exp(2.5)) / (math.exp(5) - 1)
    assert torch.allclose(m, t([[0.0, 0.6, half], [0.6, 0.0, half], [half, half, 0.0]]), atol=1e-12)
    # the paper's loss on the hand-worked case with this margin, h = half = 0.5545:
    # c_s  (0,1)=0.6+0.5-0.9=0.2, (1,0)=0.6+0.6-0.4=0.8, (1,2)=h+0.3-0.4, (2,0)=h+0.2-0.7, (2,1)=h+0.8-0.7,
    #      (0,2)=h+0.1-0.9 < 0                                              -> 0.5 + 3h
    # c_im (0,1)=0.6+0.5-0.4=0.7, (1,0)=0.6+0.6-0.9=0.3, (1,2)=h+0.3-0.7, (2,1)=h+0.8-0.4,
    #      (0,2)=h+0.1-0.7 < 0, (2,0)=h+0.2-0.9 < 0                         -> 1.0 + 2h
    expected = 1.5 + 5 * half
    assert 0.5 < half < 0.6
    assert losses.triplet_loss(sims, None, m).item() == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="prior"):
        losses.margin_matrix(sims, None, kind="dynamic")
    with pytest.raises(ValueError, match="prior has shape"):
        losses.margin_matrix(sims, torch.zeros(2, 2), kind="dynamic")
    with pytest.raises(ValueError, match="margin kind"):
        losses.margin_matrix(sims, kind="adaptive")


def test_pair_stats_hand_computed():
    # samples 1 and 2 share an image: negatives are (0,1), (0,2), (1,0), (2,0) -> (0.5+0.1+0.6+0.2)/4
    stats = losses.pair_stats(t(SIMS), torch.tensor([0, 1, 1]))
    assert stats["sim_pos"] == pytest.approx((0.9 + 0.4 + 0.7) / 3)
    assert stats["sim_neg"] == pytest.approx(1.4 / 4)
    assert math.isnan(losses.pair_stats(t(SIMS), torch.zeros(3, dtype=torch.long))["sim_neg"])


def test_bad_inputs():
    with pytest.raises(ValueError, match="square"):
        losses.triplet_loss(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="negatives"):
        losses.triplet_loss(torch.zeros(3, 3), negatives="mean")
    with pytest.raises(ValueError, match="margin"):
        losses.triplet_loss(torch.zeros(3, 3), margin=torch.zeros(2, 2))
    with pytest.raises(ValueError, match="image_ids"):
        losses.triplet_loss(torch.zeros(3, 3), torch.arange(4))
