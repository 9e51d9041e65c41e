"""The config -> data -> train -> evaluate glue and the CLI, on a tiny synthetic dataset."""

import json
import re
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from _released import coordinate_array, is_unrotated_crop, rebuild_released_rsitmd_vocab

from rsnb import checkpoint as ckpt
from rsnb import config
from rsnb import experiment as ex
from rsnb.analysis.runs import variant_config
from rsnb.cli import main
from rsnb.data.corpus import Corpus, ImageRecord
from rsnb.errors import ConfigError
from rsnb.evaluate import chance_metrics
from rsnb.models.amfmn import AMFMN


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
    assert cfg["data"]["synthetic"] == {"images": 77, "size": 128, "seed": 0, "splits": [0.8, 0.1, 0.1]}
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
    with pytest.raises(ConfigError, match="presets"):
        ex.load_config("no_such_preset", quick=False)
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ValueError, match="bad.yaml: malformed YAML"):
        ex.load_config(bad, quick=False)


def test_every_preset_builds_a_model_config():
    for p in ex.preset_names():
        cfg = ex.load_config(p, quick=False)
        mcfg = ex.model_config(cfg, vocab_size=50)
        assert mcfg.image_size == cfg["image_size"] and mcfg.vocab_size == 50, p


def test_official_preset_resolves_the_released_protocol(tmp_path):
    official = ex.load_config("rsitmd_official", quick=False)["data"]
    assert (official["augment"], official["stopwords"]) == ("official", "unk")
    paper = ex.load_config("rsitmd", quick=False)["data"]
    assert (paper["augment"], paper["stopwords"]) == ("paper", "keep")
    flag = ex.load_config("synthetic", ["model.preset=official"], quick=False)["data"]
    assert (flag["augment"], flag["stopwords"]) == ("official", "unk")
    mixed = ex.load_config("synthetic", ["model.preset=official", "data.augment=paper", "data.stopwords=delete"],
                           quick=False)["data"]
    assert (mixed["augment"], mixed["stopwords"]) == ("paper", "delete")
    legacy = tmp_path / "old_run_config.yaml"
    legacy.write_text("data: {remove_stopwords: true}\n")
    old = ex.load_config(legacy, quick=False)["data"]
    assert old["stopwords"] == "delete" and "remove_stopwords" not in old


def test_official_preset_on_rsitmd_precomp(shared_data, tmp_path):
    """The official preset with the released vocab on the real RSITMD captions: released token ids
    (stop-words reach the GRU as <unk> = 1349), no rotation, the released 36,696,228 parameters."""
    import torch

    folder = shared_data / "rsitmd" / "rsitmd_precomp"
    vocab_file = rebuild_released_rsitmd_vocab(shared_data, tmp_path / "rsitmd_splits_vocab.json")
    cfg = ex.load_config("rsitmd_official", [f"data.path={folder}", f"data.vocab={vocab_file}",
                                             "model.pretrained=false", "data.check_images=false"], quick=False)
    with pytest.warns(UserWarning, match="blank caption"):
        corpus = ex.prepare_corpus(cfg, progress=False)
    train = corpus.split("train")
    vocab = ex.build_vocab(train, cfg)
    train_caps = (folder / "train_caps.txt").read_text().splitlines()
    test_caps = (folder / "test_caps.txt").read_text().splitlines()
    released = {  # ids from the released vocab/rsitmd_splits_vocab.json, <unk> = 1349
        train_caps[0]: [1349, 1349, 1349, 1, 2, 3, 1349, 4, 5, 6, 7, 1349, 8, 9],
        train_caps[810]: [1349, 390, 396, 397, 1349, 309, 1349, 1349, 148, 398],  # "The truck's work was ..."
        test_caps[0]: [17, 169, 83, 1326, 1349, 112, 1349, 75, 1349, 1349, 67, 1349, 1349, 34, 96],
    }
    assert {c: vocab.encode(c) for c in released} == released
    data = ex.train_dataset(cfg, train, vocab)
    assert data.tokens[0].tolist() == released[train_caps[0]]  # what the GRU receives for caption 0
    torch.manual_seed(0)
    arr = coordinate_array(data.transform.resize_size)
    assert data.transform.resize_size == 278
    assert all(is_unrotated_crop(data.transform.augment(arr)) for _ in range(12))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no skip-thought files: random text encoder
        model = AMFMN(ex.model_config(cfg, len(vocab)), init_pretrained=False)
    assert model.num_parameters() == 36_696_228


