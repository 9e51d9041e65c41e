"""Controlled ablation study: Table VI rows trained under one budget, several seeds, significance.

``python -m rsnb study ablation`` trains every requested model (default m1, m5, m6, m9 and the paper
preset) for every seed under the SAME budget (data, image size, epochs, batch, learning rate), evaluates
each run's best-validation checkpoint on the test split and keeps the per-query ranks, then reports:

* mean ± std (over seeds) of test mR and the R@K, and the mean best validation mR;
* against the baseline (m1): Welch's t-test over the per-seed test mR, and a paired bootstrap over
  test images (each image resampled with its five captions, both models scored on the same resample,
  ranks averaged over seeds first) giving a 95% interval and a two-sided p for the mR difference;
* per scale band (synthetic data only): text-to-image R@K for captions that name only small targets,
  small + larger ones, or only medium/large ones (:func:`rsnb.analysis.caption_scale_groups`).

A model is a spec ``NAME`` (a preset: ``m1``..``m9``, ``paper``, ``official``, or ``msa``: the MSA paper model
of the ``msa_synthetic`` config, bi-GRU text encoder, under the same budget) or
``NAME:key=value,key=value`` (the preset plus config overrides, e.g. ``m6:model.loss=fixed`` or
``m1:train.lr=1e-3``). Two specs that resolve to the same config (``paper`` and ``m6``) share one
run. Runs live in ``<out>/<spec>/seed<k>`` and are reused when their config matches, so an
interrupted study resumes where it stopped.

Budgets (:data:`BUDGETS`) are override lists on the ``demo`` config: ``cpu`` is the reduced budget the
committed table was measured with on a 2-core CPU; ``gpu`` is the larger one for a GPU.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rsnb.config import FULL_RUN_OVERRIDES
from rsnb.study_stats import (  # noqa: F401  (re-exported: rsnb.study is their historical home)
    BASELINE,
    RECALL_KS,
    band_markdown,
    band_rows,
    bootstrap_mr_difference,
    markdown_table,
    summary_rows,
    welch,
    write_csv,
)

#: override lists on configs/demo.yaml; every model of a study gets the same one
BUDGETS: dict[str, list[str]] = {
    # 2-core CPU shared with other jobs (about 2 CPU-minutes per run): 150 train / 50 val / 200 test scenes
    # rendered at 128 px, trained at 64 px for 3 epochs of 24 steps
    "cpu": ["image_size=64", "data.synthetic.images=400", "data.synthetic.size=128",
            "data.synthetic.splits=[0.375,0.125,0.5]", "train.epochs=3", "train.batch_size=32", "train.lr=5e-4",
            "train.lr_step=4", "train.quiet=true"],
    # one GPU (minutes per run): 2,000 scenes at 256 px, 1,400 / 200 / 400, ImageNet ResNet-18, batch 128 and
    # the notebooks' full-mode schedule (30 epochs at lr 2e-4): notebooks 04/05 in full mode train these
    # runs (rsnb.analysis.variant_run), so they and `make figures` on a GPU share one run folder
    "gpu": ["image_size=256", "data.synthetic.images=2000", "data.synthetic.size=256",
            "data.synthetic.splits=[0.7,0.1,0.2]", "model.pretrained=true", "train.batch_size=128",
            *FULL_RUN_OVERRIDES, "train.num_workers=4", "train.quiet=true"],
    # tests only: a handful of steps
    "tiny": ["image_size=64", "data.synthetic.images=30", "data.synthetic.size=64", "data.min_count=1",
             "data.synthetic.splits=[0.5,0.2,0.3]", "train.epochs=1", "train.batch_size=8", "train.quiet=true"],
}
DEFAULT_MODELS = ("m1", "m5", "m6", "m9", "paper")


# ------------------------------------------------------------------------------ specs and configs
def parse_spec(spec: str) -> tuple[str, list[str]]:
    """``"m6:model.loss=fixed,train.lr=1e-3"`` -> ``("m6", ["model.loss=fixed", "train.lr=1e-3"])``."""
    name, _, rest = spec.partition(":")
    if not re.fullmatch(r"paper|official|m[1-9]|msa", name):
        raise ValueError(f"model spec {spec!r}: must start with a preset (paper, official, m1..m9, msa)")
    overrides = [o.strip() for o in re.split(r",(?=[\w.]+=)", rest) if o.strip()] if rest else []
    for o in overrides:
        if "=" not in o:
            raise ValueError(f"model spec {spec!r}: override {o!r} must look like section.key=value")
    return name, overrides


def spec_dir(spec: str) -> str:
    """Folder name of a spec: ``m6:model.loss=fixed`` -> ``m6__model.loss-fixed``."""
    return re.sub(r"[^\w.+-]", "-", spec.replace(":", "__").replace(",", "__"))


def run_config(spec: str, seed: int, budget: str | Sequence[str] = "cpu", extra: Sequence[str] = (),
               base: str = "demo") -> dict:
    """The resolved run config of one (model spec, seed) under a budget.

    Args:
        spec: model spec (see the module docstring).
        seed: ``train.seed``; it sets the initial weights and the batch order.
        budget: a :data:`BUDGETS` name or an explicit override list.
        extra: overrides applied to every model after the budget (e.g. ``data.synthetic.seed=1``).
        base: config preset or file the budget applies to.
    """
    from rsnb import experiment as ex

    name, overrides = parse_spec(spec)
    if isinstance(budget, str) and budget not in BUDGETS:
        raise ValueError(f"budget {budget!r}: expected one of {sorted(BUDGETS)}")
    budget_list = BUDGETS[budget] if isinstance(budget, str) else list(budget)
    if name == "msa":  # MSA's own model and optimiser (msa_synthetic), the AMFMN runs' budget on top
        base, name = "msa_synthetic", "paper"
    return ex.load_config(base, [*budget_list, *extra, f"model.preset={name}", *overrides, f"train.seed={seed}"],
                          quick=False)


def model_key(cfg: dict) -> str:
    """Identity of what a config trains (resolved model config + everything else); equal keys share a run."""
    from rsnb import experiment as ex

    rest = {k: v for k, v in cfg.items() if k != "model"}
    mcfg = ex.model_config(cfg, vocab_size=2).to_dict()
    if mcfg.get("text_input", "both") != "both" and not mcfg["keep_unused_modules"]:
        mcfg.pop("use_vgmf")  # no VGMF module is built: paper and m6 are the same model
    return json.dumps({"model": mcfg, "rest": rest}, sort_keys=True, default=str)


# ------------------------------------------------------------------------------ running
def sidecar_path(run_dir: Path) -> Path:
    """``<out>/<spec>/seed<k>.study.json``: the config as the study asked for it (``train_run`` records a
    resolved one in the run folder), kept beside the run folder so the folder itself is a plain run."""
    return run_dir.with_name(run_dir.name + ".study.json")


def run_status(cfg: dict, run_dir: Path) -> str:
    """``"complete"``, ``"partial"`` (resumable) or ``"absent"`` for a run of exactly ``cfg``."""
    files = [sidecar_path(run_dir), run_dir / "last.json", run_dir / "history.json"]
    if not all(f.is_file() for f in files) or json.loads(files[0].read_text()) != json.loads(json.dumps(cfg)):
        return "absent"
    done = len(json.loads(files[2].read_text()))
    return "complete" if done >= int(cfg["train"]["epochs"]) else "partial"


def run_one(cfg: dict, run_dir: Path, device="auto") -> dict:
    """Train (or reuse) one run, evaluate its best checkpoint on test, keep per-query ranks.

    A run folder trained with another config is replaced. Writes ``metrics_test.json`` and
    ``ranks_test.npz`` (``i2t`` (N_images,), ``t2i`` (N_captions,) 0-based ranks) into ``run_dir``.

    Returns:
        ``{"test": metrics, "val_mR": best validation mR, "ranks": {"i2t", "t2i"}}``.
    """
    from rsnb import experiment as ex
    from rsnb.evaluate import evaluate, retrieval_metrics

    run_dir = Path(run_dir)
    status = run_status(cfg, run_dir)
    ranks_file = run_dir / "ranks_test.npz"
    if status != "complete":
        stale = status == "absent" and run_dir.is_dir() and any(run_dir.iterdir())
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        sidecar_path(run_dir).write_text(json.dumps(cfg, indent=1, sort_keys=True))
        ex.train_run(cfg, run_dir, resume=status == "partial", overwrite=stale, device=device, progress=False)
        ranks_file.unlink(missing_ok=True)
    history = json.loads((run_dir / "history.json").read_text())
    val = max((r.get("val_mR", float("nan")) for r in history), default=float("nan"))
    if not ranks_file.is_file():
        model, vocab, _ = ex.load_run(run_dir, "best")
        test = ex.prepare_corpus(cfg, progress=False).split("test")
        metrics, sims = evaluate(model, test, vocab, device=device, batch_size=int(cfg["eval"]["batch_size"]),
                                 image_size=int(cfg["image_size"]), return_sims=True)
        _, ranks = retrieval_metrics(sims, test.caption_to_image, return_ranks=True)
        np.savez(ranks_file, i2t=ranks["i2t"], t2i=ranks["t2i"])
        (run_dir / "metrics_test.json").write_text(json.dumps(metrics, indent=2))
    with np.load(ranks_file) as z:
        ranks = {k: z[k] for k in ("i2t", "t2i")}
    metrics = json.loads((run_dir / "metrics_test.json").read_text())
    return {"test": metrics, "val_mR": float(val), "ranks": ranks}


def run_study(models: Sequence[str] = DEFAULT_MODELS, seeds: Sequence[int] = (0, 1, 2), out="runs/study",
              budget: str | Sequence[str] = "cpu", extra: Sequence[str] = (), device="auto",
              log=print) -> dict:
    """Train and evaluate every (model, seed); return ``{spec: [run result per seed]}`` plus the test split.

    Returns:
        ``{"runs": {spec: [run_one result, ...]}, "shared": {spec: spec it shares runs with},
        "test": the test Corpus split, "config": the first run's config}``.
    """
    from rsnb import experiment as ex

    out = Path(out)
    runs, shared, owner = {}, {}, {}
    cfg0 = None
    for spec in models:  # refuse what cannot be ranked before anything trains
        if ex.model_config(run_config(spec, seeds[0], budget, extra), vocab_size=2).to_dict().get("text_input") == "keywords":
            raise ValueError(f"model spec {spec!r}: keyword-only models (m2, m4, m7) answer one keyword query "
                             "per image, not five captions; the study cannot rank them (use `rsnb evaluate`)")
    for spec in models:
        runs[spec] = []
        for seed in seeds:
            cfg = run_config(spec, seed, budget, extra)
            cfg0 = cfg0 or cfg
            key = model_key(cfg)
            if key in owner and owner[key][0] != spec:
                shared[spec] = owner[key][0]
                runs[spec].append(runs[owner[key][0]][seeds.index(seed)])
                continue
            owner[key] = (spec, seed)
            run_dir = out / spec_dir(spec) / f"seed{seed}"
            res = run_one(cfg, run_dir, device)
            log(f"[study] {spec} seed {seed}: test mR {res['test']['mR']:.2f} (best val mR {res['val_mR']:.2f})"
                f"  {run_dir}")
            runs[spec].append(res)
    test = ex.prepare_corpus(cfg0, progress=False).split("test")
    return {"runs": runs, "shared": shared, "test": test, "config": cfg0}


# ------------------------------------------------------------------------------ output
def write_report(result: dict, prefix: str | Path, command: str, budget_desc: str,
                 baseline: str = BASELINE) -> str:
    """Write ``<prefix>.csv``, ``<prefix>_bands.csv`` and ``<prefix>.md``; return the markdown."""
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    rows, bands = summary_rows(result, baseline), band_rows(result, baseline)
    write_csv(rows, prefix.with_name(prefix.name + ".csv"))
    write_csv(bands, prefix.with_name(prefix.name + "_bands.csv"))
    test = result["test"]
    md = (f"# Ablation study: Table VI rows under one budget\n\nCommand: `{command}`\n\n"
          f"Budget: {budget_desc}\n\nTest split: {len(test)} images, {len(test.captions)} captions. "
          f"Welch's t-test over per-seed test mR; paired bootstrap (2,000 resamples of the test images, "
          f"hits averaged over seeds) for the difference to {baseline}.\n\n{markdown_table(rows, baseline)}\n\n"
          f"## Text-to-image recall by the scale of the targets a caption names\n\n{band_markdown(bands, baseline)}\n")
    prefix.with_name(prefix.name + ".md").write_text(md, encoding="utf-8")
    return md


def budget_description(budget: str | Sequence[str], extra: Sequence[str] = ()) -> str:
    """One line stating a budget's overrides (on configs/demo.yaml)."""
    items = BUDGETS[budget] if isinstance(budget, str) else list(budget)
    name = f"`{budget}` = " if isinstance(budget, str) else ""
    return name + "configs/demo.yaml with " + " ".join(f"`{o}`" for o in [*items, *extra])


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m rsnb study ablation [--models ...] [--seeds ...] [--budget cpu|gpu] [--out DIR]``."""
    import argparse
    import shlex
    import sys

    p = argparse.ArgumentParser(prog="rsnb study", description="Controlled studies over several seeds.")
    p.add_argument("what", choices=("ablation", "diagnose"),
                   help="ablation: train and compare the models; diagnose: loss, gradient and gate statistics")
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS),
                   help="model specs: preset[:key=value,...] (default m1 m5 m6 m9 paper)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds (default 0 1 2)")
    p.add_argument("--budget", default="cpu", choices=sorted(BUDGETS), help="shared budget (default cpu)")
    p.add_argument("--baseline", default=BASELINE, help="model spec the others are tested against (default m1)")
    p.add_argument("--out", default="runs/study", help="folder of the runs and the report (default runs/study)")
    p.add_argument("--table", help="also write the report to this prefix (e.g. figures/14_ablation)")
    p.add_argument("--device", default="auto")
    p.add_argument("overrides", nargs="*", help="section.key=value applied to every model after the budget")
    a = p.parse_args(list(sys.argv[2:] if argv is None else argv))
    if a.baseline not in a.models:
        p.error(f"--baseline {a.baseline!r} is not among --models")
    for spec in a.models:
        try:
            parse_spec(spec)
        except ValueError as e:
            p.error(str(e))
    if a.what == "diagnose":
        from rsnb.study_diagnostics import diagnose

        print(diagnose(a.models, a.budget, a.overrides, a.out, seed=a.seeds[0]))
        return 0
    command = "python -m rsnb study " + " ".join(shlex.quote(x) for x in (list(sys.argv[2:]) if argv is None else argv))
    result = run_study(a.models, a.seeds, a.out, a.budget, a.overrides, a.device)
    desc = budget_description(a.budget, a.overrides)
    md = write_report(result, Path(a.out) / "ablation", command, desc, a.baseline)
    if a.table:
        write_report(result, a.table, command, desc, a.baseline)
    print(md)
    return 0
