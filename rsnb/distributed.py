"""Distributed-data-parallel helpers for :mod:`rsnb.train` (torchrun / ``torch.distributed.run``).

The in-batch retrieval losses compare every image with every caption of the batch, so under DDP each
rank all-gathers the per-sample features (with gradients) before calling ``model.loss``: the loss
then sees the *global* batch, exactly as a single process with the same global batch would.

Gradient bookkeeping (verified in tests/test_ddp.py): every rank computes the same global loss L.
:func:`gather_with_grad` sums the incoming gradient over ranks in its backward, so a rank's local
features receive ``world · ∂L/∂f_local``; DDP then *averages* parameter gradients over ranks, giving
``Σ_r ∂L/∂θ|_r = ∂L/∂θ``. Parameters used only inside ``loss`` (e.g. a scale or an attention layer
applied to gathered features) get the identical ``∂L/∂θ`` on every rank and the average keeps it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import Sampler


@dataclass
class DistInfo:
    """Process-group facts for this process."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    initialised_here: bool = False

    @property
    def is_main(self) -> bool:
        """True on the process that writes checkpoints, history and progress bars."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """True when more than one process takes part."""
        return self.world > 1


def init_from_env(device_type: str) -> DistInfo:
    """Join the process group described by torchrun's environment (``WORLD_SIZE``, ``RANK`` ...).

    Uses NCCL for CUDA and gloo for CPU. Without ``WORLD_SIZE`` > 1 this is a no-op (world 1).
    """
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(local)
    dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(rank, world, local, initialised_here=True)


def shutdown(info: DistInfo) -> None:
    """Destroy the process group if :func:`init_from_env` created it."""
    if info.initialised_here and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Wait for all ranks (no-op in a single process)."""
    if info.enabled:
        dist.barrier()


class _GatherWithGrad(torch.autograd.Function):
    """all_gather along dim 0 whose backward sums the gradient over ranks and keeps the local slice."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.rank, ctx.n = dist.get_rank(), x.shape[0]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)  # (world·B, ...)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)  # works on gloo and NCCL alike
        return grad[ctx.rank * ctx.n:(ctx.rank + 1) * ctx.n]


def gather_with_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` (B, ...) from all ranks in rank order; gradients flow back to every rank."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    return _GatherWithGrad.apply(x)


@torch.no_grad()
def gather_nograd(x: Tensor) -> Tensor:
    """Concatenate a non-differentiable tensor (e.g. ids) from all ranks in rank order."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def gather_batch(feats: dict, batch: dict, keys=("image_ids", "caption_ids")) -> tuple[dict, dict]:
    """Global features (all tensors, with gradients) and a global batch holding only ``keys``."""
    g_feats = {k: gather_with_grad(v) for k, v in feats.items()}
    g_batch = {k: gather_nograd(batch[k]) for k in keys if k in batch}
    return g_feats, g_batch


def mix_seed(*parts: int) -> int:
    """A well-mixed 31-bit seed from integers (e.g. ``(seed, epoch, rank)``)."""
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0] & 0x7FFFFFFF)


class EpochBatchSampler(Sampler):
    """Reproducible shuffled batches: each epoch's order depends only on ``(seed, epoch)``.

    The dataset is permuted with a generator seeded from ``(seed, epoch)`` and cut into *global*
    batches of ``batch_size · world``; rank ``r`` takes the contiguous ``r``-th slice of each. The
    all-gathered global batch is therefore the same sequence of samples as a single process with
    ``batch_size · world`` would see, and a resumed run sees the same batches after
    :meth:`set_epoch`. A final partial global batch is kept in a single process and dropped when
    ``world > 1`` (ranks must hold equal-sized batches for all_gather).
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, rank: int = 0, world: int = 1,
                 shuffle: bool = True, drop_last: bool = False):
        if n <= 0 or batch_size <= 0:
            raise ValueError(f"EpochBatchSampler needs n > 0 and batch_size > 0, got n={n}, batch_size={batch_size}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world, self.shuffle = rank, world, shuffle
        self.drop_last = drop_last or world > 1
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose permutation the next iteration uses."""
        self.epoch = epoch

    def _order(self) -> Tensor:
        if not self.shuffle:
            return torch.arange(self.n)
        g = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch))
        return torch.randperm(self.n, generator=g)

    def __iter__(self):
        order, gb = self._order(), self.batch_size * self.world
        for g0 in range(0, self.n, gb):
            if g0 + gb > self.n and self.drop_last:
                break
            start = g0 + self.rank * self.batch_size
            yield order[start:min(start + self.batch_size, self.n)].tolist()

    def __len__(self) -> int:
        gb = self.batch_size * self.world
        return self.n // gb if self.drop_last else math.ceil(self.n / gb)
