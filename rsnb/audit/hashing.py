"""Perceptual hashes of images under the 8 dihedral transforms, plus a small thumbnail for checks.

Every image is decoded once (:func:`rsnb.data.dataset.load_image`: TIFF, 16-bit, palette ...),
turned grey and shrunk to 32 x 32 pixels (the size pHash works at); the 8 rotations/flips of
that small picture are hashed with the ``imagehash`` package (pHash: sign of the low-frequency DCT against its median;
dHash: sign of horizontal gradients; 64 bits each) and a ``thumb_size`` thumbnail is kept,
zero-mean and unit-norm, so that the normalised correlation of two images is one dot product.
Transform ``g`` (0..7) is ``g % 4`` quarter turns counter-clockwise, then a left-right mirror
when ``g >= 4``; :func:`dihedral` applies it to arrays and :data:`DIHEDRAL_NAMES` names it.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image
from tqdm import tqdm

from rsnb.data.corpus import DataFormatError
from rsnb.data.dataset import load_image

DIHEDRAL_NAMES = ("identity", "rot90", "rot180", "rot270", "mirror", "mirror+rot90", "mirror+rot180",
                  "mirror+rot270")
HASHES = ("phash", "dhash")
HASH_SIDE = 32  # pHash: 8 x 8 low frequencies of a 32 x 32 DCT


def dihedral(a: np.ndarray, g: int) -> np.ndarray:
    """Transform ``g`` of the dihedral group on the first two axes of ``a`` (H, W, ...)."""
    out = np.rot90(a, int(g) % 4, axes=(0, 1))
    return np.ascontiguousarray(out[:, ::-1] if int(g) >= 4 else out)


def dihedral_inverse(g: int) -> int:
    """The transform undoing ``g``: quarter turns invert to the opposite turn; mirrors invert to themselves."""
    return (4 - int(g)) % 4 if int(g) < 4 else int(g)


def _bits(h) -> np.uint64:
    """An ``imagehash.ImageHash`` (8x8 booleans) as one 64-bit integer, row-major, first bit highest."""
    return np.uint64(int.from_bytes(np.packbits(np.asarray(h.hash, dtype=bool).reshape(-1)).tobytes(), "big"))


def hash_picture(grey: Image.Image, thumb_size: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hashes of one grey picture under the 8 transforms, and its thumbnail.

    Args:
        grey: a grey (mode ``L``) PIL image of any size.
        thumb_size: side of the correlation thumbnail.

    Returns:
        ``(phash, dhash, thumb)``: (8,) uint64, (8,) uint64 and (thumb_size, thumb_size) float32
        (zero mean, unit L2 norm; all zeros for a flat picture).
    """
    small = np.asarray(grey.resize((HASH_SIDE, HASH_SIDE), Image.LANCZOS))  # (32, 32) uint8
    ph, dh = np.zeros(8, np.uint64), np.zeros(8, np.uint64)
    for g in range(8):
        im = Image.fromarray(dihedral(small, g))  # phash's own resize is then a no-op
        ph[g], dh[g] = _bits(imagehash.phash(im)), _bits(imagehash.dhash(im))
    t = np.asarray(grey.resize((thumb_size, thumb_size), Image.BOX), np.float32)  # (T, T)
    t = t - t.mean()
    norm = float(np.linalg.norm(t))
    return ph, dh, (t / norm if norm > 1e-3 else np.zeros_like(t))


def _hash_file(path: str, thumb_size: int):
    try:
        img = load_image(path)
    except (FileNotFoundError, DataFormatError, OSError) as e:
        return str(e).splitlines()[0]
    return hash_picture(img.convert("L"), thumb_size)


