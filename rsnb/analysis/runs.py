"""The "train once, reuse everywhere" cache of the synthetic runs that notebooks 04, 05 and 08 share:
their configs, run folders (quick and full apart), status and loading."""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import yaml

from rsnb import experiment as ex
from rsnb.config import QUICK_RUN_OVERRIDES, cache_dir, is_quick, load_yaml
from rsnb.device import resolve_device
from rsnb.reproduce_plan import VARIANT_SPECS, default_out, repo_figures_dir


def variant_config(vga: str = "sim", quick: bool | None = None) -> dict:
    """Config of the AMFMN-``vga`` synthetic runs of notebooks 04/05.

    Quick mode: ``rsnb/configs/synthetic.yaml`` with :data:`rsnb.config.QUICK_RUN_OVERRIDES`. Full mode: seed 0
    of ``make figures``' run of that variant on a GPU (:data:`rsnb.study.BUDGETS` ``gpu``: 2,000 scenes at
    256 px, ImageNet ResNet-18, batch 128, :data:`rsnb.config.FULL_RUN_OVERRIDES`: 30 epochs, minutes on
    one GPU), so a notebook and ``make figures`` never train it twice. The paper's 150 epochs are the CLI preset.
    """
    if vga not in VARIANT_SPECS:
        raise ValueError(f"vga {vga!r}: expected one of {sorted(VARIANT_SPECS)}")
    quick = is_quick() if quick is None else quick
    if not quick:
        from rsnb import study

        return study.run_config(VARIANT_SPECS[vga], 0, "gpu")
    return ex.load_config("synthetic", [f"model.vga={vga}", *QUICK_RUN_OVERRIDES], quick=True)


def variant_run_dir(vga: str = "sim", quick: bool | None = None) -> Path:
    """Run folder of :func:`variant_config`: :func:`run_path` in quick mode; in full mode the folder
    ``make figures --budget gpu`` uses for it (``runs/figures-gpu/<spec>/seed0`` in the checkout, or under
    :func:`rsnb.config.cache_dir` when rsnb is installed from a wheel)."""
    from rsnb import study

    if is_quick() if quick is None else quick:
        return run_path(f"amfmn-{vga}", quick=True)
    root = repo_figures_dir().parent
    base = root if (root / "pyproject.toml").is_file() else cache_dir()
    return base / default_out("gpu") / study.spec_dir(VARIANT_SPECS[vga]) / "seed0"


def variant_run(vga: str = "sim", device="auto", retrain: bool = False, quick: bool | None = None) -> dict:
    """The trained AMFMN-``vga`` run of notebooks 04/05 (:func:`cached_run` of :func:`variant_config` in
    :func:`variant_run_dir`). In full mode it is trained through :func:`rsnb.study.run_one`, which also
    writes the test ranks ``make figures`` reads, so either one reuses the other's run."""
    quick = is_quick() if quick is None else quick
    cfg, run_dir = variant_config(vga, quick), variant_run_dir(vga, quick)
    if quick:
        return cached_run(cfg, run_dir, device, retrain=retrain)
    from rsnb import study

    if retrain:
        study.sidecar_path(run_dir).unlink(missing_ok=True)  # the study then replaces the folder
    trained = study.run_status(cfg, run_dir) != "complete"
    study.run_one(cfg, run_dir, device)
    return {**cached_run(cfg, run_dir, device), "trained": trained}


def run_path(name: str, quick: bool | None = None) -> Path:
    """``cache_dir()/runs/<name>-quick`` or ``-full`` (``quick``: None = :func:`rsnb.config.is_quick`):
    quick and full runs never overwrite each other."""
    quick = is_quick() if quick is None else quick
    return cache_dir() / "runs" / f"{name}-{'quick' if quick else 'full'}"


def evaluation_split(cfg: dict, split: str = "test"):
    """A split of a run's dataset before the quick-mode ``max_images`` subsample.

    The subsample keeps every image's split label, so the full test split holds no training image;
    in quick mode it gives 30 test images instead of the handful left in the subsample.
    """
    full = {**cfg, "data": {**cfg["data"], "max_images": None}}
    return ex.prepare_corpus(full, progress=False).split(split)


def _with_init_request(cfg: dict, requested: dict) -> dict:
    """``cfg`` with ``model.pretrained`` as a request: a run folder records what the backbone really
    used (``imagenet``, ``random`` or a path); ``random`` after a failed ImageNet download still
    answers a request for ImageNet weights."""
    out = copy.deepcopy(cfg)
    m, want = out.get("model") or {}, (requested.get("model") or {}).get("pretrained")
    if "pretrained" in m:
        aliases = {True: "imagenet", False: "random", None: "random"}
        value = aliases.get(m["pretrained"], m["pretrained"]) if isinstance(m["pretrained"], bool | None) else m["pretrained"]
        want = aliases.get(want, want) if isinstance(want, bool | None) else want
        m["pretrained"] = want if (value, want) == ("random", "imagenet") else value
    return out


def run_status(cfg: dict, run_dir) -> str:
    """``"complete"`` (same config, all epochs), ``"partial"`` (same config, resumable) or ``"absent"``."""
    run = Path(run_dir)
    files = [run / f for f in ("config.yaml", "last.json", "history.json")]
    if not all(f.is_file() for f in files):
        return "absent"
    stored = load_yaml(files[0].read_text())
    wanted = load_yaml(yaml.safe_dump(ex.resolve_protocol(copy.deepcopy(cfg))))  # compare as stored
    if _with_init_request(stored, wanted) != _with_init_request(wanted, wanted):
        return "absent"
    done = len(json.loads((run / "history.json").read_text()))
    return "complete" if done >= int(cfg["train"].get("epochs", 0)) else "partial"


def cached_run(cfg: dict, run_dir, device="auto", retrain: bool = False) -> dict:
    """Load the run in ``run_dir`` if it was trained with ``cfg``; otherwise train (or resume) it.

    Returns:
        ``{"run_dir", "history", "model" (best checkpoint, eval mode), "vocab", "corpus", "trained"}``.
    """
    status = "absent" if retrain else run_status(cfg, run_dir)
    if status == "complete":
        try:
            model, vocab, _ = ex.load_run(run_dir, "best", device=resolve_device(device))
        except RuntimeError as e:  # CheckpointError, or weights from an older version of the model code
            warnings.warn(f"{run_dir}: cached run does not load ({str(e)[:200]}); training it again", stacklevel=2)
            status = "absent"
    if status != "complete":
        # train_run builds the model before train() seeds the RNGs: seed here so the initial weights
        # (and hence the whole run) are the same in every process
        ex.train_run(cfg, run_dir, resume=status == "partial", device=device,
                     overwrite=status == "absent" and Path(run_dir).is_dir() and any(Path(run_dir).iterdir()))
        model, vocab, _ = ex.load_run(run_dir, "best", device=resolve_device(device))
    trained = status != "complete"
    history = json.loads((Path(run_dir) / "history.json").read_text())
    return {"run_dir": Path(run_dir), "history": history, "model": model, "vocab": vocab,
            "corpus": ex.prepare_corpus(cfg, progress=False), "trained": trained}
