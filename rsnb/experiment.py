"""From a run config to a trained, evaluated run: the glue behind ``python -m rsnb train/evaluate/demo``.

Configs are read and validated by :mod:`rsnb.runconfig` (its ``load_config``, ``DEFAULTS``, ... are
re-exported here); this module prepares the data (synthetic or on disk, validation carve-out,
the fold of the k-fold protocol), builds the model through :mod:`rsnb.models.registry`, trains and
evaluates. It holds no model-specific code.

A run folder holds ``config.yaml`` (the resolved config, with ``model.pretrained`` set to what the
backbone really started from: ``imagenet``, ``random`` or the weights file), ``model.json``
(model name + resolved model config), the tokenizer files (``vocab.json``, or ``text_encoder/`` for
a pretrained text encoder), ``best``/``last`` checkpoints, ``history.{csv,json}`` and ``metrics_<split>.json`` after evaluation.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import yaml

from rsnb import checkpoint as ckpt
from rsnb import runfolder
from rsnb.config import cache_dir, load_yaml
from rsnb.data.check import cache_file as image_check_cache
from rsnb.data.check import check_images
from rsnb.data.corpus import Corpus
from rsnb.data.dataset import CaptionDataset, ImageDataset, TextDataset, collate
from rsnb.data.formats import load_corpus
from rsnb.data.keywords import KeywordRules
from rsnb.data.synthetic import generate
from rsnb.data.vocab import Vocab
from rsnb.errors import ConfigError
from rsnb.evaluate import evaluate, evaluate_keywords, format_table, kfold_splits, make_val_fn, text_inputs
from rsnb.models import registry
from rsnb.runconfig import (  # noqa: F401
    DEFAULTS,
    PRESETS,
    check_config,
    load_config,
    model_config,
    preset_names,
    resolve_protocol,
)
from rsnb.train import TrainConfig, seed_everything, train


# ------------------------------------------------------------------------------ data
def synthetic_path(cfg: dict) -> Path:
    """Folder of the synthetic dataset a config asks for (generated on first use)."""
    s = cfg["data"]["synthetic"]
    base = Path(cfg["data"]["cache_dir"]) if cfg["data"].get("cache_dir") else cache_dir()
    name = f"synthetic-n{s['images']}-s{s['size']}-seed{s['seed']}"
    splits = _synthetic_splits(s)
    if splits != (0.8, 0.1, 0.1):  # the default keeps its historical folder name
        name += "-split" + "-".join(f"{f:g}" for f in splits)
    return base / name


def _synthetic_splits(s: dict) -> tuple[float, float, float]:
    """``data.synthetic.splits`` as three train/val/test fractions (default 0.8, 0.1, 0.1)."""
    raw = s.get("splits") or (0.8, 0.1, 0.1)
    if isinstance(raw, str):
        raw = raw.split(",")
    try:
        splits = tuple(float(f) for f in raw)
    except (TypeError, ValueError):
        raise ConfigError(f"data.synthetic.splits must be three train,val,test fractions, got {raw!r}") from None
    if len(splits) != 3 or min(splits) < 0 or abs(sum(splits) - 1) > 1e-6:
        raise ConfigError(f"data.synthetic.splits must be three non-negative fractions summing to 1, got {raw!r}")
    return splits


def prepare_corpus(cfg: dict, progress: bool = True) -> Corpus:
    """Load (or generate) the dataset of ``cfg``, check its images, make sure it has train/val/test splits.

    ``data.captions_per_image`` (5, or ``any``) and ``data.allow_outside_paths`` go to the reader;
    with ``data.check_images`` (default true) every image is opened and decoded first
    (:func:`rsnb.data.check.check_images`, cached under ``data.cache_dir``).
    """
    d = cfg["data"]
    cpi = d.get("captions_per_image", 5)
    opts = {"captions_per_image": None if cpi == "any" else int(cpi),
            "allow_outside_paths": bool(d.get("allow_outside_paths", False))}
    if d.get("path"):
        corpus = load_corpus(d["path"], image_dir=d.get("image_dir"), **opts)
    else:
        folder = synthetic_path(cfg)
        if not (folder / "dataset.json").is_file():
            # write to a private folder, then rename: concurrent callers (torchrun ranks,
            # parallel notebooks) never read a half-written dataset
            s = d["synthetic"]
            tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
            generate(tmp, s["images"], size=s["size"], seed=s["seed"], splits=_synthetic_splits(s), progress=progress)
            try:
                tmp.rename(folder)
            except OSError:  # another process finished first; theirs is identical
                shutil.rmtree(tmp, ignore_errors=True)
        corpus = load_corpus(folder / "dataset.json", **opts)
    if d.get("max_images"):
        corpus = _subsample(corpus, int(d["max_images"]), int(d.get("seed", 0)))
    if d.get("check_images", True):
        base = Path(d["cache_dir"]) if d.get("cache_dir") else cache_dir()
        check_images(corpus, image_check_cache(base, corpus), progress=progress)
    if d.get("kfold"):
        return apply_fold(corpus, int(d["kfold"]), int(d.get("fold") or 0), int(d.get("seed", 0)))
    return ensure_val_split(corpus, float(d.get("val_fraction", 0.1)), int(d.get("seed", 0)))


def _subsample(corpus: Corpus, n: int, seed: int) -> Corpus:
    """Keep about ``n`` images, the same fraction from every split (quick mode)."""
    if len(corpus) <= n:
        return corpus
    rng = np.random.default_rng(seed)
    keep = set(rng.choice(len(corpus), n, replace=False).tolist())
    return replace(corpus, images=[r for i, r in enumerate(corpus.images) if i in keep])


def apply_fold(corpus: Corpus, k: int, fold: int, seed: int = 0) -> Corpus:
    """Fold ``fold`` of the k-fold protocol: the train and val images together are cut into ``k``
    fixed, disjoint parts (:func:`rsnb.evaluate.kfold_splits`); part ``fold`` becomes ``val`` and
    the rest ``train``. The test split is never touched."""
    if not 0 <= fold < k:
        raise ConfigError(f"data.fold={fold}: must be in 0..{k - 1} for data.kfold={k}")
    pool = [i for i, r in enumerate(corpus.images) if r.split in ("train", "val")]
    _, val_idx = kfold_splits(len(pool), k, seed)[fold]
    val = {pool[j] for j in val_idx.tolist()}
    images = [replace(r, split="val" if i in val else "train") if r.split in ("train", "val") else r
              for i, r in enumerate(corpus.images)]
    return replace(corpus, images=images)


def ensure_val_split(corpus: Corpus, fraction: float = 0.1, seed: int = 0) -> Corpus:
    """Give a corpus without ``val`` images a validation split carved from ``train`` (fixed seed)."""
    if corpus.splits.get("val", 0) > 0:
        return corpus
    train_idx = [i for i, r in enumerate(corpus.images) if r.split == "train"]
    n_val = max(1, int(round(fraction * len(train_idx))))
    rng = np.random.default_rng(seed)
    val = set(rng.choice(train_idx, n_val, replace=False).tolist())
    images = [replace(r, split="val") if i in val else r for i, r in enumerate(corpus.images)]
    return replace(corpus, images=images, val_from_train=True)


def build_vocab(train_split: Corpus, cfg: dict) -> Vocab:
    """The run's rsnb vocabulary (see :func:`rsnb.models.registry.build_vocab`): the file
    ``data.vocab`` when set, else built on the training captions and keywords only."""
    return registry.build_vocab(train_split, resolve_protocol(cfg))


def train_dataset(cfg: dict, train_split: Corpus, tokenizer, rules: KeywordRules | None = None) -> CaptionDataset:
    """The training samples of a run: one per caption, ``data.augment`` and keyword ``rules`` applied."""
    return CaptionDataset(train_split, tokenizer, image_size=int(cfg["image_size"]),
                          augment=resolve_protocol(cfg)["data"]["augment"], keyword_rules=rules)


def keyword_rules(cfg: dict, train_split: Corpus, model) -> KeywordRules | None:
    """The paper's keyword input rules for a model that reads keywords (None for the others, or when
    ``data.keywords_from_sentence`` and ``data.keyword_word_share`` turn both off); see
    :mod:`rsnb.data.keywords`. Keys missing from an older run's config count as off."""
    inputs = text_inputs(model)
    if "keywords" not in inputs:
        return None
    d = cfg["data"]
    rules = KeywordRules.from_training([k for r in train_split.images for k in r.keywords],
                                       from_sentence=bool(d.get("keywords_from_sentence", False)),
                                       word_share=d.get("keyword_word_share"), joint=len(inputs) > 1)
    return rules if rules.active else None


