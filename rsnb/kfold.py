"""The paper's k-fold protocol: one run per validation fold, test metrics averaged over the folds.

The AMFMN paper reports RSITMD and RSICD numbers averaged over folds of a validation carve-out from
the training images (the released code re-splits train 80/20 five times, unseeded, and averages the
five best checkpoints on the fixed test split). rsnb's folds are fixed and disjoint
(:func:`rsnb.evaluate.kfold_splits` with ``data.seed``): the training and validation images together
are cut into K parts, fold f validates on part f and trains on the rest; the test split is never touched.

A k-fold run folder holds ``kfold.json`` (K, the seed, the fold folders) and one ordinary run folder
per fold, ``fold_0`` .. ``fold_{K-1}``, each with its own ``config.yaml`` (``data.kfold: K``,
``data.fold: f``), so a fold can be resumed, evaluated or inspected alone::

    python -m rsnb train --config rsitmd --data $RSNB_DATA --out runs/rsitmd5 --kfold 5
    python -m rsnb train --config rsitmd --data $RSNB_DATA --out runs/rsitmd5 --kfold 5 --resume
    python -m rsnb evaluate --run runs/rsitmd5          # mean ± std over the folds, per metric
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from rsnb import checkpoint as ckpt
from rsnb import experiment as ex
from rsnb.errors import ConfigError, RunFolderError
from rsnb.evaluate import format_table, summarise_folds

KFOLD_FILE = "kfold.json"


def fold_dir(run_dir: str | Path, fold: int) -> Path:
    """Folder of fold ``fold`` inside a k-fold run folder."""
    return Path(run_dir) / f"fold_{fold}"


def is_kfold_run(run_dir: str | Path) -> bool:
    """True when ``run_dir`` is a k-fold run folder (it holds ``kfold.json``)."""
    return (Path(run_dir) / KFOLD_FILE).is_file()


def fold_config(cfg: dict, k: int, fold: int) -> dict:
    """Copy of a run config that trains fold ``fold`` of ``k`` (``data.kfold``, ``data.fold``)."""
    out = copy.deepcopy(cfg)
    out["data"]["kfold"], out["data"]["fold"] = int(k), int(fold)
    return out


def _epochs_done(run: Path) -> int:
    """Epochs stored in a run folder's ``last`` checkpoint (0 when there is none)."""
    path = ckpt.checkpoint_paths(run, "last")["json"]
    if not path.is_file():
        return 0
    try:
        return int(json.loads(path.read_text())["state"]["epoch"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise ckpt.CheckpointError(f"{path}: unreadable checkpoint (no state.epoch); delete the fold folder to retrain it") from None


def train_kfold(cfg: dict, out_dir: str | Path, k: int, resume: bool = False, device="auto",
                progress: bool = True) -> list[dict]:
    """Train one run per fold into ``out_dir/fold_f``; with ``resume`` finished folds are skipped
    and an interrupted fold continues from its ``last`` checkpoint.

    Returns:
        One dict per fold: ``{"fold", "run_dir", "history", "skipped"}``.
    """
    if k < 2:
        raise ConfigError(f"--kfold {k}: k-fold needs at least 2 folds")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = out / KFOLD_FILE
    if meta.is_file():
        old = json.loads(meta.read_text())
        if int(old.get("k", k)) != k:
            raise RunFolderError(f"{meta}: this k-fold run has k={old['k']}, not {k}; use another --out")
        if not resume:
            raise RunFolderError(f"{out}: a k-fold run is already here; pass --resume to continue it or use another --out")
    epochs = int(cfg["train"].get("epochs", 1))
    folds = [fold_dir(out, f).name for f in range(k)]
    meta.write_text(json.dumps({"k": k, "seed": int(cfg["data"].get("seed", 0)), "folds": folds}, indent=1))
    results = []
    for f in range(k):
        run = fold_dir(out, f)
        done = _epochs_done(run) if resume else 0
        if done >= epochs:
            hist_file = run / "history.json"
            history = json.loads(hist_file.read_text()) if hist_file.is_file() else []
            results.append({"fold": f, "run_dir": run, "history": history, "skipped": True})
            continue
        if progress:
            print(f"fold {f + 1}/{k} -> {run}" + (f" (resuming after epoch {done})" if done else ""))
        res = ex.train_run(fold_config(cfg, k, f), run, resume=done > 0, device=device, progress=progress)
        results.append({"fold": f, "run_dir": run, "history": res["history"], "skipped": False})
    return results


def evaluate_kfold(run_dir: str | Path, data: str | Path | None = None, split: str = "test", device="auto",
                   tag: str = "best") -> dict:
    """Evaluate every fold of a k-fold run on ``split``; write and return the per-fold metrics and
    their mean and sample standard deviation (``metrics_<split>.json`` in the k-fold folder).

    Returns:
        ``{"k", "folds": [metrics per fold], "mean": {key: value}, "std": {key: value}}``.
    """
    run = Path(run_dir)
    meta = json.loads((run / KFOLD_FILE).read_text())
    rows = []
    for name in meta["folds"]:
        if not (run / name / "config.yaml").is_file():
            raise RunFolderError(f"{run / name}: fold not trained yet; run `python -m rsnb train ... "
                                    f"--kfold {meta['k']} --resume --out {run}`")
        rows.append(ex.evaluate_run(run / name, data=data, split=split, device=device, tag=tag))
    summary = summarise_folds(rows)
    out = {"k": meta["k"], "split": split, "folds": rows,
           "mean": {key: v[0] for key, v in summary.items()}, "std": {key: v[1] for key, v in summary.items()}}
    (run / f"metrics_{split}.json").write_text(json.dumps(out, indent=2))
    return out


def format_kfold(result: dict, name: str = "rsnb") -> str:
    """R@K table of a k-fold evaluation: one row per fold, then ``mean±std``."""
    rows = {f"fold {f}": m for f, m in enumerate(result["folds"])}
    rows[f"{name} (mean±std, {result['k']} folds)"] = {key: (result["mean"][key], result["std"][key])
                                                       for key in result["mean"]}
    return format_table(rows)
