"""MSA through the model-agnostic engine: presets, train -> evaluate round trips, offline reload."""

import json
import shutil

import pytest
from _msa_toy import tiny_bert_folder

from rsnb import experiment as ex
from rsnb.cli import main
from rsnb.models.hf_text import TextWeightsError
from rsnb.models.msa import MSA


def _cfg(tmp_path, *extra):
    overrides = [f"data.cache_dir={tmp_path / 'cache'}", "data.synthetic={images: 30, size: 64, seed: 3}",
                 "data.max_images=null", "data.min_count=1", "image_size=64", "model.embed_dim=32",
                 "model.text_hidden=32", "model.word_dim=16", "model.heads=4", "model.max_tokens=16",
                 "model.text_encoder=bigru", "train.epochs=2", "train.batch_size=16", "train.quiet=true",
                 "train.num_workers=0", *extra]
    return ex.load_config("msa_synthetic", overrides, quick=False)


def test_msa_presets_resolve_paper_settings():
    for name in ("msa_rsitmd", "msa_rsicd"):
        cfg = ex.load_config(name, quick=False)
        m = ex.model_config(cfg, 50)
        assert (m.backbone, m.image_size, m.text_encoder, m.alignment) == ("resnet50", 224, "bert", "paper")
        t = cfg["train"]
        assert (t["optimizer"], t["lr"], t["weight_decay"], t["epochs"], t["batch_size"]) == ("adamw", 1e-5, 0.1, 60, 32)
    off = ex.model_config(ex.load_config("msa_rsitmd", ["model.preset=official"], quick=False), 50)
    assert (off.alignment, off.consistency, off.mask_padding) == ("released", "released", False)
    with pytest.raises(ValueError, match=r"unknown key 'model.vga'; allowed keys in model: name, preset, backbone"):
        ex.load_config("msa_synthetic", ["model.vga=soft"], quick=False)  # MSA's keys, not AMFMN's
    cfg = ex.load_config("msa_synthetic", quick=False)
    cfg["model"]["vga"] = "soft"
    with pytest.raises(ValueError, match=r"model \(msa\): unknown keys \['vga'\]"):
        ex.model_config(cfg, 50)


def test_msa_bigru_train_evaluate_roundtrip(tmp_path):
    res = ex.train_run(_cfg(tmp_path), tmp_path / "run", device="cpu", progress=False)
    hist = res["history"]
    assert isinstance(res["model"], MSA) and [r["epoch"] for r in hist] == [1, 2]
    assert all(r["alignment"] > 0 and r["consistency"] >= 0 and r["triplet"] >= 0 for r in hist)
    run = tmp_path / "run"
    assert json.loads((run / "model.json").read_text())["name"] == "msa" and (run / "vocab.json").is_file()
    val = ex.evaluate_run(run, split="val", device="cpu")
    assert val["mR"] == pytest.approx(max(r["val_mR"] for r in hist), abs=1e-6)  # same model, same protocol


def test_msa_local_bert_folder_run_reloads_without_the_folder(tmp_path, capsys):
    folder = tiny_bert_folder(tmp_path / "bert")
    cfg = _cfg(tmp_path, "model.text_encoder=bert", f"model.text_model={folder}", "train.epochs=1")
    ex.train_run(cfg, tmp_path / "run", device="cpu", progress=False)
    shutil.rmtree(folder)  # the run folder holds tokenizer + config; the weights are in the checkpoint
    model, tok, _ = ex.load_run(tmp_path / "run")
    assert model.cfg.text_encoder == "bert" and tok.tok.convert_ids_to_tokens(tok.encode("a plane"))[1] == "a"
    assert main(["evaluate", "--run", str(tmp_path / "run"), "--split", "test", "--device", "cpu"]) == 0
    assert "mR" in capsys.readouterr().out


def test_cli_offline_missing_weights_is_one_line(tmp_path, monkeypatch, capsys):
    from rsnb.models import hf_text

    monkeypatch.setattr(hf_text, "minilm_path", lambda: None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = _cfg(tmp_path, "model.text_encoder=bert", "model.text_model=bert-base-uncased")
    with pytest.raises(TextWeightsError):
        ex.train_run(cfg, tmp_path / "run", device="cpu", progress=False)
    rc = main(["train", "--config", "msa_synthetic", "--out", str(tmp_path / "r2"), "--device", "cpu",
               f"data.cache_dir={tmp_path / 'cache'}", "data.synthetic={images: 30, size: 64, seed: 3}",
               "model.text_encoder=bert", "model.text_model=bert-base-uncased"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "three ways" in err and "Traceback" not in err
