"""Tests for rsnb.analysis.loss_probe (pair types, prior by group, loss diagnostics) and its plot helpers."""

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from rsnb import viz
from rsnb.analysis import loss_probe as la
from rsnb.analysis import paper_tables
from rsnb.losses import dynamic_margin, triplet_loss
from rsnb.prior import PriorSimilarity

# Hand-worked batch (margin 0.2, distinct images). Caption direction c_s = 0.2 + S[i,j] - S[i,i]:
# (0,1) = .15, (0,2) = .10, (1,2) = .10 active; image direction c_im = 0.2 + S[i,j] - S[j,j]:
# (0,1) = .05, (0,2) = .30, (1,2) = .40 active. Sum loss 1.1; hardest: rows .15 + .10, columns .05 + .40.
SIMS = torch.tensor([[0.5, 0.45, 0.4], [0.1, 0.6, 0.5], [0.0, 0.05, 0.3]])
IDS = torch.tensor([0, 1, 2])
CLASSES = ["a", "a", "b"]


def _by_name(rows):
    return {f"{r['margin']}-{r['negatives']}": r for r in rows}


def test_paper_table_v_mr_is_mean_of_recalls():
    assert len(paper_tables.PAPER_TABLE_V) == 12
    assert len({(r["loss"], r["gamma"], r["beta"]) for r in paper_tables.PAPER_TABLE_V}) == 12
    for r in paper_tables.PAPER_TABLE_V:
        mean = sum(r[k] for k in ("i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5", "t2i_R@10")) / 6
        assert abs(mean - r["mR"]) < 0.006, r
    best = max(paper_tables.PAPER_TABLE_V, key=lambda r: r["mR"])
    assert (best["loss"], best["gamma"], best["beta"], best["mR"]) == ("dynamic", 0.6, 5, 29.72)


def test_pair_groups_hand_case_and_bad_ids():
    g = la.pair_groups([0, 2], [0, 1, 2, 3], ["a", "a", "b", "b"])
    assert g.dtype == np.int8
    np.testing.assert_array_equal(g, [[0, 1, 2, 2], [2, 2, 0, 1]])
    with pytest.raises(IndexError, match="column image id 4 at position 1"):
        la.pair_groups([0], [0, 4], ["a", "a", "b", "b"])


def test_prior_by_group_matches_pairwise_values():
    caps = [["a red roof near a road .", "red roofs ."], ["a red roof by the river .", "blue water ."],
            ["green trees in a forest .", "many trees ."]]
    prior = PriorSimilarity(caps)
    out = la.prior_by_group(prior, ["res", "res", "forest"])
    assert [len(out[g]["S"]) for g in la.GROUPS] == [6, 4, 8]  # 3 images x 6 captions
    assert np.all(out["positive"]["score1"] == 1.0)  # a caption is one of its own references
    # same-class negatives in row-major order: (image 0, captions 2, 3), (image 1, captions 0, 1)
    expect = [prior.pair(0, 2), prior.pair(0, 3), prior.pair(1, 0), prior.pair(1, 1)]
    np.testing.assert_allclose(out["same-class negative"]["S"], expect)
    sub = la.prior_by_group(prior, ["res", "res", "forest"], image_ids=[2])
    assert [len(sub[g]["S"]) for g in la.GROUPS] == [2, 0, 4]


def test_loss_diagnostics_hand_case_fixed():
    groups = la.pair_groups(IDS, IDS, CLASSES)
    rows = _by_name(la.loss_diagnostics(SIMS, IDS, torch.zeros(3, 3), groups, margin=0.2))
    s, h = rows["fixed-sum"], rows["fixed-hardest"]
    assert s["loss"] == pytest.approx(1.1, abs=1e-6) and h["loss"] == pytest.approx(0.7, abs=1e-6)
    assert (s["active"], s["total"], h["active"]) == (6, 12, 6)
    assert s["active_frac"] == pytest.approx(0.5)
    # sum: each active hinge adds +1 at (i, j) and -1 at its positive -> off-diagonal 2,2,2, diagonal -2,-2,-2
    assert s["grad_norm"] == pytest.approx(math.sqrt(24)) and s["grad_pos"] == pytest.approx(6)
    assert (s["grad_neg"], s["neg_with_grad"]) == (pytest.approx(6), 3)
    # hardest: (0,1) and (1,2) get 2 each, (0,2) none; diagonal -1, -2, -1
    assert h["grad_norm"] == pytest.approx(math.sqrt(14)) and h["neg_with_grad"] == 2
    # same-class pairs (0,1), (1,0): 2 of their 4 hinges active; gradient share 2/6 (sum), 2/4 (hardest)
    assert s["active_frac_same"] == pytest.approx(0.5) and s["active_frac_other"] == pytest.approx(0.5)
    assert s["grad_share_same"] == pytest.approx(1 / 3) and h["grad_share_same"] == pytest.approx(0.5)
    assert s["mean_margin_same"] == pytest.approx(0.2)


