"""Model registry: ``model.name`` in a run config picks the builder that knows that model.

The engine (:mod:`rsnb.experiment`, :mod:`rsnb.train`, :mod:`rsnb.evaluate`) holds no model-specific
code. Everything a run needs to know about a model lives in one :class:`ModelBuilder`, exposed as
``BUILDER`` by the model's module and listed once in :data:`REGISTRY`::

    REGISTRY = {"amfmn": "rsnb.models.amfmn", "msa": "rsnb.models.msa"}

Adding a third model = one new module with a ``BUILDER`` + one line here.

**Tokenizers.** How a run turns caption strings into token ids is part of the model: AMFMN uses the
rsnb :class:`~rsnb.data.vocab.Vocab` built on the training captions, MSA with a BERT-style encoder
uses that model's word-piece tokenizer. Every tokenizer offers the same duck-typed interface, the
one :class:`~rsnb.data.dataset.TextDataset` and :class:`~rsnb.data.dataset.CaptionDataset` already
use: ``encode(text) -> list[int]``, ``encode_keyword(phrase) -> list[int]``, ``unk_id`` and
``len()``. Ids are right-padded with 0 by :func:`rsnb.data.dataset.collate` and come with
``lengths``; a model whose tokenizer pads with another id (or needs an attention mask) builds it
from ``lengths`` itself. :func:`text_batch` turns a list of strings into that batch for any model.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rsnb.data.dataset import collate
from rsnb.data.vocab import Vocab
from rsnb.errors import ConfigError

#: model name -> module holding its ``BUILDER`` (imported lazily: transformers only loads for MSA).
REGISTRY: dict[str, str] = {
    "amfmn": "rsnb.models.amfmn",
    "msa": "rsnb.models.msa",
}

VOCAB_FILE = "vocab.json"
MODEL_FILE = "model.json"


def build_vocab(train_split, run_cfg: dict) -> Vocab:
    """The run's rsnb vocabulary: the file ``data.vocab`` when set (a released AMFMN
    ``*_splits_vocab.json`` or an rsnb ``vocab.json``), else built on the training captions and
    keywords only (``data.min_count``); ``data.stopwords`` is ``keep``, ``unk`` or ``delete``."""
    d = run_cfg["data"]
    stopwords = d.get("stopwords") or ("delete" if d.get("remove_stopwords") else "keep")
    if d.get("vocab"):
        return Vocab.from_file(d["vocab"], stopwords=stopwords)
    texts = train_split.captions + [k for r in train_split.images for k in r.keywords]
    return Vocab.build(texts, min_count=int(d["min_count"]), stopwords=stopwords)


def vocab_tokenizer(run_cfg: dict, train_split, run_dir: Path | None = None) -> Vocab:
    """The default ``make_tokenizer``: :func:`build_vocab`, saved as ``run_dir/vocab.json``."""
    vocab = build_vocab(train_split, run_cfg)
    if run_dir is not None:
        vocab.save(Path(run_dir) / VOCAB_FILE)
    return vocab


def load_vocab(run_dir: Path) -> Vocab:
    """The default ``load_tokenizer``: ``run_dir/vocab.json``."""
    return Vocab.load(Path(run_dir) / VOCAB_FILE)


def _no_hook(model_cfg, train_split) -> Callable | None:
    return None


@dataclass(frozen=True)
class ModelBuilder:
    """Everything the engine needs to know about one model.

    Attributes:
        name: the ``model.name`` value.
        config_cls: the model's config dataclass (``to_dict`` / ``from_dict``).
        make_config: ``(run_cfg, vocab_size) -> config``: presets + the ``model:`` section + what the
            run fixes (``len(tokenizer)``, image size). Unknown keys raise ``ValueError``.
        build: ``(config, tokenizer, init_pretrained) -> nn.Module``, a RetrievalModel (DESIGN.md).
            ``init_pretrained=False`` when a checkpoint is loaded next: nothing is downloaded.
        make_tokenizer: ``(run_cfg, train_split, run_dir) -> tokenizer`` for a new run; writes what
            :attr:`load_tokenizer` needs into ``run_dir`` (default: the rsnb Vocab, ``vocab.json``).
        load_tokenizer: ``(run_dir) -> tokenizer`` of a trained run, from its files only (offline).
        batch_hook: ``(config, train_split) -> hook or None``; ``hook(global_batch)`` runs after the
            DDP gather and before ``model.loss`` (AMFMN's prior similarity).
        run_keys: ``model:`` keys that are not config fields (``name``, ``preset``, ...).
        derived_keys: config fields the run sets and users must not (``vocab_size``, ``image_size``).
        ddp_find_unused: DDP must look for parameters the loss leaves unused.
    """

    name: str
    config_cls: type
    make_config: Callable[[dict, int], Any]
    build: Callable[[Any, Any, bool], nn.Module]
    make_tokenizer: Callable[..., Any] = vocab_tokenizer
    load_tokenizer: Callable[[Path], Any] = load_vocab
    batch_hook: Callable[[Any, Any], Callable | None] = _no_hook
    run_keys: tuple[str, ...] = ("name", "preset")
    derived_keys: tuple[str, ...] = ("vocab_size", "image_size")
    ddp_find_unused: bool = False

    def allowed_keys(self) -> set[str]:
        """Keys a user may write in the ``model:`` section of a run config."""
        fields = {f.name for f in dataclasses.fields(self.config_cls)}
        return (fields - set(self.derived_keys)) | set(self.run_keys)

    def config_from_dict(self, d: dict):
        """Inverse of ``config.to_dict()`` (as stored in ``model.json`` of a run folder)."""
        return self.config_cls.from_dict(d)


def model_names() -> list[str]:
    """Registered model names."""
    return sorted(REGISTRY)


def get_builder(name: str) -> ModelBuilder:
    """The :class:`ModelBuilder` of ``name`` (``model.name`` of a run config)."""
    if name not in REGISTRY:
        raise ConfigError(f"model.name {name!r} is not a known model; choose one of {model_names()}")
    builder = importlib.import_module(REGISTRY[name]).BUILDER
    if builder.name != name:
        raise RuntimeError(f"{REGISTRY[name]}.BUILDER is named {builder.name!r}, registered as {name!r}")
    return builder


def builder_for(run_cfg: dict) -> ModelBuilder:
    """The builder a run config asks for (``model.name``, default ``amfmn``)."""
    return get_builder((run_cfg.get("model") or {}).get("name", "amfmn"))


def split_model_section(run_cfg: dict, builder: ModelBuilder) -> tuple[dict, dict]:
    """``model:`` section -> (run keys such as preset, config overrides); unknown keys raise."""
    m = dict(run_cfg.get("model") or {})
    unknown = sorted(set(m) - builder.allowed_keys())
    if unknown:
        raise ConfigError(f"model ({builder.name}): unknown keys {unknown}; allowed: {sorted(builder.allowed_keys())}")
    run = {k: m.pop(k) for k in builder.run_keys if k in m}
    return run, m


def text_batch(tokenizer, captions: Sequence[str]) -> dict[str, torch.Tensor]:
    """Caption strings -> ``{"tokens" (N, L), "lengths" (N,), ...}`` for ``model.encode_texts``.

    Works for every registered model's tokenizer (see the module docstring); the batch has the
    DESIGN.md text keys (``tokens``, ``lengths``, ``caption_ids``, empty ``keywords``).
    """
    items = [{"tokens": torch.tensor(tokenizer.encode(c) or [tokenizer.unk_id], dtype=torch.long),
              "image_id": 0, "caption_id": j, "keywords": []} for j, c in enumerate(captions)]
    if not items:
        raise ValueError("text_batch: no captions given")
    out = collate(items)
    out.pop("image_ids")
    return out
