"""Tests for rsnb.data.synthetic: determinism, captions vs metadata, bands, keywords, splits, IO, CLI."""

import json
import re
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from rsnb.data import synthetic as syn
from rsnb.data.synthetic import captions, kinds, scene, writer

SIZE = 96
NUMBER = {w: i for i, w in enumerate(captions.NUMBERS)}
COLOUR_RX = "|".join(sorted(map(re.escape, syn.COLOURS), key=len, reverse=True))


def _kinds_named(text):
    """Object kinds whose nouns occur as whole words in ``text``."""
    low = text.lower()
    return {k for k, nouns in syn.OBJECT_NOUNS.items() if any(re.search(rf"\b{re.escape(n)}\b", low) for n in nouns)}


@pytest.fixture(scope="module")
def scenes():
    """Three scenes per class (42) at 96 px, from fixed seeds."""
    out = []
    for k in range(3 * len(syn.SCENE_CLASSES)):
        cls = syn.SCENE_CLASSES[k % len(syn.SCENE_CLASSES)]
        out.append(syn.render_scene(np.random.default_rng([11, k]), SIZE, cls))
    return out


def test_render_is_deterministic_per_seed():
    a_img, a_meta = syn.render_scene(5, 80, "port")
    b_img, b_meta = syn.render_scene(np.random.default_rng(5), 80, "port")
    c_img, c_meta = syn.render_scene(6, 80, "port")
    assert a_img.tobytes() == b_img.tobytes() and a_meta == b_meta
    assert a_img.tobytes() != c_img.tobytes() and a_meta["captions"] != c_meta["captions"]


@pytest.mark.parametrize("cls", syn.SCENE_CLASSES)
def test_every_class_renders_rgb_with_five_distinct_captions(cls):
    img, meta = syn.render_scene(1, 64, cls)
    assert img.mode == "RGB" and img.size == (64, 64)
    assert meta["class"] == cls
    assert len(meta["captions"]) == 5 and len(set(meta["captions"])) == 5
    assert 1 <= len(meta["keywords"]) <= 5
    assert any(o["scale"] == "large" for o in meta["objects"])  # every layout has a large anchor
    assert np.asarray(img).std() > 5  # not a flat canvas


def test_at_least_twelve_classes_with_rsitmd_names():
    assert len(syn.SCENE_CLASSES) >= 12
    for name in ("airport", "beach", "bridge", "farmland", "forest", "industrial", "parking", "playground",
                 "port", "residential", "river", "storagetanks"):
        assert name in syn.SCENE_CLASSES


def test_captions_name_exactly_the_mentioned_kinds(scenes):
    for _, meta in scenes:
        named = _kinds_named(" ".join(meta["captions"]))
        mentioned = {o["name"] for o in meta["objects"] if o["mentioned"]}
        assert named == mentioned, (meta["captions"], mentioned)


def test_unmentioned_clutter_exists_and_stays_out_of_captions(scenes):
    with_clutter = 0
    for _, meta in scenes:
        mentioned = {o["name"] for o in meta["objects"] if o["mentioned"]}
        silent = {o["name"] for o in meta["objects"] if not o["mentioned"]} - mentioned
        assert not silent & _kinds_named(" ".join(meta["captions"]))
        with_clutter += any(not o["mentioned"] for o in meta["objects"])
    assert with_clutter >= len(scenes) // 2


def test_caption_counts_match_object_counts(scenes):
    """'three white tanks' in a caption means exactly three white tank objects in the metadata."""
    plural = {kinds.plural(n): k for k, v in syn.KINDS.items() for n in v.nouns}
    noun_rx = "|".join(sorted(map(re.escape, plural), key=len, reverse=True))
    rx = re.compile(rf"\b({'|'.join(captions.NUMBERS[2:])}) (?:(?:large|big|small|little) )?({COLOUR_RX}) ({noun_rx})\b")
    checked = 0
    for _, meta in scenes:
        have = Counter((o["name"], o["colour"]) for o in meta["objects"])
        for cap in meta["captions"]:
            for num, colour, noun in rx.findall(cap.lower()):
                assert have[(plural[noun], colour)] == NUMBER[num], (cap, have)
                checked += 1
    assert checked >= 20