def test_loss_diagnostics_dynamic_limits():
    zero = _by_name(la.loss_diagnostics(SIMS, IDS, torch.zeros(3, 3), margin=0.2, gamma=0.2))
    for neg in ("sum", "hardest"):  # S = 0 gives the margin gamma
        for key in ("loss", "active", "grad_norm"):
            assert zero[f"dynamic-{neg}"][key] == pytest.approx(zero[f"fixed-{neg}"][key])
    one = _by_name(la.loss_diagnostics(SIMS, IDS, torch.ones(3, 3), gamma=0.6))
    d = one["dynamic-sum"]  # S = 1 gives margin 0: only c_im (0,2) = .1 and (1,2) = .2 remain
    assert (d["active"], d["loss"], d["mean_margin"]) == (2, pytest.approx(0.3), pytest.approx(0.0))


def test_loss_diagnostics_consistent_with_triplet_loss_on_random_batch():
    gen = torch.Generator().manual_seed(0)
    B = 12
    sims = torch.rand(B, B, generator=gen) * 0.6
    ids = torch.tensor([0, 0, 1, 2, 3, 3, 4, 5, 6, 7, 8, 9])
    classes = ["x", "y", "x", "y", "x", "z", "z", "x", "y", "z"]
    prior = torch.rand(B, B, generator=gen)
    groups = la.pair_groups(ids, ids, classes)
    rows = la.loss_diagnostics(sims, ids, prior, groups)
    assert len(rows) == 4
    n_same = int(((groups == 1) & ~np.eye(B, dtype=bool)).sum())
    n_other = int((groups == 2).sum())
    assert rows[0]["total"] == 2 * (n_same + n_other) == 2 * (B * B - B - 4)  # ids 0 and 3 repeat
    for r in rows:
        m = 0.2 if r["margin"] == "fixed" else dynamic_margin(prior, 0.6, 5.0)
        loss, stats = triplet_loss(sims, ids, m, negatives=r["negatives"], return_stats=True)
        assert r["loss"] == pytest.approx(float(loss), rel=1e-6) and r["active"] == stats["active"]
        split = r["active_frac_same"] * 2 * n_same + r["active_frac_other"] * 2 * n_other
        assert split == pytest.approx(r["active"])
        assert r["grad_share_same"] + r["grad_share_other"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="prior has shape"):
        la.loss_diagnostics(sims, ids, prior[:3])


class _Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)
        self.drop = nn.Dropout(0.5)

    def forward(self, batch):
        return {"img_v": self.drop(self.proj(batch["x"])), "txt_s": self.drop(batch["y"])}

    def score(self, img, txt):
        return nn.functional.normalize(img["v"], dim=1) @ nn.functional.normalize(txt["s"], dim=1).T


def test_model_similarities_eval_mode_no_grad():
    torch.manual_seed(0)
    model = _Toy().train()
    batch = {"x": torch.randn(5, 4), "y": torch.randn(5, 4)}
    sims = la.model_similarities(model, batch)
    assert model.training and not sims.requires_grad and sims.shape == (5, 5)
    expect = nn.functional.normalize(model.proj(batch["x"]), dim=1) @ nn.functional.normalize(batch["y"], dim=1).T
    torch.testing.assert_close(sims, expect.detach())  # dropout off


def test_format_diagnostics_table():
    rows = la.loss_diagnostics(SIMS, IDS, torch.zeros(3, 3))
    for r in rows:
        r["model"] = "toy"
    text = la.format_diagnostics(rows, keys=("loss", "active"))
    lines = text.splitlines()
    assert lines[0].split() == ["model", "loss", "type", "loss", "active"]
    assert len(lines) == 5 and lines[1].split()[:4] == ["toy", "fixed-sum", "1.100", "6"]


