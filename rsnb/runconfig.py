"""Run configs: the YAML presets, defaults, quick mode, ``section.key=value`` overrides and validation.

A config has four sections (see the presets in ``rsnb/configs/*.yaml``, shipped as package data)::

    image_size: 256
    data:   {path, image_dir, synthetic: {images, size, seed, splits}, min_count, val_fraction,
             vocab, stopwords, augment, ...}
    model:  {name: amfmn | msa, preset: ..., ...overrides of that model's config dataclass}
    train:  {...TrainConfig fields}

``data.path: null`` means "the built-in synthetic dataset", generated once into ``data.cache_dir``
(default ``rsnb.config.cache_dir()``: ``RSNB_CACHE`` or ``~/.cache/rsnb``).
Model selection always uses a validation split; a dataset without one (the AMFMN precomp files)
gets a deterministic validation subset carved from its training images, never the test split.

``model.name`` picks the model through :mod:`rsnb.models.registry`; this module holds no
model-specific code.

``data.augment`` (``paper`` | ``official`` | ``none``, see :data:`rsnb.data.dataset.AUGMENTATIONS`) and
``data.stopwords`` (``keep`` | ``unk`` | ``delete``, see :mod:`rsnb.data.vocab`) default to null,
which :func:`resolve_protocol` turns into the released code's choices (``official``, ``unk``) for
``model.preset: official`` and the paper's (``paper``, ``keep``) otherwise. ``data.vocab: PATH`` uses
a fixed vocabulary file (the released ``rsitmd_splits_vocab.json`` or an rsnb ``vocab.json``)
instead of building one on the training captions.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path

import yaml

from rsnb.config import QUICK_CONFIG, is_quick, load_yaml
from rsnb.errors import ConfigError
from rsnb.models import registry
from rsnb.schema import rename_error, validate_config

#: the presets (package data: found the same way in a checkout and in an installed wheel)
PRESETS = resources.files("rsnb") / "configs"

DEFAULTS: dict = {
    "name": "run",
    "image_size": 256,
    "data": {
        "path": None,
        "image_dir": None,
        "cache_dir": None,  # None: rsnb.config.cache_dir() (RSNB_CACHE or ~/.cache/rsnb)
        "synthetic": {"images": 2000, "size": 256, "seed": 0, "splits": [0.8, 0.1, 0.1]},
        "min_count": 5,
        "vocab": None,  # a vocabulary file (AMFMN word2idx json or rsnb vocab.json); None: build on train
        "stopwords": None,  # keep | unk | delete; None: unk for model.preset official, else keep
        "augment": None,  # paper | official | none; None: official for model.preset official, else paper
        "val_fraction": 0.1,
        "keywords_from_sentence": True,  # paper: images without keywords get them filtered from the caption
        "keyword_word_share": 0.05,  # paper: joint models drop words found in >= 5 % of training keyword phrases
        "kfold": None,  # K: train on fold data.fold of K disjoint train+val folds (rsnb.kfold, --kfold K)
        "fold": None,  # 0 .. K-1
        "max_images": None,
        "seed": 0,
        "captions_per_image": 5,  # or "any"
        "allow_outside_paths": False,  # image paths may leave the dataset folder (absolute, ..)
        "check_images": True,  # open and decode every image before training (cached)
    },
    "model": {"name": "amfmn", "preset": "paper"},
    "train": {"ddp_find_unused": False},  # AMFMN uses every trainable parameter
    "eval": {"batch_size": 64, "keywords": False},
}


def _merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _shrink(base: dict, quick: dict) -> dict:
    """Apply quick-mode values, but never make a number larger than the config asks for."""
    out = copy.deepcopy(base)
    for key, value in quick.items():
        current = out.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            out[key] = _shrink(current, value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and isinstance(current, (int, float)):
            out[key] = min(current, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _set_dotted(cfg: dict, assignment: str) -> None:
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r} must look like section.key=value (e.g. train.epochs=3)")
    key, raw = assignment.split("=", 1)
    node = cfg
    parts = key.strip().split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {assignment!r}: {p!r} is not a section")
    try:
        value = load_yaml(raw)
    except yaml.YAMLError as e:
        raise ConfigError(f"override {assignment!r}: not a YAML value ({e})".replace("\n", " ")) from None
    if isinstance(value, str):  # YAML 1.1 reads "2e-4" as a string; users mean a number
        for cast in (int, float):
            try:
                value = cast(value)
                break
            except ValueError:
                pass
    node[parts[-1]] = value


def preset_names() -> list[str]:
    """Names of the shipped presets (``demo``, ``synthetic``, ``rsitmd`` ...)."""
    return sorted(p.name[:-5] for p in PRESETS.iterdir() if p.name.endswith(".yaml"))


def _read_yaml(path) -> tuple[str, str]:
    """``(text, shown name)`` of a config file path or preset name."""
    p = Path(path)
    if p.is_file():
        return p.read_text(encoding="utf-8"), str(p)
    preset = PRESETS / f"{path}.yaml"
    if preset.is_file():
        return preset.read_text(encoding="utf-8"), f"preset {path}"
    raise ConfigError(f"config {path}: no such file or preset (presets: {', '.join(preset_names())})")


def check_config(cfg: dict) -> dict:
    """Validate a resolved config in place (:func:`rsnb.schema.validate_config` plus the model's choices)."""
    validate_config(cfg, DEFAULTS)
    try:
        model_config(cfg, vocab_size=2)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        if str(e).startswith("ablation must be one of"):  # the model's presets
            raise ConfigError(f"model.preset: {e} (or paper, official)") from None
        raise rename_error(e, {r"\w+Config": "model"}) from None
    return cfg


def load_config(path: str | Path | None = None, overrides=(), quick: bool | None = None) -> dict:
    """Read a YAML config (a path or a preset name), apply quick mode and overrides, validate.

    Args:
        path: ``my.yaml``, ``"synthetic"`` (a preset name, see :func:`preset_names`) or None (defaults).
        overrides: ``"section.key=value"`` strings, values parsed as YAML.
        quick: shrink sizes to :data:`rsnb.config.QUICK_CONFIG` (never enlarging any); default
            ``rsnb.config.is_quick()``.

    Returns:
        The resolved config dict.

    Raises:
        ConfigError: missing or malformed file, unknown section or key, wrong type or range (named).
    """
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        text, shown = _read_yaml(path)
        try:
            loaded = load_yaml(text) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{shown}: malformed YAML ({e})".replace("\n", " ")) from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{shown}: expected a mapping of sections, got {type(loaded).__name__}")
        cfg = _merge(cfg, loaded)
        try:  # name the file when its own sections or keys are wrong
            check_config(resolve_protocol(copy.deepcopy(cfg)))
        except ConfigError as e:
            raise ConfigError(f"{shown}: {e}") from None
    if is_quick() if quick is None else quick:
        cfg = _shrink(cfg, QUICK_CONFIG)
    for o in overrides:
        _set_dotted(cfg, o)
    return check_config(resolve_protocol(cfg))


