"""Bad datasets are found before training, each with one line naming the file and the index or line."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from rsnb import experiment as ex
from rsnb.data.check import check_images
from rsnb.data.corpus import DataFormatError
from rsnb.data.formats import load_corpus, read_precomp

CAPS = ["a red roof near a road", "two white tanks", "green field beside a river", "a grey parking lot",
        "boats in a harbour"]


def make_json_dataset(root, n=(8, 2, 2), names=None, size=32):
    """A tiny Karpathy json dataset with real PNG files; returns the json path."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    splits = ["train"] * n[0] + ["val"] * n[1] + ["test"] * n[2]
    names = names or [f"scene_{i}.png" for i in range(len(splits))]
    for name in set(names):
        if not os.path.isabs(name) and ".." not in name:
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / "images" / name)
    images = [{"filename": f, "split": s, "sentences": [{"raw": c} for c in CAPS]} for f, s in zip(names, splits)]
    path = root / "dataset.json"
    path.write_text(json.dumps({"dataset": "tiny", "images": images}))
    return path


def test_missing_truncated_and_non_image_files_are_named_with_their_index(tmp_path):
    path = make_json_dataset(tmp_path)
    corpus = load_corpus(path)
    assert check_images(corpus, progress=False) == 12
    png = tmp_path / "images" / "scene_9.png"  # a val image
    png.write_bytes(png.read_bytes()[:60])  # truncated
    with pytest.raises(DataFormatError, match=r"scene_9\.png: cannot decode image .*\[images\[9\], val split\]; fix or remove it"):
        check_images(corpus, progress=False)
    (tmp_path / "images" / "scene_2.png").write_text("not an image at all")
    (tmp_path / "images" / "scene_5.png").unlink()
    with pytest.raises(DataFormatError) as e:
        check_images(corpus, progress=False)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(tmp_path / "images" / "scene_2.png"))  # first in dataset order
    assert "[images[2], train split] (and 2 more bad image(s))" in msg and "data.check_images=false" in msg


def test_odd_formats_pass_the_check(tmp_path):
    path = make_json_dataset(tmp_path, n=(4, 0, 0))
    arr = np.random.default_rng(1).integers(0, 255, (32, 32), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "images" / "scene_0.png")  # grey
    Image.fromarray(arr).convert("RGBA").save(tmp_path / "images" / "scene_1.png")  # alpha
    Image.fromarray(arr).convert("P").save(tmp_path / "images" / "scene_2.png")  # palette
    Image.fromarray(arr.astype(np.uint16) * 257).save(tmp_path / "images" / "scene_3.png")  # 16-bit
    assert check_images(load_corpus(path), progress=False) == 4


def test_the_cache_makes_the_second_check_cheap_and_notices_changes(tmp_path):
    path = make_json_dataset(tmp_path)
    corpus, cache = load_corpus(path), tmp_path / "cache.json"
    assert check_images(corpus, cache, progress=False) == 12
    assert check_images(corpus, cache, progress=False) == 0  # nothing decoded again
    png = tmp_path / "images" / "scene_3.png"
    png.write_bytes(b"\x89PNG broken")  # same name, new content: checked again, and found bad
    with pytest.raises(DataFormatError, match="scene_3.png"):
        check_images(corpus, cache, progress=False)


def test_duplicate_filenames_in_a_split_are_an_error(tmp_path):
    names = [f"scene_{i}.png" for i in range(11)] + ["scene_4.png"]  # scene_4 twice... in train and test
    make_json_dataset(tmp_path / "cross", names=names)
    assert len(load_corpus(tmp_path / "cross" / "dataset.json")) == 12  # different splits: allowed
    names = ["scene_0.png", "scene_1.png", "scene_0.png"] + [f"scene_{i}.png" for i in range(3, 12)]
    path = make_json_dataset(tmp_path / "dup", names=names)
    with pytest.raises(DataFormatError, match=r"images\[2\] \(scene_0\.png\): 'scene_0\.png' is listed twice in the "
                                              r"train split \(first at images\[0\]\)"):
        load_corpus(path)
    pre = tmp_path / "pre"
    pre.mkdir()
    (pre / "train_caps.txt").write_text("\n".join(CAPS * 3) + "\n")
    (pre / "train_filename.txt").write_text("a.tif\nb.tif\na.tif\n")
    with pytest.raises(DataFormatError, match=r"train_filename\.txt:3: 'a\.tif' is listed twice in the train split "
                                              r"\(first at line 1\)"):
        read_precomp(pre)


@pytest.mark.parametrize("name", ["../outside.png", "/etc/outside.png", "sub/../../outside.png"])
def test_paths_outside_the_dataset_are_refused_unless_allowed(tmp_path, name):
    names = [f"scene_{i}.png" for i in range(11)] + [name]
    path = make_json_dataset(tmp_path / "d", names=names)
    with pytest.raises(DataFormatError, match=r"images\[11\] .*: image path .* leaves the dataset folder .*; "
                                              r"set data.allow_outside_paths=true to allow it"):
        load_corpus(path)
    assert len(load_corpus(path, allow_outside_paths=True)) == 12
    cfg = ex.load_config("demo", [f"data.path={path}", "data.allow_outside_paths=true", "data.check_images=false"],
                         quick=True)
    assert ex.prepare_corpus(cfg, progress=False).images[11].filename == name


def test_binary_or_non_utf8_json_is_one_data_error(tmp_path):
    path = make_json_dataset(tmp_path)
    fake = tmp_path / "dataset_fake.json"
    fake.write_bytes((tmp_path / "images" / "scene_0.png").read_bytes())  # a PNG renamed to .json
    with pytest.raises(DataFormatError, match=r"dataset_fake\.json: not a dataset json \(byte 0 is not UTF-8 text"):
        load_corpus(fake)
    latin = tmp_path / "latin.json"
    latin.write_bytes(path.read_bytes().replace(b"harbour", "harbour \xe9t\xe9".encode("latin-1")))
    with pytest.raises(DataFormatError, match=r"latin\.json: not a dataset json \(byte \d+ is not UTF-8"):
        load_corpus(latin)
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"images": [{"filename": "a.png", "split": "train"}]}))
    with pytest.raises(DataFormatError, match=r"schema\.json: images\[0\] has no 'sentences' key"):
        load_corpus(schema)


def test_caption_count_hint_uses_the_config_spelling(tmp_path):
    path = make_json_dataset(tmp_path)
    doc = json.loads(path.read_text())
    doc["images"][3]["sentences"] = doc["images"][3]["sentences"][:4]
    path.write_text(json.dumps(doc))
    with pytest.raises(DataFormatError, match=r"images\[3\] \(scene_3\.png\): 4 captions, expected 5 "
                                              r"\(set data.captions_per_image=any to allow other counts\)"):
        load_corpus(path)
    cfg = ex.load_config("demo", [f"data.path={path}", "data.captions_per_image=any"], quick=True)
    corpus = ex.prepare_corpus(cfg, progress=False)
    assert [len(r.captions) for r in corpus.images][3] == 4
