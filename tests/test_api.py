"""The three-line retrieval API (rsnb.load -> index -> search) and `rsnb index` / `rsnb search`."""

import pytest
import torch
from PIL import Image

import rsnb
from rsnb import experiment as ex
from rsnb.api import Index, IndexFileError
from rsnb.cli import main
from rsnb.data.dataset import ImageTransform, load_image
from rsnb.encode import score_all
from rsnb.models import registry

TINY = ["data.synthetic={images: 30, size: 64, seed: 2}", "data.max_images=null", "data.min_count=1", "image_size=64",
        "train.epochs=1", "train.batch_size=16", "train.quiet=true", "train.num_workers=0"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny AMFMN run (visual-guided scoring) and one dual-encoder run (the registry's toy model)."""
    root = tmp_path_factory.mktemp("api")
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(registry.REGISTRY, "toy", "_toy")
        for name, extra in (("amfmn", ["model.pretrained=false", "model.embed_dim=32", "model.text_hidden=32",
                                       "model.word_dim=16", "model.vga=sim"]), ("toy", ["model.dim=8"])):
            cfg = ex.load_config("synthetic", [f"data.cache_dir={root / 'cache'}", *TINY, f"model.name={name}", *extra],
                                 quick=False)
            ex.train_run(cfg, root / name, device="cpu", progress=False)
            test = ex.prepare_corpus(cfg, progress=False).split("test")
            out[name] = (root / name, test)
        yield out


@pytest.mark.parametrize("name", ["amfmn", "toy"])
def test_three_lines_give_the_models_own_scores(runs, name, monkeypatch):
    monkeypatch.setitem(registry.REGISTRY, "toy", "_toy")
    run, test = runs[name]
    r = rsnb.load(run, device="cpu")
    paths = [rec.path for rec in test.images]
    r.index(paths, batch_size=2, progress=False)
    rows = r.search("two white storage tanks beside a road", k=3)
    assert len(rows) == 3 and [s for _, s in rows] == sorted((s for _, s in rows), reverse=True)
    # the scores are the model's own score() of (image, query), computed here without the API
    tf = ImageTransform(64, train=False)
    imgs = torch.stack([tf(load_image(p)) for p in paths])
    model = r.model
    with torch.no_grad():
        img = model.encode_images(imgs)
        txt = r.encode_texts("two white storage tanks beside a road")
        direct = score_all(model, img, txt, "cpu")[:, 0]
    expect = sorted(range(len(paths)), key=lambda i: (-float(direct[i]), i))[:3]
    assert [p for p, _ in rows] == [paths[i] for i in expect]
    assert [s for _, s in rows] == pytest.approx([float(direct[i]) for i in expect], abs=1e-5)
    # encode_images accepts paths, PIL images and a normalised tensor alike
    a = r.encode_images(paths[:2])
    b = r.encode_images([Image.open(p) for p in paths[:2]])
    c = r.encode_images(imgs[:2])
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5) and torch.allclose(a[k], c[k], atol=1e-5)
    # image -> text over a caption corpus: the model's score of that image with every caption
    r.index_texts(test.captions)
    cap_rows = r.search(paths[0], k=4)
    assert all(isinstance(t, str) for t, _ in cap_rows) and len(cap_rows) == 4
    sims = score_all(model, r.encode_images(paths[:1]), r.encode_texts(test.captions), "cpu")[0]
    assert cap_rows[0][1] == pytest.approx(float(sims.max()), abs=1e-5)


def test_index_round_trip_and_identity(runs, tmp_path):
    run, test = runs["amfmn"]
    r = rsnb.load(run, device="cpu")
    index = r.index([rec.path for rec in test.images], progress=False)
    index.save(tmp_path / "ix")
    again = Index.load(tmp_path / "ix")
    assert again.paths == index.paths and all(torch.equal(again.feats[k], index.feats[k]) for k in index.feats)
    assert r.use_index(tmp_path / "ix") is not None
    other = rsnb.load(run, tag="last", device="cpu")
    if other.identity["save_id"] != r.identity["save_id"]:
        with pytest.raises(IndexFileError, match="does not belong to"):
            other.use_index(tmp_path / "ix")
    (tmp_path / "ix" / "embeddings.safetensors").write_bytes(b"junk")
    with pytest.raises(IndexFileError, match="damaged index"):
        Index.load(tmp_path / "ix")
    with pytest.raises(IndexFileError, match="not an rsnb index"):
        Index.load(tmp_path)
    with pytest.raises(IndexFileError, match="no images indexed"):
        rsnb.load(run, device="cpu").search("a query")


def test_cli_index_and_search(runs, tmp_path, capsys):
    run, test = runs["amfmn"]
    folder = test.images[0].path.parent
    assert main(["index", "--run", str(run), "--images", str(folder), "--out", str(tmp_path / "ix"),
                 "--device", "cpu"]) == 0
    n = len(list(folder.glob("*.png")))
    assert f"indexed {n} images" in capsys.readouterr().out
    png = tmp_path / "top.png"
    assert main(["search", "--run", str(run), "--index", str(tmp_path / "ix"), "three white storage tanks", "-k", "5",
                 "--gallery", str(png), "--device", "cpu"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("“three white storage tanks”: top 5 of") and len([ln for ln in out if ln[:3].strip().isdigit()]) == 5
    with Image.open(png) as im:
        assert im.format == "PNG" and im.width > 400
    captions = tmp_path / "caps.txt"
    captions.write_text("\n".join(test.captions[:12]))
    assert main(["search", "--run", str(run), "--image", str(test.images[0].path), "--captions", str(captions), "-k", "3",
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "nearest of 12 captions" in out[0] and len(out) == 4 and all(ln.split("  ")[-1] in test.captions for ln in out[1:])
    assert main(["search", "--run", str(run), "a query without an index"]) == 2
    assert "needs --index" in capsys.readouterr().err