def resolve_protocol(cfg: dict) -> dict:
    """Fill ``data.augment`` and ``data.stopwords`` left at null from ``model.preset`` (in place).

    The released AMFMN code's choices for ``preset: official`` (augment ``official``: no rotation;
    stop-words ``unk``), the paper's otherwise (``paper``: random 90-degree rotations; ``keep``).
    A legacy ``data.remove_stopwords: true`` becomes ``stopwords: delete``.
    """
    d = cfg.setdefault("data", {})
    m = cfg.get("model") or {}
    official = m.get("name", "amfmn") == "amfmn" and m.get("preset") == "official"
    if "remove_stopwords" in d:  # run configs written before data.stopwords existed
        legacy = d.pop("remove_stopwords")
        if d.get("stopwords") is None and legacy is not None:
            d["stopwords"] = "delete" if legacy else "keep"
    if d.get("augment") is None:
        d["augment"] = "official" if official else "paper"
    if d.get("stopwords") is None:
        d["stopwords"] = "unk" if official else "keep"
    return cfg


def model_config(cfg: dict, vocab_size: int):
    """The model config dataclass of a run config (``model.name`` picks the builder; see
    :mod:`rsnb.models.registry`), e.g. an ``AMFMNConfig`` for ``model.name: amfmn``."""
    return registry.builder_for(cfg).make_config(cfg, int(vocab_size))
