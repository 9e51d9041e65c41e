"""Models: backbone, MVSA, text encoders, visual-guided attention, AMFMN, MSA."""

import dataclasses

from torch import nn


class DictConfig:
    """``to_dict``/``from_dict`` of the model config dataclasses (checkpoint JSON); unknown keys are an error."""

    def to_dict(self) -> dict:
        """Plain dict for checkpoint JSON."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        """Inverse of :meth:`to_dict`."""
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
        return cls(**d)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``module`` (each shared tensor once), only those that require
    gradients with ``trainable_only``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
