"""The papers' experiments as one job: ``python -m rsnb figures`` (``make figures``, notebook 07).

Every model is trained through :mod:`rsnb.study` (runs cached in ``<out>/<spec>/seed<k>``, resumable,
several seeds under one budget, Welch's t-test and a paired bootstrap against a reference), then
tables and figures are written to the figures folder, each figure as ``07_<name>.png`` + ``.pdf`` with
the plotted numbers in ``07_<name>.csv``, each table as ``.csv`` + ``.md``:

* ``table6``: AMFMN Table VI, the component ablation m1..m9 (m6 = the paper preset) against m1, which
  also gives Table IV (sentence / both = m6 / m8; the keyword-only m7 is scored on another protocol) and
  the verdict "does full AMFMN beat VSE++?";
* ``table2``: Table II's attention variants, m6 with ``model.vga=soft`` / ``fusion`` / sim (= m6);
* ``table5``: Table V's loss ablation on m6: fixed margin alpha in {0.4, 0.6, 0.8} and the dynamic
  margin gamma in {0.4, 0.6, 0.8} x beta in {3, 5, 7} (gamma 0.6, beta 5 is m6 itself), a table and a
  heatmap of mR;
* ``msa``: the MSA paper's model (study spec ``msa``: the ``msa_synthetic`` model, bi-GRU text
  encoder) against m1 and m6 under the same budget;
* ``figures``: from the seed-0 runs (best checkpoint): a scene grid of the test split, MVSA maps (m6), text -> image and image -> text
  retrieval examples (m6), a UMAP of the joint space (m6), MSA's per-scale matrices, training curves of
  m1 / m6 / MSA, and the dynamic-margin curves (AMFMN Figs. 5-6, no training).

Plan (:func:`rsnb.reproduce_plan.plan`): the ``cpu`` budget trains 38 distinct runs: m1 m3 m5 m6 m8 m9 x seeds 0 1 2 (18), soft and
fusion x 3 seeds (6), the 11 loss settings other than m6 with ONE seed (11; the Table V rows are single
runs, their differences are not tested against seed noise), MSA x 3 seeds (3).

Measured on the idle 2-core machine from an empty run folder (``/usr/bin/time -v make figures``): the 38
runs, two at a time (``--jobs 2``, the default on a CPU, one thread each) at 27-45 s of wall time each, then
every table and figure: 10.5 minutes in all (1,110 CPU-seconds, peak RSS 1.6 GB; 12.5 minutes before training went channels-last). Wall time grows with the
machine's load; a second call only reads the cached runs back.
The ``gpu`` budget gives Table V three seeds too (60 runs, minutes each). The ``tiny`` budget (tests,
``RSNB_QUICK=1``) trains 5 runs of one seed.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import datetime, timezone
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from tqdm.auto import tqdm

from rsnb import study, study_stats, viz
from rsnb.reproduce_plan import (  # noqa: F401  (re-exported: notebook 07 and callers use rsnb.reproduce.*)
    ABLATION,
    BETAS,
    FIXED_MARGINS,
    GAMMAS,
    KEYWORD_ONLY,
    PARTS,
    VARIANTS,
    Part,
    default_out,
    dynamic_spec,
    fixed_spec,
    is_done,
    plan,
    plan_runs,
    repo_figures_dir,
    resolve_budget,
    resolve_figures_dir,
)

PREFIX = "07_"
INPUT_ROWS = {"m6": "sentence", "m8": "sentence + keywords"}  # Table IV (the keyword-only row m7: see KEYWORD_ONLY)
ALPHA = 0.05  # significance level of the verdicts


def _train(cfg: dict, run_dir: str, device: str, threads: int) -> tuple[str, float, float]:
    """Worker: train + evaluate one run; returns (run folder, test mR, seconds)."""
    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    res = study.run_one(cfg, Path(run_dir), device)
    return run_dir, float(res["test"]["mR"]), time.perf_counter() - t0


# ------------------------------------------------------------------------------ the job
class Job:
    """Runs parts of the plan: trains what is missing (one progress bar over every run of the job),
    then writes each part's tables and figures. ``log`` receives one line per written file."""

    def __init__(self, budget: str = "auto", out=None, figures_dir=None, extra: Sequence[str] = (),
                 only: Sequence[str] | None = None, jobs: int = 1, device: str = "auto",
                 log: Callable[[str], None] = print):
        self.budget = resolve_budget(budget)
        self.out = Path(out) if out else default_out(self.budget)
        self.fig_dir = resolve_figures_dir(self.budget, self.out, figures_dir)
        self.fig_dir.mkdir(parents=True, exist_ok=True)
        self.extra, self.jobs, self.device, self.log = list(extra), max(1, int(jobs)), device, log
        unknown = set(only or ()) - set(PARTS)
        if unknown:
            raise ValueError(f"--only {' '.join(sorted(unknown))}: parts are {', '.join(PARTS)}")
        self.parts = [p for p in plan(self.budget) if not only or p.name in only]
        self.runs = plan_runs(self.parts, self.budget, self.out, self.extra)
        self.times: dict[str, float] = {}
        self.run_seconds: list[float] = []
        self.written: list[Path] = []
        self.results: dict[str, dict] = {}
        self._bar = None

    # -------------------------------------------------------------- training
    def _progress(self):
        if self._bar is None:
            done = sum(is_done(c, d) for d, c in self.runs.items())
            self._bar = tqdm(total=len(self.runs), initial=done, desc="figures: runs", unit="run",
                             dynamic_ncols=True)
        return self._bar

    def train(self, part: Part) -> None:
        """Train (in ``jobs`` processes) the runs of ``part`` that are not complete yet."""
        from rsnb import experiment as ex

        mine = plan_runs([part], self.budget, self.out, self.extra)
        todo = [(d, c) for d, c in mine.items() if not is_done(c, d)]
        bar = self._progress()
        if not todo:
            return
        ex.prepare_corpus(todo[0][1], progress=False)  # generate the data once, before any worker
        if self.jobs == 1:
            for d, c in todo:
                bar.set_postfix_str(f"{part.name}: {d.parent.name}/{d.name}")
                self._done(*_train(c, str(d), self.device, 0), bar)
            return
        with ProcessPoolExecutor(self.jobs, mp_context=torch.multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_train, c, str(d), self.device, 1) for d, c in todo]
            for f in as_completed(futures):
                self._done(*f.result(), bar)

    def _done(self, run_dir: str, mr: float, seconds: float, bar) -> None:
        self.run_seconds.append(seconds)
        bar.update(1)
        bar.write(f"[figures] {Path(run_dir).parent.name}/{Path(run_dir).name}: test mR {mr:.2f} ({seconds:.0f} s)")

    def study(self, part: Part) -> dict:
        """The part's :func:`rsnb.study.run_study` result (runs trained first)."""
        self.train(part)
        return study.run_study(part.models, part.seeds, self.out, self.budget, self.extra, self.device,
                               log=lambda s: None)

    # -------------------------------------------------------------- outputs
    def path(self, name: str, ext: str) -> Path:
        return self.fig_dir / f"{PREFIX}{name}.{ext}"

    def save_table(self, name: str, rows: list[dict], md: str) -> None:
        study_stats.write_csv(rows, self.path(name, "csv"))
        self.path(name, "md").write_text(md, encoding="utf-8")
        self._wrote(self.path(name, "csv"), self.path(name, "md"))

    def save_fig(self, fig, name: str, data: dict) -> None:
        png = viz.save_figure(fig, PREFIX + name, data, out_dir=self.fig_dir, pdf=True)
        self._wrote(png, png.with_suffix(".pdf"), png.with_suffix(".csv"))

    def _wrote(self, *paths: Path) -> None:
        self.written.extend(paths)
        self.log("[figures] wrote " + ", ".join(str(p) for p in paths))

    def header(self, title: str) -> str:
        return (f"# {title}\n\nMade by `{self.command}` on {date()}.\n\n"
                f"Budget: {study.budget_description(self.budget, self.extra)}\n\n")

    command = "python -m rsnb figures"

    # -------------------------------------------------------------- parts
    def run(self) -> dict:
        """Run every selected part; write ``07_summary.md``; return ``{part: outputs}``."""
        for part in self.parts:
            self.run_part(part.name)
        self.write_summary()
        return self.results

    def run_part(self, name: str) -> dict:
        """Train what one part needs, write its tables and figures; return its outputs (``md``, ``rows``,
        ``fig`` / ``figs``) and record its wall time."""
        part = next((p for p in self.parts if p.name == name), None)
        if part is None:
            raise ValueError(f"part {name!r}: this job has {', '.join(p.name for p in self.parts)}")
        t = time.perf_counter()
        self.results[name] = getattr(self, f"part_{name}")(part)
        self.times[name] = time.perf_counter() - t
        self.log(f"[figures] part {name}: {self.times[name]:.0f} s")
        return self.results[name]

    def part_table6(self, part: Part) -> dict:
        res = self.study(part)
        rows, bands = study_stats.summary_rows(res, part.baseline), study_stats.band_rows(res, part.baseline)
        md = (self.header(part.title) + test_note(res, part.baseline) + study_stats.markdown_table(rows, part.baseline) +
              "\n\n" + verdicts(rows, part.baseline) +
              "\n\n## Text-to-image recall by the scale of the targets a caption names\n\n" +
              study_stats.band_markdown(bands, part.baseline) + "\n")
        self.save_table("table6", rows, md)
        study_stats.write_csv(bands, self.path("table6_bands", "csv"))
        self._wrote(self.path("table6_bands", "csv"))
        out = {"rows": rows, "bands": bands, "md": md}
        inputs = [s for s in INPUT_ROWS if s in res["runs"]]
        if len(inputs) > 1:  # Table IV: the same runs, against the sentence-only m6
            sub = {**res, "runs": {s: res["runs"][s] for s in inputs}}
            t4 = [{"input": INPUT_ROWS[r["model"]], **r} for r in study_stats.summary_rows(sub, "m6")]
            md4 = (self.header("AMFMN Table IV: text input (sentence / keywords / both)") + test_note(res, "m6") +
                   study_stats.markdown_table(t4, "m6").replace("| model |", "| model (input) |") + "\n\n" +
                   verdicts(t4, "m6") + "\n")
            for r in t4:
                md4 = md4.replace(f"| {r['model']} |", f"| {r['model']} ({r['input']}) |", 1)
            self.save_table("table4", t4, md4)
            out.update(table4=t4, md4=md4)
        return out

    def part_table2(self, part: Part) -> dict:
        res = self.study(part)
        rows = [{"variant": VARIANTS.get(r["model"], r["model"]), **r}
                for r in study_stats.summary_rows(res, part.baseline)]
        md = self.header(part.title) + test_note(res, part.baseline) + study_stats.markdown_table(rows, part.baseline)
        for r in rows:
            md = md.replace(f"| {r['model']} |", f"| {r['variant']} (`{r['model']}`) |", 1)
        md += "\n\n" + verdicts(rows, part.baseline) + "\n"
        self.save_table("table2", rows, md)
        return {"rows": rows, "md": md}

    def part_table5(self, part: Part) -> dict:
        res = self.study(part)
        rows = []
        for r in study_stats.summary_rows(res, part.baseline):
            mcfg = study.run_config(r["model"], 0, self.budget, self.extra)["model"]
            fixed = mcfg.get("loss") == "fixed"
            rows.append({"loss": "fixed" if fixed else "dynamic",
                         "alpha": float(mcfg["margin"]) if fixed else float("nan"),
                         "gamma": float("nan") if fixed else float(mcfg.get("gamma", 0.6)),
                         "beta": float("nan") if fixed else float(mcfg.get("beta", 5.0)), **r})
        md = self.header(part.title) + test_note(res, part.baseline)
        if len(part.seeds) == 1:
            md += ("**One seed per setting** (the budget's time limit): each row is a single run, its "
                   "differences are not tested against seed noise (compare with the seed spread of Table VI).\n\n")
        md += study_stats.markdown_table(rows, part.baseline) + "\n\n" + verdicts(rows, part.baseline) + "\n"
        self.save_table("table5", rows, md)
        fig, data = loss_heatmap(rows)
        self.save_fig(fig, "table5_heatmap", data)
        return {"rows": rows, "md": md, "fig": fig}

    def part_msa(self, part: Part) -> dict:
        res = self.study(part)
        rows = study_stats.summary_rows(res, part.baseline)
        md = (self.header(part.title) + test_note(res, part.baseline) +
              "`msa` = the MSA model of `configs/msa_synthetic.yaml` (ResNet-18 from scratch, bi-GRU text encoder, "
              "AdamW) under the same data, image size, epochs, batch and learning rate as the AMFMN rows.\n\n" +
              study_stats.markdown_table(rows, part.baseline) + "\n\n" + verdicts(rows, part.baseline) + "\n")
        self.save_table("msa_vs_amfmn", rows, md)
        return {"rows": rows, "md": md}

    def part_figures(self, part: Part) -> dict:
        from rsnb import paper_figures as f7

        self.train(part)
        seed = part.seeds[0]
        run = {s: self.out / study.spec_dir(s) / f"seed{seed}" for s in part.models}
        figs = {}
        for name, make in (("scene_grid", lambda: f7.scene_grid(run["m6"])),
                           ("margin_curves", lambda: f7.margin_curves(GAMMAS, BETAS)),
                           ("mvsa_maps", lambda: f7.mvsa_maps(run["m6"])),
                           ("t2i_gallery", lambda: f7.t2i_gallery(run["m6"])),
                           ("i2t_lists", lambda: f7.i2t_lists(run["m6"])),
                           ("umap", lambda: f7.joint_space(run["m6"])),
                           ("msa_scale_matrices", lambda: f7.msa_scale_matrices(run["msa"])),
                           ("training_curves", lambda: f7.training_curves(
                               {"m1 (VSE++)": run["m1"], "m6 (AMFMN-sim)": run["m6"], "MSA": run["msa"]}))):
            fig, data = make()
            self.save_fig(fig, name, data)
            figs[name] = fig
        return {"figs": figs}

    def write_summary(self) -> str:
        """Write ``07_summary.md`` (budget, command, date, machine, per-part and total wall time); return it."""
        if self._bar is not None:
            self._bar.close()
        self.times["total"] = sum(v for k, v in self.times.items() if k != "total")
        secs = np.asarray(self.run_seconds)
        lines = [f"# `make figures` / `{self.command}`: summary", "",
                 f"- command: `{self.command}`", f"- date: {date()}",
                 f"- budget: {study.budget_description(self.budget, self.extra)}",
                 f"- runs in the plan: {len(self.runs)} distinct (folder `{self.out}`); trained this time: "
                 f"{len(secs)}" + (f", {secs.mean():.0f} s each on average (wall, {self.jobs} in parallel)"
                                    if len(secs) else " (all cached)"),
                 f"- machine: {platform.platform()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
                 f"CUDA {'yes: ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no'}; "
                 f"load average at the end {os.getloadavg()[0]:.1f} (other jobs slow the wall times down)",
                 "", "| part | what | models x seeds | wall time |", "|---|---|---|---|"]
        for p in self.parts:
            lines.append(f"| {p.name} | {p.title} | {len(p.models)} x {len(p.seeds)} | {self.times.get(p.name, 0):.0f} s |")
        lines += [f"| **total** | | | **{self.times.get('total', 0) / 60:.1f} min** |", "", "Files:", ""]
        lines += [f"- `{p.name}`" for p in self.written]
        path = self.path("summary", "md")
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.log(f"[figures] wrote {path}")
        return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ text helpers
