"""Checkpoints as safetensors + JSON: nothing is ever unpickled.

``save_checkpoint(dir, tag, ...)`` writes one checkpoint *set* of three files, ``ID`` being a
random save id:

* ``TAG-ID.safetensors``: the model ``state_dict`` (tensors copied to contiguous CPU storage, so tied
  or non-contiguous parameters are fine);
* ``TAG-ID.optim.safetensors``: every tensor of the optimizer / scheduler / GradScaler state and of the
  RNG states (torch, CUDA), keyed by its path in the nested state;
* ``TAG.json``: the model's name, class and config (``model_name`` / ``cfg.to_dict()`` when it has
  them), the run config, user state (epoch, step, metrics, history ...), the nested optimizer /
  scheduler / scaler / RNG structure with tensors replaced by ``{"__tensor__": key}`` references,
  the save id (both safetensors files carry it in their metadata) and the names of the two files.

**Atomic switch.** The two safetensors files get new names, so the previous set stays untouched while
they are written; ``TAG.json`` is then replaced with one ``os.replace`` (atomic on POSIX and
Windows): that rename is the moment the checkpoint changes. An interrupt or a kill at any point leaves
``TAG.json`` naming a complete set, the previous one or the new one. Files of superseded or
unfinished sets (and temporary files) are removed by :func:`clean_checkpoints`, called after every
save and when a run (re)starts. Checkpoints written by earlier versions (``TAG.safetensors``, no
``files`` entry) still load.
"""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from rsnb.device import unwrap
from rsnb.errors import RsnbError

FORMAT_VERSION = 1


class CheckpointError(RsnbError, RuntimeError):
    """A checkpoint file is missing, corrupt, or does not match the model; the message names the file."""


# ----------------------------------------------------------------------------------------------
# nested state <-> JSON tree + flat tensor dict


