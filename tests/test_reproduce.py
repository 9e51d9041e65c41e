import csv
import json

import pytest
import torch

from rsnb import losses, paper_figures, reproduce, reproduce_plan, study


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_cpu_plan_expands_to_the_documented_runs(tmp_path):
    parts = {p.name: p for p in reproduce_plan.plan("cpu")}
    assert list(parts) == list(reproduce_plan.PARTS)
    assert parts["table6"].models == ["m1", "m3", "m5", "m6", "m8", "m9"] and parts["table6"].seeds == [0, 1, 2]
    assert parts["table2"].models == ["m6:model.vga=soft", "m6:model.vga=fusion", "m6"]
    assert parts["msa"].models == ["m1", "m6", "msa"] and parts["msa"].seeds == [0, 1, 2]
    assert parts["table5"].seeds == [0] and len(parts["table5"].models) == 1 + 3 + 8  # m6 + fixed + other (γ, β)
    runs = reproduce_plan.plan_runs(reproduce_plan.plan("cpu"), "cpu", tmp_path)
    assert len(runs) == 38  # 18 + 6 + 11 + 3, as the module docstring says
    assert tmp_path / "m6" / "seed2" in runs and tmp_path / "msa" / "seed1" in runs
    assert all(c["train"]["epochs"] == 3 and c["image_size"] == 64 for c in runs.values())  # one budget
    assert {p.name: p.seeds for p in reproduce_plan.plan("gpu")}["table5"] == [0, 1, 2]  # gpu: 60 runs
    assert len(reproduce_plan.plan_runs(reproduce_plan.plan("tiny"), "tiny", tmp_path)) == 5
    with pytest.raises(ValueError, match="budget 'huge'"):
        reproduce_plan.plan("huge")


def test_paper_loss_setting_shares_the_m6_run():
    key = study.model_key
    assert key(study.run_config(reproduce_plan.dynamic_spec(0.6, 5), 0)) == key(study.run_config("m6", 0))
    assert key(study.run_config(reproduce_plan.dynamic_spec(0.6, 7), 0)) != key(study.run_config("m6", 0))
    fixed = study.run_config(reproduce_plan.fixed_spec(0.4), 0)["model"]
    assert fixed["loss"] == "fixed" and fixed["margin"] == 0.4


def test_quick_runs_never_target_the_committed_figures(tmp_path, monkeypatch):
    monkeypatch.setenv("RSNB_QUICK", "1")
    assert reproduce_plan.resolve_budget("auto") == "tiny"
    assert reproduce_plan.resolve_figures_dir("cpu", tmp_path, None) == tmp_path / "figures"
    assert reproduce_plan.resolve_figures_dir("tiny", tmp_path, tmp_path / "x") == tmp_path / "x"
    with pytest.raises(ValueError, match="committed figures"):
        reproduce_plan.resolve_figures_dir("tiny", tmp_path, reproduce_plan.repo_figures_dir())
    monkeypatch.setenv("RSNB_QUICK", "0")
    assert reproduce_plan.resolve_budget("auto") == ("gpu" if torch.cuda.is_available() else "cpu")
    assert reproduce_plan.resolve_figures_dir("cpu", tmp_path, None).name == "figures"
    with pytest.raises(ValueError, match="committed figures"):  # tiny is a quick run even without RSNB_QUICK
        reproduce_plan.resolve_figures_dir("tiny", tmp_path, "figures")
    assert reproduce_plan.default_out("cpu").as_posix() == "runs/figures"
    assert reproduce_plan.default_out("tiny").as_posix() == "runs/figures-tiny"


def test_margin_curves_csv_holds_the_plotted_margins(tmp_path):
    job = reproduce.Job.__new__(reproduce.Job)  # only the output helpers
    job.fig_dir, job.written, job.log = tmp_path, [], lambda s: None
    fig, data = paper_figures.margin_curves((0.4, 0.8), (3.0, 7.0))
    job.save_fig(fig, "margin_curves", data)
    assert {p.name for p in tmp_path.iterdir()} == {f"07_margin_curves.{e}" for e in ("png", "pdf", "csv")}
    rows = _read_csv(tmp_path / "07_margin_curves.csv")
    assert list(rows[0]) == ["S", "gamma0.4_beta3", "gamma0.4_beta7", "gamma0.8_beta3", "gamma0.8_beta7"]
    assert len(rows) == 101 and float(rows[0]["gamma0.8_beta7"]) == pytest.approx(0.8)  # S = 0: alpha = gamma
    s = float(rows[50]["S"])
    assert float(rows[50]["gamma0.4_beta3"]) == pytest.approx(float(losses.dynamic_margin(torch.tensor(s), 0.4, 3.0)))
    assert float(rows[-1]["gamma0.4_beta7"]) == pytest.approx(0.0, abs=1e-9)  # S = 1: no margin