# ------------------------------------------------------------------------------ model


def batch_hook(cfg: dict, model_cfg, train_split: Corpus):
    """The model's ``batch_hook`` for training (AMFMN: the prior similarity), or None."""
    return registry.builder_for(cfg).batch_hook(model_cfg, train_split)


def _write_model_json(out: Path, name: str, mcfg) -> None:
    (out / registry.MODEL_FILE).write_text(json.dumps({"name": name, "config": mcfg.to_dict()}, indent=1))


# ------------------------------------------------------------------------------ runs
def train_run(cfg: dict, out_dir: str | Path, resume: bool = False, device="auto", progress: bool = True,
              overwrite: bool = False) -> dict:
    """Train the model a config describes; select on validation; return history and paths.

    The run folder is checked before anything is written (:mod:`rsnb.runfolder`): a folder holding
    files needs ``resume`` or ``overwrite``, a folder in use by another process is refused, and a start
    that fails before the first checkpoint leaves no folder behind.

    Returns:
        ``{"run_dir", "history", "model", "vocab", "corpus"}``; ``vocab`` is the run's tokenizer
        (an rsnb :class:`Vocab` for AMFMN, the model's own for MSA with a pretrained text encoder).

    Raises:
        ConfigError, DataFormatError, RunFolderError: bad config, bad data, folder in use or occupied.
    """
    cfg = check_config(resolve_protocol(copy.deepcopy(cfg)))
    out = Path(out_dir)
    main = runfolder.is_main_process()
    if main:
        runfolder.check_target(out, resume, overwrite)
    corpus = prepare_corpus(cfg, progress=progress)  # data errors stop here, before the folder exists
    with runfolder.claim(out, overwrite=overwrite, enabled=main):
        return _train_in_folder(cfg, out, corpus, resume, device)


