from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from _released import coordinate_array, is_unrotated_crop
from PIL import Image
from torch.utils.data import DataLoader

import rsnb.data.dataset as ds
from rsnb.data.corpus import Corpus, DataFormatError, ImageRecord
from rsnb.data.dataset import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CaptionDataset,
    ImageDataset,
    ImageTransform,
    TextDataset,
    collate,
    denormalize,
    load_image,
    to_uint8,
)
from rsnb.data.vocab import Vocab

RNG = np.random.default_rng(0)


# ------------------------------------------------------------------ decoding
def test_to_uint8_hand_computed():
    a = np.array([[0, 1000], [2000, 4000]], np.uint16)
    assert to_uint8(a, "max").tolist() == [[0, 64], [128, 255]]  # round(x * 255 / 4000)
    # percentile (0, 50): lo = 0, hi = 1500 -> 1000 -> 170, >= 1500 clipped to 255
    assert to_uint8(a, "percentile", (0, 50)).tolist() == [[0, 170], [255, 255]]
    assert to_uint8(np.full((2, 2), 7, np.uint16)).tolist() == [[0, 0], [0, 0]]
    with pytest.raises(ValueError, match="method must be"):
        to_uint8(a, "gamma")


def test_load_grey_rgba_palette(tmp_path):
    grey = RNG.integers(0, 256, (6, 5), dtype=np.uint8)
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    out = np.asarray(load_image(tmp_path / "g.png"))
    assert out.shape == (6, 5, 3) and (out == grey[..., None]).all()

    rgba = RNG.integers(0, 256, (6, 5, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    im = load_image(tmp_path / "a.png")
    assert im.mode == "RGB" and (np.asarray(im) == rgba[..., :3]).all()  # alpha dropped, colour kept

    pal = Image.fromarray(grey % 4, "P")
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9] + [0] * 756)
    pal.save(tmp_path / "p.png")
    out = np.asarray(load_image(tmp_path / "p.png"))
    lut = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [9, 9, 9]])
    assert (out == lut[grey % 4]).all()


def test_load_16bit_tiffs(tmp_path):
    g16 = np.array([[0, 1000], [2000, 4000]], np.uint16)
    tifffile.imwrite(tmp_path / "g16.tif", g16)  # PIL mode I;16
    out = np.asarray(load_image(tmp_path / "g16.tif", scale="max"))
    assert (out[..., 0] == [[0, 64], [128, 255]]).all() and (out[..., 0] == out[..., 2]).all()

    rgb16 = RNG.integers(0, 4000, (9, 7, 3)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "rgb16.tif", rgb16, photometric="rgb")
    out = np.asarray(load_image(tmp_path / "rgb16.tif", scale="max"))
    assert out.shape == (9, 7, 3)
    assert (out == np.round(rgb16 * (255 / rgb16.max())).astype(np.uint8)).all()  # low byte not dropped
    assert (np.asarray(load_image(tmp_path / "rgb16.tif")) == to_uint8(rgb16)).all()  # default: percentile

    planar = RNG.integers(0, 4000, (5, 9, 7)).astype(np.uint16)  # 5-band, PIL cannot open it
    tifffile.imwrite(tmp_path / "ms.tif", planar, photometric="minisblack", planarconfig="separate")
    out = np.asarray(load_image(tmp_path / "ms.tif", scale="max"))
    first3 = np.moveaxis(planar[:3], 0, -1)
    assert out.shape == (9, 7, 3) and (out == np.round(first3 * (255 / first3.max())).astype(np.uint8)).all()


