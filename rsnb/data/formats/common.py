"""What the dataset readers share: split and UCM class names, the warning class, file-name checks."""

from __future__ import annotations

import re
import warnings
from pathlib import Path, PurePath, PureWindowsPath

from rsnb.data.corpus import DataFormatError, ImageRecord

#: UC Merced Land Use classes; UCM-Captions numbers its images 1..2100 class-major, 100 per
#: class, in this (alphabetical) order (checked against the captions of every block).
UCM_CLASSES = (
    "agricultural airplane baseballdiamond beach buildings chaparral denseresidential forest freeway "
    "golfcourse harbor intersection mediumresidential mobilehomepark overpass parkinglot river runway "
    "sparseresidential storagetanks tenniscourt"
).split()

SPLITS = ("train", "val", "test")
_CLASS_PREFIX = re.compile(r"^(.*?[A-Za-z].*?)[_\-]?\d+\.[A-Za-z0-9]+$")
KNOWN_KEYS = {
    "filename",
    "filepath",
    "split",
    "sentences",
    "sentids",
    "imgid",
    "cocoid",
    "class",
    "keywords",
}


class DataWarning(UserWarning):
    """A dataset file has a recoverable problem (e.g. blank captions that were skipped)."""


def class_from_filename(filename: str) -> str:
    """Scene class from a file-name prefix: ``airport_10.tif`` -> ``airport``; numeric -> ``""``."""
    m = _CLASS_PREFIX.match(Path(filename).name)
    return m.group(1) if m else ""


def line_ranges(lines: list[int]) -> str:
    """Compress sorted numbers: [3, 4, 5, 9] -> ``"3-5, 9"``."""
    out, start = [], None
    for k, n in enumerate(lines):
        if start is None:
            start = n
        if k + 1 == len(lines) or lines[k + 1] != n + 1:
            out.append(str(n) if n == start else f"{start}-{n}")
            start = None
    return ", ".join(out)


def warn_blank(path: Path, count: int, where: str) -> None:
    warnings.warn(f"{path}: skipped {count} blank caption(s) at {where}", DataWarning, stacklevel=3)


def check_blank_policy(blank: str) -> None:
    if blank not in ("skip", "error", "keep"):
        raise ValueError(f"blank must be 'skip', 'error' or 'keep', got {blank!r}")


def apply_ucm_classes(records: list[ImageRecord], name: str) -> None:
    """Give numbered UCM images (``1.tif`` .. ``2100.tif``) their UC Merced class."""
    if "ucm" not in name.lower():
        return
    stems = [Path(r.filename).stem for r in records]
    if not all(s.isdigit() and 1 <= int(s) <= 2100 for s in stems):
        return
    for r, s in zip(records, stems):
        if not r.cls:
            r.cls = UCM_CLASSES[(int(s) - 1) // 100]


def leaves_folder(fname: str) -> bool:
    """True for an image path that is absolute or climbs out of its folder with ``..``."""
    p = PurePath(fname)
    return p.is_absolute() or PureWindowsPath(fname).is_absolute() or ".." in p.parts


def outside_error(where: str, fname: str, folder: Path) -> DataFormatError:
    return DataFormatError(f"{where}: image path {fname!r} leaves the dataset folder {folder}; "
                           f"set data.allow_outside_paths=true to allow it")


def duplicate_error(where: str, fname: str, split: str, first: str) -> DataFormatError:
    return DataFormatError(f"{where}: {fname!r} is listed twice in the {split} split (first at {first}); "
                           f"each image may appear once per split")


def image_folder(base: Path, image_dir: str | Path | None) -> Path:
    if image_dir is not None:
        return Path(image_dir)
    for cand in (base / "images", base / "imgs", base.parent / "images", base.parent / "imgs"):
        if cand.is_dir():
            return cand
    return base
