"""Single-pass encoding and chunked scoring for :mod:`rsnb.evaluate`: every image and caption through the model
once (:func:`encode_corpus`, features in corpus order on the CPU), then the full score matrix from those cached
features in bounded device blocks (:func:`score_all`).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from rsnb.device import resolve_device, unwrap


def _rows(feats: dict) -> int:
    return next(iter(feats.values())).shape[0]


def _collect(chunks: list[dict[str, Tensor]], ids: list[Tensor], what: str) -> dict[str, Tensor]:
    feats = {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}
    if ids:
        order = torch.cat(ids)
        n = order.numel()
        if not torch.equal(torch.sort(order).values, torch.arange(n)):
            raise ValueError(f"{what} loader ids are not a permutation of 0..{n - 1} (each item exactly once)")
        inv = torch.empty_like(order)
        inv[order] = torch.arange(n)
        feats = {k: v[inv] for k, v in feats.items()}  # back to corpus order
    return feats


def _prepare_images(images: Tensor, dev: torch.device, channels_last: bool) -> Tensor:
    images = images.to(dev, non_blocking=True)
    if images.dtype == torch.uint8:
        from rsnb.data.dataset import normalize  # lazy: the data layer is optional for the engine

        images = normalize(images)  # one float batch at a time, on the device
    return images.contiguous(memory_format=torch.channels_last) if channels_last and images.ndim == 4 else images


@torch.no_grad()
def encode_corpus(model, image_loader: Iterable, text_loader: Iterable, device="auto", use_keywords: bool = True,
                  channels_last: bool = True):
    """Encode every image and every caption exactly once (no shuffling, features on the CPU).

    Args:
        model: a RetrievalModel (``encode_images``, ``encode_texts``); DDP wrappers are unwrapped.
        image_loader: yields image tensors (B, 3, H, W) or dicts with ``images`` (and optionally
            ``image_ids``, used to put features back in corpus order). uint8 batches (from
            ``ImageDataset(normalize=False)``) are normalised here, one batch at a time.
        text_loader: yields dicts with ``tokens`` (B, L), ``lengths`` (B,) and optionally
            ``keywords`` (B, K, Lk), ``keyword_mask`` (B, K), ``caption_ids``.
        device: where the encoders run.
        use_keywords: pass keywords to ``encode_texts`` when the batches carry them.
        channels_last: hand the CNN its images in channels-last (NHWC) layout, oneDNN's native one
            (same features up to float rounding; see bench/RESULTS.md for what it buys).

    Returns:
        ``(img_feats, txt_feats)``: dicts of CPU tensors with leading dims N_images and N_captions.
    """
    net, dev, was_training = unwrap(model), resolve_device(device), model.training
    try:
        net.eval()
        img_chunks, img_ids = [], []
        for batch in image_loader:
            images = batch["images"] if isinstance(batch, dict) else batch
            if isinstance(batch, dict) and "image_ids" in batch:
                img_ids.append(torch.as_tensor(batch["image_ids"]).cpu())
            feats = net.encode_images(_prepare_images(images, dev, channels_last))
            img_chunks.append({k: v.float().cpu() for k, v in feats.items()})  # (B, ...) each
        txt_chunks, txt_ids = [], []
        for batch in text_loader:
            if "caption_ids" in batch:
                txt_ids.append(torch.as_tensor(batch["caption_ids"]).cpu())
            keys = ("tokens", "lengths") + (("keywords", "keyword_mask") if use_keywords and "keywords" in batch else ())
            feats = net.encode_texts(*(batch[k].to(dev, non_blocking=True) for k in keys))
            txt_chunks.append({k: v.float().cpu() for k, v in feats.items()})
    finally:
        net.train(was_training)
    if not img_chunks or not txt_chunks:
        raise ValueError("encode_corpus: an image or text loader yielded no batches")
    return _collect(img_chunks, img_ids, "image"), _collect(txt_chunks, txt_ids, "text")


@torch.no_grad()
def score_all(model, img_feats: dict, txt_feats: dict, device="auto", chunk: tuple[int, int] = (256, 1024)) -> Tensor:
    """Full (N_images, N_captions) score matrix from cached features, block by block.

    Only one (chunk[0] × chunk[1]) block of features and scores lives on the device at a time; the
    result is a float32 CPU tensor. Peak memory is therefore bounded for any corpus size.

    Args:
        model: a RetrievalModel; ``model.score(img_block, txt_block)`` must return (bi, bt).
        img_feats, txt_feats: outputs of :func:`encode_corpus` (leading dims N_images, N_captions).
        device: where ``score`` runs.
        chunk: (images, captions) per block.
    """
    net, dev, was_training = unwrap(model), resolve_device(device), model.training
    n_img, n_txt = _rows(img_feats), _rows(txt_feats)
    out = torch.empty(n_img, n_txt, dtype=torch.float32)
    try:
        net.eval()
        for i0 in range(0, n_img, chunk[0]):
            iv = {k: v[i0:i0 + chunk[0]].to(dev, non_blocking=True) for k, v in img_feats.items()}
            for t0 in range(0, n_txt, chunk[1]):
                tv = {k: v[t0:t0 + chunk[1]].to(dev, non_blocking=True) for k, v in txt_feats.items()}
                block = net.score(iv, tv)  # (bi, bt)
                out[i0:i0 + chunk[0], t0:t0 + chunk[1]] = block.float().cpu()
    finally:
        net.train(was_training)
    return out


def encode_and_score(model, image_loader, text_loader, device="auto", *, use_keywords: bool = True,
                     chunk=(256, 1024), channels_last: bool = True) -> tuple[Tensor, dict, dict]:
    """:func:`encode_corpus` then :func:`score_all`: returns ``(sims, img_feats, txt_feats)``."""
    img, txt = encode_corpus(model, image_loader, text_loader, device, use_keywords=use_keywords,
                             channels_last=channels_last)
    return score_all(model, img, txt, device, chunk=chunk), img, txt
