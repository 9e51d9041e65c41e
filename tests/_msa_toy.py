"""Tiny MSA models for tests: a BERT built from a BertConfig in memory (no network, no wheel)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from rsnb.models.hf_text import HFTokenizer
from rsnb.models.msa import MSA, MSAConfig

WORDS = ["a", "the", "plane", "planes", "airport", "river", "farmland", "many", "with", "next", "to", "green",
         "trees", "road", "building", "buildings", "parking", "lot", "cars", "beach", "sea", "white", "red",
         "bridge", "over", "near", "some", "large", "small", "square", "at"]


def tiny_bert_folder(folder: str | Path, dropout: float = 0.1) -> Path:
    """Write a random 2-layer, 32-d BERT (weights, config, word-piece tokenizer) into ``folder``."""
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "##s"]) + "\n")
    tok = BertTokenizer(str(vocab))  # positional: transformers 5.x ignores vocab_file=
    cfg = BertConfig(vocab_size=len(WORDS) + 6, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=dropout,
                     attention_probs_dropout_prob=dropout)
    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


def strip_batchnorm(model: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d by Identity: per-rank batch statistics would differ from one process."""
    for name, child in model.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(model, name, nn.Identity())
        else:
            strip_batchnorm(child)
    return model


def tiny_msa(text: str = "bert", folder: Path | None = None, vocab_size: int = 40, **overrides) -> MSA:
    """ResNet-18 (random) + tiny BERT from ``folder`` or a 32-d bi-GRU; D = 32, 4 heads."""
    base = dict(backbone="resnet18", pretrained=False, image_size=64, heads=4, text_encoder=text,
                max_tokens=12, vocab_size=vocab_size, word_dim=16, text_hidden=32)
    cfg = MSAConfig(**{**base, **overrides})
    tok = HFTokenizer.from_folder(folder, cfg.max_tokens, "cls") if text == "bert" else None
    return MSA(cfg, tok, init_pretrained=True)


def msa_ddp_worker(rank: int, world: int, port: int, out: str, cfg_dict: dict, n_images: int, folder: str) -> None:
    """One torchrun-like rank training the tiny MSA; saves its final weights."""
    from _toy import ToyCaptionDataset, make_toy_samples, toy_collate
    from safetensors.torch import save_file

    from rsnb.train import TrainConfig, train

    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = strip_batchnorm(tiny_msa("bert", Path(folder)))
    ds = ToyCaptionDataset(make_toy_samples(n_images=n_images, caps_per_image=(2, 2), seed=4))
    hist = train(TrainConfig.from_dict(cfg_dict), model, ds, device="cpu", out_dir=os.path.join(out, "run"),
                 collate_fn=toy_collate)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(out, f"rank{rank}.safetensors"),
              metadata={"loss": repr(hist[-1]["loss"])})
