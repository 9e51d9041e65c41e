"""The k-fold protocol: fixed disjoint folds, one resumable run folder per fold, mean ± std evaluation."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from rsnb import experiment as ex
from rsnb import kfold
from rsnb.checkpoint import checkpoint_paths
from rsnb.cli import main
from rsnb.data.corpus import Corpus, ImageRecord
from rsnb.errors import RunFolderError


def test_apply_fold_partitions_train_and_val_never_test():
    splits = ["train"] * 17 + ["val"] * 3 + ["test"] * 5
    recs = [ImageRecord(f"{i}.png", Path(f"{i}.png"), s, captions=["a"]) for i, s in enumerate(splits)]
    corpus = Corpus("c", Path("."), recs)
    vals = []
    for f in range(4):
        out = ex.apply_fold(corpus, 4, f, seed=2)
        assert out.splits == {"train": 15, "val": 5, "test": 5}
        assert [r.split for r in out.images[20:]] == ["test"] * 5
        vals.append({r.filename for r in out.images if r.split == "val"})
    assert set().union(*vals) == {f"{i}.png" for i in range(20)}  # every train/val image validates once
    assert sum(len(v) for v in vals) == 20
    assert vals[1] == {r.filename for r in ex.apply_fold(corpus, 4, 1, seed=2).images if r.split == "val"}
    with pytest.raises(ValueError, match="data.fold=4: must be in 0..3"):
        ex.apply_fold(corpus, 4, 4)


def _tiny_yaml(tmp_path):
    overrides = [f"data.cache_dir={tmp_path / 'cache'}", "data.synthetic={images: 40, size: 64, seed: 3}",
                 "data.max_images=null", "data.min_count=1", "image_size=64", "model.pretrained=false",
                 "model.embed_dim=32", "model.text_hidden=32", "model.word_dim=16", "train.epochs=1",
                 "train.batch_size=20", "train.quiet=true", "train.num_workers=0"]
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(ex.load_config("synthetic", overrides, quick=False)))
    return path


def test_cli_kfold_train_resume_and_mean_std(tmp_path, capsys):
    cfg, run = _tiny_yaml(tmp_path), tmp_path / "k2"
    base = ["train", "--config", str(cfg), "--out", str(run), "--device", "cpu", "--kfold", "2"]
    assert main(base) == 0
    meta = json.loads((run / "kfold.json").read_text())
    assert meta["k"] == 2 and meta["folds"] == ["fold_0", "fold_1"]
    vals = []
    for f in range(2):
        fcfg = yaml.safe_load((run / f"fold_{f}" / "config.yaml").read_text())
        assert (fcfg["data"]["kfold"], fcfg["data"]["fold"]) == (2, f)
        split = ex.prepare_corpus(fcfg, progress=False)
        vals.append({r.filename for r in split.images if r.split == "val"})
        assert split.splits["test"] > 0
    assert vals[0] and vals[1] and not vals[0] & vals[1]  # the two folds validate on disjoint images

    # resume: the finished fold is skipped (its checkpoint untouched), a missing fold is trained
    weights0 = checkpoint_paths(run / "fold_0", "last")["model"]
    stamp = weights0.stat().st_mtime_ns
    for p in (run / "fold_1").iterdir():
        p.unlink()
    (run / "fold_1").rmdir()
    capsys.readouterr()
    assert main([*base, "--resume"]) == 0
    out = capsys.readouterr().out
    assert "fold 0: already trained" in out and "fold 1: trained 1 epochs" in out
    assert weights0.stat().st_mtime_ns == stamp
    assert main(base) == 2  # one-line error: a k-fold run is already here, pass --resume
    assert "pass --resume" in capsys.readouterr().err

    assert main(["evaluate", "--run", str(run), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "mean±std, 2 folds" in out and "fold 1" in out and "±" in out
    res = json.loads((run / "metrics_test.json").read_text())
    per_fold = [json.loads((run / f"fold_{f}" / "metrics_test.json").read_text()) for f in range(2)]
    for key in ("i2t_R@1", "t2i_R@10", "mR"):
        values = [m[key] for m in per_fold]
        assert res["mean"][key] == pytest.approx(np.mean(values))
        assert res["std"][key] == pytest.approx(np.std(values, ddof=1))
    assert f"{res['mean']['mR']:.2f}±{res['std']['mR']:.2f}" in out


def test_kfold_errors(tmp_path):
    with pytest.raises(ValueError, match="at least 2 folds"):
        kfold.train_kfold(ex.load_config("synthetic", quick=True), tmp_path / "k1", 1)
    (tmp_path / "k3").mkdir()
    (tmp_path / "k3" / "kfold.json").write_text(json.dumps({"k": 3, "folds": ["fold_0", "fold_1", "fold_2"]}))
    with pytest.raises(RunFolderError, match="k=3, not 2"):
        kfold.train_kfold(ex.load_config("synthetic", quick=True), tmp_path / "k3", 2, resume=True)
    with pytest.raises(RunFolderError, match="fold_0: fold not trained yet"):
        kfold.evaluate_kfold(tmp_path / "k3")
