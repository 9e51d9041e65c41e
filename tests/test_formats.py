import json
import warnings

import numpy as np
import pytest
from PIL import Image

from rsnb.data.corpus import DataFormatError
from rsnb.data.formats import (
    UCM_CLASSES,
    DataWarning,
    class_from_filename,
    find_dataset,
    load_corpus,
    read_karpathy_json,
    read_precomp,
    verify_images,
)

CAPS5 = [f"caption number {k}" for k in range(5)]


def _image(fname, split="train", caps=CAPS5, **extra):
    return {
        "filename": fname,
        "split": split,
        "sentences": [{"raw": c, "tokens": c.split()} for c in caps],
        **extra,
    }


def _write_json(path, images, **top):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, **top}, indent=1))
    return path


def _write_precomp(folder, split, caps, names):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{split}_caps.txt").write_text("".join(c + "\n" for c in caps))
    (folder / f"{split}_filename.txt").write_text("".join(n + "\n" for n in names))


# ------------------------------------------------------------------ real data
def test_ucm_dataset_json(shared_data):
    c = load_corpus(shared_data / "ucm_captions" / "UCM_captions" / "dataset.json")
    assert (c.name, len(c)) == ("UCM", 2100)
    assert c.splits == {"train": 1680, "val": 210, "test": 210}
    assert all(len(r.captions) == 5 for r in c.images) and len(c.captions) == 10500
    assert c.images[0].captions[0] == "There is a piece of farmland ."
    # numbered images get the UC Merced class, 100 per class, class-major
    assert c.classes == sorted(UCM_CLASSES)
    assert [r.cls for r in c.images[98:101]] == ["agricultural", "agricultural", "airplane"]
    assert c.images[-1].cls == "tenniscourt"
    assert c.images[0].path == shared_data / "ucm_captions" / "UCM_captions" / "imgs" / "1.tif"


def test_sydney_json_via_folder(shared_data):
    c = load_corpus(shared_data / "sydney_captions" / "Sydney_captions")
    assert (c.name, len(c)) == ("Sydney", 613)
    assert c.splits == {"train": 497, "val": 58, "test": 58}
    assert len(c.captions) == 3065 and c.classes == [""]


def test_rsitmd_precomp_blank_captions(shared_data):
    folder = shared_data / "rsitmd" / "rsitmd_precomp"
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        c = load_corpus(folder)
    msgs = [str(w.message) for w in rec if issubclass(w.category, DataWarning)]
    assert len(msgs) == 1
    assert (
        "train_caps.txt: skipped 20 blank caption(s) at lines 9631-9635, 14011-14015, 19576-19580, 20916-20920"
        in msgs[0]
    )
    assert c.splits == {"train": 4291, "test": 452}
    assert len(c.captions) == 21455 - 20 + 2260
    empty = sorted(r.filename for r in c.images if not r.captions)
    assert empty == [
        "mountain_2378.tif",
        "railwaystation_3254.tif",
        "storagetanks_4367.tif",
        "viaduct_4635.tif",
    ]
    assert c.images[0].filename == "baseballfield_452.tif" and c.images[0].cls == "baseballfield"
    assert len(c.split("train").classes) == 33 and len(c.split("test").classes) == 32
    with pytest.raises(
        DataFormatError, match=r"train_caps\.txt:9631: blank caption \(image mountain_2378\.tif\)"
    ):
        read_precomp(folder, blank="error")


@pytest.mark.parametrize("name, train, test", [("ucm", 1680, 210), ("sydney", 497, 58)])
def test_precomp_both_filename_layouts(shared_data, name, train, test):
    folder = next(shared_data.glob(f"{name}_captions/{name}_precomp"))
    names_per_line = {
        s: len((folder / f"{s}_filename.txt").read_text().splitlines()) for s in ("train", "test")
    }
    assert names_per_line == {"train": train, "test": 5 * test}  # one per image / one per caption
    c = read_precomp(folder)
    assert c.splits == {"train": train, "test": test}
    assert all(len(r.captions) == 5 for r in c.images)
    # AMFMN "test" is the official val split of the Karpathy json, caption for caption
    js = load_corpus(next(shared_data.glob(f"{name}_captions/*_captions")))
    official_val = js.split("val")
    assert [r.filename for r in c.split("test").images] == [r.filename for r in official_val.images]
    if name == "ucm":
        assert c.split("test").captions == official_val.captions
        assert c.split("test").images[0].cls == js.split("val").images[0].cls != ""