def test_run_records_real_backbone_init(tmp_path, monkeypatch):
    """An offline run asked for ImageNet weights records ``random``; a weights file records its path."""
    import torch

    from rsnb.models import backbone as bb

    class Offline:
        def get_state_dict(self, progress=True):
            raise OSError("no network")

    monkeypatch.setitem(bb._ARCHS, "resnet18", (bb.models.resnet18, Offline()))
    cfg = _tiny_cfg(tmp_path, epochs=1)
    cfg["model"]["pretrained"] = True
    with pytest.warns(RuntimeWarning, match="RANDOMLY"):
        ex.train_run(cfg, tmp_path / "offline", device="cpu", progress=False)
    assert yaml.safe_load((tmp_path / "offline" / "config.yaml").read_text())["model"]["pretrained"] == "random"
    weights = tmp_path / "resnet18.pth"
    torch.manual_seed(9)
    torch.save(bb.models.resnet18(weights=None).state_dict(), weights)
    cfg["model"]["pretrained"] = str(weights)
    res = ex.train_run(cfg, tmp_path / "local", device="cpu", progress=False)
    assert yaml.safe_load((tmp_path / "local" / "config.yaml").read_text())["model"]["pretrained"] == str(weights)
    assert res["model"].backbone_init == str(weights)


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
    sets = [ckpt.checkpoint_paths(run, t)[k] for t in ("best", "last") for k in ("model", "optim", "json")]
    for f in [run / "config.yaml", run / "vocab.json", run / "history.csv", *sets]:
        assert f.is_file(), f
    assert not (run / ".rsnb.lock").exists()  # released at the end of the run
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


def test_quick_settings_pick_the_mode(monkeypatch):
    from rsnb import config

    assert config.quick_settings("02_mvsa_internals", quick=True)["epochs"] == 1
    assert config.quick_settings("02_mvsa_internals", quick=False)["epochs"] == 20
    monkeypatch.setenv("RSNB_QUICK", "0")
    full = config.quick_settings("03_loss_behaviour")
    assert full["train_overrides"] == list(config.FULL_RUN_OVERRIDES) and full["run_folder"] == "03_loss"
    monkeypatch.setenv("RSNB_QUICK", "1")
    q = config.quick_settings("03_loss_behaviour")
    assert "train.epochs=2" in q["train_overrides"] and q["batch_size"] == 32
    q["train_overrides"].append("x")  # a copy: the table itself is unchanged
    assert "x" not in config.NOTEBOOK_SETTINGS["03_loss_behaviour"]["train_overrides"][0]
    with pytest.raises(KeyError, match="no quick-mode settings"):
        config.quick_settings("99_nothing")


def _vga(cfg):
    """The VGA variant the config's model is built with (m6 is sim without saying so)."""
    from rsnb.models import registry

    return registry.builder_for(cfg).make_config(cfg, 50).vga


