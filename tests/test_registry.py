"""The model registry: one engine for every model (AMFMN, MSA, and a third one registered in a test)."""

import json

import pytest
import torch

from rsnb import checkpoint as ck
from rsnb import experiment as ex
from rsnb.data.vocab import Vocab
from rsnb.models import registry
from rsnb.models.amfmn import AMFMN, AMFMNConfig


def test_builders_resolve_and_unknown_names_fail_clearly():
    b = registry.get_builder("amfmn")
    assert b.name == "amfmn" and b.config_cls is AMFMNConfig
    assert {"preset", "name", "vga", "loss"} <= b.allowed_keys()
    assert "vocab_size" not in b.allowed_keys()  # set by the run, never by the user
    with pytest.raises(ValueError, match=r"model.name 'nope' is not a known model; choose one of \["):
        registry.get_builder("nope")


def test_model_section_unknown_key_is_one_clear_error():
    with pytest.raises(ValueError, match=r"unknown key 'model.vgaa' \(did you mean 'vga'\?\)"):
        ex.load_config("synthetic", ["model.vgaa=soft"], quick=True)  # rsnb.schema, before any model is built
    cfg = ex.load_config("synthetic", quick=True)
    cfg["model"]["vgaa"] = "soft"  # a dict edited in code still meets the builder's own check
    with pytest.raises(ValueError, match=r"model \(amfmn\): unknown keys \['vgaa'\]"):
        ex.model_config(cfg, 30)
    cfg = ex.load_config("synthetic", ["model.preset=m1"], quick=True)
    mcfg = ex.model_config(cfg, 30)
    assert (mcfg.use_mvsa, mcfg.use_vga, mcfg.vocab_size, mcfg.image_size) == (False, False, 30, 128)


def test_text_batch_from_strings_matches_vocab_encoding():
    vocab = Vocab.build(["a plane at the airport", "a river next to farmland"], min_count=1)
    batch = registry.text_batch(vocab, ["a plane at the river", "unseen wordz"])
    assert batch["tokens"].shape == (2, 5) and batch["lengths"].tolist() == [5, 2]
    assert batch["tokens"][0].tolist() == vocab.encode("a plane at the river")
    assert batch["tokens"][1, :2].tolist() == [vocab.unk_id, vocab.unk_id] and batch["tokens"][1, 2:].eq(0).all()
    with pytest.raises(ValueError, match="no captions"):
        registry.text_batch(vocab, [])


def _tiny(tmp_path, name, extra=()):
    overrides = [f"data.cache_dir={tmp_path / 'cache'}", "data.synthetic={images: 30, size: 64, seed: 3}",
                 "data.max_images=null", "data.min_count=1", "image_size=64", f"model.name={name}",
                 "train.epochs=1", "train.batch_size=16", "train.quiet=true", "train.num_workers=0", *extra]
    cfg = ex.load_config("synthetic", overrides, quick=False)
    cfg["model"].pop("preset")  # the toy model has no presets
    return cfg


def test_a_third_model_needs_one_module_and_one_registry_line(tmp_path, monkeypatch):
    monkeypatch.setitem(registry.REGISTRY, "toy", "_toy")  # the one registry line
    cfg = _tiny(tmp_path, "toy", ["model.dim=8"])
    res = ex.train_run(cfg, tmp_path / "run", device="cpu", progress=False)
    assert type(res["model"]).__name__ == "RegisteredToy" and res["model"].cfg.dim == 8
    info = json.loads((tmp_path / "run" / "model.json").read_text())
    assert info["name"] == "toy" and info["config"]["dim"] == 8
    assert ck.load_checkpoint(tmp_path / "run", "last")["model"]["name"] == "toy"
    model, tok, _ = ex.load_run(tmp_path / "run", device="cpu")
    assert type(model).__name__ == "RegisteredToy"
    for k, v in res["model"].state_dict().items():
        assert torch.equal(v, model.state_dict()[k]), k
    metrics = ex.evaluate_run(tmp_path / "run", split="test", device="cpu")
    assert 0 <= metrics["mR"] <= 100


def test_load_run_rebuilds_amfmn_from_model_json_and_checks_the_checkpoint(tmp_path, monkeypatch):
    cfg = _tiny(tmp_path, "amfmn", ["model.preset=m1", "model.pretrained=false", "model.embed_dim=32",
                                    "model.text_hidden=32", "model.word_dim=16"])
    cfg["model"]["preset"] = "m1"
    ex.train_run(cfg, tmp_path / "run", device="cpu", progress=False)
    run = tmp_path / "run"
    info = json.loads((run / "model.json").read_text())
    assert info["name"] == "amfmn" and info["config"]["embed_dim"] == 32 and info["config"]["use_mvsa"] is False
    model, vocab, _ = ex.load_run(run)
    assert isinstance(model, AMFMN) and model.cfg.embed_dim == 32 and len(vocab) == model.cfg.vocab_size
    # a run folder whose model.json names another model than its checkpoint is refused, naming both
    monkeypatch.setitem(registry.REGISTRY, "toy", "_toy")
    doc = json.loads((run / "last.json").read_text())
    doc["model"]["name"] = "toy"
    (run / "last.json").write_text(json.dumps(doc))
    (run / "best.json").unlink()
    with pytest.raises(ck.CheckpointError, match="holds a 'toy' model but the run folder says 'amfmn'"):
        ex.load_run(run, "last")
