import numpy as np
import pytest
import torch

from rsnb.analysis.mvsa_probe import (
    CATEGORIES,
    category_map,
    cell_fractions,
    describe_tensors,
    format_mass_tables,
    gate_mass,
    gate_mass_table,
    scene_objects,
)
from rsnb.data.corpus import ImageRecord

C = {c: i for i, c in enumerate(CATEGORIES)}


def obj(box, scale, mentioned=True):
    return {"box": box, "scale": scale, "mentioned": mentioned}


SCENE = [
    obj([0, 0, 10, 5], "large"),  # top half
    obj([2, 1, 4, 3], "small"),  # 2x2 inside the large box
    obj([6, 6, 9, 9], "medium", mentioned=False),  # 3x3 clutter
]


def test_category_map_smallest_box_wins_and_counts():
    lab = category_map(SCENE, 10)
    counts = {c: int((lab == C[c]).sum()) for c in CATEGORIES}
    assert counts == {"small": 4, "medium": 0, "large": 46, "clutter": 9, "background": 41}
    assert lab[1, 2] == C["small"] and lab[0, 0] == C["large"] and lab[7, 7] == C["clutter"]
    # order of the objects does not matter
    assert np.array_equal(category_map(SCENE[::-1], 10), lab)


def test_category_map_clips_boxes_and_rejects_bad_objects():
    lab = category_map([obj([-3, -3, 2, 2], "small"), obj([9, 9, 14, 14], "small")], 10)
    assert int((lab == C["small"]).sum()) == 4 + 1
    with pytest.raises(ValueError, match="object 1: box"):
        category_map([obj([0, 0, 1, 1], "small"), {"box": [0, 0, 1], "scale": "small"}], 10)
    with pytest.raises(ValueError, match="object 0: scale"):
        category_map([obj([0, 0, 1, 1], "huge")], 10)


def test_cell_fractions_match_supersampled_reference():
    rng = np.random.default_rng(0)
    lab = rng.integers(0, len(CATEGORIES), (10, 10))
    frac = cell_fractions(lab, 3)  # 10 px over 3 cells: cells straddle pixels
    assert frac.shape == (len(CATEGORIES), 3, 3)
    np.testing.assert_allclose(frac.sum(0), 1.0)
    up = np.repeat(np.repeat(lab, 3, 0), 3, 1)  # 30 x 30, each cell exactly 10 x 10 sub-pixels
    ref = np.stack([(up == k).reshape(3, 10, 3, 10).mean(axis=(1, 3)) for k in range(len(CATEGORIES))])
    np.testing.assert_allclose(frac, ref, atol=1e-12)


def test_gate_mass_hand_computed_whole_cell():
    heat = np.array([[3.0, 1.0], [1.0, 1.0]])  # cell (0, 0) holds the small box exactly
    r = gate_mass(heat, [obj([0, 0, 2, 2], "small")], 4)
    assert r["small"]["mass"] == pytest.approx(0.5) and r["small"]["area"] == pytest.approx(0.25)
    assert r["small"]["ratio"] == pytest.approx(2.0)
    assert r["background"]["ratio"] == pytest.approx(0.5 / 0.75)
    assert np.isnan(r["large"]["ratio"]) and r["large"]["mass"] == 0.0


def test_gate_mass_partial_cell_is_mean_inside_over_mean():
    # one pixel = a quarter of cell (0, 0); mean inside 2, image mean 1 -> ratio 2
    r = gate_mass(torch.tensor([[[2.0, 1.0], [1.0, 0.0]]]), [obj([0, 0, 1, 1], "medium")], 4)
    assert r["medium"]["mass"] == pytest.approx(2.0 * 0.25 / 4.0)
    assert r["medium"]["area"] == pytest.approx(1 / 16)
    assert r["medium"]["ratio"] == pytest.approx(2.0)


def test_gate_mass_uniform_map_has_ratio_one_and_shares_sum_to_one():
    r = gate_mass(np.ones((5, 5)), SCENE, 10)
    assert sum(v["mass"] for v in r.values()) == pytest.approx(1.0)
    assert sum(v["area"] for v in r.values()) == pytest.approx(1.0)
    for cat in ("small", "large", "clutter", "background"):
        assert r[cat]["ratio"] == pytest.approx(1.0)
    assert r["clutter"]["area"] == pytest.approx(9 / 100)


