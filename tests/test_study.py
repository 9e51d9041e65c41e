"""rsnb.study: specs, shared runs, the significance tests against hand computations, a tiny study end to end."""

import json

import numpy as np
import pytest
from scipy import stats

from rsnb import study, study_stats
from rsnb.evaluate import retrieval_metrics


def _ranked(seed, n_img=12, per=5, skill=0.0):
    """Random score matrix (skill > 0 lifts the true pairs) -> (metrics, ranks, caption_to_image)."""
    rng = np.random.default_rng(seed)
    c2i = np.repeat(np.arange(n_img), per)
    sims = rng.random((n_img, n_img * per))
    sims[c2i, np.arange(c2i.size)] += skill
    m, r = retrieval_metrics(sims, c2i, return_ranks=True)
    return m, {"i2t": r["i2t"], "t2i": r["t2i"]}, c2i


def test_parse_spec_and_folder_names():
    assert study.parse_spec("m6") == ("m6", [])
    assert study.parse_spec("m6:model.loss=fixed,train.lr=1e-3") == ("m6", ["model.loss=fixed", "train.lr=1e-3"])
    # a comma inside a value (a YAML list) stays with its key
    assert study.parse_spec("m1:data.synthetic.splits=[0.5,0.1,0.4]") == ("m1", ["data.synthetic.splits=[0.5,0.1,0.4]"])
    assert study.spec_dir("m6:model.loss=fixed,train.lr=1e-3") == "m6__model.loss-fixed__train.lr-1e-3"
    with pytest.raises(ValueError, match="must start with a preset"):
        study.parse_spec("vsepp")
    with pytest.raises(ValueError, match="section.key=value"):
        study.parse_spec("m1:fixed")


def test_same_budget_and_shared_runs():
    a, b = study.run_config("m1", 0, "cpu"), study.run_config("m9", 0, "cpu")
    assert a["train"] == b["train"] and a["data"] == b["data"] and a["image_size"] == b["image_size"] == 64
    assert study.run_config("m1", 3, "cpu")["train"]["seed"] == 3
    # paper and m6 build the same model (VGMF is not built for sentence-only input): one run serves both
    assert study.model_key(study.run_config("paper", 0)) == study.model_key(study.run_config("m6", 0))
    assert study.model_key(study.run_config("m1", 0)) != study.model_key(study.run_config("m6", 0))
    assert study.model_key(study.run_config("m6", 0)) != study.model_key(study.run_config("m6", 1))
    assert study.model_key(study.run_config("m6:train.lr=1e-3", 0)) != study.model_key(study.run_config("m6", 0))


def test_msa_spec_gets_the_msa_model_under_the_same_budget():
    msa, m1 = study.run_config("msa", 0, "cpu"), study.run_config("m1", 0, "cpu")
    assert msa["model"]["name"] == "msa" and msa["model"]["text_encoder"] == "bigru"
    assert msa["data"] == m1["data"] and msa["image_size"] == m1["image_size"] == 64
    assert {k: msa["train"][k] for k in ("epochs", "batch_size", "lr")} == {k: m1["train"][k] for k in ("epochs", "batch_size", "lr")}
    assert study.model_key(msa) != study.model_key(m1)


def test_welch_matches_the_formula():
    a, b = [50.0, 52.0, 47.0], [44.0, 49.0, 45.5, 43.0]
    va, vb = np.var(a, ddof=1) / 3, np.var(b, ddof=1) / 4
    t = (np.mean(a) - np.mean(b)) / np.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 3)
    w = study_stats.welch(a, b)
    assert w["t"] == pytest.approx(t)
    assert w["p"] == pytest.approx(2 * stats.t.sf(abs(t), dof))
    assert np.isnan(study_stats.welch([1.0], [2.0, 3.0])["p"])


def test_bootstrap_observed_difference_is_the_mr_difference():
    ma, ra, c2i = _ranked(0, skill=0.6)
    mb, rb, _ = _ranked(1, skill=0.0)
    out = study_stats.bootstrap_mr_difference([ra], [rb], c2i, n_boot=500)
    assert out["diff"] == pytest.approx(ma["mR"] - mb["mR"])
    assert out["lo"] < out["diff"] < out["hi"]
    # averaging over seeds: the observed difference is the difference of the seed-mean mR
    mc, rc, _ = _ranked(2, skill=0.6)
    two = study_stats.bootstrap_mr_difference([ra, rc], [rb], c2i, n_boot=200)
    assert two["diff"] == pytest.approx((ma["mR"] + mc["mR"]) / 2 - mb["mR"])


