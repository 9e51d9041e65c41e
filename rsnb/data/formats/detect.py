"""Which reader a path needs (:func:`load_corpus`), datasets under ``RSNB_DATA`` (:func:`find_dataset`),
and the image check (:func:`verify_images`)."""

from __future__ import annotations

from pathlib import Path

from rsnb import config
from rsnb.data.corpus import Corpus, DataFormatError
from rsnb.data.dataset import load_image
from rsnb.data.formats.common import SPLITS
from rsnb.data.formats.karpathy import read_karpathy_json
from rsnb.data.formats.precomp import read_precomp


def _pick_json(folder: Path) -> Path | None:
    jsons = sorted(folder.glob("*.json"))
    if not jsons:
        return None
    for preferred in ("dataset.json", "dataset_RSITMD.json", "dataset_rsicd.json"):
        if (folder / preferred).exists():
            return folder / preferred
    named = [p for p in jsons if p.name.lower().startswith("dataset")] or jsons
    if len(named) > 1:
        raise DataFormatError(
            f"{folder}: several dataset jsons ({', '.join(p.name for p in named)}); pass one file"
        )
    return named[0]


def load_corpus(path: str | Path, image_dir: str | Path | None = None, **kwargs) -> Corpus:
    """Load a dataset from a json file, a folder holding one, or an AMFMN precomp folder.

    Args:
        path: file or folder.
        image_dir: passed on to the reader.
        **kwargs: reader options (``blank``, ``captions_per_image``, ``name``, ...).
    """
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() != ".json":
            raise DataFormatError(f"{path}: not a dataset json (pass the json or its folder)")
        return read_karpathy_json(path, image_dir, **kwargs)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such dataset file or folder")
    if any((path / f"{s}_caps.txt").exists() for s in SPLITS):
        return read_precomp(path, image_dir, **kwargs)
    found = _pick_json(path)
    if found is None:
        raise DataFormatError(f"{path}: no dataset json and no *_caps.txt files")
    return read_karpathy_json(found, image_dir, **kwargs)


def find_dataset(name: str | None = None, root: str | Path | None = None, prefer: str = "json") -> Path:
    """Find a loadable dataset under ``root`` (default ``rsnb.config.data_root()``, ``RSNB_DATA``).

    Args:
        name: case-insensitive part of the folder or file path (``"rsitmd"``, ``"ucm"``);
            None accepts any.
        root: folder to search (itself and two levels below).
        prefer: ``"json"`` or ``"precomp"`` when both formats are found.

    Returns:
        A path for :func:`load_corpus`.
    """
    root = Path(root) if root is not None else config.data_root()
    if root is None:
        raise FileNotFoundError("RSNB_DATA is not set; point it at a dataset folder")
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: RSNB_DATA folder not found")
    folders = [
        root,
        *sorted(p for p in root.glob("*") if p.is_dir()),
        *sorted(p for p in root.glob("*/*") if p.is_dir()),
    ]
    hits: dict[str, list[Path]] = {"json": [], "precomp": []}
    for d in folders:
        if name and name.lower() not in str(d.relative_to(root.parent)).lower():
            continue
        if any((d / f"{s}_caps.txt").exists() for s in SPLITS):
            hits["precomp"].append(d)
        elif any(p.name.lower().startswith("dataset") for p in d.glob("*.json")):
            hits["json"].append(d)
    order = ["json", "precomp"] if prefer == "json" else ["precomp", "json"]
    for kind in order:
        if hits[kind]:
            return hits[kind][0]
    raise FileNotFoundError(
        f"{root}: no dataset{f' matching {name!r}' if name else ''} (json or *_precomp folder)"
    )


def verify_images(corpus: Corpus, decode: bool = False) -> list[str]:
    """List image problems: missing files and, with ``decode=True``, undecodable ones.

    Returns:
        One message per bad image (empty when all are fine).
    """
    problems = []
    for i, rec in enumerate(corpus.images):
        if not Path(rec.path).is_file():
            problems.append(f"{rec.path}: image file not found (images[{i}], {rec.filename})")
        elif decode:
            try:
                load_image(rec.path)
            except (DataFormatError, OSError) as e:
                problems.append(str(e))
    return problems
