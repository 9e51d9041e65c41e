"""Command line: ``python -m rsnb {synth,train,evaluate,demo,config,index,search,audit,study,figures}``.

Examples::

    python -m rsnb synth --out data/synth --images 2000 --size 256 --seed 0
    python -m rsnb train --config rsitmd --data /data/rsitmd_precomp --out runs/rsitmd
    python -m rsnb train --config my_settings.yaml --out runs/s train.epochs=3 model.preset=m1
    python -m rsnb evaluate --run runs/rsitmd --split test
    python -m rsnb config demo train.epochs=3          # print the resolved, validated config
    python -m rsnb train --config rsitmd --data /data/rsitmd_precomp --out runs/rsitmd5 --kfold 5
    python -m rsnb evaluate --run runs/rsitmd5     # mean ± std over the 5 folds
    python -m rsnb demo --out runs/demo
    python -m rsnb index --run runs/demo --images my_images/ --out runs/demo_index
    python -m rsnb search --run runs/demo --index runs/demo_index "three white storage tanks" -k 8 --gallery top.png
    python -m rsnb audit --data /data/rsitmd --against /data/rsicd --out audit/rsitmd
    python -m rsnb study ablation --budget cpu --seeds 0 1 2 --out runs/study   # multi-seed Table VI study
    python -m rsnb figures --budget cpu --out runs/figures   # the papers' tables and figures (make figures)

Expected errors (bad data, config, checkpoint or run folder: :class:`rsnb.errors.RsnbError`, missing
files) print one ``rsnb: error: ...`` line and exit with status 2; ``--debug`` or ``RSNB_DEBUG=1``
shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def _train(a) -> int:
    from rsnb import experiment as ex

    cfg = ex.load_config(a.config, a.overrides)
    if a.data:
        cfg["data"]["path"] = a.data
    if a.image_dir:
        cfg["data"]["image_dir"] = a.image_dir
    out = Path(a.out or f"runs/{cfg['name']}")
    if a.kfold:
        from rsnb import kfold

        folds = kfold.train_kfold(cfg, out, a.kfold, resume=a.resume, device=a.device)
        if int(os.environ.get("RANK", "0")) == 0:
            for r in folds:
                best = max((h.get("val_mR", -1) for h in r["history"]), default=-1)
                state = "already trained" if r["skipped"] else f"trained {len(r['history'])} epochs"
                print(f"fold {r['fold']}: {state} -> {r['run_dir']} (best val mR {best:.2f})")
        return 0
    try:
        res = ex.train_run(cfg, out, resume=a.resume, device=a.device, overwrite=a.overwrite)
    except KeyboardInterrupt:
        if (out / "last.json").is_file():
            print(f"rsnb: interrupted; {out} keeps its last complete checkpoint, continue with --resume",
                  file=sys.stderr)
            return 130
        raise
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    best = max((r.get("val_mR", -1) for r in res["history"]), default=-1)
    print(f"trained {len(res['history'])} epochs -> {out} (best val mR {best:.2f})")
    return 0


def _evaluate(a) -> int:
    from rsnb import experiment as ex
    from rsnb import kfold

    if kfold.is_kfold_run(a.run):
        res = kfold.evaluate_kfold(a.run, data=a.data, split=a.split, device=a.device, tag=a.tag)
        print(kfold.format_kfold(res, Path(a.run).name))
        print(f"({res['k']} folds, {res['folds'][0]['n_images']} images, {res['folds'][0]['n_captions']} captions "
              f"each; written to {a.run}/metrics_{a.split}.json)")
        return 0
    notes: list[str] = []
    metrics = ex.evaluate_run(a.run, data=a.data, split=a.split, device=a.device, tag=a.tag, notes=notes)
    print("\n".join(notes))
    print(ex.print_metrics(metrics, Path(a.run).name))
    print(f"({metrics['n_images']} images, {metrics['n_captions']} captions; written to {a.run}/metrics_{a.split}.json)")
    return 0


def _demo(a) -> int:
    """Synthetic data -> train AMFMN -> evaluate on the test split -> table and figures."""
    import matplotlib

    matplotlib.use("Agg")
    from rsnb import experiment as ex
    from rsnb import viz
    from rsnb.config import mode_banner
    from rsnb.device import resolve_device
    from rsnb.evaluate import chance_metrics

    t0 = time.perf_counter()
    cfg = ex.load_config(a.config, a.overrides)
    print(mode_banner(cfg, resolve_device(a.device)))
    out = Path(a.out)
    res = ex.train_run(cfg, out, device=a.device, overwrite=out.is_dir() and any(out.iterdir()))
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


def _config(a) -> int:
    import yaml

    from rsnb import experiment as ex
    from rsnb.config import is_quick

    cfg = ex.load_config(a.preset, a.overrides)
    print(f"# {a.preset} resolved ({'quick' if is_quick() else 'full'} mode), validated", flush=True)
    print(yaml.safe_dump(cfg, sort_keys=False), end="")
    return 0


# ---------------------------------------------------------------------------------------- index / search
def _index(a) -> int:
    import rsnb

    r = rsnb.load(a.run, tag=a.tag, device=a.device)
    index = r.index(a.images, batch_size=a.batch_size, progress=True)
    index.save(a.out)
    dims = ", ".join(f"{k} {tuple(v.shape[1:])}" for k, v in index.feats.items())
    print(f"indexed {len(index)} images -> {a.out} ({dims}; run {a.run}, checkpoint {a.tag})")
    return 0


def _caption_corpus(r, path) -> list[str]:
    if path:
        lines = [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines()]
        return [ln for ln in lines if ln]
    from rsnb import experiment as ex

    cfg = {**r.cfg, "data": {**r.cfg["data"], "check_images": False}}
    return ex.prepare_corpus(cfg, progress=False).captions  # the run's own dataset, every split


def _search(a) -> int:
    import rsnb
    from rsnb.errors import RsnbError

    if (a.query is None) == (a.image is None):
        raise RsnbError("search: give a text query or --image PATH (one of the two)")
    if a.image is None and a.index is None:
        raise RsnbError("search: a text query needs --index INDEX (built with `rsnb index`)")
    r = rsnb.load(a.run, tag=a.tag, device=a.device)
    if a.image is not None:
        captions = _caption_corpus(r, a.captions)
        r.index_texts(captions)
        rows = r.search(Path(a.image), k=a.k)
        print(f"{a.image}: nearest of {len(captions)} captions")
        for i, (text, score) in enumerate(rows, 1):
            print(f"{i:3d}  {score:8.4f}  {text}")
        return 0
    r.use_index(a.index)
    rows = r.search(a.query, k=a.k)
    print(f"“{a.query}”: top {len(rows)} of {len(r.gallery)} images")
    for i, (path, score) in enumerate(rows, 1):
        print(f"{i:3d}  {score:8.4f}  {path}")
    if a.gallery:
        import matplotlib

        matplotlib.use("Agg")
        from rsnb.api import gallery_figure

        Path(a.gallery).parent.mkdir(parents=True, exist_ok=True)
        gallery_figure(a.query, rows).savefig(a.gallery, dpi=110)
        print(f"gallery: {a.gallery}")
    return 0


# ---------------------------------------------------------------------------------------- parser
_DEVICE_HELP = "auto (CUDA when present, default), cpu, cuda, cuda:1 ..."
_OVERRIDES_HELP = "config overrides section.key=value, e.g. train.epochs=5 model.vga=soft (see `rsnb config`)"


def build_parser() -> argparse.ArgumentParser:
    """The ``rsnb`` argument parser (every option carries a help text)."""
    from rsnb import __version__

    p = argparse.ArgumentParser(prog="rsnb", description="Remote-sensing image-text retrieval (AMFMN, MSA).")
    p.add_argument("--version", action="version", version=f"rsnb {__version__}",
                   help="print the rsnb version and exit")
    p.add_argument("--debug", action="store_true",
                   help="show the full traceback of an error (also RSNB_DEBUG=1; accepted after the command too)")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    sub.add_parser("synth", help="write the synthetic dataset (see `rsnb synth --help`)", add_help=False)
    sub.add_parser("study", help="multi-seed ablation study with significance tests (see `rsnb study --help`)",
                   add_help=False)
    sub.add_parser("figures", help="the papers' tables and figures, every run via the study "
                   "(see `rsnb figures --help`)", add_help=False)

    t = sub.add_parser("train", help="train a model from a YAML config or preset")
    t.add_argument("--config", default="synthetic",
                   help="YAML file or preset name (demo, synthetic, rsitmd, rsicd, ucm, sydney, rsitmd_official; "
                        "default synthetic)")
    t.add_argument("--data", help="dataset json / folder (overrides data.path; default: synthetic data)")
    t.add_argument("--image-dir", help="folder of the images when not beside the json (overrides data.image_dir)")
    t.add_argument("--out", help="run folder (default runs/<config name>)")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint (k-fold: finished folds are skipped)")
    t.add_argument("--kfold", type=int, metavar="K",
                   help="the paper's k-fold protocol: one run per validation fold in <out>/fold_0 .. fold_K-1")
    t.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    t.add_argument("--device", default="auto", help=_DEVICE_HELP)
    t.add_argument("overrides", nargs="*", help=_OVERRIDES_HELP)
    t.set_defaults(fn=_train)

    e = sub.add_parser("evaluate", help="evaluate a run folder on a split (R@K table + metrics_<split>.json)")
    e.add_argument("--run", required=True, help="run folder written by `rsnb train` (a k-fold folder: per-fold rows and mean ± std)")
    e.add_argument("--data", help="dataset path (default: the run's own)")
    e.add_argument("--split", default="test", choices=("train", "val", "test"), help="split to evaluate (default test)")
    e.add_argument("--tag", default="best", choices=("best", "last"),
                   help="checkpoint: best (by validation, default) or last")
    e.add_argument("--device", default="auto", help=_DEVICE_HELP)
    e.set_defaults(fn=_evaluate)

    d = sub.add_parser("demo", help="synthetic data -> train AMFMN -> evaluate (the `make demo` job)")
    d.add_argument("--out", default="runs/demo", help="run folder (default runs/demo; replaced if present)")
    d.add_argument("--config", default="demo", help="YAML file or preset name (default demo)")
    d.add_argument("--device", default="auto", help=_DEVICE_HELP)
    d.add_argument("overrides", nargs="*", help=_OVERRIDES_HELP)
    d.set_defaults(fn=_demo)

    c = sub.add_parser("config", help="print the resolved, validated config of a preset or file")
    c.add_argument("preset", help="preset name or YAML file")
    c.add_argument("overrides", nargs="*", help=_OVERRIDES_HELP)
    c.set_defaults(fn=_config)

    ix = sub.add_parser("index", help="encode a folder of images with a trained run (for `rsnb search`)")
    ix.add_argument("--run", required=True, help="run folder written by `rsnb train`")
    ix.add_argument("--images", required=True, help="folder of images (searched recursively)")
    ix.add_argument("--out", required=True, help="index folder to write (embeddings.safetensors + index.json)")
    ix.add_argument("--tag", default="best", choices=("best", "last"), help="checkpoint (default best)")
    ix.add_argument("--batch-size", type=int, default=32, help="images encoded at once (default 32)")
    ix.add_argument("--device", default="auto", help=_DEVICE_HELP)
    ix.set_defaults(fn=_index)

    se = sub.add_parser("search", help="text -> images over an index, or --image PATH -> nearest captions")
    se.add_argument("query", nargs="?", help='free-text query, e.g. "three white storage tanks"')
    se.add_argument("--run", required=True, help="run folder the index was built with")
    se.add_argument("--index", help="index folder written by `rsnb index` (text queries)")
    se.add_argument("--image", help="image file: list the captions nearest to it instead")
    se.add_argument("--captions", help="with --image: text file, one caption per line (default: the run's dataset)")
    se.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    se.add_argument("--gallery", help="write the top-k images as a PNG grid to this file")
    se.add_argument("--tag", default="best", choices=("best", "last"), help="checkpoint (default best)")
    se.add_argument("--device", default="auto", help=_DEVICE_HELP)
    se.set_defaults(fn=_search)

    from rsnb.audit.cli import add_parser as add_audit_parser  # `rsnb audit`: rsnb/audit/cli.py

    add_audit_parser(sub)
    return p


def _debug(argv) -> bool:
    return "--debug" in argv or os.environ.get("RSNB_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m rsnb`` and the ``rsnb`` console script.

    Returns:
        0 on success, 2 for an expected error (one ``rsnb: error:`` line on stderr), 130 on Ctrl-C.
    """
    from rsnb.errors import RsnbError

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = _debug(argv)
    argv = [x for x in argv if x != "--debug"]  # accepted anywhere on the line
    try:
        if argv and argv[0] == "synth":
            return _synth(argv[1:])
        if argv and argv[0] == "study":  # multi-seed studies: rsnb/study.py owns its arguments
            from rsnb.study import main as study_main

            return study_main(argv[1:])
        if argv and argv[0] == "figures":  # paper tables and figures: rsnb/reproduce.py owns its arguments
            from rsnb.reproduce import main as figures_main

            return figures_main(argv[1:])
        a = build_parser().parse_args(argv)
        return a.fn(a)
    except (RsnbError, FileNotFoundError, FloatingPointError) as err:
        if debug:
            raise
        msg = " ".join(str(err).split()) or type(err).__name__
        print(f"rsnb: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        print("rsnb: interrupted", file=sys.stderr)
        return 130