def date() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def test_note(res: dict, baseline: str) -> str:
    test = res["test"]
    return (f"Test split: {len(test)} images, {len(test.captions)} captions. Mean ± std over seeds; Welch's t-test "
            f"over per-seed test mR and a paired bootstrap over test images (2,000 resamples) against `{baseline}`.\n\n")


def verdicts(rows: Sequence[dict], baseline: str, alpha: float = ALPHA) -> str:
    """One line per model: is its difference to the baseline significant (both tests below alpha)?"""
    out = []
    for r in rows:
        if "delta_vs_base" not in r or r.get("shares_runs_with"):
            continue
        d, pw, pb = r["delta_vs_base"], r["welch_p"], r["boot_p"]
        welch_ok = not np.isnan(pw) and pw < alpha
        if welch_ok and pb < alpha:
            word = f"**significant**: {'better' if d > 0 else 'worse'} than {baseline}"
        elif np.isnan(pw):
            word = (f"one seed: no test over seeds; the bootstrap over queries (p = {pb:.3f}) ignores seed noise, "
                    "so this difference is **not established**")
        else:
            word = f"**not significant** at {alpha:g} (within seed noise)"
        out.append(f"- `{r['model']}`: Δ mR {d:+.2f} vs `{baseline}` (Welch p = {study_stats._fmt(pw, 3)}, "
                   f"bootstrap p = {pb:.3f}): {word}.")
    return "\n".join(out)