def test_plot_helpers_draw_the_given_numbers():
    S = np.linspace(0, 1, 11)
    curves = {f"β = {b}": dynamic_margin(torch.tensor(S), 0.6, b).numpy() for b in (3, 5)}
    fig = viz.plot_margin_curves(S, {"varying β": curves}, fixed=0.2, paper_rows=paper_tables.PAPER_TABLE_V)
    ax0, ax1 = fig.axes[:2]
    np.testing.assert_allclose(ax0.lines[1].get_ydata(), curves["β = 5"])
    heights = sorted(p.get_height() for p in ax1.patches)
    assert heights == sorted(r["mR"] for r in paper_tables.PAPER_TABLE_V)
    plt.close(fig)

    rows = la.loss_diagnostics(SIMS, IDS, torch.zeros(3, 3))
    for r in rows:
        r["model"] = "m"
    fig = viz.plot_loss_diagnostics(rows, {"active_frac": "active", "grad_norm": "grad"})
    assert [p.get_height() for p in fig.axes[1].patches] == pytest.approx([r["grad_norm"] for r in rows])
    plt.close(fig)

    groups = {"positive": {"S": np.array([0.8, 0.9]), "score1": np.ones(2), "score2": np.array([0.6, 0.8])},
              "other-class negative": {"S": np.array([0.1]), "score1": np.zeros(1), "score2": np.array([0.2])}}
    fig = viz.plot_prior_groups(groups, margin_fn=lambda s: 0.6 * (1 - s))
    bars = [p.get_height() for p in fig.axes[1].patches]
    assert bars == pytest.approx([0.5, 0.0, 0.35, 0.1])  # BLEU halves, then overlap halves
    plt.close(fig)

    g = la.pair_groups(IDS, IDS, CLASSES)
    fig = viz.plot_batch_margins(dynamic_margin(torch.rand(3, 3), 0.6, 5.0), CLASSES, g)
    assert len(fig.axes) == 3  # heatmap, colour bar, box plot
    plt.close(fig)


def test_inverse_dynamic_margin_round_trip_and_thresholds():
    for beta in (-5.0, 0.0, 3.0, 5.0):
        alphas = np.array([0.0, 0.1, 0.2, 0.45, 0.6])
        s = la.inverse_dynamic_margin(alphas, 0.6, beta)
        np.testing.assert_allclose(dynamic_margin(torch.tensor(s), 0.6, beta).numpy(), alphas, atol=1e-12)
    # gamma 0.6, beta 5: alpha < 0.2 needs S > log(e^5 - (e^5 - 1) / 3) / 5
    assert la.inverse_dynamic_margin(0.2, 0.6, 5.0) == pytest.approx(math.log(math.exp(5) - (math.exp(5) - 1) / 3) / 5)
    assert la.inverse_dynamic_margin(0.3, 0.6, 0.0) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="alpha must lie in"):
        la.inverse_dynamic_margin(0.7, 0.6, 5.0)


def _naive_bow(caps_per_image, i, j):
    """Dense re-computation: TF-IDF over content-word sets, leave-one-out image vector, cosine."""
    from rsnb.data.vocab import STOPWORDS, tokenize

    flat = [c for caps in caps_per_image for c in caps]
    owner = [k for k, caps in enumerate(caps_per_image) for _ in caps]
    sets = [set(tokenize(c)) - STOPWORDS for c in flat]
    vocab = sorted(set().union(*sets))
    df = {w: sum(w in s for s in sets) for w in vocab}
    vecs = []
    for s in sets:
        v = np.array([(math.log((1 + len(flat)) / (1 + df[w])) + 1) if w in s else 0.0 for w in vocab])
        vecs.append(v / np.linalg.norm(v))
    img = sum(vecs[k] for k in range(len(flat)) if owner[k] == i and k != j)
    return float(img @ vecs[j] / (np.linalg.norm(img) * np.linalg.norm(vecs[j])))


def test_bow_similarities_matches_naive_reference():
    caps = [["a red roof near a road .", "red roofs and a road ."], ["a red roof by the river .", "blue water ."],
            ["green trees in a forest .", "many green trees ."]]
    imgs, capids = [0, 1, 2, 0], [1, 0, 5, 2]
    sims = la.bow_similarities(caps, imgs, capids)
    assert sims.shape == (4, 4) and sims.dtype == torch.float32
    for a, i in enumerate(imgs):
        for b, j in enumerate(capids):
            assert float(sims[a, b]) == pytest.approx(_naive_bow(caps, i, j), abs=1e-6), (i, j)
    assert float(sims[0, 0]) > float(sims[0, 2])  # own (left-out) caption beats an unrelated one
    with pytest.raises(IndexError, match="caption id 6 at position 0"):
        la.bow_similarities(caps, [0], [6])


def test_loss_diagnostics_same_image_negatives_when_unmasked():
    ids = torch.tensor([0, 0, 1])  # samples 0 and 1 show the same image
    groups = la.pair_groups(ids, ids, ["a", "b"])
    masked = _by_name(la.loss_diagnostics(SIMS, ids, torch.zeros(3, 3), groups))["fixed-sum"]
    kept = _by_name(la.loss_diagnostics(SIMS, ids, torch.zeros(3, 3), groups, mask_same_image=False))["fixed-sum"]
    assert (masked["total"], kept["total"]) == (8, 12)
    assert masked["active_frac_image"] == 0 and masked["grad_share_image"] == 0
    # unmasked: pairs (0,1), (1,0) hold 2 of the 6 active hinges (c_s and c_im at (0,1)), 4 of 12 grad units
    assert kept["active_frac_image"] == pytest.approx(0.5) and kept["grad_share_image"] == pytest.approx(1 / 3)