def test_small_only_caption_when_small_targets_are_mentioned(scenes):
    small = {k for k, v in syn.KINDS.items() if v.band == "small"}
    n_images = 0
    for _, meta in scenes:
        if not any(o["mentioned"] and o["scale"] == "small" for o in meta["objects"]):
            continue
        n_images += 1
        assert any(_kinds_named(c) and _kinds_named(c) <= small for c in meta["captions"]), meta["captions"]
    assert n_images >= len(scenes) * 2 // 3


def test_scale_bands_agree_with_box_sizes(scenes):
    sides = {"small": [], "medium": [], "large": []}
    for _, meta in scenes:
        for o in meta["objects"]:
            x0, y0, x1, y1 = o["box"]
            assert 0 <= x0 < x1 <= SIZE and 0 <= y0 < y1 <= SIZE
            assert o["scale"] == syn.KINDS[o["name"]].band
            sides[o["scale"]].append(max(x1 - x0, y1 - y0))
    for band, (lo, hi) in syn.BAND_LIMITS.items():
        assert sides[band], band
        assert lo * SIZE - 2 <= min(sides[band]) and max(sides[band]) <= hi * SIZE + 2, band  # +-2 px rounding
    assert max(sides["small"]) < min(sides["large"])
    assert np.median(sides["small"]) < np.median(sides["medium"]) < np.median(sides["large"])


