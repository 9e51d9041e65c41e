"""Evaluation cost: rsnb's encode-once + cached scoring vs the official sharded evaluation.

The official AMFMN evaluation cuts images and captions into shards of 128 and runs the *full*
model (CNN + GRU + attention) on every (image shard, caption shard) pair, so the CNN runs once per
caption shard and the GRU once per image shard. rsnb encodes each image and caption once and
scores the cached vectors (soft attention: two matmuls; other variants: chunked pair blocks).

Both paths are timed side by side in one run on the same model and inputs, and their score
matrices are compared. Usage::

    python bench/bench_eval.py [--images 64] [--size 128] [--shard 16] [--vga soft]
"""

from __future__ import annotations

import argparse
import time

import torch

from rsnb.models.amfmn import AMFMN, AMFMNConfig


def official_style(model, images, tokens, lengths, shard):
    """Full forward for every (image shard, caption shard) pair, as the released eval does."""
    n_i, n_t = images.shape[0], tokens.shape[0]
    out = torch.empty(n_i, n_t)
    for i0 in range(0, n_i, shard):
        for j0 in range(0, n_t, shard):
            img = model.encode_images(images[i0:i0 + shard])
            txt = model.encode_texts(tokens[j0:j0 + shard], lengths[j0:j0 + shard])
            out[i0:i0 + shard, j0:j0 + shard] = model.score(img, txt)
    return out


def cached(model, images, tokens, lengths, batch):
    """Encode each image and caption once, then score all pairs on cached vectors."""
    img = [model.encode_images(images[i:i + batch])["v"] for i in range(0, images.shape[0], batch)]
    txt = [model.encode_texts(tokens[j:j + batch], lengths[j:j + batch])["s"] for j in range(0, tokens.shape[0], batch)]
    return model.score({"v": torch.cat(img)}, {"s": torch.cat(txt)})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--shard", type=int, default=16, help="official shard size (128 in the released code)")
    p.add_argument("--vga", default="soft", choices=("soft", "fusion", "sim"))
    a = p.parse_args()
    torch.manual_seed(0)
    model = AMFMN(AMFMNConfig.paper(vocab_size=500, image_size=a.size, pretrained=False, vga=a.vga)).eval()
    n_t = 5 * a.images
    images = torch.randn(a.images, 3, a.size, a.size)
    lengths = torch.randint(5, 20, (n_t,))
    tokens = torch.randint(2, 500, (n_t, 20)) * (torch.arange(20)[None] < lengths[:, None])
    with torch.inference_mode():
        t0 = time.perf_counter()
        ours = cached(model, images, tokens, lengths, a.shard)
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        ref = official_style(model, images, tokens, lengths, a.shard)
        t_ref = time.perf_counter() - t0
    diff = (ours - ref).abs().max().item()
    shards_i, shards_t = -(-a.images // a.shard), -(-n_t // a.shard)
    print(f"{a.images} images x {n_t} captions at {a.size}px, vga={a.vga}, shard {a.shard} "
          f"({shards_i}x{shards_t} = {shards_i * shards_t} full forwards officially)")
    print(f"  official sharded eval : {t_ref:8.2f} s")
    print(f"  rsnb encode-once      : {t_ours:8.2f} s")
    print(f"  speed-up              : {t_ref / t_ours:8.1f}x   (max |score difference| {diff:.2e})")


if __name__ == "__main__":
    main()
