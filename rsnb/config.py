"""Run-mode switches read in one place, and quick mode defined in one place.

``RSNB_QUICK=1`` shrinks data, image size and epochs so that every notebook and test runs on a
2-core CPU in minutes. Without it notebooks run their full mode, sized so that each notebook
finishes in minutes on one GPU (256 px, ImageNet weights, but 30 epochs instead of the paper's 150);
the paper-scale runs are the CLI presets (``python -m rsnb train --config synthetic``) and
``make figures``. Both modes are defined in this module: :data:`QUICK_CONFIG` (the overlay
:func:`rsnb.experiment.load_config` shrinks every run config to), :data:`QUICK_RUN_OVERRIDES` and
:data:`FULL_RUN_OVERRIDES` (the cached synthetic runs of notebooks 03/04/05/08) and
:data:`NOTEBOOK_SETTINGS` (notebook parameters, read with :func:`quick_settings`).
``RSNB_DATA`` points at a real dataset folder (UCM/Sydney/RSICD/RSITMD in their original formats).
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import yaml

_TRUE = {"1", "true", "yes", "on"}

#: quick mode's overlay on every run config: numbers are shrunk to these values, never enlarged
#: (``rsnb.experiment.load_config``); tests and CI never download weights
QUICK_CONFIG: dict = {
    "image_size": 128,
    "data": {"synthetic": {"images": 120, "size": 128}, "min_count": 1, "max_images": 120},
    "model": {"pretrained": False},
    "train": {"epochs": 1, "batch_size": 16, "quiet": True, "num_workers": 0},
}

#: quick-mode additions to ``rsnb/configs/synthetic.yaml`` for the cached runs of notebooks 04/05
#: (``rsnb.analysis.variant_config``): 300 images generated, 48 in the run (37 train, 7 val)
QUICK_RUN_OVERRIDES = ("model.pretrained=false", "train.num_workers=0", "train.epochs=2",
                       "data.synthetic.images=300", "data.max_images=48")

#: the notebooks' full-mode training schedule: 30 epochs at lr 2e-4 (x0.7 after epoch 20) instead of the
#: paper's 150 at 1e-4. Added to ``rsnb/configs/synthetic.yaml`` for the trainings of 03 and 08, and part of
#: the study's ``gpu`` budget (``rsnb.study.BUDGETS``), whose seed-0 variant runs notebooks 04/05 use. 1,400-1,600
#: training scenes x 5 captions x 30 epochs = 210k-240k image-caption pairs per run: about 1-2 GPU-minutes
#: of ResNet-18 arithmetic (7.2 GFLOP per pair, fwd + bwd, at 20-40 TFLOP/s), a few minutes with data
#: loading and validation (an estimate, not measured).
FULL_RUN_OVERRIDES = ("train.epochs=30", "train.lr=2.0e-4", "train.lr_step=20", "train.lr_decay=0.7")

#: notebook parameters that differ between the modes: name -> (quick value, full value)
NOTEBOOK_SETTINGS: dict[str, dict[str, tuple]] = {
    "02_mvsa_internals": {
        "pretrained": (False, True),  # ImageNet weights for the ResNet-18 backbone
        "n_probe": (24, 200),  # held-out scenes for the gate statistics
        "captions_per_scene": (1, 5),  # training captions per scene (each synthetic scene has 5)
        "overrides": (["train.num_workers=0"], []),  # on top of the pretrained flag
        "epochs": (1, 20),  # a short training (160k pairs in full mode); notebook 04 trains longer
    },
    "03_loss_behaviour": {
        "prior_images": (None, 400),  # rows of the S block (None: every training image)
        "batch_size": (32, 128),  # the batch whose similarity matrix is diagnosed
        "train_overrides": (  # full: rsnb/configs/synthetic.yaml with FULL_RUN_OVERRIDES (30 epochs)
            ["image_size=64", "data.max_images=60", "model.pretrained=false", "model.embed_dim=128",
             "model.word_dim=64", "model.text_hidden=128", "train.epochs=2", "train.batch_size=32",
             "train.num_workers=0", "train.lr=2.0e-4"], list(FULL_RUN_OVERRIDES)),
        "run_folder": ("03_quick", "03_loss"),  # under cache_dir()/runs
    },
    "01_data_exploration": {
        "grid_scenes": (8, 12),  # scenes in the gallery, one per class
        "sim_images": (400, 1000),  # images sampled for caption-pair similarity
    },
    "05_evaluation": {
        "n_queries": (3, 4),  # gallery rows (hits + misses)
        "umap_captions": (150, 1000),  # captions drawn in the UMAP (all images are drawn)
    },
    "06_msa_alignment": {
        "shared": (  # overrides of all three runs
            ["data.synthetic={images: 60, size: 64, seed: 0}", "data.max_images=null", "data.min_count=1",
             "image_size=64", "train.epochs=1", "train.batch_size=16", "train.quiet=true", "train.num_workers=0"],
            ["data.synthetic={images: 300, size: 128, seed: 0}", "train.epochs=6", "train.batch_size=32",
             "train.quiet=true"]),
        "msa_size": (  # full: MiniLM-L6 when rsnb[minilm] is installed, else the bi-GRU
            ["model.embed_dim=64", "model.word_dim=32", "model.text_hidden=64", "model.heads=4",
             "model.text_encoder=bigru"],
            ["model.text_encoder=auto"]),
        "amfmn_size": (["model.embed_dim=64", "model.word_dim=32", "model.text_hidden=64"], []),
        "run_folder": ("nb06-quick", "nb06"),  # under cache_dir()
    },
    "08_dataset_hygiene": {
        "n_images": (150, 2000),
        "size": (64, 256),
        "n_duplicates": (7, 70),  # test images replaced by a near copy of a training image
        "n_swaps": (2, 20),  # pairs of test images whose captions are exchanged
        "train_overrides": (["image_size=64", "model.pretrained=false", "train.epochs=2", "train.batch_size=32",
                             "train.num_workers=0"], list(FULL_RUN_OVERRIDES)),  # on top of the planted dataset folder
    },
}


class _Loader(yaml.SafeLoader):
    """YAML safe loader whose booleans are only ``true``/``false`` (YAML 1.2), not yes/no/on/off."""


_Loader.yaml_implicit_resolvers = {k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
                                   for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))


def load_yaml(text: str):
    """Parse config YAML safely; ``off``/``on``/``yes``/``no`` stay strings (``train.amp: off``)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


