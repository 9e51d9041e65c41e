"""Strict run-config validation: unknown sections and keys, types and ranges, each error naming its key.

The allowed keys of a section are those of :data:`rsnb.runconfig.DEFAULTS` plus, for the sections
that build a dataclass (``train`` -> :class:`rsnb.train.TrainConfig`, ``model`` -> the model's config
dataclass), that dataclass's fields. A key's type comes from its dataclass annotation, else from its
default value; :data:`TYPES` gives the type of keys whose default is ``None``. :data:`RANGES` adds
value limits. Integers given for float keys become floats, so ``config.yaml`` stores what ran.

Errors are :class:`rsnb.errors.ConfigError` with one line such as::

    train.epochs: expected an integer, got 'abc'
    unknown section 'trian' (did you mean 'train'?); allowed sections: name, image_size, data, model, train, eval
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing

from rsnb.errors import ConfigError
from rsnb.models import registry
from rsnb.train import TrainConfig

#: type of keys whose default is None or that take more than one type (others: the type of their default)
TYPES = {"data.path": str | None, "data.image_dir": str | None, "data.cache_dir": str | None,
         "data.max_images": int | None, "data.captions_per_image": int | str, "data.vocab": str | None,
         "data.stopwords": str | None, "data.augment": str | None, "data.kfold": int | None,
         "data.fold": int | None, "data.keyword_word_share": float | None}

_GE1 = (lambda v: v >= 1, "must be >= 1")
_GE0 = (lambda v: v >= 0, "must be >= 0")
_POS = (lambda v: v > 0, "must be > 0")

#: value limits: dotted key -> (test, what the value must be)
RANGES = {
    "image_size": (lambda v: v >= 32, "must be >= 32 (pixels; 256 paper, 128 quick)"),
    "data.min_count": _GE1,
    "data.val_fraction": (lambda v: 0 < v < 1, "must be between 0 and 1 (exclusive)"),
    "data.max_images": _GE1,
    "data.stopwords": (lambda v: v in ("keep", "unk", "delete"), "must be keep, unk or delete"),
    "data.augment": (lambda v: v in ("paper", "official", "none"), "must be paper, official or none"),
    "data.kfold": (lambda v: v >= 2, "must be >= 2 (folds)"),
    "data.fold": _GE0,
    "data.keyword_word_share": (lambda v: 0 <= v <= 1, "must be between 0 and 1 (share of training keyword phrases)"),
    "data.synthetic.images": _GE1,
    "data.synthetic.size": (lambda v: v >= 32, "must be >= 32"),
    "data.synthetic.splits": (lambda v: len(v) == 3 and all(isinstance(f, (int, float)) and f >= 0 for f in v)
                              and abs(sum(v) - 1) < 1e-6, "must be three train, val, test fractions >= 0 summing to 1"),
    "data.captions_per_image": (lambda v: v == "any" or (isinstance(v, int) and v >= 1),
                                "must be a number of captions >= 1 or 'any'"),
    "train.epochs": _GE1,
    "train.batch_size": (lambda v: v >= 2, "must be >= 2 (the loss contrasts the samples of a batch)"),
    "train.lr": _POS,
    "train.weight_decay": _GE0,
    "train.lr_decay": (lambda v: 0 < v <= 1, "must be in (0, 1]"),
    "train.lr_step": _GE1,
    "train.grad_clip": _GE0,
    "train.num_workers": _GE0,
    "train.log_every": _GE1,
    "train.eval_every": _GE1,
    "eval.batch_size": _GE1,
    "model.embed_dim": _GE1,
    "model.margin": _GE0,
}

_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "a mapping"}
_ANY = object()  # a key whose type is unknown (default None): any value is accepted


def _suggest(key: str, allowed) -> str:
    close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown(kind: str, where: str, key: str, allowed) -> ConfigError:
    return ConfigError(f"unknown {kind} {where + key!r}{_suggest(key, allowed)}; allowed {kind}s"
                       f"{' in ' + where.rstrip('.') if where else ''}: {', '.join(map(str, allowed))}")


def _types(tp) -> tuple[tuple, bool]:
    """(accepted base types, None allowed) of an annotation or type."""
    if tp is _ANY or tp is typing.Any:
        return (), True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        base = tuple(a for a in args if a is not type(None))
        return tuple(typing.get_origin(a) or a for a in base), type(None) in args
    return (origin or tp,), False


def check_value(key: str, value, tp):
    """Return ``value`` checked against type ``tp`` (ints widened to float); raise ConfigError naming ``key``."""
    accepted, nullable = _types(tp)
    if value is None and (nullable or not accepted):
        return value
    if not accepted:
        return value
    if isinstance(value, bool):
        ok = bool in accepted
    elif isinstance(value, int):
        ok = int in accepted or float in accepted
        if ok and int not in accepted:
            value = float(value)
    elif isinstance(value, float):
        ok = float in accepted
    else:
        ok = isinstance(value, tuple(t for t in accepted if isinstance(t, type)))
    if not ok:
        want = " or ".join(_TYPE_WORDS.get(t, getattr(t, "__name__", str(t))) for t in accepted)
        raise ConfigError(f"{key}: expected {want}{' or null' if nullable else ''}, got {value!r}")
    rule = RANGES.get(key)
    if rule is not None and value is not None and not rule[0](value):
        raise ConfigError(f"{key}: {value!r} {rule[1]}")
    return value


def dataclass_types(cls, exclude=()) -> dict:
    """``{field: annotation}`` of a config dataclass (fields in ``exclude`` left out)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.name not in exclude}