def test_bootstrap_identical_models_and_clear_winner():
    _, r, c2i = _ranked(0, skill=0.2)
    same = study_stats.bootstrap_mr_difference([r], [r], c2i, n_boot=300)
    assert same["diff"] == 0 and same["lo"] == 0 and same["hi"] == 0 and same["p"] == 1.0
    _, good, _ = _ranked(3, n_img=40, skill=5.0)  # perfect retrieval
    _, bad, c2i = _ranked(4, n_img=40, skill=0.0)
    win = study_stats.bootstrap_mr_difference([good], [bad], c2i, n_boot=500)
    assert win["diff"] > 50 and win["lo"] > 0 and win["p"] < 0.01


def _fake_result(test_split):
    """A study result with hand-made ranks: model "m6" ranks every caption first, "m1" never in the top 10."""
    n_cap = len(test_split.captions)
    n_img = len(test_split)
    good = {"i2t": np.zeros(n_img, int), "t2i": np.zeros(n_cap, int)}
    bad = {"i2t": np.full(n_img, 20), "t2i": np.full(n_cap, 20)}
    run = lambda r, mr: {"test": {"mR": mr, "i2t_R@1": 0.0, "i2t_R@10": 0.0, "t2i_R@1": 0.0, "t2i_R@10": 0.0},  # noqa: E731
                         "val_mR": 1.0, "ranks": r}
    return {"runs": {"m1": [run(bad, 0.0), run(bad, 0.0)], "m6": [run(good, 100.0), run(good, 100.0)]},
            "shared": {}, "test": test_split}


def test_band_rows_split_captions_by_the_scale_they_name(tmp_path):
    from pathlib import Path

    from rsnb.data.corpus import Corpus, ImageRecord

    def _rec(name, captions, objects):
        meta = {"objects": [{"name": n, "scale": s, "colour": c, "box": [0, 0, 1, 1], "mentioned": True}
                            for n, s, c in objects]}
        return ImageRecord(f"{name}.png", Path(f"{name}.png"), "test", name, captions, [], meta)

    recs = [_rec("a", ["two white cars", "a grey road", "cars on a road", "a field", "one car"],
                 [("car", "small", "white"), ("road", "large", "grey"), ("field", "large", "green")]),
            _rec("b", ["a tree", "trees", "a forest", "a tree in a forest", "nothing here"],
                 [("tree", "small", "green"), ("forest", "large", "green")])]
    test = Corpus("synthetic", tmp_path, recs)
    rows = study_stats.band_rows(_fake_result(test), n_boot=100)
    by = {(r["group"], r["model"]): r for r in rows}
    assert by[("small targets only", "m1")]["captions"] == 4  # cars, one car, a tree, trees
    assert by[("small + larger", "m1")]["captions"] == 2
    assert by[("medium/large only", "m6")]["captions"] == 3
    assert by[("small targets only", "m6")]["t2i_R@1_mean"] == 100.0
    assert by[("small targets only", "m1")]["t2i_R@10_mean"] == 0.0
    assert by[("small targets only", "m6")]["delta_R@10_vs_base"] == 100.0
    md = study_stats.band_markdown(rows)
    assert "| small targets only | 4 | m6 | 100.0 ± 0.0 |" in md