def test_full_mode_runs_are_sized_for_one_gpu_and_quick_mode_is_unchanged():
    full = variant_config("sim", quick=False)  # notebooks 04/05
    assert (full["train"]["epochs"], full["train"]["lr"], full["train"]["batch_size"]) == (30, 2e-4, 128)
    assert full["image_size"] == 256 and full["data"]["synthetic"]["images"] == 2000 and _vga(full) == "sim"
    paper = ex.load_config("synthetic", [], quick=False)  # the CLI preset keeps the paper's schedule
    assert (paper["train"]["epochs"], paper["train"]["lr"]) == (150, 1e-4)
    quick = variant_config("soft", quick=True)
    assert (quick["train"]["epochs"], quick["data"]["max_images"], quick["image_size"]) == (2, 48, 128)
    for name in ("03_loss_behaviour", "08_dataset_hygiene"):  # the trainings of 03 and 08
        cfg = ex.load_config("synthetic", config.quick_settings(name, quick=False)["train_overrides"], quick=False)
        assert cfg["train"]["epochs"] == 30 <= paper["train"]["epochs"] // 5, name
    assert config.quick_settings("08_dataset_hygiene", quick=True)["train_overrides"] == [
        "image_size=64", "model.pretrained=false", "train.epochs=2", "train.batch_size=32", "train.num_workers=0"]
    assert config.quick_settings("02_mvsa_internals", quick=False)["epochs"] <= 30


def test_notebook_full_mode_runs_are_the_make_figures_gpu_runs(tmp_path):
    """Notebooks 04/05 in full mode train (or find) exactly the seed-0 variant runs of `make figures` on a GPU."""
    from rsnb import reproduce_plan
    from rsnb.analysis.runs import VARIANT_SPECS, variant_run_dir

    root = Path(__file__).resolve().parents[1]
    gpu_runs = reproduce_plan.plan_runs(reproduce_plan.plan("gpu"), "gpu", root / reproduce_plan.default_out("gpu"))
    assert set(VARIANT_SPECS.values()) == set(reproduce_plan.VARIANTS)
    for vga in VARIANT_SPECS:
        run_dir = variant_run_dir(vga, quick=False)
        assert run_dir.parent.parent == root / "runs" / "figures-gpu"
        assert gpu_runs[run_dir] == variant_config(vga, quick=False), vga
        assert _vga(variant_config(vga, quick=False)) == vga == _vga(variant_config(vga, quick=True))
    assert variant_run_dir("soft", quick=True) != variant_run_dir("soft", quick=False)
    with pytest.raises(ValueError, match="vga 'hard'"):
        variant_config("hard")


def test_every_notebook_setting_is_read_by_its_notebook():
    from rsnb import config

    root = Path(__file__).resolve().parents[1] / "notebooks"
    for name, table in config.NOTEBOOK_SETTINGS.items():
        code = "".join("".join(c["source"]) for c in json.loads((root / f"{name}.ipynb").read_text())["cells"]
                       if c["cell_type"] == "code")
        assert f'quick_settings("{name}")' in code, name
        used = set(re.findall(r'Q\["(\w+)"\]', code))
        assert used == set(table), (name, used ^ set(table))
        assert all(len(v) == 2 for v in table.values()), name  # (quick, full)


def test_chance_metrics_match_closed_form():
    # 10 images x 5 captions: t2i R@K by chance = K / 10
    c2i = [i for i in range(10) for _ in range(5)]
    ch = chance_metrics(10, c2i, trials=200)
    assert ch["t2i_R@1"] == pytest.approx(10.0, abs=1.5)
    assert ch["t2i_R@5"] == pytest.approx(50.0, abs=3.0)
    assert ch["t2i_R@10"] == 100.0


@pytest.mark.parametrize("spec", ["m6", "msa"])
def test_resumed_study_run_is_bit_identical_to_an_uninterrupted_one(tmp_path, spec):
    """A study run stopped after epoch 1 and resumed ends with the same weights and history as one trained
    straight through (the paper preset: dynamic margin, MVSA, sim VGA; and MSA)."""
    from safetensors.torch import load_file

    from rsnb import study

    cfg = study.run_config(spec, 0, "tiny", ["train.epochs=2", "train.lr_step=1"])
    ex.train_run(cfg, tmp_path / "straight", device="cpu", progress=False)
    first = {**cfg, "train": {**cfg["train"], "epochs": 1}}
    ex.train_run(first, tmp_path / "resumed", device="cpu", progress=False)
    ex.train_run(cfg, tmp_path / "resumed", resume=True, device="cpu", progress=False)

    def history(run):
        return [{k: v for k, v in row.items() if k != "time"} for row in json.loads((run / "history.json").read_text())]

    assert len(history(tmp_path / "straight")) == 2 and history(tmp_path / "straight") == history(tmp_path / "resumed")
    straight, resumed = (load_file(ckpt.checkpoint_paths(tmp_path / r, "last")["model"]) for r in ("straight", "resumed"))
    assert straight.keys() == resumed.keys()
    for k in straight:
        assert torch.equal(straight[k], resumed[k]), k