def test_boxes_follow_the_random_flip_and_rotation():
    """The centre pixel of every tank/pool box shows the object's colour, whatever the dihedral op."""
    checked = 0
    for seed in range(24):
        img, meta = syn.render_scene(seed, 128, ("storagetanks", "residential")[seed % 2])
        pix = np.asarray(img).astype(int)
        for o in meta["objects"]:
            x0, y0, x1, y1 = o["box"]
            if o["name"] in ("tank", "pool") and x1 - x0 >= 5:
                centre = pix[(y0 + y1) // 2, (x0 + x1) // 2]
                assert np.abs(centre - syn.COLOURS[o["colour"]]).max() <= 30, o
                checked += 1
    assert checked >= 50


def test_keywords_are_attribute_target_phrases(scenes):
    attrs = set(syn.COLOURS)
    for _, meta in scenes:
        mentioned = {o["name"] for o in meta["objects"] if o["mentioned"]}
        assert 1 <= len(meta["keywords"]) <= 5 and len(set(meta["keywords"])) == len(meta["keywords"])
        assert meta["keywords"][0] == "- " + captions.CLASS_KEYWORD.get(meta["class"], meta["class"])
        for kw in meta["keywords"][1:]:
            attr = next(a for a in sorted(attrs, key=len, reverse=True) if kw.startswith(a + " "))
            assert _kinds_named(kw[len(attr) + 1:]) <= mentioned and _kinds_named(kw)


def test_relation_phrases_follow_geometry():
    sc = scene.Scene(np.random.default_rng(0), 100)
    left = sc._add("car", "red", [5, 40, 9, 44], 0.5, None, "main", None)
    right = sc._add("house", "grey", [80, 40, 92, 50], 0.5, None, "anchor", None)
    near = sc._add("tree", "green", [10, 40, 14, 44], 0.5, None, "main", None)
    above = sc._add("pool", "blue", [82, 5, 86, 9], 0.5, None, "main", None)
    cap = captions.Captioner(sc, "residential")
    assert cap.rel(left, right) in ("to the left of", "on the left side of", "west of")
    assert cap.rel(right, left) in ("to the right of", "on the right side of", "east of")
    assert cap.rel(left, near) in ("next to", "beside", "near", "close to")
    assert cap.rel(above, right) in ("above", "north of")
    assert cap.where(left) == "on the left side of the image" or cap.where(left) == "on the left side of the picture"


def test_plan_balances_classes_and_stratifies_splits():
    n, fr = 1400, (0.8, 0.1, 0.1)
    classes, splits = writer._plan(n, 3, fr)
    assert Counter(classes) == {c: 100 for c in syn.SCENE_CLASSES}
    for s, f in zip(syn.SPLITS, fr):
        assert abs(splits.count(s) - f * n) <= 1
        for c in syn.SCENE_CLASSES:
            got = sum(1 for ci, si in zip(classes, splits) if ci == c and si == s)
            assert abs(got - f * 100) <= 1, (c, s, got)
    assert writer._plan(n, 3, fr) == (classes, splits) and writer._plan(n, 4, fr) != (classes, splits)


def _read(folder):
    doc = json.loads((folder / "dataset.json").read_text())
    pngs = {p.name: p.read_bytes() for p in sorted((folder / "images").iterdir())}
    return doc, pngs


def test_generate_writes_karpathy_json_and_is_worker_independent(tmp_path):
    n = 20
    path = syn.generate(tmp_path / "a", n, size=64, seed=2, workers=1, progress=False)
    syn.generate(tmp_path / "b", n, size=64, seed=2, workers=2, progress=False)
    doc, pngs = _read(tmp_path / "a")
    assert path == tmp_path / "a" / "dataset.json"
    assert (doc, pngs) == _read(tmp_path / "b")  # byte-identical with 2 workers
    assert doc["dataset"] == "synthetic" and doc["meta"] == {"size": 64, "seed": 2, "generator": syn.GENERATOR}
    assert Counter(im["split"] for im in doc["images"]) == {"train": 16, "val": 2, "test": 2}
    for i, im in enumerate(doc["images"]):
        assert im["filename"] == f"{i:06d}.png" and im["imgid"] == i and im["class"] in syn.SCENE_CLASSES
        assert im["sentids"] == [5 * i + k for k in range(5)]
        for k, s in enumerate(im["sentences"]):
            assert s["sentid"] == 5 * i + k and s["imgid"] == i
            assert s["tokens"] == re.findall(r"[a-z]+", s["raw"].lower()) and s["tokens"]
        for o in im["objects"]:
            assert set(o) == {"name", "scale", "box", "colour", "mentioned"} and len(o["box"]) == 4
        with Image.open(tmp_path / "a" / "images" / im["filename"]) as img:
            assert img.mode == "RGB" and img.size == (64, 64)
        ref_img, ref_meta = syn.render_scene(np.random.default_rng([2, i]), 64, im["class"])
        assert ref_meta["captions"] == [s["raw"] for s in im["sentences"]]
    assert set(pngs) == {f"{i:06d}.png" for i in range(n)}
    syn.generate(tmp_path / "c", n, size=64, seed=3, progress=False)
    assert _read(tmp_path / "c")[0]["images"] != doc["images"]


def test_cli_writes_the_folder(tmp_path, capsys):
    assert syn.main(["--out", str(tmp_path / "d"), "--images", "6", "--size", "64", "--seed", "4", "--no-progress"]) == 0
    doc = json.loads((tmp_path / "d" / "dataset.json").read_text())
    assert len(doc["images"]) == 6 and doc["meta"]["seed"] == 4
    assert len(list((tmp_path / "d" / "images").glob("*.png"))) == 6
    assert "dataset.json" in capsys.readouterr().out


def test_bad_arguments_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown scene class 'castle'"):
        syn.render_scene(0, 64, "castle")
    with pytest.raises(ValueError, match="size must be >= 32"):
        syn.render_scene(0, 16)
    with pytest.raises(ValueError, match="splits"):
        syn.generate(tmp_path, 4, splits=(0.5, 0.2, 0.2), progress=False)
    with pytest.raises(ValueError, match="n_images"):
        syn.generate(tmp_path, 0, progress=False)
    with pytest.raises(SystemExit):
        syn.main(["--out", str(tmp_path), "--splits", "a,b"])