@pytest.mark.filterwarnings("ignore:Corrupt EXIF")
def test_load_errors(tmp_path):
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match=r"trunc\.png: cannot decode image \(.*truncated"):
        load_image(tmp_path / "trunc.png")
    (tmp_path / "junk.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(DataFormatError, match=r"junk\.tif: cannot decode image \(.*tifffile"):
        load_image(tmp_path / "junk.tif")
    with pytest.raises(FileNotFoundError, match=r"nope\.tif: image file not found"):
        load_image(tmp_path / "nope.tif")


# ------------------------------------------------------------------ transforms
def test_transform_sizes_and_normalisation():
    t = ImageTransform(256, train=True)
    assert t.resize_size == 278
    q = ImageTransform(128, train=True)
    assert q.resize_size == 139 and ImageTransform(128, train=False).resize_size == 128
    colour = np.array(IMAGENET_MEAN) * 255
    img = Image.fromarray(np.broadcast_to(np.round(colour).astype(np.uint8), (200, 150, 3)).copy())
    x = q(img)
    assert x.shape == (3, 128, 128) and x.dtype == torch.float32
    assert x.abs().max() < 0.5 / 255 / min(IMAGENET_STD)  # mean colour -> ~0
    white = ImageTransform(32, train=False)(Image.new("RGB", (40, 40), (255, 255, 255)))
    assert torch.allclose(white[:, 0, 0], (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD))
    assert torch.allclose(denormalize(white), torch.ones_like(white))


def _corner_array(r):
    a = np.zeros((r, r, 3), np.uint8)
    a[: r // 2, : r // 2] = 255  # bright top-left quadrant: not rotation-symmetric
    return a


def _bright_corner(x):
    h = x.shape[-1] // 4
    corners = [x[:, :h, :h], x[:, :h, -h:], x[:, -h:, -h:], x[:, -h:, :h]]
    return int(torch.stack([c.mean() for c in corners]).argmax())


def test_rotation_really_rotates():
    torch.manual_seed(0)
    t = ImageTransform(16, train=True)  # prepare size 17: crops shift by at most 1 px
    arr = _corner_array(t.resize_size)
    seen = {_bright_corner(t.augment(arr)) for _ in range(40)}
    assert seen == {0, 1, 2, 3}  # all four right-angle orientations occur
    plain = ImageTransform(16, train=True, rotation="none")
    assert {_bright_corner(plain.augment(arr)) for _ in range(20)} == {0}
    ev = ImageTransform(16, train=False)
    a = _corner_array(16)
    assert torch.equal(ev.augment(a), ev.augment(a))  # evaluation is deterministic


def test_free_rotation_changes_image():
    torch.manual_seed(1)
    t = ImageTransform(32, train=True, rotation="free")
    none = ImageTransform(32, train=True, rotation="none")
    arr = _corner_array(t.resize_size)
    torch.manual_seed(1)
    rotated = t.augment(arr)
    torch.manual_seed(1)
    straight = none.augment(arr)  # same crop draw
    assert (rotated - straight).abs().mean() > 0.1
    with pytest.raises(ValueError, match="rotation must be"):
        ImageTransform(32, rotation="flip")


def test_random_crop_covers_offsets():
    torch.manual_seed(0)
    t = ImageTransform(8, train=True, rotation="none")  # prepare size round(8*278/256) = 9
    arr = np.zeros((9, 9, 3), np.uint8)
    arr[0, 0] = 255
    hits = {bool(t.augment(arr)[0, 0, 0] > 0) for _ in range(30)}
    assert hits == {True, False}  # crop offset 0 and 1 both drawn


# ------------------------------------------------------------------ datasets
@pytest.fixture
def toy(tmp_path):
    recs = []
    for i, split in enumerate(["train", "train", "test"]):
        arr = np.full((20 + i, 24, 3), 40 * (i + 1), np.uint8)
        Image.fromarray(arr).save(tmp_path / f"scene_{i}.png")
        caps = [f"a red roof number {k}" for k in range(5)] if i != 1 else ["green grass", "a green field"]
        kws = ["red roof", "- port"] if i == 0 else []
        recs.append(ImageRecord(f"scene_{i}.png", tmp_path / f"scene_{i}.png", split, "scene", caps, kws))
    corpus = Corpus("toy", tmp_path, recs)
    vocab = Vocab.build(corpus.captions + ["port"] * 5, min_count=1)
    return corpus, vocab


def test_caption_dataset_items(toy):
    corpus, vocab = toy
    d = CaptionDataset(corpus, vocab, image_size=16, train=True)
    assert len(d) == 12
    s = d[6]  # second caption of image 1
    assert (s["image_id"], s["caption_id"]) == (1, 6)
    assert s["tokens"].tolist() == vocab.encode("a green field")
    assert s["image"].shape == (3, 16, 16) and s["keywords"] == []
    kw = d[0]["keywords"]
    assert [k.tolist() for k in kw] == [[vocab.stoi["red"], vocab.stoi["roof"]], [vocab.stoi["port"]]]
    # a uniform image stays uniform through crop/rotation: value of image 2 is 120
    expected = (120 / 255 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]
    assert torch.allclose(d[10]["image"][0], torch.full((16, 16), expected), atol=1e-5)


@pytest.mark.parametrize("augment, crops, rotates", [("paper", True, True), ("official", True, False),
                                                      ("none", False, False)])
def test_augment_presets(toy, augment, crops, rotates):
    corpus, vocab = toy
    torch.manual_seed(0)
    d = CaptionDataset(corpus, vocab, image_size=32, augment=augment)
    arr = coordinate_array(d.transform.resize_size)
    outs = [d.transform.augment(arr) for _ in range(24)]
    straight = [is_unrotated_crop(x) for x in outs]
    assert all(straight) is not rotates and any(straight)  # paper: some draws rotated; others: none
    offsets = {int(torch.round(denormalize(x)[0, 0, 0] * 255)) for x in outs if is_unrotated_crop(x)}
    assert (len(offsets) > 1) is crops  # random crop: the top-left pixel moves
    assert d.transform.resize_size == (35 if crops else 32)  # 278/256 * 32 before the crop
    with pytest.raises(ValueError, match="data.augment must be one of"):
        CaptionDataset(corpus, vocab, image_size=32, augment="rotate")


def test_caption_that_encodes_to_nothing_gets_unk(toy):
    corpus, vocab = toy
    corpus.images[1].captions[0] = "..."
    d = TextDataset(corpus, vocab)
    assert d[5]["tokens"].tolist() == [vocab.unk_id]


class _CountingLoader:
    def __init__(self):
        self.paths = []

    def __call__(self, path, **kw):
        self.paths.append(Path(path).name)
        return _real_load(path, **kw)


_real_load = ds.load_image


def test_each_image_decoded_once(toy, monkeypatch):
    corpus, vocab = toy
    counter = _CountingLoader()
    monkeypatch.setattr(ds, "load_image", counter)
    d = CaptionDataset(corpus, vocab, image_size=16)
    for _ in range(2):  # two epochs
        for j in range(len(d)):
            d[j]
    assert sorted(counter.paths) == ["scene_0.png", "scene_1.png", "scene_2.png"]

    counter.paths.clear()
    off = CaptionDataset(corpus, vocab, image_size=16, cache_images=False)
    for j in range(len(off)):
        off[j]
    assert len(counter.paths) == 12  # one decode per caption without the cache

    counter.paths.clear()
    lru = CaptionDataset(corpus, vocab, image_size=16, cache_images=1)
    for j in [0, 1, 5, 0, 5]:  # images 0, 0, 1, 0, 1 with room for one
        lru[j]
    assert counter.paths == ["scene_0.png", "scene_1.png", "scene_0.png", "scene_1.png"]
    assert len(lru.cache.store) == 1

    counter.paths.clear()
    pre = CaptionDataset(corpus, vocab, image_size=16)
    pre.preload()
    assert len(counter.paths) == 3 and pre.cache.store[0].shape == (17, 17, 3)
    pre[3]
    assert len(counter.paths) == 3


def test_collate_shapes_and_padding():
    batch = [
        {
            "image": torch.zeros(3, 4, 4),
            "tokens": torch.tensor([5, 6, 7]),
            "image_id": 2,
            "caption_id": 11,
            "keywords": [torch.tensor([3]), torch.tensor([4, 9])],
        },
        {
            "image": torch.ones(3, 4, 4),
            "tokens": torch.tensor([8]),
            "image_id": 0,
            "caption_id": 1,
            "keywords": [],
        },
    ]
    b = collate(batch)
    assert b["images"].shape == (2, 3, 4, 4) and b["images"][1].sum() == 48
    assert b["tokens"].tolist() == [[5, 6, 7], [8, 0, 0]]  # order kept, right-padded
    assert b["lengths"].tolist() == [3, 1]
    assert b["image_ids"].tolist() == [2, 0] and b["caption_ids"].tolist() == [11, 1]
    assert b["keywords"].tolist() == [[[3, 0], [4, 9]], [[0, 0], [0, 0]]]
    assert b["keyword_mask"].tolist() == [[True, True], [False, False]]
    for key in ("tokens", "lengths", "image_ids", "caption_ids", "keywords"):
        assert b[key].dtype == torch.long
    nokw = collate([{**batch[1]}])
    assert nokw["keywords"].shape == (1, 1, 1) and nokw["keyword_mask"].tolist() == [[False]]


def test_eval_datasets_and_loader(toy):
    corpus, vocab = toy
    images = ImageDataset(corpus, image_size=16)
    texts = TextDataset(corpus, vocab)
    assert (len(images), len(texts)) == (3, 12)
    ib = next(iter(DataLoader(images, batch_size=3, collate_fn=ds.collate_images)))
    assert set(ib) == {"images", "image_ids"} and ib["images"].shape == (3, 3, 16, 16)
    assert ib["image_ids"].tolist() == [0, 1, 2]
    tb = next(iter(DataLoader(texts, batch_size=12, collate_fn=ds.collate_texts)))
    assert "images" not in tb and tb["caption_ids"].tolist() == list(range(12))
    assert tb["image_ids"].tolist() == corpus.caption_to_image
    assert tb["keyword_mask"].sum(1).tolist() == [2] * 5 + [0] * 7
    cb = next(
        iter(DataLoader(CaptionDataset(corpus, vocab, 16), batch_size=4, shuffle=True, collate_fn=collate))
    )
    assert cb["images"].shape == (4, 3, 16, 16) and cb["tokens"].shape[0] == 4


def test_missing_image_raises(toy):
    corpus, vocab = toy
    corpus.images[2].path.unlink()
    d = CaptionDataset(corpus, vocab, image_size=16)
    d[0]
    with pytest.raises(FileNotFoundError, match=r"scene_2\.png: image file not found"):
        d[10]


def test_real_ucm_images(shared_data):
    from rsnb.data.formats import load_corpus

    c = load_corpus(shared_data / "ucm_captions" / "UCM_captions")
    sub = Corpus(c.name, c.root, [r for r in c.images if r.path.is_file()][:3])
    vocab = Vocab.build(sub.captions, min_count=1)
    b = collate([CaptionDataset(sub, vocab, image_size=32)[j] for j in (0, 5, 10)])
    assert b["images"].shape == (3, 3, 32, 32) and b["image_ids"].tolist() == [0, 1, 2]
    assert b["images"].std() > 0.1  # real texture, not a blank image