def test_gate_mass_is_invariant_to_the_scene_resolution():
    heat = np.random.default_rng(1).random((5, 5))
    double = [dict(o, box=[2 * v for v in o["box"]]) for o in SCENE]
    a, b = gate_mass(heat, SCENE, 10), gate_mass(heat, double, 20)
    for cat in CATEGORIES:
        assert a[cat]["mass"] == pytest.approx(b[cat]["mass"]) and a[cat]["area"] == pytest.approx(b[cat]["area"])


def test_gate_mass_prefers_the_category_the_map_highlights():
    frac = cell_fractions(category_map(SCENE, 10), 5)
    r = gate_mass(0.05 + frac[C["clutter"]], SCENE, 10)
    assert r["clutter"]["ratio"] > 2.0
    assert r["large"]["ratio"] < 1.0 and r["background"]["ratio"] < 1.0


def test_gate_mass_rejects_negative_or_empty_maps():
    with pytest.raises(ValueError, match="non-negative"):
        gate_mass(np.array([[1.0, -0.5], [0.0, 0.0]]), SCENE, 10)
    with pytest.raises(ValueError, match="zero mass"):
        gate_mass(np.zeros((2, 2)), SCENE, 10)
    with pytest.raises(ValueError, match="shape"):
        gate_mass(np.ones((2, 2, 2)), SCENE, 10)


def test_gate_mass_table_pools_mass_and_area_over_scenes():
    s1 = ([obj([0, 0, 2, 2], "small")], 4)  # small: mass 0.5, area 0.25
    s2 = ([obj([0, 0, 4, 2], "large")], 4)  # no small; large: mass 0.5, area 0.5
    heats = torch.tensor([[[3.0, 1.0], [1.0, 1.0]], [[1.0, 1.0], [1.0, 1.0]]])
    t = gate_mass_table(heats, [s1, s2])
    assert t["small"]["ratio"] == pytest.approx((0.5 + 0) / (0.25 + 0))
    assert t["small"]["images"] == 1 and t["large"]["images"] == 1 and t["background"]["images"] == 2
    assert t["small"]["mass"] == pytest.approx(0.25) and t["small"]["area"] == pytest.approx(0.125)
    assert t["background"]["ratio"] == pytest.approx((0.5 + 0.5) / (0.75 + 0.5))
    assert np.isnan(t["medium"]["ratio"])
    with pytest.raises(ValueError, match="2 maps but 1 scenes"):
        gate_mass_table(heats, [s1])


def test_scene_objects_reads_synthetic_meta(tmp_path):
    rec = ImageRecord("a.png", tmp_path / "a.png", "train", meta={"objects": SCENE, "dataset": {"size": 10}})
    objects, size = scene_objects(rec)
    assert objects is SCENE and size == 10
    t = gate_mass_table(np.ones((1, 5, 5)), [rec])
    assert t["small"]["area"] == pytest.approx(0.04)
    with pytest.raises(ValueError, match="b.png: no meta"):
        scene_objects(ImageRecord("b.png", tmp_path / "b.png", "train"))


def test_real_synthetic_scene_partitions_the_image():
    from rsnb.data.synthetic import render_scene

    img, meta = render_scene(3, size=64, cls="parking")
    lab = category_map(meta["objects"], 64)
    r = gate_mass(np.ones((4, 4)), meta["objects"], 64)
    for k, cat in enumerate(CATEGORIES):
        assert r[cat]["area"] == pytest.approx((lab == k).mean())


def test_text_tables():
    t = gate_mass_table(np.ones((1, 5, 5)), [(SCENE, 10)])
    text = format_mass_tables({"init": t, "trained": t})
    lines = text.splitlines()
    assert lines[0].split() == ["category", "area", "%", "scenes", "init", "trained"]
    assert lines[1].split()[:3] == ["small", "4.0", "1"] and lines[1].split()[3] == "1.000"
    d = describe_tensors({"x": torch.ones(2, 3)})
    assert "(2, 3)" in d and "1.0000" in d


def test_mask_attribution_matches_autograd_jacobian():
    from rsnb.analysis.mvsa_probe import mask_attribution

    g = torch.Generator().manual_seed(0)
    fc = torch.nn.Linear(9, 5)
    gated = torch.randn(2, 1, 3, 3, generator=g)
    mask = torch.sigmoid(fc(gated.flatten(1)))  # (2, 5)
    attr = mask_attribution(fc.weight.detach(), gated, mask.detach())
    assert attr.shape == (2, 3, 3)
    for b in range(2):
        jac = torch.autograd.functional.jacobian(lambda x: torch.sigmoid(fc(x)), gated[b].flatten())  # (5, 9)
        ref = (jac * gated[b].flatten()[None]).abs().sum(0).reshape(3, 3)
        torch.testing.assert_close(attr[b], ref)
    with pytest.raises(ValueError, match="4 cells"):
        mask_attribution(fc.weight, gated[:, :, :2, :2], mask)


