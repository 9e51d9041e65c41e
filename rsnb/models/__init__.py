"""Models: backbone, MVSA, text encoders, visual-guided attention, AMFMN, MSA."""

from torch import nn


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``module`` (each shared tensor once), only those that require
    gradients with ``trainable_only``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
