"""A tiny RetrievalModel (DESIGN.md interface) and in-memory data for engine tests.

The model is deliberately small but exercises what the engine must handle: a parameter used only
inside ``loss`` (``scale``), a parameter never used (``unused``, like ResNet's fc in AMFMN), image
ids in the loss (same-image pairs are not negatives) and an optional ``batch["prior"]``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

VOCAB = 24
KEYWORDS = 3  # K keyword phrases per image
KW_LEN = 2  # Lk tokens per phrase


class ToyRetrievalModel(nn.Module):
    def __init__(self, vocab_size: int = VOCAB, dim: int = 16, margin: float = 0.2):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.img_proj = nn.Linear(8, dim)
        self.emb = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.txt_proj = nn.Linear(dim, dim)
        self.scale = nn.Parameter(torch.tensor(1.0))  # used only in loss()
        self.unused = nn.Linear(2, 2)  # never used
        self.margin = margin

    def encode_images(self, images):
        x = F.relu(self.conv(images)).mean(dim=(2, 3))  # (B, 8)
        return {"img": self.img_proj(x)}  # (B, D)

    def encode_texts(self, tokens, lengths, keywords=None, keyword_mask=None):
        mask = (tokens != 0).float().unsqueeze(-1)  # (B, L, 1)
        t = (self.emb(tokens) * mask).sum(1) / lengths.clamp(min=1).unsqueeze(-1).float()  # (B, D)
        if keywords is not None:
            kmask = (keywords != 0).float().unsqueeze(-1)  # (B, K, Lk, 1)
            k = (self.emb(keywords) * kmask).sum((1, 2)) / kmask.sum((1, 2)).clamp(min=1)  # (B, D)
            t = t + k
        return {"txt": self.txt_proj(t)}

    def forward(self, batch):
        img = self.encode_images(batch["images"])
        txt = self.encode_texts(batch["tokens"], batch["lengths"], batch.get("keywords"), batch.get("keyword_mask"))
        return {**img, **txt}

    def score(self, img_feats, txt_feats):
        return F.normalize(img_feats["img"], dim=-1) @ F.normalize(txt_feats["txt"], dim=-1).T  # (Ni, Nt)

    def loss(self, feats, batch):
        s = self.scale * self.score(feats, feats)  # (B, B), diagonal = positives
        pos = s.diag()
        same = batch["image_ids"][:, None] == batch["image_ids"][None, :]  # not negatives
        margin = self.margin * (1.0 - batch["prior"]) if "prior" in batch else self.margin
        c_s = (margin + s - pos[:, None]).clamp(min=0).masked_fill(same, 0)
        c_im = (margin + s - pos[None, :]).clamp(min=0).masked_fill(same, 0)
        return c_s.sum() + c_im.sum(), {"pos": float(pos.mean().detach())}


def make_toy_samples(n_images: int = 8, caps_per_image=(2, 3), seed: int = 0, size: int = 8) -> dict:
    """Images whose colour encodes a class, and captions/keywords that name the class."""
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    cls = torch.randint(0, 4, (n_images,), generator=g)
    images = torch.randn(n_images, 3, size, size, generator=g) * 0.5
    images[torch.arange(n_images), cls % 3] += (1.0 + (cls // 3).float())[:, None, None]
    counts = rng.integers(caps_per_image[0], caps_per_image[1] + 1, size=n_images)
    c2i = np.repeat(np.arange(n_images), counts)
    n_cap = len(c2i)
    lengths = torch.randint(2, 7, (n_cap,), generator=g)
    tokens = torch.zeros(n_cap, 6, dtype=torch.long)
    for j in range(n_cap):
        tokens[j, :lengths[j]] = torch.randint(6, VOCAB, (int(lengths[j]),), generator=g)
        tokens[j, 0] = 2 + cls[c2i[j]]  # class word
    img_kw = torch.randint(6, VOCAB, (n_images, KEYWORDS, KW_LEN), generator=g)
    img_kw[:, 0, 0] = 2 + cls
    img_kw_mask = torch.rand(n_images, KEYWORDS, generator=g) < 0.7
    img_kw_mask[:, 0] = True
    img_kw = img_kw * img_kw_mask.unsqueeze(-1)
    ci = torch.as_tensor(c2i)
    return {"images": images, "tokens": tokens, "lengths": lengths, "caption_to_image": c2i,
            "keywords": img_kw[ci], "keyword_mask": img_kw_mask[ci],
            "img_keywords": img_kw, "img_keyword_mask": img_kw_mask}


class ToyCaptionDataset(Dataset):
    """Caption-level training samples (one caption with its image)."""

    def __init__(self, samples: dict):
        self.s = samples

    def __len__(self):
        return len(self.s["caption_to_image"])

    def __getitem__(self, j):
        i = int(self.s["caption_to_image"][j])
        return {"image": self.s["images"][i], "tokens": self.s["tokens"][j], "length": self.s["lengths"][j],
                "image_id": i, "caption_id": j, "keywords": self.s["keywords"][j],
                "keyword_mask": self.s["keyword_mask"][j]}


def toy_collate(items: list[dict]) -> dict:
    """DESIGN.md batch format; tokens are trimmed to the longest caption of the batch."""
    lengths = torch.stack([it["length"] for it in items])
    return {
        "images": torch.stack([it["image"] for it in items]),
        "tokens": torch.stack([it["tokens"] for it in items])[:, :int(lengths.max())],
        "lengths": lengths,
        "image_ids": torch.tensor([it["image_id"] for it in items]),
        "caption_ids": torch.tensor([it["caption_id"] for it in items]),
        "keywords": torch.stack([it["keywords"] for it in items]),
        "keyword_mask": torch.stack([it["keyword_mask"] for it in items]),
    }


def toy_eval_loaders(samples: dict, batch_size: int = 4, shuffle_ids: bool = False):
    """Lists of eval batches (images once, captions once); optionally in shuffled id order."""
    n_img, n_cap = len(samples["images"]), len(samples["tokens"])
    io = np.random.default_rng(0).permutation(n_img) if shuffle_ids else np.arange(n_img)
    co = np.random.default_rng(1).permutation(n_cap) if shuffle_ids else np.arange(n_cap)
    il = [{"images": samples["images"][io[i:i + batch_size]], "image_ids": torch.as_tensor(io[i:i + batch_size])}
          for i in range(0, n_img, batch_size)]
    tl = []
    for j in range(0, n_cap, batch_size):
        idx = torch.as_tensor(co[j:j + batch_size])
        tl.append({"tokens": samples["tokens"][idx], "lengths": samples["lengths"][idx],
                   "keywords": samples["keywords"][idx], "keyword_mask": samples["keyword_mask"][idx],
                   "caption_ids": idx})
    return il, tl, samples["caption_to_image"]


def ddp_worker(rank: int, world: int, port: int, out: str, cfg_dict: dict, n_images: int) -> None:
    """One torchrun-like rank: env vars, same init seed, train, save final weights per rank."""
    from safetensors.torch import save_file

    from rsnb.train import TrainConfig, train

    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = ToyRetrievalModel()
    ds = ToyCaptionDataset(make_toy_samples(n_images=n_images, caps_per_image=(2, 2), seed=4))
    hist = train(TrainConfig.from_dict(cfg_dict), model, ds, device="cpu", out_dir=os.path.join(out, "run"),
                 collate_fn=toy_collate, batch_hook=prior_hook)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(out, f"rank{rank}.safetensors"),
              metadata={"loss": repr(hist[-1]["loss"])})


def prior_hook(batch: dict) -> dict:
    """A batch_hook that adds a deterministic (B, B) prior from the global ids (tests the hook path)."""
    b = dict(batch)
    ids = batch["caption_ids"].float()
    b["prior"] = torch.sigmoid((ids[:, None] - ids[None, :]) / 7.0) * 0.5
    return b


# -------------------------------------------------------------------------- a third registered model
@dataclass
class ToyConfig:
    """Config of :class:`ToyRetrievalModel` as a registry model (tests/test_registry.py)."""

    vocab_size: int = VOCAB
    image_size: int = 64
    dim: int = 16
    margin: float = 0.2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ToyConfig:
        return cls(**d)


class RegisteredToy(ToyRetrievalModel):
    model_name = "toy"

    def __init__(self, cfg: ToyConfig):
        super().__init__(cfg.vocab_size, cfg.dim, cfg.margin)
        self.cfg = cfg


def _toy_config(run_cfg: dict, vocab_size: int) -> ToyConfig:
    from rsnb.models.registry import split_model_section

    _, m = split_model_section(run_cfg, BUILDER)
    return ToyConfig(**m, vocab_size=vocab_size, image_size=int(run_cfg["image_size"]))


def _make_builder():
    from rsnb.models.registry import ModelBuilder

    return ModelBuilder(name="toy", config_cls=ToyConfig, make_config=_toy_config,
                        build=lambda cfg, tok, init_pretrained: RegisteredToy(cfg), ddp_find_unused=True)


BUILDER = _make_builder()