def test_sydney_kfold_files(shared_data):
    c = read_precomp(shared_data / "sydney_captions" / "sydney_precomp", kfold_files=True)
    assert c.splits == {"train": 397, "val": 100, "test": 58}


def test_real_tifs_load_as_rgb(shared_data):
    from rsnb.data.dataset import load_image

    for ds, side in (("ucm_captions/UCM_captions", 256), ("sydney_captions/Sydney_captions", 500)):
        c = load_corpus(shared_data / ds)
        present = [r for r in c.images if r.path.is_file()]
        assert [r.filename for r in present] == [f"{k}.tif" for k in range(1, 10)]
        problems = verify_images(c)
        assert len(problems) == len(c) - 9 and "image file not found" in problems[0]
        sub = type(c)(c.name, c.root, present)
        assert verify_images(sub, decode=True) == []
        im = load_image(present[0].path)
        assert im.mode == "RGB" and im.size == (side, side)


def test_find_dataset(shared_data, monkeypatch):
    assert find_dataset("rsitmd", shared_data).name == "rsitmd_precomp"
    assert find_dataset("ucm", shared_data).name == "UCM_captions"
    assert find_dataset("ucm", shared_data, prefer="precomp").name == "ucm_precomp"
    monkeypatch.setenv("RSNB_DATA", str(shared_data / "sydney_captions"))
    assert find_dataset().name == "Sydney_captions"
    monkeypatch.delenv("RSNB_DATA")
    with pytest.raises(FileNotFoundError, match="RSNB_DATA is not set"):
        find_dataset()
    with pytest.raises(FileNotFoundError, match="no dataset matching 'rsicd'"):
        find_dataset("rsicd", shared_data)


# ------------------------------------------------------------------ fixtures: json
def test_synthetic_schema_and_images_dir(tmp_path):
    objects = [{"kind": "tank", "colour": "white", "box": [1, 2, 3, 4]}]
    images = [
        _image(
            "scene_0.png",
            **{"class": "port", "keywords": ["white tanks", "- port"], "objects": objects, "size": 64},
        ),
        _image("harbor_7.png", split="test", keywords=[["red", "boat"]]),
    ]
    f = _write_json(tmp_path / "synth" / "dataset.json", images, dataset="synthetic", meta={"seed": 3})
    (tmp_path / "synth" / "images").mkdir()
    c = load_corpus(tmp_path / "synth")
    r0, r1 = c.images
    assert (c.name, c.root) == ("synthetic", f.parent)
    assert r0.path == tmp_path / "synth" / "images" / "scene_0.png"
    assert (r0.cls, r0.keywords) == ("port", ["white tanks", "- port"])
    assert r0.meta["objects"] == objects and r0.meta["size"] == 64 and r0.meta["dataset"] == {"seed": 3}
    assert (r1.cls, r1.keywords, r1.split) == ("harbor", ["red boat"], "test")