def loss_heatmap(rows: Sequence[dict]):
    """mR over (gamma x beta) as a heatmap, the fixed-margin rows as bars beside it; (Figure, CSV columns)."""
    dyn = [r for r in rows if r["loss"] == "dynamic"]
    fixed = sorted((r for r in rows if r["loss"] == "fixed"), key=lambda r: r["alpha"])
    gammas = sorted({r["gamma"] for r in dyn} | set(GAMMAS))
    betas = sorted({r["beta"] for r in dyn} | set(BETAS))
    grid = np.full((len(gammas), len(betas)), np.nan)
    for r in dyn:
        grid[gammas.index(r["gamma"]), betas.index(r["beta"])] = r["test_mR_mean"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(8.5, 3.4), gridspec_kw={"width_ratios": [1.3, 1]})
    vals = [v for v in [*grid[~np.isnan(grid)], *(r["test_mR_mean"] for r in fixed)]]
    lo, hi = (min(vals), max(vals)) if vals else (0, 1)
    im = ax.imshow(grid, cmap="viridis", vmin=lo, vmax=hi, origin="lower")
    for i in range(len(gammas)):
        for j in range(len(betas)):
            ax.text(j, i, "–" if np.isnan(grid[i, j]) else f"{grid[i, j]:.1f}", ha="center", va="center",
                    color="w", fontsize=9)
    ax.set_xticks(range(len(betas)), [f"{b:g}" for b in betas])
    ax.set_yticks(range(len(gammas)), [f"{g:g}" for g in gammas])
    ax.set(xlabel="β", ylabel="γ", title="dynamic margin: test mR")
    fig.colorbar(im, ax=ax, shrink=0.85)
    bx.bar([f"α = {r['alpha']:g}" for r in fixed], [r["test_mR_mean"] for r in fixed],
           yerr=[r["test_mR_std"] for r in fixed], color="0.6")
    bx.set(ylabel="test mR", title="fixed margin", ylim=(0, hi * 1.1 if vals else 1))
    fig.tight_layout()
    data = {"loss": [r["loss"] for r in [*dyn, *fixed]], "alpha": [r["alpha"] for r in [*dyn, *fixed]],
            "gamma": [r["gamma"] for r in [*dyn, *fixed]], "beta": [r["beta"] for r in [*dyn, *fixed]],
            "test_mR_mean": [r["test_mR_mean"] for r in [*dyn, *fixed]],
            "test_mR_std": [r["test_mR_std"] for r in [*dyn, *fixed]],
            "seeds": [r["seeds"] for r in [*dyn, *fixed]], "model": [r["model"] for r in [*dyn, *fixed]]}
    return fig, data