def test_tiny_loss_part_end_to_end(tmp_path):
    logs = []
    job = reproduce.Job("tiny", tmp_path / "runs", None, only=["table5"], jobs=1, log=logs.append)
    assert job.fig_dir == tmp_path / "runs" / "figures" and len(job.runs) == 2
    job.run()
    fig_dir = job.fig_dir
    for name in ("07_table5.csv", "07_table5.md", "07_table5_heatmap.png", "07_table5_heatmap.pdf",
                 "07_table5_heatmap.csv", "07_summary.md"):
        assert (fig_dir / name).is_file() and (fig_dir / name).stat().st_size > 0, name
    heat = _read_csv(fig_dir / "07_table5_heatmap.csv")
    assert list(heat[0]) == ["loss", "alpha", "gamma", "beta", "test_mR_mean", "test_mR_std", "seeds", "model"]
    by_model = {r["model"]: r for r in heat}
    # the heatmap holds the mR the study measured on each run's best checkpoint
    for spec in ("m6", reproduce_plan.fixed_spec(0.4)):
        measured = json.loads((tmp_path / "runs" / study.spec_dir(spec) / "seed0" / "metrics_test.json").read_text())
        assert float(by_model[spec]["test_mR_mean"]) == pytest.approx(measured["mR"])
    assert by_model["m6"]["loss"] == "dynamic" and float(by_model["m6"]["gamma"]) == 0.6
    assert by_model[reproduce_plan.fixed_spec(0.4)]["loss"] == "fixed" and float(by_model[reproduce_plan.fixed_spec(0.4)]["alpha"]) == 0.4
    table = {r["model"]: r for r in _read_csv(fig_dir / "07_table5.csv")}
    assert float(table["m6"]["test_mR_mean"]) == pytest.approx(float(by_model["m6"]["test_mR_mean"]))
    md = (fig_dir / "07_table5.md").read_text()
    assert f"{float(by_model['m6']['test_mR_mean']):.2f} (1 seed)" in md and "One seed per setting" in md
    summary = (fig_dir / "07_summary.md").read_text()
    assert "| table5 |" in summary and "torch " in summary and "`07_table5_heatmap.pdf`" in summary
    assert any("07_table5_heatmap.png" in line for line in logs)
    # a second job reuses the cached runs: nothing is trained
    again = reproduce.Job("tiny", tmp_path / "runs", None, only=["table5"], jobs=1, log=logs.append)
    assert all(reproduce_plan.is_done(c, d) for d, c in again.runs.items())


def test_verdicts_say_not_significant():
    rows = [{"model": "m6", "delta_vs_base": -1.0, "welch_p": 0.4, "boot_p": 0.2},
            {"model": "m5", "delta_vs_base": 8.5, "welch_p": 0.001, "boot_p": 0.0},
            {"model": "m9", "delta_vs_base": 3.0, "welch_p": float("nan"), "boot_p": 0.01}]
    lines = reproduce.verdicts(rows, "m1").splitlines()
    assert "**not significant**" in lines[0] and "**significant**: better" in lines[1]
    assert "one seed" in lines[2] and "not established" in lines[2]


def test_cli_rejects_unknown_parts_and_quick_figures(capsys, monkeypatch):
    with pytest.raises(SystemExit):
        reproduce.main(["--only", "table99"])
    monkeypatch.setenv("RSNB_QUICK", "1")
    with pytest.raises(SystemExit):
        reproduce.main(["--budget", "tiny", "--figures-dir", str(reproduce_plan.repo_figures_dir())])
    assert "committed figures" in capsys.readouterr().err


def test_plan_names_stay_importable_from_reproduce():
    for name in ("plan", "plan_runs", "Part", "resolve_budget", "default_out", "is_done", "PARTS"):
        assert getattr(reproduce, name) is getattr(reproduce_plan, name)