def _train_in_folder(cfg: dict, out: Path, corpus: Corpus, resume: bool, device) -> dict:
    builder = registry.builder_for(cfg)
    train_split, val_split = corpus.split("train"), corpus.split("val")
    if resume and (out / registry.MODEL_FILE).is_file():
        tok = builder.load_tokenizer(out)
    else:
        tok = builder.make_tokenizer(cfg, train_split, out)
    from_checkpoint = resume and ckpt.checkpoint_paths(out, "last")["json"].is_file()
    if from_checkpoint and (out / "config.yaml").is_file():  # the initialisation the run really had
        recorded = (load_yaml((out / "config.yaml").read_text()).get("model") or {}).get("pretrained")
        if recorded is not None:
            cfg["model"]["pretrained"] = recorded
    mcfg = builder.make_config(cfg, len(tok))
    tcfg = TrainConfig.from_dict(cfg["train"])
    if builder.ddp_find_unused:
        tcfg = replace(tcfg, ddp_find_unused=True)
    seed_everything(tcfg.seed)  # initial weights are part of the run: seed before building the model
    model = builder.build(mcfg, tok, not from_checkpoint)
    init = getattr(model, "backbone_init", None)  # "imagenet", "random" (also after a failed download) or a path
    if not from_checkpoint and init is not None:
        cfg["model"]["pretrained"] = init
        mcfg = replace(mcfg, pretrained=init)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    _write_model_json(out, builder.name, mcfg)
    size = int(cfg["image_size"])
    rules = keyword_rules(cfg, train_split, model)
    data = train_dataset(cfg, train_split, tok, rules)
    bs = int(cfg["eval"]["batch_size"])
    if text_inputs(model) == ("keywords",):  # one keyword query per image (paper Table III)
        def val_fn(m):
            return evaluate(m, val_split, tok, device=device, batch_size=bs, image_size=size, keyword_rules=rules)
    else:
        il = torch.utils.data.DataLoader(ImageDataset(val_split, image_size=size), batch_size=bs, collate_fn=collate)
        tl = torch.utils.data.DataLoader(TextDataset(val_split, tok, rules), batch_size=bs, collate_fn=collate)
        val_fn = make_val_fn(il, tl, val_split.caption_to_image, device)
    history = train(tcfg, model, data, val_fn, device=device, out_dir=out, resume=resume,
                    batch_hook=builder.batch_hook(mcfg, train_split), collate_fn=collate)
    return {"run_dir": out, "history": history, "model": model, "vocab": tok, "corpus": corpus}


