"""Embeddings of a split (notebook 05): encode once, the image-guided text vectors of AMFMN, a joint
2-D UMAP."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from rsnb.data.dataset import ImageDataset, TextDataset, collate
from rsnb.encode import encode_corpus


def encode_split(model, corpus_split, vocab, image_size: int, device="auto", batch_size: int = 64,
                 use_keywords: bool = True) -> tuple[dict, dict]:
    """Encode every image and caption of a split once: ``(img_feats, txt_feats)`` on the CPU.

    The features feed ``rsnb.encode.score_all`` (the (N_images, N_captions) matrix of
    ``rsnb.evaluate.evaluate``), :func:`guided_text_vectors` and :func:`embed_2d` without re-encoding.
    """
    il = DataLoader(ImageDataset(corpus_split, image_size=image_size), batch_size, collate_fn=collate)
    tl = DataLoader(TextDataset(corpus_split, vocab), batch_size, collate_fn=collate)
    return encode_corpus(model, il, tl, device, use_keywords=use_keywords)


@torch.no_grad()
def guided_text_vectors(model, img_feats: dict, txt_feats: dict, image_index) -> torch.Tensor:
    """Text vectors Ft as seen by a given image, for matched (image, text) pairs.

    AMFMN has no image-independent text embedding: VGA builds the text vector from the image it is
    compared with, and sim = cos(Fv_i, Ft_ij). This returns Ft for the pairs (image_index[j], j).

    Args:
        model: an :class:`rsnb.models.amfmn.AMFMN`.
        img_feats: {"v": (N_i, D)}; txt_feats: {"s"/"k": (N_t, D)} (from ``encode_corpus``).
        image_index: (N_t,) image paired with each text.

    Returns:
        (N_t, D) CPU text vectors; cos(img_feats["v"][image_index[j]], out[j]) equals ``model.score``.
    """
    dev = next(model.parameters()).device  # features may live on the CPU, the model on a GPU
    v = img_feats["v"][torch.as_tensor(np.asarray(image_index), dtype=torch.long)].to(dev)  # (N_t, D)
    parts = []
    for key, vga in (("s", model.vga_sentence), ("k", model.vga_keywords)):
        if key in txt_feats and vga is not None:
            parts.append(vga(v, txt_feats[key].to(dev)))  # (N_t, D)
        elif key in txt_feats and not model.cfg.use_vga:
            parts.append(txt_feats[key].to(dev))
    if not parts:
        raise ValueError("guided_text_vectors: txt_feats has neither 's' nor 'k' for this model")
    ft = parts[0] if len(parts) == 1 else model._fuse(*parts)  # the fusion of AMFMN.score: VGMF or the mean
    return ft.float().cpu()


def embed_2d(*blocks, n_neighbors: int = 15, seed: int = 0, metric: str = "cosine") -> list[np.ndarray]:
    """Joint 2-D UMAP of several (N_k, D) feature blocks; returns one (N_k, 2) array per block.

    The first call compiles umap-learn's numba kernels (about 20 s). ``n_neighbors`` is lowered to
    fit small inputs.
    """
    import umap  # deferred: importing umap-learn (numba) takes seconds, and only this function needs it

    x = np.concatenate([np.asarray(b, dtype=np.float32) for b in blocks])
    reducer = umap.UMAP(n_neighbors=max(2, min(n_neighbors, len(x) - 1)), metric=metric,
                        random_state=seed, n_jobs=1)
    xy = reducer.fit_transform(x)
    cuts = np.cumsum([len(b) for b in blocks])[:-1]
    return np.split(xy, cuts)