def test_mvsa_variant_shares_weights_across_forms_and_grids():
    from rsnb.analysis.mvsa_probe import mvsa_variant
    from rsnb.models.mvsa import MVSA

    torch.manual_seed(0)
    paper = MVSA(8, 12, grid_size=4, embed_dim=6, form="paper")
    low, high, glob = torch.randn(2, 8, 16, 16), torch.randn(2, 12, 4, 4), torch.randn(2, 6)
    same = mvsa_variant(paper)
    torch.testing.assert_close(same(low, high, glob), paper(low, high, glob))
    code = mvsa_variant(paper, form="code")
    assert code.form == "code" and torch.equal(code.gate_conv.weight, paper.gate_conv.weight)
    assert torch.equal(code.mask_fc.weight, paper.mask_fc.weight)
    # code-form gate by hand from the shared convs: residual = mean of the transformed HF map, no L2
    _, maps = code(low, high, glob, return_maps=True)
    lf, hf = paper.lf_conv(low), paper.hf_conv(high)
    joint = torch.cat([lf, hf], 1) + hf.mean(1, keepdim=True)
    torch.testing.assert_close(maps["gate"], torch.sigmoid(paper.gate_conv(joint)))
    big = mvsa_variant(paper, grid_size=8)
    assert big.mask_fc.in_features == 64 and torch.equal(big.info_conv.weight, paper.info_conv.weight)
    assert torch.equal(big.lf_act.weight, paper.lf_act.weight)
    fv = big(torch.randn(1, 8, 32, 32), torch.randn(1, 12, 8, 8), torch.randn(1, 6))
    assert fv.shape == (1, 6)


def test_map_mass_tables_matches_direct_computation():
    from rsnb.analysis.mvsa_probe import map_mass_tables
    from rsnb.models.amfmn import AMFMN, AMFMNConfig

    torch.manual_seed(0)
    model = AMFMN(AMFMNConfig.paper(vocab_size=10, image_size=64, pretrained=False, embed_dim=16, word_dim=8,
                                    text_hidden=8))
    model.train()
    x = torch.randn(3, 3, 64, 64)
    scenes = [(SCENE, 10)] * 3
    out = map_mass_tables(model, x, scenes, batch_size=2)
    assert model.training  # mode restored
    model.eval()
    with torch.no_grad():
        maps = model.mvsa_maps(x)
    ref = gate_mass_table(maps["gate"], scenes)
    ref_g = gate_mass_table(maps["gated"].abs(), scenes)
    for cat in CATEGORIES:
        assert out["gate"][cat]["mass"] == pytest.approx(ref[cat]["mass"], rel=1e-5)
        assert out["gated"][cat]["mass"] == pytest.approx(ref_g[cat]["mass"], rel=1e-5)


def test_plot_helpers_draw_the_numbers():
    import matplotlib.pyplot as plt

    from rsnb import viz

    t1 = gate_mass_table(np.ones((1, 5, 5)), [(SCENE, 10)])
    t2 = gate_mass(0.05 + cell_fractions(category_map(SCENE, 10), 5)[C["clutter"]], SCENE, 10)
    fig = viz.plot_mass_ratios({"a": t1, "b": t2}, colours=["red", "blue"])
    bars = fig.axes[0].patches
    cats = [c for c in CATEGORIES if c != "medium"]  # absent from SCENE (only as clutter)
    assert len(bars) == 2 * len(cats)
    for bar, c in zip(bars[len(cats):], cats):  # second table; bars start at 1
        assert bar.get_y() == pytest.approx(1.0) and bar.get_y() + bar.get_height() == pytest.approx(t2[c]["ratio"])
    plt.close(fig)
    fig = viz.plot_ratio_history([0, 1], [t1, t2])
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    assert list(lines["clutter"].get_ydata()) == pytest.approx([1.0, t2["clutter"]["ratio"]])
    plt.close(fig)
    img = torch.zeros(3, 10, 10)
    fig = viz.map_panels([img, img], [{"m1": np.eye(5), "m2": np.ones((5, 5))}] * 2, [SCENE, SCENE], 10)
    assert len(fig.axes) == 6 and fig.axes[1].get_title() == "m1\n[0, 1]"
    assert len(fig.axes[0].patches) == len(SCENE)  # one box per object
    plt.close(fig)
