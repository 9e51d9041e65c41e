from pathlib import Path

import numpy as np
import pytest

from rsnb.data import stats
from rsnb.data.corpus import Corpus, ImageRecord


def _corpus():
    recs = [
        ImageRecord("a.png", Path("a.png"), "train", "port", ["Two white ships.", "two ships in a port"]),
        ImageRecord("b.png", Path("b.png"), "train", "port", ["two ships in a port", "a port"]),
        ImageRecord("c.png", Path("c.png"), "test", "forest", ["dense green trees"], keywords=["green trees"],
                    meta={"objects": [{"name": "tree", "scale": "small", "box": [0, 0, 2, 3], "mentioned": False}]}),
    ]
    return Corpus("toy", Path("."), recs)


def test_caption_summary_counts():
    s = stats.caption_summary(_corpus())
    assert s["images"] == 3 and s["captions"] == 5
    # "two ships in a port" appears twice -> 4 distinct of 5
    assert s["unique_share"] == pytest.approx(4 / 5)
    assert s["diversity"] == pytest.approx(4 / 3)
    assert s["vocabulary"] == len({"two", "white", "ships", "in", "a", "port", "dense", "green", "trees"})


def test_lengths_and_frequencies():
    c = _corpus()
    assert stats.caption_lengths(c).tolist() == [3, 5, 5, 2, 3]
    freq = dict(stats.word_frequencies(c))
    assert freq["port"] == 3 and freq["two"] == 3 and freq["trees"] == 1
    assert stats.word_frequencies(c, top=1)[0][1] == 3


def test_class_similarity_matches_manual_cosine():
    c = _corpus()
    out = stats.class_similarity(c)
    assert out["intra"].shape == (1,) and out["inter"].shape == (2,)
    mat, _ = stats.bow_matrix([" ".join(r.captions) for r in c.images], drop_stopwords=True)
    assert out["intra"][0] == pytest.approx(float(mat[0] @ mat[1]))
    # content words: a = {two: 2, white: 1, ships: 2, port: 1}, b = {two: 1, ships: 1, port: 2}
    assert out["intra"][0] == pytest.approx(6 / np.sqrt(10 * 6))
    assert np.all(out["inter"] == 0.0)  # forest shares no word with the port images
    with_stop = stats.class_similarity(c, drop_stopwords=False)["intra"][0]
    assert with_stop != pytest.approx(out["intra"][0])  # "in", "a" now count too


def test_object_scales_rows():
    rows = stats.object_scales(_corpus())
    assert rows == [{"class": "forest", "name": "tree", "scale": "small", "area": 6.0, "side_frac": None,
                     "mentioned": False}]
    assert stats.object_scales(_scenes())[2]["side_frac"] == pytest.approx(0.5)


def _scenes():
    """Two 10x10 synthetic-like images with objects in the small and medium bands."""
    def obj(scale, box, mentioned):
        return {"name": "x", "scale": scale, "box": box, "mentioned": mentioned}

    meta1 = {"objects": [obj("small", [0, 0, 1, 1], True), obj("small", [2, 2, 3, 4], False),
                         obj("medium", [0, 0, 5, 3], True)], "dataset": {"size": 10}}
    recs = [ImageRecord("s1.png", Path("s1.png"), "train", "port", ["a port"], meta=meta1),
            ImageRecord("s2.png", Path("s2.png"), "train", "port", ["a port"], meta={"dataset": {"size": 10}})]
    return Corpus("scenes", Path("."), recs)


def test_scale_bands_hand_counts():
    small, medium, large = stats.scale_bands(_scenes())
    assert small["band"] == "small" and small["objects"] == 2 and small["per_image"] == pytest.approx(1.0)
    assert (small["mentioned"], small["unmentioned"]) == (1, 1) and small["mentioned_share"] == pytest.approx(0.5)
    assert small["median_side"] == pytest.approx(0.15)  # longer sides 1 px and 2 px of 10
    assert medium["objects"] == 1 and medium["per_image"] == pytest.approx(0.5)
    assert medium["mentioned_share"] == 1.0 and medium["median_side"] == pytest.approx(0.5)
    assert large["objects"] == 0 and np.isnan(large["mentioned_share"]) and np.isnan(large["median_side"])
    real = Corpus("real", Path("."), [ImageRecord("r.png", Path("r.png"), "train", "", ["x"])])
    assert stats.scale_bands(real) == []