def check_section(cfg: dict, defaults: dict, prefix: str = "", extra_types: dict | None = None) -> dict:
    """Check one (nested) section in place against its defaults (and a dataclass's field types)."""
    extra_types = extra_types or {}
    allowed = list(dict.fromkeys([*defaults, *extra_types]))
    for key in list(cfg):
        if key not in allowed:
            kind = "section" if not prefix else "key"
            raise _unknown(kind, prefix, str(key), allowed)
        dotted = f"{prefix}{key}"
        default = defaults.get(key)
        if isinstance(default, dict) and key not in extra_types:
            if not isinstance(cfg[key], dict):
                raise ConfigError(f"{dotted}: expected a mapping of keys ({', '.join(default)}), got {cfg[key]!r}")
            check_section(cfg[key], default, f"{dotted}.")
            continue
        if key in extra_types:
            tp = extra_types[key]
        elif dotted in TYPES:
            tp = TYPES[dotted]
        else:
            tp = _ANY if default is None else type(default)
        cfg[key] = check_value(dotted, cfg[key], tp)
    return cfg


def rename_error(e: Exception, names: dict[str, str]) -> ConfigError:
    """Turn a dataclass ``__post_init__`` ValueError into a ConfigError that names the config key.

    ``names`` maps a regular expression for the class name (``TrainConfig``) to its section (``train``).
    """
    msg = str(e)
    for pattern, section in names.items():
        msg = re.sub(rf"\b{pattern}\.", f"{section}.", msg)
    return ConfigError(msg.replace("model.image_size", "image_size"))


def model_section_types(name: str) -> dict:
    """``{key: type}`` a user may set in the ``model:`` section of model ``name`` (from its registry builder)."""
    if name not in registry.REGISTRY:
        raise ConfigError(f"model.name: {name!r} is not a model; choose one of {', '.join(registry.model_names())}")
    builder = registry.get_builder(name)
    types_ = dataclass_types(builder.config_cls, exclude=builder.derived_keys)
    return {**{k: str for k in builder.run_keys if k not in types_}, **types_}


def validate_config(cfg: dict, defaults: dict) -> dict:
    """Check a whole run config in place against ``defaults`` (:data:`rsnb.runconfig.DEFAULTS`); return it.

    Raises:
        ConfigError: an unknown section or key (listing the allowed ones), a value of the wrong type
            or out of range, or a choice the train or model config rejects; the message names the key.
    """
    if not isinstance(cfg, dict):
        raise ConfigError(f"a config is a mapping of sections ({', '.join(defaults)}), got {type(cfg).__name__}")
    for key in cfg:
        if key not in defaults:
            raise _unknown("section", "", str(key), list(defaults))
    for key, default in defaults.items():
        if key not in cfg:
            continue
        if not isinstance(default, dict):
            cfg[key] = check_value(key, cfg[key], TYPES.get(key, type(default)))
            continue
        if not isinstance(cfg[key], dict):
            raise ConfigError(f"{key}: expected a section (a mapping of keys), got {cfg[key]!r}")
        extra = None
        if key == "train":
            extra = dataclass_types(TrainConfig)
        elif key == "model":
            name = cfg[key].get("name", default.get("name"))
            if not isinstance(name, str):
                raise ConfigError(f"model.name: expected a model name, got {name!r}")
            extra = model_section_types(name)
        check_section(cfg[key], default, f"{key}.", extra)
    try:
        TrainConfig.from_dict({k: v for k, v in cfg.get("train", {}).items()})
    except (TypeError, ValueError) as e:
        raise rename_error(e, {"TrainConfig": "train"}) from None
    return cfg
