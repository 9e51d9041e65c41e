"""Retrieval in three lines, for any trained run (AMFMN, MSA, any registered model)::

    import rsnb
    r = rsnb.load("runs/demo")                       # best checkpoint, CUDA when present
    r.index("my_images/")                            # encode a folder (or a list of paths) once
    r.search("three white storage tanks", k=8)       # -> [(path, score), ...] best first

``r.index_texts(captions)`` then ``r.search(Path("scene.png"))`` (or a PIL image) goes the other
way, image -> captions. Scoring always goes through the model's own ``score`` on cached features
(:func:`rsnb.encode.score_all`, in bounded blocks), so AMFMN's visual-guided text vectors and a dual
encoder's dot products are handled alike. ``python -m rsnb index`` / ``search`` wrap this class; an
index on disk is ``embeddings.safetensors`` + ``index.json`` (paths and the run's identity: folder,
checkpoint tag and save id, model name, image size), and is refused by a run it does not belong to.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from rsnb import __version__
from rsnb import checkpoint as ckpt
from rsnb import experiment as ex
from rsnb.data.dataset import ImageTransform, collate, load_image
from rsnb.device import resolve_device
from rsnb.encode import score_all
from rsnb.errors import RsnbError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


class IndexFileError(RsnbError, ValueError):
    """An index folder is missing, damaged, or belongs to another run or checkpoint."""


@torch.no_grad()
def encode_queries(model, tokenizer, queries, device=None) -> dict[str, torch.Tensor]:
    """Encode free-text queries: a string is a sentence, a list of strings a set of keyword phrases.

    The sentence input is the string (or the phrases joined, ``-`` dropped); the keyword input is
    the list of phrases (or the comma-separated parts of the string), so the same query works for
    sentence, keyword and sentence + keyword models. Unknown words become ``<unk>``.

    Args:
        model: a RetrievalModel; tokenizer: the run's tokenizer (``encode_keyword``, ``unk_id``).
        device: where the text encoder runs (the model must be there); None = the model's device.

    Returns:
        ``model.encode_texts`` features with leading dim len(queries), on the CPU.
    """
    items = []
    for q in queries:
        if isinstance(q, list | tuple):  # keyword phrases: the sentence input is their concatenation
            phrases = list(q)
            tokens = [t for p in phrases for t in tokenizer.encode_keyword(p)]
        else:
            phrases = [p for p in q.split(",") if p.strip()]
            tokens = tokenizer.encode_keyword(q)  # encode with a stray "-" dropped
        kw = [torch.tensor(ids, dtype=torch.long) for ids in map(tokenizer.encode_keyword, phrases) if ids]
        items.append({"tokens": torch.tensor(tokens or [tokenizer.unk_id], dtype=torch.long), "image_id": 0,
                      "caption_id": 0, "keywords": kw or [torch.tensor([tokenizer.unk_id])]})
    b = collate(items)
    net = model.module if hasattr(model, "module") else model
    dev = next(net.parameters()).device if device is None else resolve_device(device)
    was_training = net.training
    net.eval()
    feats = net.encode_texts(*(b[k].to(dev) for k in ("tokens", "lengths", "keywords", "keyword_mask")))
    net.train(was_training)
    return {k: v.float().cpu() for k, v in feats.items()}


def image_files(folder_or_paths) -> list[Path]:
    """A folder (searched recursively for image files, sorted) or an explicit list of paths."""
    if isinstance(folder_or_paths, str | Path):
        folder = Path(folder_or_paths)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such image folder")
        paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not paths:
            raise IndexFileError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
        return paths
    paths = [Path(p) for p in folder_or_paths]
    if not paths:
        raise IndexFileError("index: no image paths given")
    return paths


class Index:
    """Image embeddings of a gallery: ``paths`` (N,), ``feats`` (dict of (N, ...) tensors), ``identity``."""

    def __init__(self, paths: list[Path], feats: dict[str, torch.Tensor], identity: dict):
        self.paths, self.feats, self.identity = list(paths), feats, identity

    def __len__(self) -> int:
        return len(self.paths)

    def save(self, folder) -> Path:
        """Write ``folder/embeddings.safetensors`` and ``folder/index.json``; return the folder."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.feats.items()}, str(folder / "embeddings.safetensors"))
        doc = {"identity": self.identity, "paths": [str(p) for p in self.paths]}
        (folder / "index.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder) -> Index:
        """Read an index written by :meth:`save` (safetensors + JSON; nothing is unpickled)."""
        folder = Path(folder)
        meta, emb = folder / "index.json", folder / "embeddings.safetensors"
        if not meta.is_file() or not emb.is_file():
            raise IndexFileError(f"{folder}: not an rsnb index (needs index.json and embeddings.safetensors); "
                              f"build one with `rsnb index`")
        try:
            doc = json.loads(meta.read_text(encoding="utf-8"))
            feats = load_file(str(emb))
        except Exception as e:  # json errors, SafetensorError on a truncated or foreign file
            raise IndexFileError(f"{folder}: damaged index ({type(e).__name__}: {e})") from None
        n = {v.shape[0] for v in feats.values()}
        if n != {len(doc["paths"])}:
            raise IndexFileError(f"{emb}: {n} rows for {len(doc['paths'])} paths in {meta.name}")
        return cls([Path(p) for p in doc["paths"]], feats, doc["identity"])


class Retriever:
    """A trained run ready for queries; build it with :func:`load`.

    Attributes:
        model, tokenizer, cfg: as returned by :func:`rsnb.experiment.load_run`.
        identity: run folder, checkpoint tag and save id, model name, image size.
        gallery: the last :meth:`index` (images), texts: the last :meth:`index_texts` (captions).
    """

    def __init__(self, model, tokenizer, cfg: dict, identity: dict, device):
        self.model, self.tokenizer, self.cfg, self.identity = model, tokenizer, cfg, identity
        self.device = resolve_device(device)
        self.image_size = int(cfg["image_size"])
        self.transform = ImageTransform(self.image_size, train=False)
        self.gallery: Index | None = None
        self.texts: tuple[list[str], dict] | None = None

    # ---------------------------------------------------------------- encoding
    def _tensor(self, image) -> torch.Tensor:
        if isinstance(image, str | Path):
            image = load_image(image)
        if isinstance(image, Image.Image):
            return self.transform(image)  # (3, S, S) normalised
        raise TypeError(f"encode_images: expected a path, a PIL image or a tensor, got {type(image).__name__}")

    @torch.no_grad()
    def encode_images(self, images, batch_size: int = 32, progress: bool = False) -> dict[str, torch.Tensor]:
        """Image features: ``images`` = paths / PIL images (decoded, resized, normalised as in
        evaluation) or a normalised (B, 3, S, S) / (3, S, S) tensor. Returns CPU tensors (N, ...)."""
        if isinstance(images, torch.Tensor):
            batches = [images.unsqueeze(0) if images.ndim == 3 else images]
        else:
            items = [images] if isinstance(images, str | Path | Image.Image) else list(images)
            batches = (torch.stack([self._tensor(x) for x in items[i:i + batch_size]])
                       for i in range(0, len(items), batch_size))
            batches = tqdm(batches, total=-(-len(items) // batch_size), desc="indexing", unit="batch",
                           disable=not progress, dynamic_ncols=True)
        self.model.eval()
        chunks = [{k: v.float().cpu() for k, v in self.model.encode_images(b.to(self.device)).items()} for b in batches]
        return {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}

    def encode_texts(self, texts) -> dict[str, torch.Tensor]:
        """Text features of ``texts`` (a string or a list of strings; a list inside the list is a set of
        keyword phrases). Returns CPU tensors (N, ...)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            raise ValueError("encode_texts: no texts given")
        return encode_queries(self.model, self.tokenizer, texts, self.device)

    # ---------------------------------------------------------------- galleries
    def index(self, folder_or_paths, batch_size: int = 32, progress: bool = True) -> Index:
        """Encode a folder of images (recursive) or a list of paths once; later :meth:`search` calls use it."""
        paths = image_files(folder_or_paths)
        feats = self.encode_images(paths, batch_size=batch_size, progress=progress)
        self.gallery = Index(paths, feats, self.identity)
        return self.gallery

    def use_index(self, index: Index | str | Path) -> Index:
        """Search an index built earlier (an :class:`Index` or its folder); it must come from this checkpoint."""
        index = index if isinstance(index, Index) else Index.load(index)
        mine, theirs = self.identity, index.identity
        if (theirs.get("save_id"), theirs.get("model")) != (mine["save_id"], mine["model"]):
            raise IndexFileError(f"index built with {theirs.get('run')} ({theirs.get('tag')}, save {theirs.get('save_id')}) "
                              f"does not belong to {mine['run']} ({mine['tag']}, save {mine['save_id']}); "
                              f"rebuild it with `rsnb index --run {mine['run']}`")
        self.gallery = index
        return index

    def index_texts(self, texts) -> None:
        """Encode a caption corpus for image -> text :meth:`search`."""
        texts = [str(t) for t in texts]
        self.texts = (texts, self.encode_texts(texts))

    # ---------------------------------------------------------------- search
    def search(self, query, k: int = 10) -> list[tuple]:
        """Ranked ``(item, score)`` rows, best first (ties by index).

        A ``str`` query is text and searches the indexed images (rows are ``(Path, score)``); a
        ``pathlib.Path``, PIL image or image tensor is an image and searches the indexed texts
        (rows are ``(caption, score)``).
        """
        if k < 1:
            raise ValueError(f"search: k must be >= 1, got {k}")
        if isinstance(query, str):
            if self.gallery is None:
                raise IndexFileError("search: no images indexed; call index(folder) or use_index(path) first")
            sims = score_all(self.model, self.gallery.feats, self.encode_texts([query]), self.device)[:, 0]  # (N_img,)
            items = self.gallery.paths
        else:
            if self.texts is None:
                raise IndexFileError("search: an image query needs captions; call index_texts(captions) first")
            sims = score_all(self.model, self.encode_images(query), self.texts[1], self.device)[0]  # (N_txt,)
            items = self.texts[0]
        order = torch.sort(-sims, stable=True).indices[:k]
        return [(items[int(i)], float(sims[i])) for i in order]


def load(run, tag: str = "best", device="auto") -> Retriever:
    """Load a trained run folder for retrieval (safetensors weights; nothing is downloaded or unpickled)."""
    dev = resolve_device(device)
    model, tok, cfg = ex.load_run(run, tag, device=dev)
    doc = json.loads(ckpt.checkpoint_paths(run, tag)["json"].read_text(encoding="utf-8"))
    identity = {"run": str(Path(run).resolve()), "tag": tag, "save_id": doc["save_id"],
                "model": (cfg.get("model") or {}).get("name", "amfmn"), "image_size": int(cfg["image_size"]),
                "rsnb": __version__}
    return Retriever(model, tok, cfg, identity, dev)


def gallery_figure(query: str, rows, ncols: int = 4):
    """Text -> image results as a grid (each image titled with its rank and score); returns the Figure."""
    import matplotlib.pyplot as plt  # deferred: only `rsnb search --gallery` draws, and pyplot is slow to import

    n = max(1, len(rows))
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.8 * nrows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, (ax, (path, score)) in enumerate(zip(axes.flat, rows)):
        ax.imshow(load_image(path))
        ax.set_title(f"{r + 1}. {score:.3f}\n{Path(path).name}", fontsize=8)
    fig.suptitle(f"“{query}”", fontsize=11)
    fig.tight_layout()
    return fig
