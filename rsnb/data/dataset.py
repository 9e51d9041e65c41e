"""Image decoding, transforms and the PyTorch datasets.

* :func:`load_image` decodes any dataset image to 8-bit RGB (grey, RGBA, palette and 16-bit
  TIFFs included; 3-band uint16 TIFFs go through ``tifffile``).
* :class:`ImageTransform` is the paper's augmentation, split in a deterministic, cacheable
  ``prepare`` (resize) and a random ``augment`` (crop, rotation, normalisation).
* :class:`CaptionDataset` yields one sample per caption (training); :class:`ImageDataset` and
  :class:`TextDataset` yield each image / caption once (evaluation). Decoded, resized images
  are cached in memory so that the 5 captions of an image decode its file once.
* :func:`collate` builds the batch dict described in DESIGN.md "Batch format".
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from rsnb.data.corpus import Corpus, DataFormatError
from rsnb.data.vocab import Vocab

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: The paper resizes to 278 before a 256 crop; other sizes keep the same ratio (128 -> 139).
RESIZE_RATIO = 278 / 256

#: Training augmentations (config ``data.augment``) -> (random crop, rotation) of :class:`ImageTransform`.
#: ``paper``: resize 278, random crop 256, random 90-degree rotation (paper Sec. V-B).
#: ``official``: what the released code effectively does: resize 278 and random crop 256; its
#: ``RandomRotation(0, 90)`` passes 90 as the legacy ``resample`` argument, so the angle range is
#: [0, 0] and the rotation is a no-op (a KeyError on torchvision >= 0.18).
#: ``none``: the evaluation transform (resize to 256, nothing random).
AUGMENTATIONS: dict[str, tuple[bool, str]] = {"paper": (True, "rot90"), "official": (True, "none"),
                                              "none": (False, "none")}


# ------------------------------------------------------------------------------ decoding
def to_uint8(
    array: np.ndarray, method: str = "percentile", percentiles: tuple[float, float] = (1.0, 99.0)
) -> np.ndarray:
    """Scale a high-bit-depth image to uint8 with one stretch for all bands (keeps colour balance).

    Args:
        array: (H, W) or (H, W, C) integer or float array.
        method: ``"percentile"`` maps the per-image ``percentiles`` to 0 and 255 (clipping
            outside), ``"max"`` maps 0..max to 0..255.
        percentiles: low and high percentile for ``"percentile"``.

    Returns:
        uint8 array of the same shape.
    """
    a = array.astype(np.float64)
    if method == "max":
        lo, hi = 0.0, float(a.max())
    elif method == "percentile":
        lo, hi = (float(v) for v in np.percentile(a, percentiles))
    else:
        raise ValueError(f"method must be 'percentile' or 'max', got {method!r}")
    if hi <= lo:
        return np.zeros(a.shape, np.uint8)
    return np.clip(np.round((a - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


def _array_to_rgb(a: np.ndarray, method: str, path: Path) -> Image.Image:
    a = np.squeeze(a)
    if a.ndim not in (2, 3):
        raise DataFormatError(f"{path}: cannot decode image (unsupported array shape {a.shape})")
    if a.ndim == 3 and a.shape[0] < min(a.shape[1:]):
        a = np.moveaxis(a, 0, -1)  # planar (C, H, W) -> (H, W, C)
    if a.ndim == 3:
        a = a[..., :3] if a.shape[-1] >= 3 else a[..., 0]
    if a.dtype != np.uint8:
        a = to_uint8(a, method)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    return Image.fromarray(np.ascontiguousarray(a), "RGB")


def load_image(path: str | Path, scale: str = "percentile") -> Image.Image:
    """Decode an image file to an 8-bit RGB PIL image.

    Grey, palette and CMYK images are converted, alpha is dropped, 16-bit and float images
    (``I;16``, ``I``, ``F`` and multi-band uint16 TIFFs, read with ``tifffile`` when PIL cannot)
    are stretched to 8 bits by :func:`to_uint8`; bands beyond the third are dropped.

    Args:
        path: image file.
        scale: stretch for high-bit-depth images (``"percentile"`` or ``"max"``).

    Raises:
        FileNotFoundError: the file does not exist.
        DataFormatError: the file cannot be decoded (corrupt or truncated).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image file not found")
    pil_error: Exception | str = "more than 8 bits per sample"
    try:
        with Image.open(path) as im:
            bits = getattr(im, "tag_v2", {}).get(258, (8,)) if im.format == "TIFF" else (8,)
            if max(bits if isinstance(bits, tuple) else (bits,)) <= 8:  # else PIL drops the low byte
                im.load()
                if im.mode == "RGB":
                    return im.copy()
                if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                    return _array_to_rgb(np.asarray(im), scale, path)
                return im.convert("RGBA" if im.mode == "P" else im.mode).convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        pil_error = e
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        try:
            array = tifffile.imread(path)
            if array.size == 0:
                raise ValueError("no image data")
        except Exception as e:  # tifffile raises many exception types on bad files
            raise DataFormatError(f"{path}: cannot decode image ({pil_error}; tifffile: {e})") from None
        return _array_to_rgb(array, scale, path)
    raise DataFormatError(f"{path}: cannot decode image ({pil_error})") from None


