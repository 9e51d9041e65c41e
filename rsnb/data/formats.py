"""Readers for the real dataset formats; each returns a :class:`~rsnb.data.corpus.Corpus`.

* :func:`read_karpathy_json`: Karpathy-style json (UCM ``dataset.json``, Sydney, RSICD
  ``dataset_rsicd.json``, RSITMD ``dataset_RSITMD.json`` with per-image ``keywords``) and the
  synthetic ``dataset.json`` written by :mod:`rsnb.data.synthetic`.
* :func:`read_precomp`: AMFMN ``*_precomp`` folders (``{split}_caps.txt`` +
  ``{split}_filename.txt``, either one file name per image or one per caption).
* :func:`load_corpus`: picks the right reader for a json file, a folder with a json, or a
  precomp folder; :func:`find_dataset` looks a dataset up under ``RSNB_DATA``.

Bad input raises :class:`~rsnb.data.corpus.DataFormatError` with a one-line message that names
the file and the line or index. Blank captions are skipped with one warning per file (or
raise, with ``blank="error"``). Image files are not opened here; :func:`verify_images` lists
missing or undecodable ones.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path, PurePath, PureWindowsPath

from rsnb import config
from rsnb.data.corpus import Corpus, DataFormatError, ImageRecord
from rsnb.data.dataset import load_image

#: UC Merced Land Use classes; UCM-Captions numbers its images 1..2100 class-major, 100 per
#: class, in this (alphabetical) order (checked against the captions of every block).
UCM_CLASSES = (
    "agricultural airplane baseballdiamond beach buildings chaparral denseresidential forest freeway "
    "golfcourse harbor intersection mediumresidential mobilehomepark overpass parkinglot river runway "
    "sparseresidential storagetanks tenniscourt"
).split()

SPLITS = ("train", "val", "test")
_CLASS_PREFIX = re.compile(r"^(.*?[A-Za-z].*?)[_\-]?\d+\.[A-Za-z0-9]+$")
_KNOWN_KEYS = {
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


def _ranges(lines: list[int]) -> str:
    """Compress sorted numbers: [3, 4, 5, 9] -> ``"3-5, 9"``."""
    out, start = [], None
    for k, n in enumerate(lines):
        if start is None:
            start = n
        if k + 1 == len(lines) or lines[k + 1] != n + 1:
            out.append(str(n) if n == start else f"{start}-{n}")
            start = None
    return ", ".join(out)


def _warn_blank(path: Path, count: int, where: str) -> None:
    warnings.warn(f"{path}: skipped {count} blank caption(s) at {where}", DataWarning, stacklevel=3)


def _check_policy(blank: str) -> None:
    if blank not in ("skip", "error", "keep"):
        raise ValueError(f"blank must be 'skip', 'error' or 'keep', got {blank!r}")


def _apply_ucm_classes(records: list[ImageRecord], name: str) -> None:
    """Give numbered UCM images (``1.tif`` .. ``2100.tif``) their UC Merced class."""
    if "ucm" not in name.lower():
        return
    stems = [Path(r.filename).stem for r in records]
    if not all(s.isdigit() and 1 <= int(s) <= 2100 for s in stems):
        return
    for r, s in zip(records, stems):
        if not r.cls:
            r.cls = UCM_CLASSES[(int(s) - 1) // 100]


def _leaves_folder(fname: str) -> bool:
    """True for an image path that is absolute or climbs out of its folder with ``..``."""
    p = PurePath(fname)
    return p.is_absolute() or PureWindowsPath(fname).is_absolute() or ".." in p.parts


def _outside(where: str, fname: str, folder: Path) -> DataFormatError:
    return DataFormatError(f"{where}: image path {fname!r} leaves the dataset folder {folder}; "
                           f"set data.allow_outside_paths=true to allow it")


def _duplicate(where: str, fname: str, split: str, first: str) -> DataFormatError:
    return DataFormatError(f"{where}: {fname!r} is listed twice in the {split} split (first at {first}); "
                           f"each image may appear once per split")


def _image_dir(base: Path, image_dir: str | Path | None) -> Path:
    if image_dir is not None:
        return Path(image_dir)
    for cand in (base / "images", base / "imgs", base.parent / "images", base.parent / "imgs"):
        if cand.is_dir():
            return cand
    return base


# ------------------------------------------------------------------------------------ json
def read_karpathy_json(
    path: str | Path,
    image_dir: str | Path | None = None,
    name: str | None = None,
    captions_per_image: int | None = 5,
    blank: str = "skip",
    allow_outside_paths: bool = False,
) -> Corpus:
    """Read a Karpathy-style caption json (UCM, Sydney, RSICD, RSITMD, synthetic).

    Args:
        path: the json file.
        image_dir: folder of the images; default ``images/`` or ``imgs/`` next to the json
            (or a record's ``filepath`` sub-folder when given), else the json's folder.
        name: corpus name; default the json's ``dataset`` field, else the folder name.
        captions_per_image: required number of captions per image (before blank ones are
            removed); ``None`` accepts any number >= 1.
        blank: ``"skip"`` blank captions (one :class:`DataWarning` for the file), ``"error"``, or
            ``"keep"`` them as ``""`` in place, silently (for :mod:`rsnb.audit`).
        allow_outside_paths: accept image paths that are absolute or leave the image folder (``..``).

    Raises:
        DataFormatError: malformed, non-UTF-8 or schema-wrong json, wrong caption counts, an image
            listed twice in one split, an image path outside the dataset folder (names file and index).

    Returns:
        The corpus, in file order. ``ImageRecord.meta`` holds the synthetic ground truth
        (``objects``, ``size`` and any other extra per-image keys) and, when the json has a
        top-level ``meta``, that dict under ``"dataset"``.
    """
    _check_policy(blank)
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: dataset json not found") from None
    except UnicodeDecodeError as e:
        raise DataFormatError(f"{path}: not a dataset json (byte {e.start} is not UTF-8 text: "
                              f"{e.object[e.start:e.start + 1]!r}); is it an image or an archive?") from None
    except json.JSONDecodeError as e:
        raise DataFormatError(f"{path}:{e.lineno}:{e.colno}: malformed JSON ({e.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataFormatError(f"{path}: expected a JSON object with an 'images' list")
    name = name or str(data.get("dataset") or path.parent.name)
    top_meta = data.get("meta")
    default_dir = _image_dir(path.parent, image_dir)
    records, blanks, seen = [], [], {}
    for i, img in enumerate(data["images"]):
        where = f"{path}: images[{i}]"
        if not isinstance(img, dict):
            raise DataFormatError(f"{where} is not an object")
        for key in ("filename", "split", "sentences"):
            if key not in img:
                raise DataFormatError(f"{where} has no {key!r} key")
        fname, split, sents = img["filename"], img["split"], img["sentences"]
        if not isinstance(fname, str) or not fname.strip():
            raise DataFormatError(f"{where}: 'filename' must be a non-empty string, got {fname!r}")
        where = f"{where} ({fname})"
        key = (split, str(img.get("filepath") or ""), fname)
        if key in seen:
            raise _duplicate(where, fname, str(split), f"images[{seen[key]}]")
        seen[key] = i
        if split not in SPLITS:
            raise DataFormatError(f"{where}: split {split!r} is not one of {', '.join(SPLITS)}")
        if not isinstance(sents, list) or not sents:
            raise DataFormatError(f"{where}: 'sentences' must be a non-empty list")
        if captions_per_image is not None and len(sents) != captions_per_image:
            raise DataFormatError(
                f"{where}: {len(sents)} captions, expected {captions_per_image} "
                f"(set data.captions_per_image=any to allow other counts)"
            )
        captions = []
        for k, s in enumerate(sents):
            if isinstance(s, dict) and "raw" in s:
                text = s["raw"]
            elif isinstance(s, dict) and "tokens" in s:
                text = " ".join(s["tokens"])
            elif isinstance(s, str):
                text = s
            else:
                raise DataFormatError(f"{where}: sentences[{k}] has no 'raw' or 'tokens' key")
            text = str(text).strip()
            if not text and blank != "keep":
                if blank == "error":
                    raise DataFormatError(f"{where}: sentences[{k}] is blank")
                blanks.append(f"images[{i}].sentences[{k}]")
                continue
            captions.append(text)
        folder = default_dir
        if image_dir is None and img.get("filepath") and (path.parent / img["filepath"]).is_dir():
            folder = path.parent / img["filepath"]
        if not allow_outside_paths and _leaves_folder(fname):
            raise _outside(where, fname, folder)
        keywords = img.get("keywords") or []
        if not isinstance(keywords, list):
            raise DataFormatError(f"{where}: 'keywords' must be a list")
        keywords = [" ".join(k) if isinstance(k, list) else str(k) for k in keywords]
        meta = {k: v for k, v in img.items() if k not in _KNOWN_KEYS}
        if top_meta is not None:
            meta["dataset"] = top_meta
        records.append(
            ImageRecord(
                filename=fname,
                path=folder / fname,
                split=split,
                cls=str(img.get("class") or class_from_filename(fname)),
                captions=captions,
                keywords=[k for k in keywords if k.strip()],
                meta=meta or None,
            )
        )
    if blanks:
        _warn_blank(path, len(blanks), ", ".join(blanks[:10]) + (" ..." if len(blanks) > 10 else ""))
    _apply_ucm_classes(records, name)
    return Corpus(name=name, root=path.parent, images=records)


# ------------------------------------------------------------------------------------ precomp
def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise DataFormatError(f"{path}:{line}: not valid UTF-8 ({e.reason})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln.rstrip("\r") for ln in lines]


def _precomp_split(
    caps_file: Path, names_file: Path, split: str, folder: Path, cpi: int, blank: str, allow_outside: bool = False
) -> list[ImageRecord]:
    caps = _read_lines(caps_file)
    names = [n.strip() for n in _read_lines(names_file)]
    for k, n in enumerate(names):
        if not n:
            raise DataFormatError(f"{names_file}:{k + 1}: blank file name")
    if len(caps) % cpi:
        raise DataFormatError(
            f"{caps_file}: {len(caps)} caption lines is not a multiple of {cpi} captions per image"
        )
    n_img = len(caps) // cpi
    if len(names) == len(caps):  # one line per caption: names repeat cpi times
        for k in range(len(names)):
            if names[k] != names[k - k % cpi]:
                raise DataFormatError(
                    f"{names_file}:{k + 1}: file name {names[k]!r} differs from {names[k - k % cpi]!r} on line "
                    f"{k - k % cpi + 1} (each image's {cpi} caption lines must share one name)"
                )
        names = names[::cpi]
    elif len(names) != n_img:
        raise DataFormatError(
            f"{names_file}: {len(names)} file names for {len(caps)} captions in {caps_file.name} "
            f"(expected {n_img} (one per image) or {len(caps)} (one per caption))"
        )
    per_image = len(_read_lines(names_file)) != n_img  # one name line per caption
    seen: dict[str, int] = {}
    for i, fname in enumerate(names):
        line = i * cpi + 1 if per_image else i + 1
        if fname in seen:
            raise _duplicate(f"{names_file}:{line}", fname, split, f"line {seen[fname]}")
        seen[fname] = line
        if not allow_outside and _leaves_folder(fname):
            raise _outside(f"{names_file}:{line}", fname, folder)
    records, blanks = [], []
    for i, fname in enumerate(names):
        captions = []
        for k in range(i * cpi, (i + 1) * cpi):
            text = caps[k].strip()
            if not text and blank != "keep":
                if blank == "error":
                    raise DataFormatError(f"{caps_file}:{k + 1}: blank caption (image {fname})")
                blanks.append(k + 1)
                continue
            captions.append(text)
        records.append(ImageRecord(fname, folder / fname, split, class_from_filename(fname), captions))
    if blanks:
        _warn_blank(caps_file, len(blanks), f"lines {_ranges(blanks)}")
    return records


def read_precomp(
    folder: str | Path,
    image_dir: str | Path | None = None,
    name: str | None = None,
    kfold_files: bool = False,
    captions_per_image: int | None = 5,
    blank: str = "skip",
    allow_outside_paths: bool = False,
) -> Corpus:
    """Read an AMFMN ``*_precomp`` folder.

    Each split present among train/val/test has ``{split}_caps.txt`` (one caption per line,
    ``captions_per_image`` consecutive lines per image) and ``{split}_filename.txt``, either one
    name per image or one per caption (each name repeated; consecutive repeats must agree).

    Args:
        folder: e.g. ``data/rsitmd_precomp``.
        image_dir: image folder; default ``images/``/``imgs/`` inside or next to ``folder``.
        name: corpus name; default the folder name without ``_precomp``.
        kfold_files: read the k-fold ``{train,val}_*_verify.txt`` files instead of
            ``train_*.txt`` (the test split is unchanged).
        captions_per_image: caption lines per image (5 in all AMFMN files).
        blank: ``"skip"`` blank caption lines (one :class:`DataWarning` per file, naming the
            lines; that image then has fewer captions), ``"error"``, or ``"keep"`` them as ``""``.

    Returns:
        The corpus, splits in train/val/test order.
    """
    _check_policy(blank)
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: precomp folder not found")
    if captions_per_image is None:
        raise DataFormatError(f"{folder}: data.captions_per_image=any needs a json dataset; precomp files group "
                              f"a fixed number of caption lines per image (5 in the AMFMN files)")
    name = name or folder.name.removesuffix("_precomp")
    imgs = _image_dir(folder, image_dir)
    records: list[ImageRecord] = []
    for split in SPLITS:
        suffix = "_verify" if kfold_files and split != "test" else ""
        caps_file = folder / f"{split}_caps{suffix}.txt"
        names_file = folder / f"{split}_filename{suffix}.txt"
        if not caps_file.exists() and not names_file.exists():
            continue
        for f in (caps_file, names_file):
            if not f.exists():
                raise DataFormatError(
                    f"{f}: missing (its partner {caps_file.name if f == names_file else names_file.name} exists)"
                )
        records += _precomp_split(caps_file, names_file, split, imgs, captions_per_image, blank, allow_outside_paths)
    if not records:
        raise DataFormatError(f"{folder}: no {{train,val,test}}_caps.txt / _filename.txt files")
    _apply_ucm_classes(records, name)
    return Corpus(name=name, root=folder, images=records)


# ------------------------------------------------------------------------------------ detection
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
