"""Caption checks on hand-made corpora and on the real caption files (skipped when absent)."""

import random
import warnings

import pytest

from rsnb.audit.captions import (
    caption_audit,
    cross_class_groups,
    duplicate_groups,
    identical_caption_images,
    jaccard_pairs,
    jaccard_pairs_brute,
    near_duplicate_captions,
    normalise,
    short_captions,
)
from rsnb.data.corpus import Corpus, ImageRecord
from rsnb.data.formats import load_corpus


def _corpus():
    caps = {
        "a.png": ("airport", ["A plane is parked.", "a plane is parked", "A PLANE, is parked!", "a plane is parked .",
                              "a plane is parked"]),
        "b.png": ("airport", ["Two planes near a runway.", "", "ok", "a plane is parked", "many planes near the runway"]),
        "c.png": ("beach", ["many green trees are here", "the sea is blue", "a plane is parked", "   ",
                            "many green trees are near here"]),
        "d.png": ("forest", ["many green trees are here", "dense forest", "a dense green forest", "trees", "x y z"]),
    }
    imgs = [ImageRecord(f, f, "train" if f != "d.png" else "test", cls, c) for f, (cls, c) in caps.items()]
    return Corpus("hand", ".", imgs)


def test_normalise():
    assert normalise("  A PLANE, is parked! ") == "a plane is parked"
    assert normalise("2 tanks.") == "2 tanks" and normalise(" . ") == ""


def test_short_and_blank_captions():
    short = short_captions(_corpus(), min_words=3)
    got = [(s["file"], s["position"], s["kind"]) for s in short]
    assert got == [("b.png", 1, "blank"), ("b.png", 2, "near-empty"), ("c.png", 3, "blank"),
                   ("d.png", 1, "near-empty"), ("d.png", 3, "near-empty")]


def test_duplicates_identical_and_cross_class():
    c = _corpus()
    groups = duplicate_groups(c)
    top = groups[0]
    assert top["caption"] == "a plane is parked" and top["count"] == 7 and top["images"] == 3
    assert top["classes"] == ["airport", "beach"]
    trees = [g for g in groups if g["caption"] == "many green trees are here"][0]
    assert trees["count"] == 2 and trees["classes"] == ["beach", "forest"] and trees["splits"] == ["test", "train"]
    assert len(groups) == 2
    assert [r["file"] for r in identical_caption_images(c)] == ["a.png"]
    assert {g["caption"] for g in cross_class_groups(groups)} == {"a plane is parked", "many green trees are here"}


def test_near_duplicates_and_summary():
    near = near_duplicate_captions(_corpus(), 0.8)
    assert [(r["caption_a"], r["caption_b"]) for r in near] == [("many green trees are here",
                                                                "many green trees are near here")]
    assert near[0]["jaccard"] == pytest.approx(5 / 6, abs=1e-4)
    s = caption_audit(_corpus(), min_words=3, jaccard=0.8)["summary"]
    assert (s["captions"], s["blank"], s["near_empty"], s["images_with_blank"]) == (20, 2, 3, 2)
    assert s["unique_captions"] == 11 and s["unique_percent"] == pytest.approx(100 * 11 / 18, abs=0.01)
    assert s["distinct_per_image"] == {1: 1, 4: 2, 5: 1}
    assert s["identical_caption_images"] == 1 and s["cross_class_groups"] == 2 and s["near_duplicate_pairs"] == 1
    assert caption_audit(_corpus(), jaccard=None)["summary"]["near_duplicate_pairs"] is None


def test_prefix_filter_join_matches_brute_force():
    rng = random.Random(0)
    for trial in range(25):
        sets = [set(rng.sample(range(14), rng.randint(0, 9))) for _ in range(70)]
        for th in (0.2, 0.5, 0.75, 0.8, 1.0):
            assert jaccard_pairs(sets, th) == jaccard_pairs_brute(sets, th), (trial, th)
    with pytest.raises(ValueError, match="jaccard threshold"):
        jaccard_pairs([{1}], 0)


def _real(shared_data, rel):
    path = shared_data / rel
    if not path.exists():
        pytest.skip(f"{rel} not present")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_corpus(path, blank="keep")


def test_real_rsitmd_blank_and_duplicate_captions(shared_data):
    s = caption_audit(_real(shared_data, "rsitmd/rsitmd_precomp"))["summary"]
    assert s["captions"] == 23715 and s["blank"] == 20  # the 20 blank training captions
    assert 90 < s["unique_percent"] < 92  # measured 91.17 %
    assert s["identical_caption_images"] == 41  # measured: 41 images repeat one sentence five times
    assert s["cross_class_groups"] > 0


def test_real_ucm_and_sydney_captions(shared_data):
    ucm = caption_audit(_real(shared_data, "ucm_captions/UCM_captions/dataset.json"), jaccard=None)["summary"]
    assert ucm["captions"] == 10500 and 18 < ucm["unique_percent"] < 21 and ucm["blank"] == 0
    syd = caption_audit(_real(shared_data, "sydney_captions/Sydney_captions/dataset_sydney_modified.json"),
                        jaccard=None)["summary"]
    assert syd["captions"] == 3065 and 35 < syd["unique_percent"] < 38
    assert syd["cross_class_groups"] is None  # Sydney's json names no classes
