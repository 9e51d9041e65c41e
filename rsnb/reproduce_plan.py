"""The plan of ``python -m rsnb figures`` (:mod:`rsnb.reproduce`): the parts of the job and their study specs
per budget, the distinct runs they train and whether each is done, and where a budget's runs and figures go.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from rsnb import study
from rsnb.config import is_quick
from rsnb.models.amfmn import ABLATIONS

PARTS = ("table6", "table2", "table5", "msa", "figures")
FIXED_MARGINS = (0.4, 0.6, 0.8)
GAMMAS = (0.4, 0.6, 0.8)
BETAS = (3.0, 5.0, 7.0)
#: Table VI rows of the study. The keyword-only rows m2, m4, m7 answer one keyword query per image (the
#: paper's Table III protocol), not the five captions per image every other row is scored on, so the study's
#: per-caption ranks and paired bootstrap do not apply to them; `rsnb evaluate` reports them on their own.
KEYWORD_ONLY = tuple(name for name, (_, _, text_input, _) in ABLATIONS.items() if text_input == "keywords")
ABLATION = tuple(f"m{i}" for i in range(1, 10) if f"m{i}" not in KEYWORD_ONLY)
#: Table II's attention variants: VGA name -> study spec (m6 is sim); notebooks 04/05 use the same runs
VARIANT_SPECS = {"soft": "m6:model.vga=soft", "fusion": "m6:model.vga=fusion", "sim": "m6"}
VARIANTS = {spec: f"AMFMN-{vga}" for vga, spec in VARIANT_SPECS.items()}


def fixed_spec(alpha: float) -> str:
    """Study spec of m6 with a fixed margin alpha."""
    return f"m6:model.loss=fixed,model.margin={alpha}"


def dynamic_spec(gamma: float, beta: float) -> str:
    """Study spec of m6 with the dynamic margin (gamma, beta); (0.6, 5.0) resolves to m6's own run."""
    return f"m6:model.gamma={gamma},model.beta={float(beta)}"


@dataclass
class Part:
    """One part of the job: the study it runs (models x seeds, tested against ``baseline``)."""

    name: str
    title: str
    models: list[str]
    seeds: list[int]
    baseline: str
    extra_seeds: dict[str, list[int]] = field(default_factory=dict)


def plan(budget: str = "cpu") -> list[Part]:
    """The parts of the job for a budget (``cpu``, ``gpu`` or ``tiny``); see :mod:`rsnb.reproduce`."""
    if budget not in study.BUDGETS:
        raise ValueError(f"budget {budget!r}: expected one of {sorted(study.BUDGETS)}")
    if budget == "tiny":  # tests and quick mode: one seed, every code path, 5 runs
        return [Part("table6", "Table VI (tiny)", ["m1", "m6"], [0], "m1"),
                Part("table2", "Table II (tiny)", ["m6", "m6:model.vga=soft"], [0], "m6"),
                Part("table5", "Table V (tiny)", ["m6", fixed_spec(0.4)], [0], "m6"),
                Part("msa", "MSA vs AMFMN (tiny)", ["m1", "m6", "msa"], [0], "m1"),
                Part("figures", "figures", ["m1", "m6", "msa"], [0], "m1")]
    seeds = [0, 1, 2]
    loss_seeds = seeds if budget == "gpu" else [0]
    losses = ["m6", *(fixed_spec(a) for a in FIXED_MARGINS),
              *(dynamic_spec(g, b) for g in GAMMAS for b in BETAS if (g, b) != (0.6, 5.0))]
    return [Part("table6", "AMFMN Table VI: component ablation m1..m9 without the keyword-only rows (and Table IV)", list(ABLATION), seeds, "m1"),
            Part("table2", "AMFMN Table II: attention variants", list(VARIANTS), seeds, "m6"),
            Part("table5", "AMFMN Table V: fixed vs dynamic margin", losses, loss_seeds, "m6"),
            Part("msa", "MSA vs AMFMN under one budget", ["m1", "m6", "msa"], seeds, "m1"),
            Part("figures", "figures", ["m1", "m6", "msa"], [0], "m1")]


def plan_runs(parts: Sequence[Part], budget: str, out: Path, extra: Sequence[str] = ()) -> dict[Path, dict]:
    """``{run folder: config}`` of the distinct runs the parts train, in the order :func:`rsnb.study.run_study`
    would train them (specs resolving to one config within a part share a run, as there)."""
    runs: dict[Path, dict] = {}
    for part in parts:
        owner: set[str] = set()
        for spec in part.models:
            for seed in part.seeds:
                cfg = study.run_config(spec, seed, budget, extra)
                key = study.model_key(cfg)
                if key in owner:
                    continue
                owner.add(key)
                runs.setdefault(Path(out) / study.spec_dir(spec) / f"seed{seed}", cfg)
    return runs


def is_done(cfg: dict, run_dir: Path) -> bool:
    """True when the run is trained and evaluated (the study only reads it back)."""
    return study.run_status(cfg, run_dir) == "complete" and (run_dir / "ranks_test.npz").is_file()


# ------------------------------------------------------------------------------ folders
def repo_figures_dir() -> Path:
    """The checkout's committed ``figures/`` folder."""
    return Path(__file__).resolve().parents[1] / "figures"


def default_out(budget: str) -> Path:
    """Run folder of a budget: ``runs/figures`` (cpu), ``runs/figures-gpu``, ``runs/figures-tiny``."""
    return Path("runs") / ("figures" if budget == "cpu" else f"figures-{budget}")


def resolve_figures_dir(budget: str, out: Path, figures_dir: str | Path | None) -> Path:
    """Where tables and figures go: ``figures/`` for a full run, ``<out>/figures`` for quick/tiny runs,
    which may never write into the committed ``figures/``."""
    quick = budget == "tiny" or is_quick()
    path = Path(figures_dir) if figures_dir else (Path(out) / "figures" if quick else Path("figures"))
    if quick and path.resolve() in {repo_figures_dir().resolve(), Path("figures").resolve()}:
        raise ValueError(f"--figures-dir {path}: quick/tiny runs may not write into the committed figures folder")
    return path


def resolve_budget(budget: str) -> str:
    """``auto``: ``tiny`` in quick mode, else ``gpu`` with CUDA and ``cpu`` without."""
    if budget != "auto":
        return budget
    if is_quick():
        return "tiny"
    return "gpu" if torch.cuda.is_available() else "cpu"