def is_quick() -> bool:
    """Return True when ``RSNB_QUICK`` is set to a true value (1/true/yes/on)."""
    return os.environ.get("RSNB_QUICK", "").strip().lower() in _TRUE


def data_root() -> Path | None:
    """Return the real-dataset folder named by ``RSNB_DATA``, or None when unset."""
    value = os.environ.get("RSNB_DATA", "").strip()
    return Path(value).expanduser() if value else None


def mode_banner(cfg: dict | None = None, device=None) -> str:
    """One line saying which mode runs and, given a run config, what it actually trains.

    Without ``cfg`` (notebooks) it names the mode. With ``cfg`` it states the image size, epochs,
    batch, amount of synthetic data and backbone initialisation, and flags where they differ from the
    paper's set-up (256 px, ImageNet-initialised backbone), so a CPU-sized run is never called "paper settings".
    """
    mode = "QUICK (RSNB_QUICK=1)" if is_quick() else "FULL (RSNB_QUICK unset)"
    if cfg is None:
        if is_quick():
            return f"rsnb mode: {mode}: small data, small images, few epochs"
        return f"rsnb mode: {mode}: this notebook's full-size settings; set RSNB_QUICK=1 for a fast run"
    model, train, data = cfg.get("model", {}), cfg.get("train", {}), cfg.get("data", {})
    size, pretrained = int(cfg.get("image_size", 256)), model.get("pretrained", True)
    source = data.get("path") or f"{data.get('synthetic', {}).get('images', '?')} synthetic images"
    parts = [f"{model.get('name', 'amfmn')} ({model.get('preset', 'paper')})", f"{size} px",
             f"{train.get('epochs', '?')} epochs of batch {train.get('batch_size', '?')}", f"data: {source}",
             "ImageNet backbone" if pretrained else "backbone from scratch"]
    if device is not None:
        parts.append(f"device {device}")
    gaps = [g for g, differs in (("256 px", size != 256), ("ImageNet weights", not pretrained)) if differs]
    verdict = f"differs from the paper's set-up ({', '.join(gaps)})" if gaps else "paper image size and weights"
    return f"rsnb mode: {mode}, config {cfg.get('name', '?')!r}: {', '.join(parts)}; {verdict}"


def quick_or_full(quick, full):
    """Pick ``quick`` in quick mode and ``full`` otherwise."""
    return quick if is_quick() else full


def quick_settings(notebook: str, quick: bool | None = None) -> dict:
    """The parameters of ``notebook`` (a key of :data:`NOTEBOOK_SETTINGS`) for the current mode
    (``quick``: force a mode), as a fresh dict of copies."""
    if notebook not in NOTEBOOK_SETTINGS:
        raise KeyError(f"no quick-mode settings for notebook {notebook!r}; known: {', '.join(NOTEBOOK_SETTINGS)}")
    pick = int(not (is_quick() if quick is None else quick))
    return {k: copy.deepcopy(v[pick]) for k, v in NOTEBOOK_SETTINGS[notebook].items()}


def cache_dir() -> Path:
    """Folder for generated data and notebook runs: ``RSNB_CACHE``, else ``~/.cache/rsnb``."""
    value = os.environ.get("RSNB_CACHE", "").strip()
    path = Path(value).expanduser() if value else Path.home() / ".cache" / "rsnb"
    path.mkdir(parents=True, exist_ok=True)
    return path