@dataclass
class ImageHashes:
    """Hashes of a list of image files (rows follow ``paths``; unreadable files are listed in ``errors``).

    Attributes:
        paths: the files, in the order given.
        ok: (N,) bool, True where the file was decoded.
        phash: (N, 8) uint64 pHash of each dihedral transform (column 0: the image as stored).
        dhash: (N, 8) uint64 dHash of each transform.
        thumbs: (N, T, T) float32 zero-mean unit-norm grey thumbnails (transform 0).
        errors: one line per unreadable file (``path: reason``).
    """

    paths: list[str]
    ok: np.ndarray
    phash: np.ndarray
    dhash: np.ndarray
    thumbs: np.ndarray
    errors: list[str]

    def codes(self, kind: str = "phash") -> np.ndarray:
        """The (N, 8) codes of one hash kind (``phash`` or ``dhash``)."""
        if kind not in HASHES:
            raise ValueError(f"hash {kind!r}: expected one of {', '.join(HASHES)}")
        return self.phash if kind == "phash" else self.dhash

    def save(self, path: str | Path) -> None:
        """Write the hashes to an ``.npz`` file (plain arrays; re-read with :meth:`load`)."""
        np.savez_compressed(path, paths=np.array(self.paths), ok=self.ok, phash=self.phash, dhash=self.dhash,
                            thumbs=self.thumbs, errors=np.array(self.errors, dtype=str))

    @classmethod
    def load(cls, path: str | Path) -> ImageHashes:
        with np.load(path, allow_pickle=False) as z:
            return cls([str(p) for p in z["paths"]], z["ok"], z["phash"], z["dhash"], z["thumbs"],
                       [str(e) for e in z["errors"]])


def hash_images(paths, thumb_size: int = 16, workers: int = 1, progress: bool = True,
                desc: str = "hashing images") -> ImageHashes:
    """Decode and hash every image once (the expensive step; search afterwards works on the codes).

    Args:
        paths: image files.
        thumb_size: side of the correlation thumbnail.
        workers: processes (1: in this process).
        progress: tqdm bar.
        desc: bar label.

    Returns:
        :class:`ImageHashes`; unreadable or missing files get ``ok=False`` and a line in ``errors``.
    """
    paths = [str(p) for p in paths]
    job = partial(_hash_file, thumb_size=int(thumb_size))
    bar = dict(total=len(paths), disable=not progress, desc=desc, unit="img")
    if workers > 1 and len(paths) > 64:
        with ProcessPoolExecutor(min(int(workers), os.cpu_count() or 1)) as ex:
            results = list(tqdm(ex.map(job, paths, chunksize=32), **bar))
    else:
        results = [job(p) for p in tqdm(paths, **bar)]
    n = len(paths)
    ok = np.array([not isinstance(r, str) for r in results], bool)
    ph, dh = np.zeros((n, 8), np.uint64), np.zeros((n, 8), np.uint64)
    thumbs = np.zeros((n, thumb_size, thumb_size), np.float32)
    for i, r in enumerate(results):
        if not isinstance(r, str):
            ph[i], dh[i], thumbs[i] = r
    return ImageHashes(paths, ok, ph, dh, thumbs, [r for r in results if isinstance(r, str)])


def correlation(thumbs_a: np.ndarray, thumbs_b: np.ndarray, transforms) -> np.ndarray:
    """Normalised correlation of pairs of thumbnails, the first one turned by its transform.

    Args:
        thumbs_a: (P, T, T) zero-mean unit-norm thumbnails.
        thumbs_b: (P, T, T) the same for the partners.
        transforms: (P,) dihedral transform applied to each ``thumbs_a[p]``.

    Returns:
        (P,) correlations in [-1, 1] (0 when either thumbnail is flat).
    """
    out = np.zeros(len(thumbs_a), np.float32)
    transforms = np.asarray(transforms)
    for g in range(8):
        sel = np.nonzero(transforms == g)[0]
        if sel.size:
            a = dihedral(np.moveaxis(thumbs_a[sel], 0, -1), g)  # (T, T, p)
            out[sel] = np.einsum("ijp,pij->p", a, thumbs_b[sel])
    return out