def test_caption_similarity_groups_by_hand():
    g = stats.caption_similarity(_corpus())
    third = 1 / np.sqrt(3)
    # content words: a1 {two white ships}, a2 {two ships port}, b1 {two ships port}, b2 {port}, c1 {dense green trees}
    assert np.sort(g["same_image"]) == pytest.approx([third, 2 / 3])
    assert np.sort(g["same_class"]) == pytest.approx([0.0, third, 2 / 3, 1.0])
    assert g["other_class"].shape == (4,) and np.all(g["other_class"] == 0.0)
    # subsetting keeps whole images: every caption pair of the 2 sampled images, nothing else
    for seed in range(4):
        sub = stats.caption_similarity(_corpus(), max_images=2, seed=seed)
        n = sum(len(r.captions) for r in stats._sample_images(_corpus(), 2, seed))
        assert sum(len(v) for v in sub.values()) == n * (n - 1) // 2


def test_class_similarity_matrix_by_hand():
    classes, m = stats.class_similarity_matrix(_corpus())
    assert classes == ["forest", "port"]
    third = 1 / np.sqrt(3)
    assert m[1, 1] == pytest.approx((2 / 3 + 0.0 + 1.0 + third) / 4)  # a x b caption pairs only
    assert np.isnan(m[0, 0])  # a single forest image: no pair of different images
    assert m[0, 1] == m[1, 0] == 0.0


def test_separability_matches_naive_pairs():
    assert stats.separability([3, 1], [1, 2]) == pytest.approx(2.5 / 4)
    rng = np.random.default_rng(0)
    pos, neg = rng.integers(0, 6, 40), rng.integers(0, 5, 30)  # many ties
    naive = np.mean([(p > q) + 0.5 * (p == q) for p in pos for q in neg])
    assert stats.separability(pos, neg) == pytest.approx(naive)
    assert np.isnan(stats.separability([], [1.0]))


def test_vocab_split_gap_counts_keywords_and_leaks():
    c = _corpus()
    gap = stats.vocab_split_gap(c, min_count=1)
    assert gap["train_size"] == 2 + 6  # <pad>, <unk> + two white ships in a port
    assert gap["all_size"] == 2 + 9
    assert gap["tokens"] == 3 and gap["unk_rate_train"] == 1.0 and gap["unk_rate_all"] == 0.0
    assert gap["leaked"] == [("dense", 1, 0), ("green", 1, 0), ("trees", 1, 0)]
    # min_count 2: "green"/"trees" reach 2 only through the test keyword, "dense" never
    gap2 = stats.vocab_split_gap(c, min_count=2)
    assert gap2["train_size"] == 2 + 5  # "white" (1x) drops out
    assert gap2["all_size"] == 2 + 5 + 2
    assert gap2["unk_rate_all"] == pytest.approx(1 / 3)
    assert gap2["leaked"] == [("green", 1, 0), ("trees", 1, 0)]
    with pytest.raises(ValueError, match="'val'"):
        stats.vocab_split_gap(c, split="val")


def test_summary_table_rows():
    c = _corpus()
    text = stats.summary_table({"toy": c, "toy2": c})
    lines = text.splitlines()
    assert len(lines) == 4 and lines[0].split()[:3] == ["dataset", "images", "captions"]
    assert lines[2].split() == ["toy", "3", "5", "80.0", "3.6", "9", "1.33"]


# ------------------------------------------------------------------ plotting helpers for these statistics
def test_draw_objects_style_follows_ground_truth():
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba
    from matplotlib.patches import Rectangle

    from rsnb import viz

    objs = [{"scale": "small", "box": [1, 2, 4, 6], "mentioned": True},
            {"scale": "large", "box": [0, 0, 10, 10], "mentioned": False}]
    fig, ax = plt.subplots()
    viz.draw_objects(ax, np.zeros((10, 10, 3)), objs)
    rects = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(rects) == 2
    assert rects[0].get_xy() == (0.5, 1.5) and (rects[0].get_width(), rects[0].get_height()) == (3, 4)
    assert rects[0].get_edgecolor() == to_rgba(viz.SCALE_COLOURS["small"])
    assert rects[0].get_linestyle() == "-" and rects[1].get_linestyle() == "--"
    plt.close(fig)


def test_plot_top_words_bars_are_token_shares():
    import matplotlib.pyplot as plt

    from rsnb import viz

    freqs = stats.word_frequencies(_corpus())  # 18 tokens: two 3, port 3, ships 3, a 3, in 2, ...
    fig = viz.plot_top_words({"toy": freqs}, top=3, skip={"a"})
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["port", "ships", "two"]
    assert [b.get_width() for b in ax.patches] == pytest.approx([100 * 3 / 18] * 3)
    plt.close(fig)