# ------------------------------------------------------------------------------ transforms
class ImageTransform:
    """The paper's image pipeline, split into a cacheable resize and a random augmentation.

    Training (paper Sec. V-B): resize to ``round(size * 278 / 256)`` (278 for 256, 139 for
    128), random crop ``size``, random rotation, ToTensor, ImageNet normalisation. Evaluation:
    resize to ``size`` and normalise.

    The rotation is a uniformly random multiple of 90 degrees (``rotation="rot90"``, default):
    nadir aerial images have no canonical orientation, and right-angle rotations need no
    interpolation and leave no empty corners. (The official code's ``RandomRotation(0, 90)``
    is a no-op on old torchvision and an error on new.) ``rotation="free"`` draws an angle
    uniformly in [-90, 90] degrees instead (bilinear, zero-filled corners); ``"none"`` disables it.

    Args:
        size: output side length.
        train: training (random) or evaluation (deterministic) pipeline.
        rotation: ``"rot90"``, ``"free"`` or ``"none"`` (training only).
    """

    def __init__(self, size: int = 256, train: bool = True, rotation: str = "rot90"):
        if rotation not in ("rot90", "free", "none"):
            raise ValueError(f"rotation must be 'rot90', 'free' or 'none', got {rotation!r}")
        self.size, self.train, self.rotation = size, train, rotation
        self.resize_size = round(size * RESIZE_RATIO) if train else size

    def prepare(self, image: Image.Image) -> np.ndarray:
        """Deterministic part: resize (bilinear, antialiased) to a (R, R, 3) uint8 array."""
        r = self.resize_size
        return np.array(image.convert("RGB").resize((r, r), Image.BILINEAR), dtype=np.uint8)

    def augment(self, array: np.ndarray) -> torch.Tensor:
        """Random part: crop, rotate, scale to [0, 1] and normalise -> (3, size, size) float."""
        x = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)  # (3, R, R) uint8
        if self.train:
            r, s = self.resize_size, self.size
            top, left = (int(v) for v in torch.randint(0, r - s + 1, (2,)))
            x = x[:, top : top + s, left : left + s]  # (3, s, s)
            if self.rotation == "rot90":
                x = torch.rot90(x, int(torch.randint(0, 4, ())), dims=(1, 2))
            elif self.rotation == "free":
                from torchvision.transforms.v2 import functional as TF

                angle = float(torch.empty(()).uniform_(-90.0, 90.0))
                x = TF.rotate(x, angle, interpolation=TF.InterpolationMode.BILINEAR)
        return normalize(x)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """Full pipeline on a PIL image -> (3, size, size) normalised float tensor."""
        return self.augment(self.prepare(image))


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (..., 3, H, W) -> float, scaled to [0, 1] and ImageNet-normalised, on the images' device.

    Works on one image or a batch; evaluation calls it once per batch on a uint8 batch (see
    :class:`ImageDataset` ``normalize=False``), so only the batch being encoded exists as floats.
    """
    if images.dtype != torch.uint8:
        raise ValueError(f"normalize expects uint8 images, got {images.dtype}")
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(3, 1, 1)
    x = images.float().div_(255.0)  # (..., 3, H, W) in [0, 1]
    return x.sub_(mean).div_(std)


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Undo ImageNet normalisation: (..., 3, H, W) -> values in [0, 1] for display."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(3, 1, 1)
    return (images * std + mean).clamp(0, 1)


class _ImageCache:
    """Decoded, resized uint8 images by index; ``max_items`` bounds memory (LRU), None = all."""

    def __init__(self, paths: list[Path], transform: ImageTransform, enabled: bool | int):
        self.paths, self.transform = paths, transform
        self.max_items = None if enabled is True else int(enabled)
        self.store: OrderedDict[int, np.ndarray] = OrderedDict()

    def get(self, index: int) -> np.ndarray:
        if index in self.store:
            self.store.move_to_end(index)
            return self.store[index]
        array = self.transform.prepare(load_image(self.paths[index]))
        if self.max_items != 0:
            self.store[index] = array
            if self.max_items is not None and len(self.store) > self.max_items:
                self.store.popitem(last=False)
        return array


def encode_phrases(vocab: Vocab, phrases) -> list[torch.Tensor]:
    """Keyword phrases -> list of (Lk,) id tensors (phrases that encode to nothing are left out)."""
    ids = (vocab.encode_keyword(k) for k in phrases)
    return [torch.tensor(k, dtype=torch.long) for k in ids if k]


# ------------------------------------------------------------------------------ datasets
class TextDataset(Dataset):
    """Each caption once, with its image's keywords: items as :class:`CaptionDataset` minus ``image``.

    Args:
        corpus: the split.
        vocab: token ids.
        keyword_rules: the paper's keyword input rules (:class:`rsnb.data.keywords.KeywordRules`):
            sentences lose the frequent keyword words, and captions of images without keywords get
            keywords filtered from the caption. None: captions and keywords as they are.
    """

    def __init__(self, corpus: Corpus, vocab: Vocab, keyword_rules=None):
        rules = keyword_rules
        self.caption_to_image = corpus.caption_to_image
        sentences = corpus.captions if rules is None else [rules.sentence(c) for c in corpus.captions]
        self.tokens = [torch.tensor(vocab.encode(c) or [vocab.unk_id], dtype=torch.long) for c in sentences]
        self.keywords = [encode_phrases(vocab, rec.keywords) for rec in corpus.images]
        self.caption_keywords: dict[int, list[torch.Tensor]] = {}  # caption j -> keywords filtered from it
        if rules is not None and rules.from_sentence:
            for j, c in enumerate(corpus.captions):
                if not self.keywords[self.caption_to_image[j]]:
                    self.caption_keywords[j] = encode_phrases(vocab, rules.keywords_of([c]))

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, j: int) -> dict:
        i = self.caption_to_image[j]
        kw = self.caption_keywords.get(j, self.keywords[i])
        return {"tokens": self.tokens[j], "image_id": i, "caption_id": j, "keywords": kw}


class CaptionDataset(TextDataset):
    """Training samples, one per caption (an image appears once per caption per epoch).

    Each item is ``{"image": (3, S, S) float, "tokens": (L,) long, "image_id": int,
    "caption_id": int, "keywords": list of (Lk,) long}``; ids index ``corpus.images`` and
    ``corpus.captions``. A caption that encodes to nothing gets one ``<unk>`` token.

    Images are decoded once and kept, resized to the pre-crop size, as uint8 arrays
    (278x278x3 = 232 KB each at size 256). With ``num_workers > 0`` each worker holds its own
    cache: use ``persistent_workers=True`` or call :meth:`preload` before building the loader.

    Args:
        corpus: the split to train on.
        vocab: token ids.
        image_size: output side S (256 paper, 128 quick mode).
        train: random augmentation (True) or the evaluation transform.
        cache_images: True (cache all), False (decode every time) or an int (LRU bound).
        rotation: see :class:`ImageTransform`.
        augment: a name in :data:`AUGMENTATIONS` (``"paper"``, ``"official"``, ``"none"``); when
            given it sets ``train`` and ``rotation``.
        keyword_rules: see :class:`TextDataset`.
    """

    def __init__(
        self,
        corpus: Corpus,
        vocab: Vocab,
        image_size: int = 256,
        train: bool = True,
        cache_images: bool | int = True,
        rotation: str = "rot90",
        augment: str | None = None,
        keyword_rules=None,
    ):
        super().__init__(corpus, vocab, keyword_rules)
        if augment is not None:
            if augment not in AUGMENTATIONS:
                raise ValueError(f"data.augment must be one of {sorted(AUGMENTATIONS)}, got {augment!r}")
            train, rotation = AUGMENTATIONS[augment]
        self.corpus, self.vocab = corpus, vocab
        self.transform = ImageTransform(image_size, train, rotation)
        self.cache = _ImageCache([Path(r.path) for r in corpus.images], self.transform, cache_images)

    def __getitem__(self, j: int) -> dict:
        item = super().__getitem__(j)
        item["image"] = self.transform.augment(self.cache.get(item["image_id"]))
        return item

    def preload(self) -> None:
        """Decode every image into the cache now (e.g. before forking DataLoader workers)."""
        for i in range(len(self.corpus.images)):
            self.cache.get(i)


class ImageDataset(Dataset):
    """Each image once, evaluation transform: ``{"image": (3, S, S), "image_id": int}``.

    Args:
        corpus: the split to encode.
        image_size: output side S.
        cache_images: as in :class:`CaptionDataset` (useful when evaluating every epoch).
        normalize: True yields the normalised float image; False the (3, S, S) uint8 image, for a
            consumer that normalises whole batches with :func:`normalize` (as
            :func:`rsnb.encode.encode_corpus` does), so no float copy of each image is kept.
    """

    def __init__(self, corpus: Corpus, image_size: int = 256, cache_images: bool | int = True,
                 normalize: bool = True):
        self.corpus, self.normalize = corpus, normalize
        self.transform = ImageTransform(image_size, train=False)
        self.cache = _ImageCache([Path(r.path) for r in corpus.images], self.transform, cache_images)

    def __len__(self) -> int:
        return len(self.corpus.images)

    def __getitem__(self, i: int) -> dict:
        array = self.cache.get(i)
        if not self.normalize:
            return {"image": torch.from_numpy(array).permute(2, 0, 1), "image_id": i}  # (3, S, S) uint8 view
        return {"image": self.transform.augment(array), "image_id": i}


# ------------------------------------------------------------------------------ collate
def _pad(seqs: list[torch.Tensor], length: int) -> torch.Tensor:
    out = torch.zeros(len(seqs), length, dtype=torch.long)
    for b, s in enumerate(seqs):
        out[b, : len(s)] = s
    return out


def collate(batch: list[dict]) -> dict[str, torch.Tensor]:
    """Collate samples into the DESIGN.md batch dict; caption order is kept (not sorted).

    Returns:
        ``images`` (B, 3, H, W) when samples have images, ``tokens`` (B, L) 0-padded,
        ``lengths`` (B,), ``image_ids`` (B,), ``caption_ids`` (B,), ``keywords`` (B, K, Lk)
        0-padded with K >= 1 and Lk >= 1, ``keyword_mask`` (B, K) bool.
    """
    out: dict[str, torch.Tensor] = {}
    if "image" in batch[0]:
        out["images"] = torch.stack([s["image"] for s in batch])  # (B, 3, H, W)
    if "tokens" not in batch[0]:
        out["image_ids"] = torch.tensor([s["image_id"] for s in batch], dtype=torch.long)
        return out
    lengths = torch.tensor([len(s["tokens"]) for s in batch], dtype=torch.long)
    out["tokens"] = _pad([s["tokens"] for s in batch], int(lengths.max()))  # (B, L)
    out["lengths"] = lengths
    out["image_ids"] = torch.tensor([s["image_id"] for s in batch], dtype=torch.long)
    out["caption_ids"] = torch.tensor([s["caption_id"] for s in batch], dtype=torch.long)
    kws = [s.get("keywords", []) for s in batch]
    k_max = max(1, max(len(k) for k in kws))
    lk_max = max([1, *(len(p) for k in kws for p in k)])
    keywords = torch.zeros(len(batch), k_max, lk_max, dtype=torch.long)  # (B, K, Lk)
    mask = torch.zeros(len(batch), k_max, dtype=torch.bool)  # (B, K)
    for b, phrases in enumerate(kws):
        for k, p in enumerate(phrases):
            keywords[b, k, : len(p)] = p
            mask[b, k] = True
    out["keywords"], out["keyword_mask"] = keywords, mask
    return out


#: Aliases that name the evaluation use; :func:`collate` handles all three sample kinds.
collate_images = collate
collate_texts = collate
