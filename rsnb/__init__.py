"""rsnb: cross-modal remote-sensing image-text retrieval (AMFMN, MSA).

``rsnb.load(run)`` returns a :class:`rsnb.api.Retriever` (``encode_images``, ``encode_texts``,
``index``, ``search``); it is imported on first use, so ``import rsnb`` stays light.
"""
__version__ = "0.1.0"


def load(run, tag: str = "best", device="auto"):
    """Load a trained run folder for retrieval; see :func:`rsnb.api.load`."""
    from rsnb.api import load as _load  # deferred on purpose: `import rsnb` must not import torch

    return _load(run, tag=tag, device=device)