def _encode(obj, path: str, tensors: dict):
    if isinstance(obj, torch.Tensor):
        if path in tensors:
            raise ValueError(f"checkpoint: two tensors map to the key {path!r} (a key containing '.')")
        tensors[path] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": path}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, f"{path}.{k}", tensors) for k, v in obj.items()}
        return {"__items__": [[_encode(k, f"{path}.k{i}", tensors), _encode(v, f"{path}.{i}", tensors)]
                              for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, f"{path}.{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, f"{path}.{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, torch.dtype | torch.device):
        return {"__torch__": str(obj)}
    raise TypeError(f"checkpoint: cannot store {type(obj).__name__} at {path!r} (only tensors, arrays, JSON types)")


def _decode(obj, tensors: dict):
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__ndarray__" in obj:
        return np.asarray(obj["__ndarray__"], dtype=obj["dtype"])
    if "__items__" in obj:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__items__"]}
    if "__tuple__" in obj:
        return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    if "__torch__" in obj:
        s = obj["__torch__"]
        return getattr(torch, s.split(".", 1)[1]) if s.startswith("torch.") else torch.device(s)
    return {k: _decode(v, tensors) for k, v in obj.items()}


# ----------------------------------------------------------------------------------------------
# RNG states


def capture_rng() -> dict:
    """Python, numpy, torch CPU and (when present) CUDA RNG states."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    """Inverse of :func:`capture_rng` (as decoded from a checkpoint)."""
    if "python" in state:
        v, internal, gauss = state["python"]
        random.setstate((v, tuple(internal), gauss))
    if "numpy" in state:
        np.random.set_state(tuple(state["numpy"]))
    if "torch" in state:
        torch.set_rng_state(state["torch"].to(torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.to(torch.uint8) for s in state["cuda"]])


# ----------------------------------------------------------------------------------------------
# atomic writes


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


_SET_FILE = re.compile(r"^(?P<tag>.+)-(?P<id>[0-9a-f]{16})(\.optim)?\.safetensors$")
# ours (``.NAME.XXXX.tmp``) and the ones safetensors' Rust writer makes beside its target (``.tmpXXXXXX``)
_TMP_FILE = re.compile(r"^(\..+\.tmp|\.tmp[A-Za-z0-9]{6})$")


def _set_files(json_path: Path) -> dict[str, str] | None:
    """``{"model", "optim"}`` file names a checkpoint JSON points to (None: unreadable or legacy)."""
    try:
        doc = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = doc.get("files") if isinstance(doc, dict) else None
    return files if isinstance(files, dict) else None


def checkpoint_paths(directory, tag: str) -> dict[str, Path]:
    """The three files of checkpoint ``tag`` in ``directory`` (``json`` first: it names the other two)."""
    d = Path(directory)
    files = _set_files(d / f"{tag}.json") if (d / f"{tag}.json").is_file() else None
    if files is None:  # no checkpoint yet, or one written before checkpoint sets
        files = {"model": f"{tag}.safetensors", "optim": f"{tag}.optim.safetensors"}
    return {"model": d / Path(files["model"]).name, "optim": d / Path(files["optim"]).name, "json": d / f"{tag}.json"}


def clean_checkpoints(directory) -> list[Path]:
    """Remove temporary files and safetensors files no checkpoint JSON points to; return what was removed.

    Safe at any time no other process writes checkpoints into ``directory`` (the run lock ensures that).
    """
    d = Path(directory)
    if not d.is_dir():
        return []
    keep = set()
    for j in d.glob("*.json"):
        files = _set_files(j)
        if files:
            keep.update(Path(f).name for f in files.values())
    removed = []
    for f in d.iterdir():
        stale_set = _SET_FILE.match(f.name) and f.name not in keep
        if f.is_file() and (stale_set or _TMP_FILE.match(f.name)):
            f.unlink(missing_ok=True)
            removed.append(f)
    return removed


def save_checkpoint(directory, tag: str, model, optimizer=None, scheduler=None, scaler=None, *,
                    config: dict | None = None, state: dict | None = None, rng: bool = True,
                    check_finite: bool = True) -> dict[str, Path]:
    """Write checkpoint ``tag`` atomically (see the module docstring for the file layout).

    Args:
        directory: output folder (created if missing).
        tag: checkpoint name, e.g. ``"last"`` or ``"best"``.
        model: the module whose ``state_dict`` is stored (DDP wrappers are unwrapped).
        optimizer, scheduler, scaler: optional objects with ``state_dict()``.
        config: JSON-able run configuration (e.g. ``dataclasses.asdict(cfg)``).
        state: JSON-able training state (epoch, step, metrics, history, ...).
        rng: also store the python/numpy/torch/CUDA RNG states.
        check_finite: refuse (``ValueError``) to write a model with NaN/inf weights.

    Returns:
        The paths written.
    """
    paths = checkpoint_paths(directory, tag)  # the set being replaced (if any)
    paths["json"].parent.mkdir(parents=True, exist_ok=True)
    weights = {}
    for k, v in unwrap(model).state_dict().items():
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"checkpoint: model state {k!r} is a {type(v).__name__}, not a tensor")
        weights[k] = v.detach().cpu().contiguous().clone()  # clone: breaks shared storage (tied weights)
        if check_finite and v.is_floating_point() and not bool(torch.isfinite(weights[k]).all()):
            raise ValueError(f"checkpoint {tag}: model tensor {k!r} holds NaN/inf; refusing to save")
    extra, tensors = {}, {}
    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler), ("scaler", scaler)):
        if obj is not None:
            extra[name] = _encode(obj.state_dict(), name, tensors)
    if rng:
        extra["rng"] = _encode(capture_rng(), "rng", tensors)
    save_id = secrets.token_hex(8)
    meta = {"save_id": save_id, "format": str(FORMAT_VERSION)}
    new = {"model": f"{tag}-{save_id}.safetensors", "optim": f"{tag}-{save_id}.optim.safetensors"}
    net = unwrap(model)
    model_cfg = getattr(net, "cfg", None)
    doc = {
        "format": FORMAT_VERSION, "save_id": save_id, "tag": tag, "files": new,
        "model": {"name": getattr(net, "model_name", None), "class": type(net).__name__,
                  "config": model_cfg.to_dict() if hasattr(model_cfg, "to_dict") else None},
        "config": config or {}, "state": _encode(state or {}, "state", tensors) if state else {},
        **extra,
    }
    text = json.dumps(doc, indent=1)
    d = paths["json"].parent
    _atomic_write(d / new["model"], lambda p: save_file(weights, p, metadata=meta))
    _atomic_write(d / new["optim"], lambda p: save_file(tensors, p, metadata=meta))
    _atomic_write(paths["json"], lambda p: Path(p).write_text(text, encoding="utf-8"))  # the switch
    for old in (paths["model"], paths["optim"]):  # the superseded set (legacy names included)
        old.unlink(missing_ok=True)
    clean_checkpoints(d)
    return checkpoint_paths(d, tag)


def _read_safetensors(path: Path) -> tuple[dict, dict]:
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file is missing")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            return {k: f.get_tensor(k) for k in f.keys()}, meta
    except Exception as e:  # safetensors raises SafetensorError / OSError on corrupt files
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({type(e).__name__}: {e})") from None


def read_checkpoint(directory, tag: str) -> tuple[dict, dict, dict]:
    """Read the raw pieces of a checkpoint: ``(json_doc, model_tensors, other_tensors)``; validated."""
    paths = checkpoint_paths(directory, tag)
    if not paths["json"].is_file():
        raise CheckpointError(f"{paths['json']}: checkpoint file is missing")
    try:
        doc = json.loads(paths["json"].read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{paths['json']}: corrupt or truncated JSON ({e})") from None
    if not isinstance(doc, dict) or "save_id" not in doc:
        raise CheckpointError(f"{paths['json']}: not an rsnb checkpoint (no save_id)")
    weights, m1 = _read_safetensors(paths["model"])
    tensors, m2 = _read_safetensors(paths["optim"])
    for p, m in ((paths["model"], m1), (paths["optim"], m2)):
        if m.get("save_id") != doc["save_id"]:
            raise CheckpointError(f"{p}: belongs to a different save than {paths['json'].name} "
                                  f"(save_id {m.get('save_id')} != {doc['save_id']}); interrupted write?")
    return doc, weights, tensors


def _check_weights(path: Path, weights: dict, model_sd: dict) -> None:
    missing = [k for k in model_sd if k not in weights]
    unexpected = [k for k in weights if k not in model_sd]
    shapes = [f"{k}: checkpoint {tuple(weights[k].shape)} vs model {tuple(model_sd[k].shape)}"
              for k in model_sd if k in weights and weights[k].shape != model_sd[k].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatches (e.g. {'; '.join(shapes[:3])})")
    if problems:
        raise CheckpointError(f"{path}: does not match the model: " + "; ".join(problems))


def load_checkpoint(directory, tag: str, model=None, optimizer=None, scheduler=None, scaler=None, *,
                    restore_rng_state: bool = False, device=None) -> dict:
    """Load checkpoint ``tag`` into the given objects and return its JSON document.

    Args:
        directory, tag: as in :func:`save_checkpoint`.
        model: module to load the weights into (strict: every key and shape must match).
        optimizer, scheduler, scaler: objects to restore (the checkpoint must hold their state).
        restore_rng_state: also restore the python/numpy/torch/CUDA RNG states.
        device: where to put the model tensors before loading (default: stay on the CPU, copied in place).

    Returns:
        A dict with ``config``, ``model`` (``name``, ``class`` and ``config`` of the saved model, as
        recorded by :func:`save_checkpoint`), ``state`` (decoded), ``tag`` and ``save_id``.

    Raises:
        CheckpointError: missing/corrupt files, mixed saves, missing keys or shape mismatches.
    """
    paths = checkpoint_paths(directory, tag)
    doc, weights, tensors = read_checkpoint(directory, tag)
    if model is not None:
        net = unwrap(model)
        _check_weights(paths["model"], weights, net.state_dict())
        if device is not None:
            weights = {k: v.to(device) for k, v in weights.items()}
        net.load_state_dict(weights, strict=True)
    try:
        for name, obj in (("optimizer", optimizer), ("scheduler", scheduler), ("scaler", scaler)):
            if obj is None:
                continue
            if name not in doc:
                raise CheckpointError(f"{paths['json']}: holds no {name} state")
            obj.load_state_dict(_decode(doc[name], tensors))
        if restore_rng_state and "rng" in doc:
            restore_rng(_decode(doc["rng"], tensors))
        state = _decode(doc.get("state", {}), tensors)
    except KeyError as e:
        raise CheckpointError(f"{paths['optim']}: tensor {e} referenced by {paths['json'].name} is missing") from None
    except (ValueError, RuntimeError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"{paths['json']}: optimizer/scheduler state does not fit ({e})") from None
    return {"config": doc.get("config", {}), "model": doc.get("model", {}), "state": state, "tag": doc.get("tag"), "save_id": doc["save_id"]}
