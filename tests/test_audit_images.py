"""Near-duplicate images: planted copies in synthetic data must be found, distinct scenes must not."""

import json

import numpy as np
import pytest
from PIL import Image

from rsnb.audit.hashing import (
    DIHEDRAL_NAMES,
    correlation,
    dihedral,
    dihedral_inverse,
    hash_images,
    hash_picture,
)
from rsnb.audit.images import audit_images, image_pairs, leak_fraction
from rsnb.data.formats import load_corpus
from rsnb.data.plant import COPY_KINDS, near_copy, plant_problems
from rsnb.data.synthetic import generate, render_scene


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """300 synthetic scenes at 96 px; 21 test images replaced by copies of training images (3 per kind)."""
    folder = tmp_path_factory.mktemp("planted")
    generate(folder, 300, size=96, seed=5, progress=False)
    truth = plant_problems(folder, duplicates=21, swaps=3, seed=1)
    return folder, truth, load_corpus(folder)


def _truth_pairs(truth):
    return {frozenset((d["target"], d["source"])) for d in truth["duplicates"]}


def test_dihedral_group_and_hash_variants():
    a = np.arange(12).reshape(3, 4)
    for g in range(8):
        np.testing.assert_array_equal(dihedral(dihedral(a, g), dihedral_inverse(g)), a)
    img, _ = render_scene(3, 64)
    grey = img.convert("L")
    ph, dh, _ = hash_picture(grey)
    # the stored code of a rotated copy equals the original's code for that rotation (exact for quarter turns)
    for g, op in ((1, Image.ROTATE_90), (2, Image.ROTATE_180), (3, Image.ROTATE_270), (4, Image.FLIP_LEFT_RIGHT)):
        ph_r, dh_r, _ = hash_picture(grey.transpose(op))
        assert ph_r[0] == ph[g] and dh_r[0] == dh[g], DIHEDRAL_NAMES[g]
    assert len(set(ph.tolist())) > 4  # the 8 variants really differ


def test_correlation_matches_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 16, 16)), rng.normal(size=(5, 16, 16))
    a = (a - a.mean((1, 2), keepdims=True)) / np.linalg.norm(a - a.mean((1, 2), keepdims=True), axis=(1, 2), keepdims=True)
    b = (b - b.mean((1, 2), keepdims=True)) / np.linalg.norm(b - b.mean((1, 2), keepdims=True), axis=(1, 2), keepdims=True)
    g = np.array([0, 1, 3, 4, 7])
    got = correlation(a.astype(np.float32), b.astype(np.float32), g)
    want = [np.corrcoef(dihedral(a[k], g[k]).ravel(), b[k].ravel())[0, 1] for k in range(5)]
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert correlation(a[:1].astype(np.float32), dihedral(a[0], 5)[None].astype(np.float32), [5])[0] > 0.9999


def test_near_copy_kinds_and_bad_kind():
    img, _ = render_scene(1, 64)
    rng = np.random.default_rng(0)
    for kind in COPY_KINDS:
        out = near_copy(img, kind, rng)
        assert out.mode == "RGB" and min(out.size) >= 32
        assert kind == "resize" or out.size == img.size
    with pytest.raises(ValueError, match="copy kind 'blur'"):
        near_copy(img, "blur", rng)


def test_plant_records_ground_truth(planted):
    folder, truth, corpus = planted
    assert len(truth["duplicates"]) == 21 and len(truth["swaps"]) == 3
    assert {d["kind"] for d in truth["duplicates"]} == set(COPY_KINDS)
    assert all(d["target_split"] == "test" and d["source_split"] == "train" for d in truth["duplicates"])
    assert json.loads((folder / "planted.json").read_text()) == truth
    by_name = {r.filename: r for r in corpus.images}
    for d in truth["duplicates"]:  # a leaked copy carries its source's captions
        assert by_name[d["target"]].captions == by_name[d["source"]].captions
    for s in truth["swaps"]:
        assert by_name[s["a"]].cls != by_name[s["b"]].cls


