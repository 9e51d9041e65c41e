from pathlib import Path

import numpy as np
import pytest

from rsnb.data import stats
from rsnb.data.corpus import Corpus, ImageRecord


def _corpus():
    recs = [
        ImageRecord("a.png", Path("a.png"), "train", "port", ["Two white ships.", "two ships in a port"]),
        ImageRecord("b.png", Path("b.png"), "train", "port", ["two ships in a port", "a port"]),
        ImageRecord("c.png", Path("c.png"), "test", "forest", ["dense green trees"],
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
    mat, _ = stats.bow_matrix([" ".join(r.captions) for r in c.images])
    assert out["intra"][0] == pytest.approx(float(mat[0] @ mat[1]))
    assert np.all(out["inter"] == 0.0)  # forest shares no word with the port images


def test_object_scales_rows():
    rows = stats.object_scales(_corpus())
    assert rows == [{"class": "forest", "name": "tree", "scale": "small", "area": 6.0, "mentioned": False}]
