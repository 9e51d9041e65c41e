"""The one in-memory corpus type that every dataset reader returns.

A :class:`Corpus` is a list of :class:`ImageRecord`; each record holds the image path, its split,
its scene class, its captions (normally 5), optional RSITMD-style keywords and, for synthetic
data, the ground-truth scene metadata. Captions are addressed globally by a caption index in
image order, so ``caption_to_image[j]`` gives the image index of caption ``j``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from rsnb.errors import RsnbError


class DataFormatError(RsnbError, ValueError):
    """A dataset file is malformed; the message names the file and line/index."""


@dataclass
class ImageRecord:
    """One image and its annotations.

    Attributes:
        filename: file name as written in the dataset files (e.g. ``airport_10.tif``).
        path: resolved path of the image file (may not exist for caption-only corpora).
        split: ``train``, ``val`` or ``test``.
        cls: scene class (from the dataset json, the file-name prefix, or ``""``).
        captions: caption strings (blank captions already removed by the reader).
        keywords: RSITMD-style attribute-target phrases (possibly empty).
        meta: free-form ground truth (synthetic scenes: objects with scale band, box, colour).
    """

    filename: str
    path: Path
    split: str
    cls: str = ""
    captions: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    meta: dict | None = None


@dataclass
class Corpus:
    """A dataset in memory: image records plus a name and the folder it came from.

    ``val_from_train`` is True when the ``val`` split was carved from the training images (the
    dataset files have no validation split of their own, e.g. the AMFMN precomp files).
    """

    name: str
    root: Path
    images: list[ImageRecord]
    val_from_train: bool = False

    def __len__(self) -> int:
        return len(self.images)

    def split(self, name: str) -> Corpus:
        """Return the sub-corpus of one split (``train``/``val``/``test``)."""
        return replace(self, images=[r for r in self.images if r.split == name])

    @property
    def splits(self) -> dict[str, int]:
        """Number of images per split."""
        out: dict[str, int] = {}
        for r in self.images:
            out[r.split] = out.get(r.split, 0) + 1
        return out

    @property
    def captions(self) -> list[str]:
        """All captions, flattened in image order."""
        return [c for r in self.images for c in r.captions]

    @property
    def caption_to_image(self) -> list[int]:
        """Image index of every caption in :attr:`captions`."""
        return [i for i, r in enumerate(self.images) for _ in r.captions]

    @property
    def classes(self) -> list[str]:
        """Sorted list of the scene classes present."""
        return sorted({r.cls for r in self.images})