def test_planted_duplicates_found_with_high_precision_and_recall(planted):
    _, truth, corpus = planted
    res = audit_images(corpus, progress=False)
    found = {frozenset((r["file_a"], r["file_b"])) for r in res.pairs if r["confirmed"]}
    want = _truth_pairs(truth)
    recall = len(found & want) / len(want)
    precision = len(found & want) / max(1, len(found))
    assert recall >= 0.85, (recall, want - found)
    # measured: 21/21 found, no false pair (at radius 16, two striped farmland scenes aligned under a flip)
    assert precision >= 0.85, found - want
    # every planted test image has its duplicate in train: the leak summary says so
    assert leak_fraction(res.summary, "test", "train") >= 100.0 * 0.85 * 21 / corpus.splits["test"]
    assert leak_fraction(res.summary, "val", "train") <= 100.0 * 2 / corpus.splits["val"] + 0.01  # rounded
    rows = {frozenset((r["file_a"], r["file_b"])): r for r in res.pairs}
    rot = [d for d in truth["duplicates"] if d["kind"] == "rot90"]
    assert all(rows[frozenset((d["target"], d["source"]))]["transform"] in DIHEDRAL_NAMES[1:4] for d in rot)


def test_between_two_datasets(planted, tmp_path):
    folder, _, corpus = planted
    other = tmp_path / "other"
    generate(other, 60, size=96, seed=11, progress=False)
    truth = plant_problems(other, duplicates=6, source=folder, target_split=None, source_split="test",
                           kinds=("jpeg", "mirror", "resize"), seed=2)
    res = audit_images(load_corpus(other), against=corpus, progress=False)
    found = {(r["file_a"], r["file_b"]) for r in res.pairs if r["confirmed"]}
    # the copied test images are themselves planted copies of training images: both are duplicates
    first = {d["target"]: d["source"] for d in planted[1]["duplicates"]}
    want = {(d["target"], d["source"]) for d in truth["duplicates"]}
    want |= {(d["target"], first[d["source"]]) for d in truth["duplicates"] if d["source"] in first}
    assert len(found & want) >= 0.9 * len(want) and len(found - want) <= 1, (want - found, found - want)
    total = sum(row["with_duplicate"] for row in res.summary["leaks"] if row["in"] == "against")
    assert total == len({a for a, _ in found})


def test_distinct_scenes_are_not_duplicates(tmp_path):
    generate(tmp_path, 80, size=96, seed=21, progress=False)
    res = audit_images(load_corpus(tmp_path), progress=False)
    assert sum(r["confirmed"] for r in res.pairs) == 0


def test_unreadable_images_are_listed_not_fatal(tmp_path):
    img, _ = render_scene(0, 64)
    img.save(tmp_path / "a.png")
    img.transpose(Image.ROTATE_90).save(tmp_path / "b.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    h = hash_images([tmp_path / "a.png", tmp_path / "b.png", tmp_path / "broken.png", tmp_path / "gone.png"],
                    progress=False)
    assert h.ok.tolist() == [True, True, False, False]
    assert len(h.errors) == 2 and "broken.png" in h.errors[0] and "gone.png" in h.errors[1]
    p = image_pairs(h)
    assert p["a"].tolist() == [0] and p["b"].tolist() == [1] and p["confirmed"].all()
    h.save(tmp_path / "h.npz")
    back = type(h).load(tmp_path / "h.npz")
    np.testing.assert_array_equal(back.phash, h.phash)
    assert back.errors == h.errors


def test_real_tifs_and_their_copies(shared_data, tmp_path):
    """The 9 UCM and 9 Sydney sample tifs: no pair among the originals; rotated/JPEG/resized copies found."""
    tifs = sorted((shared_data / "ucm_captions/UCM_captions/imgs").glob("*.tif")) + \
        sorted((shared_data / "sydney_captions/Sydney_captions/imgs").glob("*.tif"))
    if len(tifs) < 4:
        pytest.skip("sample tifs not present")
    from rsnb.data.dataset import load_image

    rng = np.random.default_rng(0)
    copies = []
    for k, path in enumerate(tifs[::3]):
        out = tmp_path / f"copy{k}.png"
        near_copy(load_image(path), ("rot90", "jpeg", "resize", "mirror", "jitter", "crop")[k % 6], rng).save(out)
        copies.append(out)
    h = hash_images(tifs + copies, progress=False)
    p = image_pairs(h)
    found = {(int(a), int(b)) for a, b, ok in zip(p["a"], p["b"], p["confirmed"]) if ok}
    want = {(3 * k, len(tifs) + k) for k in range(len(copies))}
    assert found == want, (found, want)
