"""Run folders: refusal without --resume/--overwrite, the lock, failed starts, Ctrl-C and resume, evaluate's checkpoint."""

import json
import subprocess
import sys
import time

import pytest
import yaml
from test_data_check import make_json_dataset

from rsnb import checkpoint as ckpt
from rsnb import experiment as ex
from rsnb.cli import main
from rsnb.data.corpus import DataFormatError
from rsnb.errors import RunFolderError

TINY = ["image_size=64", "data.min_count=1", "model.pretrained=false", "model.embed_dim=32", "model.text_hidden=32",
        "model.word_dim=16", "train.batch_size=16", "train.quiet=true", "train.num_workers=0", "data.max_images=null"]


def _cfg(tmp_path, epochs=1, extra=()):
    return ex.load_config("synthetic", [f"data.cache_dir={tmp_path / 'cache'}", "data.synthetic={images: 30, size: 64, seed: 1}",
                                        *TINY, f"train.epochs={epochs}", *extra], quick=False)


def _sid(run, tag="best"):
    return json.loads((run / f"{tag}.json").read_text())["save_id"]


def test_occupied_folder_needs_resume_or_overwrite(tmp_path, capsys):
    cfg, run = _cfg(tmp_path), tmp_path / "run"
    ex.train_run(cfg, run, device="cpu", progress=False)
    before = _sid(run)
    with pytest.raises(RunFolderError, match=r"run already holds a finished run \(1 of 1 epochs\); pass --resume to "
                                             r"continue it or --overwrite to replace it"):
        ex.train_run(cfg, run, device="cpu", progress=False)
    assert _sid(run) == before  # the best checkpoint was not touched
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(cfg_file), "--out", str(run), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rsnb: error: ") and "--overwrite" in err[0]
    assert main(["train", "--config", str(cfg_file), "--out", str(run), "--device", "cpu", "--overwrite"]) == 0
    assert _sid(run) != before and len(json.loads((run / "history.json").read_text())) == 1
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("not a run")
    with pytest.raises(RunFolderError, match="--overwrite refused, the folder holds 1 other file"):
        ex.train_run(cfg, tmp_path / "mine", device="cpu", progress=False, overwrite=True)
    with pytest.raises(RunFolderError, match="nothing to resume"):
        ex.train_run(cfg, tmp_path / "new", device="cpu", progress=False, resume=True)


def test_second_training_into_a_folder_in_use_stops(tmp_path):
    cfg, run = _cfg(tmp_path), tmp_path / "run"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run.mkdir()
        (run / ".rsnb.lock").write_text(json.dumps({"pid": other.pid, "host": __import__("socket").gethostname(),
                                                    "since": "12:00"}))
        with pytest.raises(RunFolderError, match=rf"run is in use by another rsnb process \(pid {other.pid} on .*, "
                                                 r"since 12:00\)"):
            ex.train_run(cfg, run, device="cpu", progress=False)
        assert not (run / "config.yaml").exists()  # nothing of the refused run was written
    finally:
        other.kill()
        other.wait()
    with pytest.warns(RuntimeWarning, match=f"taking over the lock of process {other.pid}"):
        ex.train_run(cfg, run, device="cpu", progress=False)  # the holder is gone: a stale lock
    assert (run / "last.json").is_file() and not (run / ".rsnb.lock").exists()


def test_a_failed_start_leaves_no_folder(tmp_path, monkeypatch):
    path = make_json_dataset(tmp_path / "data")
    (tmp_path / "data" / "images" / "scene_9.png").write_bytes(b"broken")  # a validation image
    cfg = _cfg(tmp_path, extra=[f"data.path={path}"])
    t0 = time.perf_counter()
    with pytest.raises(DataFormatError, match=r"scene_9\.png: cannot decode image .*\[images\[9\], val split\]"):
        ex.train_run(cfg, tmp_path / "run", device="cpu", progress=False)
    assert not (tmp_path / "run").exists() and time.perf_counter() - t0 < 60  # found before any epoch

    def boom(*a, **k):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(ex, "train", boom)  # fails after the folder, config and vocab were written
    with pytest.raises(RuntimeError, match="out of memory"):
        ex.train_run(_cfg(tmp_path), tmp_path / "run2", device="cpu", progress=False)
    assert not (tmp_path / "run2").exists()


def test_ctrl_c_during_a_checkpoint_write_then_resume_matches_the_uninterrupted_run(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path, epochs=2)
    straight = ex.train_run(cfg, tmp_path / "straight", device="cpu", progress=False)["history"]
    real, calls = ckpt._atomic_write, []

    def interrupted(path, write):
        calls.append(path)
        if len(calls) == 8:  # epoch 2: best (3 files) + last (3 files) of epoch 1, then best of epoch 2, file 2
            raise KeyboardInterrupt
        real(path, write)

    monkeypatch.setattr(ckpt, "_atomic_write", interrupted)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        ex.train_run(cfg, run, device="cpu", progress=False)
    monkeypatch.undo()
    assert ckpt.load_checkpoint(run, "last")["state"]["epoch"] == 1  # the complete previous checkpoint
    resumed = ex.train_run(cfg, run, device="cpu", progress=False, resume=True)["history"]
    assert [r["epoch"] for r in resumed] == [1, 2]
    assert resumed[1]["loss"] == pytest.approx(straight[1]["loss"], rel=1e-6)  # continues exactly
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_evaluate_names_its_checkpoint_and_needs_best_or_tag_last(tmp_path, capsys):
    path = make_json_dataset(tmp_path / "data", n=(10, 0, 2))  # no val split: carved from train
    run = tmp_path / "run"
    ex.train_run(_cfg(tmp_path, extra=[f"data.path={path}", "data.val_fraction=0.2"]), run, device="cpu",
                 progress=False)
    assert main(["evaluate", "--run", str(run), "--split", "val", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert f"checkpoint: best ({run / 'best.json'}, epoch 1, val mR" in out
    assert "this val split is 2 images carved from the training images (data.val_fraction=0.2" in out
    for p in ckpt.checkpoint_paths(run, "best").values():
        p.unlink()
    assert main(["evaluate", "--run", str(run), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "no best checkpoint" in err and "the run has a last checkpoint; pass --tag last" in err
    assert main(["evaluate", "--run", str(run), "--tag", "last", "--device", "cpu"]) == 0
    assert "checkpoint: last (" in capsys.readouterr().out


def test_vocab_that_no_longer_matches_the_checkpoint_is_one_error(tmp_path, capsys):
    run = tmp_path / "run"
    ex.train_run(_cfg(tmp_path), run, device="cpu", progress=False)
    vocab = json.loads((run / "vocab.json").read_text())
    vocab["words"] = vocab["words"] + ["zzqx-one", "zzqx-two"]  # a vocab edited (or from another run) after training
    (run / "vocab.json").write_text(json.dumps(vocab))
    assert main(["evaluate", "--run", str(run), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rsnb: error: ") and "\n" not in err
    assert "vocab.json: " in err and "the vocabulary does not belong to this run" in err
    (run / "model.json").unlink()  # an older run folder: the model is sized from the vocab, the weights disagree
    assert main(["evaluate", "--run", str(run), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "does not match the model" in err and "shape mismatches" in err and "\n" not in err