def test_json_image_dir_and_filepath(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    f = _write_json(tmp_path / "d" / "x.json", [_image("a_1.jpg", filepath="sub"), _image("b_2.jpg")])
    c = read_karpathy_json(f)
    assert c.images[0].path == tmp_path / "d" / "sub" / "a_1.jpg"
    assert c.images[1].path == tmp_path / "d" / "b_2.jpg"
    assert c.name == "d"
    c = read_karpathy_json(f, image_dir=tmp_path / "elsewhere", name="mine")
    assert c.images[0].path == tmp_path / "elsewhere" / "a_1.jpg" and c.name == "mine"


def test_class_from_filename():
    assert class_from_filename("airport_10.tif") == "airport"
    assert class_from_filename("denseresidential_3.jpg") == "denseresidential"
    assert class_from_filename("agricultural00.tif") == "agricultural"
    assert class_from_filename("dir/storage-tanks-12.png") == "storage-tanks"
    assert class_from_filename("17.tif") == ""
    assert class_from_filename("00017.jpg") == ""


def test_malformed_json_names_line(tmp_path):
    f = tmp_path / "dataset.json"
    f.write_text('{"images": [\n  {"filename": "a.tif",\n   "split": "train" "sentences": []}\n]}')
    with pytest.raises(DataFormatError, match=r"dataset\.json:3:\d+: malformed JSON \(Expecting ','"):
        read_karpathy_json(f)


@pytest.mark.parametrize("drop", ["filename", "split", "sentences"])
def test_missing_key(tmp_path, drop):
    bad = _image("b.tif")
    del bad[drop]
    f = _write_json(tmp_path / "dataset.json", [_image("a.tif"), bad])
    with pytest.raises(DataFormatError, match=rf"dataset\.json: images\[1\] has no '{drop}' key"):
        read_karpathy_json(f)


def test_bad_structure_errors(tmp_path):
    f = tmp_path / "dataset.json"
    f.write_text('{"imgs": []}')
    with pytest.raises(DataFormatError, match="expected a JSON object with an 'images' list"):
        read_karpathy_json(f)
    _write_json(f, [_image("a.tif", split="dev")])
    with pytest.raises(DataFormatError, match=r"images\[0\] \(a\.tif\): split 'dev' is not one of"):
        read_karpathy_json(f)
    _write_json(f, [{"filename": "a.tif", "split": "train", "sentences": [{"sentid": 1}] * 5}])
    with pytest.raises(
        DataFormatError, match=r"images\[0\] \(a\.tif\): sentences\[0\] has no 'raw' or 'tokens' key"
    ):
        read_karpathy_json(f)
    with pytest.raises(FileNotFoundError, match="nope.json: dataset json not found"):
        read_karpathy_json(tmp_path / "nope.json")


def test_caption_count(tmp_path):
    f = _write_json(tmp_path / "dataset.json", [_image("a.tif"), _image("b.tif", caps=CAPS5[:4])])
    with pytest.raises(DataFormatError, match=r"images\[1\] \(b\.tif\): 4 captions, expected 5"):
        read_karpathy_json(f)
    c = read_karpathy_json(f, captions_per_image=None)
    assert [len(r.captions) for r in c.images] == [5, 4]
    assert c.caption_to_image == [0] * 5 + [1] * 4


def test_json_blank_captions(tmp_path):
    f = _write_json(
        tmp_path / "dataset.json", [_image("a.tif", caps=["x y", " ", "z", "", "w"]), _image("b.tif")]
    )
    with pytest.warns(
        DataWarning,
        match=r"skipped 2 blank caption\(s\) at images\[0\]\.sentences\[1\], images\[0\]\.sentences\[3\]",
    ):
        c = read_karpathy_json(f)
    assert c.images[0].captions == ["x y", "z", "w"]
    with pytest.raises(DataFormatError, match=r"images\[0\] \(a\.tif\): sentences\[1\] is blank"):
        read_karpathy_json(f, blank="error")
    kept = read_karpathy_json(f, blank="keep")  # the audit sees blanks in place, without a warning
    assert kept.images[0].captions == ["x y", "", "z", "", "w"]
    with pytest.raises(ValueError, match="blank must be"):
        read_karpathy_json(f, blank="drop")


def test_load_corpus_dispatch_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such dataset file or folder"):
        load_corpus(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match="empty: no dataset json and no"):
        load_corpus(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataFormatError, match="notes.txt: not a dataset json"):
        load_corpus(tmp_path / "notes.txt")
    _write_json(tmp_path / "two" / "dataset_a.json", [_image("a.tif")])
    _write_json(tmp_path / "two" / "dataset_b.json", [_image("a.tif")])
    with pytest.raises(DataFormatError, match="several dataset jsons"):
        load_corpus(tmp_path / "two")


# ------------------------------------------------------------------ fixtures: precomp
def test_precomp_layouts_and_image_dir(tmp_path):
    folder = tmp_path / "toy_precomp"
    _write_precomp(folder, "train", [f"t{k}" for k in range(10)], ["a_1.tif", "b_2.tif"])
    _write_precomp(folder, "test", [f"s{k}" for k in range(10)], ["c_3.tif"] * 5 + ["d_4.tif"] * 5)
    (tmp_path / "images").mkdir()
    c = load_corpus(folder)
    assert c.name == "toy" and c.splits == {"train": 2, "test": 2}
    assert c.images[1].captions == [f"t{k}" for k in range(5, 10)]
    assert [r.filename for r in c.images[2:]] == ["c_3.tif", "d_4.tif"]
    assert c.images[3].captions == [f"s{k}" for k in range(5, 10)]
    assert c.images[0].path == tmp_path / "images" / "a_1.tif"


def test_precomp_inconsistent_repeats(tmp_path):
    folder = tmp_path / "p"
    _write_precomp(
        folder, "test", [f"s{k}" for k in range(10)], ["c.tif"] * 5 + ["d.tif"] * 3 + ["e.tif"] * 2
    )
    with pytest.raises(
        DataFormatError, match=r"test_filename\.txt:9: file name 'e\.tif' differs from 'd\.tif' on line 6"
    ):
        read_precomp(folder)


def test_precomp_count_mismatch(tmp_path):
    folder = tmp_path / "p"
    _write_precomp(folder, "train", [f"t{k}" for k in range(15)], ["a.tif", "b.tif"])
    with pytest.raises(
        DataFormatError, match=r"train_filename\.txt: 2 file names for 15 captions in train_caps\.txt"
    ):
        read_precomp(folder)
    _write_precomp(folder, "train", [f"t{k}" for k in range(12)], ["a.tif", "b.tif"])
    with pytest.raises(DataFormatError, match=r"train_caps\.txt: 12 caption lines is not a multiple of 5"):
        read_precomp(folder)
    (folder / "train_filename.txt").unlink()
    with pytest.raises(
        DataFormatError, match=r"train_filename\.txt: missing \(its partner train_caps\.txt exists\)"
    ):
        read_precomp(folder)


def test_precomp_blank_filename_and_encoding(tmp_path):
    folder = tmp_path / "p"
    _write_precomp(folder, "train", [f"t{k}" for k in range(10)], ["a.tif", " "])
    with pytest.raises(DataFormatError, match=r"train_filename\.txt:2: blank file name"):
        read_precomp(folder)
    _write_precomp(folder, "train", [f"t{k}" for k in range(10)], ["a.tif", "b.tif"])
    (folder / "train_caps.txt").write_bytes(b"t0\nt1\nt2\n\xff\xfe bad\nt4\n" + b"x\n" * 5)
    with pytest.raises(DataFormatError, match=r"train_caps\.txt:4: not valid UTF-8"):
        read_precomp(folder)


def test_precomp_blank_lines_warning(tmp_path):
    folder = tmp_path / "p"
    caps = ["a", "", "c", "d", "e", "f", "g", "h", "", ""]
    _write_precomp(folder, "train", caps, ["a_1.tif", "b_2.tif"])
    with pytest.warns(DataWarning, match=r"train_caps\.txt: skipped 3 blank caption\(s\) at lines 2, 9-10"):
        c = read_precomp(folder)
    assert [len(r.captions) for r in c.images] == [4, 3]


def test_verify_images_reports_missing_and_corrupt(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "ok_1.png")
    (folder / "bad_2.png").write_bytes(b"not an image at all")
    f = _write_json(
        tmp_path / "dataset.json", [_image("ok_1.png"), _image("bad_2.png"), _image("gone_3.png")]
    )
    c = read_karpathy_json(f)
    assert verify_images(c) == [f"{folder / 'gone_3.png'}: image file not found (images[2], gone_3.png)"]
    problems = verify_images(c, decode=True)
    assert len(problems) == 2 and "bad_2.png: cannot decode image" in problems[0]
