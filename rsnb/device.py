"""Device helpers shared by training, evaluation and the query API."""

from __future__ import annotations

import torch
from torch import nn


def resolve_device(device="auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model behind a DDP / DataParallel wrapper (the model itself otherwise)."""
    return model.module if hasattr(model, "module") else model


def batch_to(batch: dict, device: torch.device) -> dict:
    """Move every tensor of a batch dict to ``device`` (other values unchanged)."""
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
