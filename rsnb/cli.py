"""Command line: ``python -m rsnb {synth,train,evaluate,demo}``.

Examples::

    python -m rsnb synth --out data/synth --images 2000 --size 256 --seed 0
    python -m rsnb train --config configs/rsitmd.yaml --data /data/rsitmd_precomp --out runs/rsitmd
    python -m rsnb train --config synthetic --out runs/s train.epochs=3 model.preset=m1
    python -m rsnb evaluate --run runs/rsitmd --split test
    python -m rsnb demo --out runs/demo
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def _train(a) -> int:
    from rsnb import experiment as ex

    cfg = ex.load_config(a.config, a.overrides)
    if a.data:
        cfg["data"]["path"] = a.data
    if a.image_dir:
        cfg["data"]["image_dir"] = a.image_dir
    out = Path(a.out or f"runs/{cfg['name']}")
    res = ex.train_run(cfg, out, resume=a.resume, device=a.device)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    best = max((r.get("val_mR", -1) for r in res["history"]), default=-1)
    print(f"trained {len(res['history'])} epochs -> {out} (best val mR {best:.2f})")
    return 0


def _evaluate(a) -> int:
    from rsnb import experiment as ex

    metrics = ex.evaluate_run(a.run, data=a.data, split=a.split, device=a.device, tag=a.tag)
    print(ex.print_metrics(metrics, Path(a.run).name))
    print(f"({metrics['n_images']} images, {metrics['n_captions']} captions; written to {a.run}/metrics_{a.split}.json)")
    return 0


def chance_metrics(n_images: int, caption_to_image, trials: int = 20, seed: int = 0) -> dict:
    """Mean metrics of random score matrices: the level a model must beat."""
    from rsnb.evaluate import retrieval_metrics

    rng = np.random.default_rng(seed)
    rows = [retrieval_metrics(rng.random((n_images, len(caption_to_image))), caption_to_image) for _ in range(trials)]
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def _demo(a) -> int:
    """Synthetic data -> train AMFMN -> evaluate on the test split -> table and figures."""
    import matplotlib

    matplotlib.use("Agg")
    from rsnb import experiment as ex
    from rsnb import viz
    from rsnb.config import mode_banner

    print(mode_banner())
    t0 = time.perf_counter()
    cfg = ex.load_config(a.config, a.overrides)
    out = Path(a.out)
    res = ex.train_run(cfg, out, device=a.device)
    metrics = ex.evaluate_run(out, split="test", device=a.device)
    test = res["corpus"].split("test")
    chance = chance_metrics(len(test), test.caption_to_image)
    print()
    print(f"AMFMN on the synthetic test split ({metrics['n_images']} images, {metrics['n_captions']} captions):")
    print(ex.format_table({"AMFMN (rsnb)": metrics, "chance": chance}))
    fig = viz.plot_history(res["history"], keys=("loss", "lr", "val_mR"))
    path = viz.save_figure(fig, "demo_training_curves",
                           {k: [r.get(k, float("nan")) for r in res["history"]] for k in ("epoch", "loss", "lr", "val_mR")})
    summary = {"test": metrics, "chance": chance, "minutes": (time.perf_counter() - t0) / 60}
    (out / "demo_summary.json").write_text(json.dumps(summary, indent=2))
    print(f"\nfigure: {path}\nrun folder: {out}  (total {summary['minutes']:.1f} min)")
    return 0


def _synth(argv) -> int:
    from rsnb.data.synthetic import main

    return main(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m rsnb`` and the ``rsnb`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "synth":
        return _synth(argv[1:])
    p = argparse.ArgumentParser(prog="rsnb", description="Remote-sensing image-text retrieval (AMFMN).")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("synth", help="write the synthetic dataset (see `rsnb synth --help`)")

    t = sub.add_parser("train", help="train a model from a YAML config")
    t.add_argument("--config", default="synthetic", help="YAML file or preset name in configs/ (default synthetic)")
    t.add_argument("--data", help="dataset json / folder (overrides data.path; default: synthetic data)")
    t.add_argument("--image-dir", help="folder of the images when not beside the json")
    t.add_argument("--out", help="run folder (default runs/<name>)")
    t.add_argument("--resume", action="store_true", help="continue from <out>/last")
    t.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1 ...")
    t.add_argument("overrides", nargs="*", help="section.key=value, e.g. train.epochs=5 model.vga=soft")
    t.set_defaults(fn=_train)

    e = sub.add_parser("evaluate", help="evaluate a run folder on a split")
    e.add_argument("--run", required=True, help="run folder written by `rsnb train`")
    e.add_argument("--data", help="dataset path (default: the run's own)")
    e.add_argument("--split", default="test", choices=("train", "val", "test"))
    e.add_argument("--tag", default="best", help="checkpoint tag: best or last")
    e.add_argument("--device", default="auto")
    e.set_defaults(fn=_evaluate)

    d = sub.add_parser("demo", help="synthetic data -> train AMFMN -> evaluate (the `make demo` job)")
    d.add_argument("--out", default="runs/demo")
    d.add_argument("--config", default="demo")
    d.add_argument("--device", default="auto")
    d.add_argument("overrides", nargs="*")
    d.set_defaults(fn=_demo)

    a = p.parse_args(argv)
    return a.fn(a)