def test_tiny_study_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("RSNB_CACHE", str(tmp_path / "cache"))
    logs = []
    res = study.run_study(["m1", "m6", "paper"], seeds=(0, 1), out=tmp_path / "runs", budget="tiny", log=logs.append)
    assert res["shared"] == {"paper": "m6"}  # paper reuses m6's runs instead of training them again
    assert len(logs) == 4 and sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["m1", "m6"]
    n_cap = len(res["test"].captions)
    for spec in ("m1", "m6"):
        for seed, r in zip((0, 1), res["runs"][spec]):
            assert r["ranks"]["t2i"].shape == (n_cap,)
            assert r["test"]["mR"] == pytest.approx(json.loads(
                (tmp_path / "runs" / spec / f"seed{seed}" / "metrics_test.json").read_text())["mR"])
            cfg = (tmp_path / "runs" / spec / f"seed{seed}" / "config.yaml").read_text()
            assert f"seed: {seed}" in cfg and "preset: " + spec in cfg
    # the two seeds give different models
    assert not np.array_equal(res["runs"]["m1"][0]["ranks"]["t2i"], res["runs"]["m1"][1]["ranks"]["t2i"])
    md = study.write_report(res, tmp_path / "fig" / "abl", "python -m rsnb study ablation --budget tiny",
                            study.budget_description("tiny"))
    assert "| paper (= m6) | 2 |" in md and "`train.epochs=1`" in md
    rows = study_stats.summary_rows(res)
    m6 = next(r for r in rows if r["model"] == "m6")
    mr6 = [r["test"]["mR"] for r in res["runs"]["m6"]]
    mr1 = [r["test"]["mR"] for r in res["runs"]["m1"]]
    assert m6["delta_vs_base"] == pytest.approx(np.mean(mr6) - np.mean(mr1))
    assert m6["test_mR_std"] == pytest.approx(np.std(mr6, ddof=1))
    assert (tmp_path / "fig" / "abl.csv").is_file() and (tmp_path / "fig" / "abl_bands.csv").is_file()
    # a second call reuses every run: nothing is trained or evaluated again
    stamp = (tmp_path / "runs" / "m1" / "seed0" / "ranks_test.npz").stat().st_mtime_ns
    again = study.run_study(["m1"], seeds=(0,), out=tmp_path / "runs", budget="tiny", log=logs.append)
    assert (tmp_path / "runs" / "m1" / "seed0" / "ranks_test.npz").stat().st_mtime_ns == stamp
    assert again["runs"]["m1"][0]["test"] == res["runs"]["m1"][0]["test"]


def test_cli_rejects_a_baseline_outside_the_models(capsys):
    from rsnb.cli import main

    with pytest.raises(SystemExit):
        main(["study", "ablation", "--models", "m6", "m9"])
    assert "--baseline 'm1' is not among --models" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["study", "ablation", "--models", "m1", "resnet"])
    assert "must start with a preset" in capsys.readouterr().err


def test_keyword_only_models_are_refused_before_training(tmp_path):
    # m7 answers one keyword query per image: its ranks do not pair with the five-caption rows
    with pytest.raises(ValueError, match="keyword-only"):
        study.run_study(["m1", "m7"], [0], tmp_path / "runs", budget="tiny")
    assert not (tmp_path / "runs" / "m1").exists()  # refused while planning, nothing trained


def test_synthetic_splits_setting(tmp_path):
    from rsnb import experiment as ex

    cfg = ex.load_config("demo", [f"data.cache_dir={tmp_path}", "data.synthetic.images=20", "data.synthetic.size=32",
                                  "data.synthetic.splits=[0.5,0.25,0.25]"], quick=False)
    assert ex.synthetic_path(cfg).name == "synthetic-n20-s32-seed0-split0.5-0.25-0.25"
    assert ex.prepare_corpus(cfg, progress=False).splits == {"train": 10, "val": 5, "test": 5}
    default = ex.load_config("demo", quick=False)
    assert ex.synthetic_path(default).name == "synthetic-n500-s128-seed0"  # unchanged for existing caches
    with pytest.raises(ValueError, match=r"data.synthetic.splits: \[0.5, 0.5, 0.5\] must be three train, val, test"):
        ex.load_config("demo", ["data.synthetic.splits=[0.5,0.5,0.5]"], quick=False)
    cfg["data"]["synthetic"]["splits"] = [0.5, 0.5, 0.5]  # set behind the validation's back
    with pytest.raises(ValueError, match=r"data.synthetic.splits must be three non-negative fractions summing to 1"):
        ex.prepare_corpus(cfg)


def test_statistics_stay_importable_from_study():
    for name in ("welch", "bootstrap_mr_difference", "summary_rows", "band_rows", "markdown_table", "band_markdown",
                 "write_csv", "BASELINE"):
        assert getattr(study, name) is getattr(study_stats, name)
