"""The command line as a user meets it: one-line errors, --debug, --help on every option, --version, banner."""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rsnb import __version__
from rsnb import experiment as ex
from rsnb.cli import build_parser, main
from rsnb.config import mode_banner

ROOT = Path(__file__).resolve().parents[1]


def _err(capsys):
    err = capsys.readouterr().err
    return [ln for ln in err.splitlines() if ln.strip()]


@pytest.mark.parametrize("argv, message", [
    (["config", "demo", "trian.epochs=3"], "unknown section 'trian'"),
    (["config", "demo", "train.epochs=abc"], "train.epochs: expected an integer, got 'abc'"),
    (["config", "no_such_preset"], "config no_such_preset: no such file or preset"),
    (["train", "--config", "demo", "train.lr=-1"], "train.lr: -1.0 must be > 0"),
    (["evaluate", "--run", "/no/such/run"], "/no/such/run: not a run folder"),
])
def test_expected_errors_are_one_line_exit_2(argv, message, capsys, monkeypatch):
    monkeypatch.delenv("RSNB_DEBUG", raising=False)
    assert main(argv) == 2
    lines = _err(capsys)
    assert len(lines) == 1 and lines[0].startswith("rsnb: error: ") and message in lines[0], lines


def test_debug_shows_the_traceback(capsys, monkeypatch):
    from rsnb.errors import ConfigError

    with pytest.raises(ConfigError, match="trian"):
        main(["--debug", "config", "demo", "trian.epochs=3"])
    with pytest.raises(ConfigError):
        main(["config", "demo", "trian.epochs=3", "--debug"])  # after the command too
    monkeypatch.setenv("RSNB_DEBUG", "1")
    with pytest.raises(ConfigError):
        main(["config", "demo", "trian.epochs=3"])


def test_a_real_process_prints_one_line_on_stderr(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RSNB_DEBUG", None)
    res = subprocess.run([sys.executable, "-m", "rsnb", "config", "demo", "data.min_cont=1"],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.strip().splitlines() == [res.stderr.strip()]
    assert res.stderr.startswith("rsnb: error: unknown key 'data.min_cont' (did you mean 'min_count'?)")
    res = subprocess.run([sys.executable, "-m", "rsnb", "config", "demo", "data.min_cont=1"],
                         capture_output=True, text=True, env={**env, "RSNB_DEBUG": "1"}, cwd=tmp_path)
    assert res.returncode == 1 and "Traceback (most recent call last)" in res.stderr


def _all_parsers(p):
    yield p.prog, p
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for sp in a.choices.values():
                yield from _all_parsers(sp)


def test_every_option_of_every_command_has_help():
    from rsnb.data import synthetic

    missing = []
    parsers = dict(_all_parsers(build_parser()))
    parsers["rsnb synth"] = synthetic.build_parser()
    assert {"rsnb train", "rsnb evaluate", "rsnb demo", "rsnb config", "rsnb synth"} <= set(parsers)
    for prog, p in parsers.items():
        for a in p._actions:
            if not isinstance(a, argparse._SubParsersAction) and not (a.help and a.help.strip()):
                missing.append(f"{prog} {'/'.join(a.option_strings) or a.dest}")
    assert not missing, missing


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"rsnb {__version__}"


def test_config_command_prints_the_resolved_config(capsys):
    assert main(["config", "demo", "train.epochs=3", "model.vga=soft"]) == 0
    out = capsys.readouterr().out
    cfg = yaml.safe_load(out)
    assert cfg["model"]["vga"] == "soft" and cfg["name"] == "demo"
    assert cfg == ex.load_config("demo", ["train.epochs=3", "model.vga=soft"])


def test_banner_says_what_actually_runs(monkeypatch):
    monkeypatch.delenv("RSNB_QUICK", raising=False)
    demo = ex.load_config("demo", quick=False)
    line = mode_banner(demo, "cpu")
    assert line.startswith("rsnb mode: FULL") and "paper settings" not in line
    for fact in ("128 px", "6 epochs of batch 32", "500 synthetic images", "backbone from scratch", "device cpu",
                 "differs from the paper's set-up (256 px, ImageNet weights)"):
        assert fact in line, (fact, line)
    paper = ex.load_config("synthetic", quick=False)
    assert "paper image size and weights" in mode_banner(paper) and "150 epochs" in mode_banner(paper)
    monkeypatch.setenv("RSNB_QUICK", "1")
    assert mode_banner().startswith("rsnb mode: QUICK")