# ------------------------------------------------------------------------------ CLI
def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m rsnb figures [--budget auto|cpu|gpu|tiny] [--out DIR] [--figures-dir DIR] [--only ...]``."""
    import argparse

    args = list(sys.argv[2:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="rsnb figures", description="Regenerate the papers' tables and figures "
                                "(AMFMN Tables II, IV, V, VI, MSA vs AMFMN, figures) on the synthetic data.")
    p.add_argument("--budget", default="auto", choices=["auto", *sorted(study.BUDGETS)],
                   help="auto: gpu with CUDA, else cpu (tiny with RSNB_QUICK=1)")
    p.add_argument("--out", help="run folder (default runs/figures for cpu, runs/figures-<budget> otherwise)")
    p.add_argument("--figures-dir", help="tables and figures (default figures/; <out>/figures for quick/tiny)")
    p.add_argument("--only", nargs="+", choices=PARTS, help="run only these parts")
    p.add_argument("--jobs", type=int, default=0,
                   help="runs trained in parallel (one thread each); 0: 2 on a CPU with >= 2 cores, 1 with CUDA")
    p.add_argument("--device", default="auto")
    p.add_argument("overrides", nargs="*", help="section.key=value applied to every run after the budget "
                   "(e.g. data.path=... for a real dataset)")
    a = p.parse_args(args)
    jobs = a.jobs or (1 if torch.cuda.is_available() or (os.cpu_count() or 1) < 2 else 2)
    try:
        job = Job(a.budget, a.out, a.figures_dir, a.overrides, a.only, jobs, a.device)
    except ValueError as e:
        p.error(str(e))
    job.command = "python -m rsnb figures " + " ".join(shlex.quote(x) for x in args)
    print(f"[figures] budget {job.budget}, {len(job.runs)} distinct runs in {job.out}, {jobs} in parallel; "
          f"figures and tables -> {job.fig_dir}")
    job.run()
    print(f"[figures] done in {job.times['total'] / 60:.1f} min: " +
          ", ".join(f"{k} {v:.0f} s" for k, v in job.times.items() if k != "total"))
    print(json.dumps({"summary": str(job.path("summary", "md"))}))
    return 0
