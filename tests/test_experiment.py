"""The config -> data -> train -> evaluate glue and the CLI, on a tiny synthetic dataset."""

import json
from pathlib import Path

import pytest
import yaml

from rsnb import experiment as ex
from rsnb.cli import chance_metrics, main
from rsnb.data.corpus import Corpus, ImageRecord


def _tiny_cfg(tmp_path, **train):
    overrides = [
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.synthetic={images: 40, size: 64, seed: 3}",
        "data.max_images=null",
        "data.min_count=1",
        "image_size=64",
        "model.pretrained=false",
        "model.embed_dim=64",
        "model.text_hidden=64",
        "model.word_dim=32",
        "train.epochs=2",
        "train.batch_size=20",
        "train.quiet=true",
        "train.num_workers=0",
    ] + [f"train.{k}={v}" for k, v in train.items()]
    return ex.load_config("synthetic", overrides, quick=False)


def test_load_config_overrides_and_errors(tmp_path):
    cfg = ex.load_config("demo", ["train.epochs=3", "model.vga=soft", "data.synthetic.images=77",
                                  "train.lr=2e-4"], quick=False)
    assert cfg["train"]["epochs"] == 3 and cfg["model"]["vga"] == "soft"
    assert cfg["train"]["lr"] == 2e-4 and isinstance(cfg["train"]["lr"], float)
    assert cfg["data"]["synthetic"] == {"images": 77, "size": 128, "seed": 0}
    quick = ex.load_config("synthetic", quick=True)
    assert quick["image_size"] == 128 and quick["train"]["epochs"] == 1
    assert quick["data"]["synthetic"]["images"] == 120 and quick["data"]["max_images"] == 120
    assert quick["model"]["pretrained"] is False
    # quick mode shrinks, never enlarges: a config already smaller than the quick sizes is kept
    small_yaml = tmp_path / "small.yaml"
    small_yaml.write_text("image_size: 64\ndata: {synthetic: {images: 40, size: 64}}\ntrain: {epochs: 3}\n")
    small = ex.load_config(small_yaml, quick=True)
    assert small["image_size"] == 64 and small["data"]["synthetic"]["images"] == 40
    assert small["train"]["epochs"] == 1  # larger than the quick value: shrunk
    with pytest.raises(ValueError, match="section.key=value"):
        ex.load_config(None, ["train.epochs"], quick=False)
    with pytest.raises(FileNotFoundError, match="presets"):
        ex.load_config("no_such_preset", quick=False)
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ValueError, match="bad.yaml: malformed YAML"):
        ex.load_config(bad, quick=False)


def test_every_preset_builds_a_model_config():
    for p in sorted(ex.CONFIG_DIR.glob("*.yaml")):
        cfg = ex.load_config(p, quick=False)
        mcfg = ex.model_config(cfg, vocab_size=50)
        assert mcfg.image_size == cfg["image_size"] and mcfg.vocab_size == 50, p.name


def test_val_split_carved_from_train_only():
    recs = [ImageRecord(f"{i}.png", Path(f"{i}.png"), "train" if i < 20 else "test", captions=["a"]) for i in range(25)]
    out = ex.ensure_val_split(Corpus("c", Path("."), recs), fraction=0.25, seed=1)
    assert out.splits == {"train": 15, "val": 5, "test": 5}
    assert all(r.split == "test" for r in out.images[20:])  # the test split is never touched
    again = ex.ensure_val_split(Corpus("c", Path("."), recs), fraction=0.25, seed=1)
    assert [r.split for r in again.images] == [r.split for r in out.images]


def test_train_evaluate_roundtrip(tmp_path):
    cfg = _tiny_cfg(tmp_path)
    res = ex.train_run(cfg, tmp_path / "run", device="cpu", progress=False)
    hist = res["history"]
    assert [r["epoch"] for r in hist] == [1, 2]
    assert all(r["loss"] > 0 for r in hist)
    # the dynamic margin is the paper default: the prior hook must have fed the loss
    assert res["model"].cfg.loss == "dynamic"
    run = tmp_path / "run"
    for f in ("config.yaml", "vocab.json", "best.safetensors", "best.json", "last.safetensors", "history.csv"):
        assert (run / f).is_file(), f
    # evaluating the best checkpoint on val reproduces the val mR that selected it
    val = ex.evaluate_run(run, split="val", device="cpu")
    assert val["mR"] == pytest.approx(max(r["val_mR"] for r in hist), abs=1e-6)
    test = ex.evaluate_run(run, split="test", device="cpu")
    assert json.loads((run / "metrics_test.json").read_text())["mR"] == pytest.approx(test["mR"])
    assert 0 <= test["mR"] <= 100 and test["n_captions"] == 5 * test["n_images"]


def test_cli_train_resume_and_evaluate(tmp_path, capsys):
    cfg = _tiny_cfg(tmp_path, epochs=1)
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    run = tmp_path / "cli_run"
    assert main(["train", "--config", str(cfg_path), "--out", str(run), "--device", "cpu"]) == 0
    assert main(["train", "--config", str(cfg_path), "--out", str(run), "--device", "cpu", "--resume",
                 "train.epochs=2"]) == 0
    assert len(json.loads((run / "history.json").read_text())) == 2
    assert main(["evaluate", "--run", str(run), "--split", "test", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "i2t_R@1" in out and "mR" in out and "metrics_test.json" in out


def test_load_run_errors_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        ex.load_run(tmp_path)


def test_chance_metrics_match_closed_form():
    # 10 images x 5 captions: t2i R@K by chance = K / 10
    c2i = [i for i in range(10) for _ in range(5)]
    ch = chance_metrics(10, c2i, trials=200)
    assert ch["t2i_R@1"] == pytest.approx(10.0, abs=1.5)
    assert ch["t2i_R@5"] == pytest.approx(50.0, abs=3.0)
    assert ch["t2i_R@10"] == 100.0