def test_channels_last_training_is_the_same_maths_in_another_layout(tmp_path):
    """train.channels_last (the default) keeps convolution weights NHWC; one step's loss and gradients are
    those of NCHW up to float rounding, and whole runs agree closely (Adam amplifies rounding a little)."""
    import copy

    from rsnb.data.dataset import CaptionDataset, collate
    from rsnb.models import registry

    runs = {}
    for layout in (True, False):
        cfg = _tiny_cfg(tmp_path, epochs=1, channels_last=str(layout).lower())
        runs[layout] = ex.train_run(cfg, tmp_path / f"cl-{layout}", device="cpu", progress=False)
    conv = {k: next(m.weight for m in r["model"].modules() if isinstance(m, torch.nn.Conv2d)) for k, r in runs.items()}
    assert conv[True].is_contiguous(memory_format=torch.channels_last)
    assert not conv[False].is_contiguous(memory_format=torch.channels_last)
    (a,), (b,) = runs[True]["history"], runs[False]["history"]
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-3) and a["loss"] > 1

    nchw = copy.deepcopy(runs[False]["model"]).train()
    nhwc = copy.deepcopy(nchw).to(memory_format=torch.channels_last)
    train_split = runs[False]["corpus"].split("train")
    batch = collate([CaptionDataset(train_split, runs[False]["vocab"], image_size=64)[i] for i in range(8)])
    builder = registry.builder_for(cfg)  # cfg: the NCHW run's
    batch = builder.batch_hook(builder.make_config(cfg, len(runs[False]["vocab"])), train_split)(batch)  # the prior S
    grads = {}
    for name, model, images in (("nchw", nchw, batch["images"]),
                                ("nhwc", nhwc, batch["images"].contiguous(memory_format=torch.channels_last))):
        torch.manual_seed(0)  # dropout
        loss, _ = model.loss(model({**batch, "images": images}), batch)
        loss.backward()
        grads[name] = (loss.detach(), torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert grads["nchw"][0] == pytest.approx(grads["nhwc"][0].item(), rel=1e-5)
    g1, g2 = grads["nchw"][1], grads["nhwc"][1]
    assert (g1 - g2).norm() <= 1e-4 * g1.norm() and g1.norm() > 0


def test_full_mode_variant_run_is_one_make_figures_reuses(tmp_path, monkeypatch):
    """variant_run in full mode trains through the study (sidecar + test ranks), so `make figures` finds the run
    done, and a second call loads it instead of training (the gpu budget shrunk to the tiny one here)."""
    from rsnb import reproduce_plan, study
    from rsnb.analysis import runs

    monkeypatch.setitem(study.BUDGETS, "gpu", study.BUDGETS["tiny"] + ["train.num_workers=0"])
    monkeypatch.setattr(runs, "variant_run_dir", lambda vga, quick=None: tmp_path / "figures-gpu" / vga / "seed0")
    first = runs.variant_run("soft", "cpu", quick=False)
    cfg, run_dir = runs.variant_config("soft", quick=False), tmp_path / "figures-gpu" / "soft" / "seed0"
    assert first["trained"] and first["run_dir"] == run_dir
    assert reproduce_plan.is_done(cfg, run_dir)  # make figures would only read it back
    again = runs.variant_run("soft", "cpu", quick=False)
    assert not again["trained"] and again["history"] == first["history"]
