"""A small, model-agnostic training loop: AMP, clipping, LR schedule, checkpoints, resume, DDP.

The loop knows only the RetrievalModel interface of DESIGN.md: ``feats = model(batch)`` and
``loss, logs = model.loss(feats, batch)``. Under torchrun the features are all-gathered (with
gradients) so the in-batch loss sees the global batch (see :mod:`rsnb.distributed`).

Reproducibility: all randomness of epoch ``e`` on rank ``r`` comes from seeds derived from
``(cfg.seed, e, r)`` (RNGs reseeded at the start of every epoch; the shuffle order from
``(cfg.seed, e)`` via :class:`rsnb.distributed.EpochBatchSampler`), so a run resumed from the ``last``
checkpoint reproduces the uninterrupted run exactly. Shown in notebooks/04_training.ipynb.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from rsnb import checkpoint as ckpt
from rsnb import distributed as du
from rsnb.device import batch_to, resolve_device


@dataclass
class TrainConfig:
    """Training hyper-parameters; defaults are the paper's (Sec. V-B: Adam, 150 epochs, batch 128,
    lr 1e-4 multiplied by 0.7 every 20 epochs). The released code's RSITMD values (70 epochs, batch
    100, lr 2e-4, ``step_code``) are the ``rsitmd_official`` preset (``rsnb/configs/rsitmd_official.yaml``).

    ``batch_size`` is per process; under DDP the global batch is ``batch_size · world``.
    ``lr_schedule``: ``"step"`` multiplies the lr by ``lr_decay`` every ``lr_step`` epochs, first at
    0-based epoch ``lr_step`` (the paper's "every 20 epochs"); ``"step_code"`` decays one epoch
    earlier, at epochs 19, 39, ... as the released code does; ``"cosine"`` anneals per epoch to 0;
    ``"none"`` keeps ``lr``. ``grad_clip`` > 0 clips the global grad norm after backward and after
    AMP unscaling (the official code clipped before backward, a no-op). ``amp``: ``"auto"`` = bf16
    on CUDA when supported else fp16 + GradScaler, off on CPU. ``nonfinite``: ``"stop"`` raises
    ``FloatingPointError`` on a NaN/inf loss; ``"skip"`` drops that step and counts it.
    ``channels_last``: keep the CNN's weights and the image batches in NHWC layout, which oneDNN (CPU)
    and cuDNN with AMP compute natively: 1.67x the pairs/s of NCHW for the paper preset at 256 px on a
    2-core CPU (``bench/bench_train.py --layouts nchw,nhwc``, bench/RESULTS.md); same maths, float rounding aside.
    """

    epochs: int = 150
    lr: float = 1e-4
    optimizer: str = "adam"
    weight_decay: float = 0.0
    lr_schedule: str = "step"
    lr_decay: float = 0.7
    lr_step: int = 20
    grad_clip: float = 0.0
    amp: str = "auto"
    seed: int = 0
    batch_size: int = 128
    num_workers: int = 0
    log_every: int = 10
    quiet: bool = False
    nonfinite: str = "stop"
    eval_every: int = 1
    select_metric: str = "mR"
    out_dir: str | None = None
    ddp_find_unused: bool = True
    channels_last: bool = True

    def to_dict(self) -> dict:
        """Plain-dict form (stored in checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError`` naming them."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"TrainConfig: unknown keys {unknown}")
        return cls(**d)

    def __post_init__(self):
        checks = {"optimizer": ("adam", "adamw"), "lr_schedule": ("step", "step_code", "cosine", "none"),
                  "amp": ("auto", "bf16", "fp16", "off"), "nonfinite": ("stop", "skip")}
        for key, allowed in checks.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"TrainConfig.{key} = {getattr(self, key)!r}; expected one of {allowed}")


def seed_everything(seed: int) -> None:
    """Seed python ``random``, numpy, torch and CUDA (the one place seeds are set)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def lr_at(cfg: TrainConfig, epoch: int) -> float:
    """Learning rate of 0-based ``epoch`` under ``cfg.lr_schedule``."""
    if cfg.lr_schedule == "step":
        return cfg.lr * cfg.lr_decay ** (epoch // cfg.lr_step)
    if cfg.lr_schedule == "step_code":
        return cfg.lr * cfg.lr_decay ** ((epoch + 1) // cfg.lr_step)
    if cfg.lr_schedule == "cosine":
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / max(cfg.epochs, 1)))
    return cfg.lr


def amp_setup(amp: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """Resolve ``amp`` to ``(autocast dtype or None, use GradScaler)``."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None, False
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("amp='fp16' needs CUDA; use 'bf16' or 'off' on the CPU")
    if amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16, False
    return torch.float16, True


class _StepModule(nn.Module):
    """forward + gather + hook + loss in one module, so DDP sees every parameter the loss uses."""

    def __init__(self, model: nn.Module, batch_hook: Callable | None):
        super().__init__()
        self.model, self.batch_hook = model, batch_hook

    def forward(self, batch: dict):
        feats = self.model(batch)  # dict of (B, ...) per-sample features
        g_feats, g_batch = du.gather_batch(feats, batch)  # (world·B, ...)
        if self.batch_hook is not None:
            g_batch = self.batch_hook(g_batch)  # e.g. adds batch["prior"] (world·B, world·B)
        return self.model.loss(g_feats, g_batch)


def _make_loader(train_data, cfg: TrainConfig, info: du.DistInfo, collate_fn) -> DataLoader:
    if isinstance(train_data, DataLoader):
        collate_fn = collate_fn or train_data.collate_fn
        train_data = train_data.dataset
    if not isinstance(train_data, Dataset):
        raise TypeError(f"train_data must be a Dataset or DataLoader, got {type(train_data).__name__}")
    sampler = du.EpochBatchSampler(len(train_data), cfg.batch_size, cfg.seed, info.rank, info.world)
    return DataLoader(train_data, batch_sampler=sampler, collate_fn=collate_fn, num_workers=cfg.num_workers,
                      pin_memory=torch.cuda.is_available())


def _write_history(out: Path, history: list[dict]) -> None:
    (out / "history.json").write_text(json.dumps(history, indent=1), encoding="utf-8")
    keys = list(dict.fromkeys(k for row in history for k in row))
    with open(out / "history.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)


def train(cfg: TrainConfig, model: nn.Module, train_data, val_fn: Callable | None = None, *,
          device="auto", out_dir=None, resume: bool = False, on_epoch_end: Callable | None = None,
          batch_hook: Callable | None = None, collate_fn: Callable | None = None) -> list[dict]:
    """Train ``model`` and return the per-epoch history.

    Args:
        cfg: hyper-parameters.
        model: a RetrievalModel (``forward(batch) -> feats``, ``loss(feats, batch) -> (loss, logs)``).
        train_data: a Dataset of caption-level samples or a DataLoader (only its dataset and
            collate_fn are used: the loop installs its own reproducible, DDP-aware batch sampler).
        val_fn: ``val_fn(model) -> metrics`` on the VALIDATION split (e.g.
            :func:`rsnb.evaluate.make_val_fn`); ``cfg.select_metric`` of it picks ``best``.
        device: ``"auto"`` (CUDA if available) or a device; under torchrun ``cuda:LOCAL_RANK``.
        out_dir: where ``last``/``best`` checkpoints and ``history.{csv,json}`` go (default
            ``cfg.out_dir``; None = write nothing).
        resume: continue from ``out_dir/last`` (weights, optimizer, scaler, epoch, history).
        on_epoch_end: ``callback(row, model)`` after each epoch (main process only).
        batch_hook: ``hook(global_batch) -> global_batch`` applied after gathering, before the loss.
        collate_fn: collate function when ``train_data`` is a Dataset.

    Returns:
        One dict per epoch: ``epoch``, ``loss``, ``lr``, ``skipped``, ``time``, the mean of the loss's
        logs, and ``val_<metric>`` entries when validated.

    Raises:
        FloatingPointError: a non-finite loss with ``cfg.nonfinite == "stop"`` (names epoch and step).
    """
    dev = resolve_device(device)
    info = du.init_from_env(dev.type)
    try:
        if info.enabled and dev.type == "cuda":
            dev = torch.device("cuda", info.local_rank)
        return _run(cfg, model, train_data, val_fn, dev, info, out_dir, resume, on_epoch_end, batch_hook, collate_fn)
    finally:
        du.shutdown(info)


def _run(cfg, model, train_data, val_fn, dev, info, out_dir, resume, on_epoch_end, batch_hook, collate_fn):
    out = Path(out_dir or cfg.out_dir) if (out_dir or cfg.out_dir) else None
    seed_everything(cfg.seed)
    model.to(dev)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)  # 4-D weights only (convolutions)
    params = [p for p in model.parameters() if p.requires_grad]
    opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    optimizer = opt_cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    amp_dtype, use_scaler = amp_setup(cfg.amp, dev)
    scaler = torch.amp.GradScaler(dev.type, enabled=use_scaler)
    loader = _make_loader(train_data, cfg, info, collate_fn)
    history, start, best, step = [], 0, -math.inf, 0
    if resume:
        if out is None or not ckpt.checkpoint_paths(out, "last")["json"].is_file():
            raise FileNotFoundError(f"resume=True but there is no checkpoint {out}/last.json")
        st = ckpt.load_checkpoint(out, "last", model, optimizer, None, scaler, restore_rng_state=True)["state"]
        start, history, best, step = st["epoch"], st["history"], st["best"], st["step"]
    step_mod = _StepModule(model, batch_hook)
    if info.enabled:
        step_mod = nn.parallel.DistributedDataParallel(
            step_mod, device_ids=[dev.index] if dev.type == "cuda" else None,
            find_unused_parameters=cfg.ddp_find_unused)
    for epoch in range(start, cfg.epochs):
        t0, lr = time.perf_counter(), lr_at(cfg, epoch)
        for g in optimizer.param_groups:
            g["lr"] = lr
        loader.batch_sampler.set_epoch(epoch)
        seed_everything(du.mix_seed(cfg.seed, epoch, info.rank))
        model.train()
        total, n, skipped, logs_sum = 0.0, 0, 0, {}
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=cfg.quiet or not info.is_main,
                   leave=False, dynamic_ncols=True)
        for i, batch in enumerate(bar):
            batch = batch_to(batch, dev)
            if cfg.channels_last and getattr(batch.get("images"), "ndim", 0) == 4:
                batch["images"] = batch["images"].contiguous(memory_format=torch.channels_last)
            ac = torch.autocast(dev.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
            with ac:
                loss, logs = step_mod(batch)
            value = float(loss.detach())
            scaler.scale(loss).backward()  # always run backward: keeps DDP's reducer in step
            if not math.isfinite(value):
                if cfg.nonfinite == "stop":
                    raise FloatingPointError(f"non-finite loss {value} at epoch {epoch} (0-based), step {i} "
                                             f"of {len(loader)}; lower lr, enable grad_clip or set nonfinite='skip'")
                optimizer.zero_grad(set_to_none=True)
                skipped += 1
                continue
            if cfg.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            total, n = total + value, n + 1
            for k, v in (logs or {}).items():
                logs_sum[k] = logs_sum.get(k, 0.0) + float(v)
            if i % max(cfg.log_every, 1) == 0:
                bar.set_postfix(loss=f"{value:.4g}", lr=f"{lr:.2e}")
        row = {"epoch": epoch + 1, "loss": total / max(n, 1), "lr": lr, "skipped": skipped}
        row.update({k: v / max(n, 1) for k, v in logs_sum.items() if k not in row})  # the loop's own keys win
        validate = val_fn is not None and ((epoch + 1) % max(cfg.eval_every, 1) == 0 or epoch + 1 == cfg.epochs)
        if validate and info.is_main:
            row.update({f"val_{k}": float(v) for k, v in val_fn(model).items()})
        row["time"] = time.perf_counter() - t0
        history.append(row)
        du.barrier(info)
        if info.is_main:
            _end_epoch(cfg, model, optimizer, scaler, out, history, row, best, step, epoch)
            if validate and row[f"val_{cfg.select_metric}"] > best:
                best = row[f"val_{cfg.select_metric}"]
            if not cfg.quiet:
                shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
                tqdm.write(f"[rsnb.train] {shown}")
            if on_epoch_end is not None:
                on_epoch_end(row, model)
        du.barrier(info)
    return history


def _end_epoch(cfg, model, optimizer, scaler, out, history, row, best, step, epoch):
    """Main process: write ``best`` (validation improved), ``last`` and the history files."""
    if out is None:
        return
    key = f"val_{cfg.select_metric}"
    new_best = max(best, row[key]) if key in row else best
    state = {"epoch": epoch + 1, "step": step, "best": new_best, "history": history, "metrics": row}
    if key in row and row[key] > best:
        ckpt.save_checkpoint(out, "best", model, config=cfg.to_dict(), state=state, rng=False)
    ckpt.save_checkpoint(out, "last", model, optimizer, None, scaler, config=cfg.to_dict(), state=state)
    _write_history(out, history)