def load_run(run_dir: str | Path, tag: str = "best", device="cpu") -> tuple:
    """Rebuild a trained model from a run folder (safetensors weights; nothing is unpickled).

    The model comes from ``model.json`` (name + resolved model config) when present, else from
    ``config.yaml``; nothing is downloaded (the weights are in the checkpoint).

    Returns:
        ``(model, tokenizer, cfg)``: the model in eval mode, the run's tokenizer (the ``vocab`` of
        AMFMN runs) and the run config dict.
    """
    run = Path(run_dir)
    cfg_path = run / "config.yaml"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{run}: not a run folder (no config.yaml); train one with `python -m rsnb train`")
    cfg = load_yaml(cfg_path.read_text())
    model_json = run / registry.MODEL_FILE
    if model_json.is_file():
        info = json.loads(model_json.read_text())
        builder = registry.get_builder(info["name"])
        mcfg = builder.config_from_dict(info["config"])
        tok = builder.load_tokenizer(run)
    else:  # runs written before model.json existed (AMFMN only)
        builder = registry.builder_for(cfg)
        tok = builder.load_tokenizer(run)
        mcfg = builder.make_config(cfg, len(tok))
    size = getattr(mcfg, "vocab_size", None)
    if size is not None and size != len(tok):
        raise ckpt.CheckpointError(f"{run / registry.VOCAB_FILE}: {len(tok)} tokens, but the run's model was trained with "
                                   f"{size} ({registry.MODEL_FILE}); the vocabulary does not belong to this run")
    model = builder.build(mcfg, tok, False)
    if tag == "best" and not ckpt.checkpoint_paths(run, tag)["json"].is_file():
        kept = "a last checkpoint" if ckpt.checkpoint_paths(run, "last")["json"].is_file() else "no checkpoint at all"
        raise ckpt.CheckpointError(f"{run}: no best checkpoint (best.json; it is written when validation improves) "
                                   f"and the run has {kept}; pass --tag last (tag='last') to use the last one")
    doc = ckpt.load_checkpoint(run, tag, model, device=device)
    stored = (doc.get("model") or {}).get("name")
    if stored is not None and stored != builder.name:
        raise ckpt.CheckpointError(f"{run}/{tag}.json holds a {stored!r} model but the run folder says {builder.name!r}")
    return model.to(device).eval(), tok, cfg


def checkpoint_summary(run_dir: str | Path, tag: str) -> str:
    """One line naming the checkpoint a run uses: file, epoch and the validation score that selected it."""
    doc = json.loads(ckpt.checkpoint_paths(run_dir, tag)["json"].read_text(encoding="utf-8"))
    row = (doc.get("state") or {}).get("metrics") or {}
    score = f", val mR {row['val_mR']:.2f}" if isinstance(row.get("val_mR"), float) else ""
    return f"checkpoint: {tag} ({Path(run_dir) / f'{tag}.json'}, epoch {(doc.get('state') or {}).get('epoch', '?')}{score})"


def evaluate_run(run_dir: str | Path, data: str | Path | None = None, split: str = "test", device="auto",
                 tag: str = "best", notes: list | None = None) -> dict:
    """Evaluate a run on one split; write ``metrics_<split>.json``; return the metrics.

    Args:
        notes: a list that receives lines for the reader: the checkpoint used and, on a ``val`` split
            carved from the training images, that it is one (the CLI prints them).
    """
    model, vocab, cfg = load_run(run_dir, tag)
    if data is not None:
        cfg["data"]["path"] = str(data)
    full = prepare_corpus(cfg, progress=False)
    corpus = full.split(split)
    if notes is not None:
        notes.append(checkpoint_summary(run_dir, tag))
        if split == "val" and full.val_from_train:
            notes.append(f"note: the dataset has no val split of its own; this val split is "
                         f"{full.splits.get('val', 0)} images carved from the training images "
                         f"(data.val_fraction={cfg['data'].get('val_fraction')}, seed {cfg['data'].get('seed')}), "
                         f"held out of training by this run")
    if len(corpus) == 0:
        raise ValueError(f"split {split!r} is empty in the dataset of {run_dir}")
    size = int(cfg["image_size"])
    rules = keyword_rules(cfg, full.split("train"), model)
    metrics = evaluate(model, corpus, vocab, device=device, batch_size=int(cfg["eval"]["batch_size"]), image_size=size,
                       keyword_rules=rules)
    if cfg["eval"].get("keywords") and any(r.keywords for r in corpus.images):
        kw = evaluate_keywords(model, corpus, vocab, device=device, image_size=size, keyword_rules=rules)
        metrics.update({f"keywords_{k}": v for k, v in kw.items()})
    metrics["n_images"], metrics["n_captions"] = len(corpus), len(corpus.captions)
    Path(run_dir, f"metrics_{split}.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def print_metrics(metrics: dict, name: str = "rsnb") -> str:
    """Format a metrics dict as the R@K table (returns the text)."""
    return format_table({name: metrics})
