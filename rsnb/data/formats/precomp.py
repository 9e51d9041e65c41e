"""AMFMN ``*_precomp`` folders: ``{split}_caps.txt`` + ``{split}_filename.txt`` (one file name per image
or one per caption)."""

from __future__ import annotations

from pathlib import Path

from rsnb.data.corpus import Corpus, DataFormatError, ImageRecord
from rsnb.data.formats.common import (
    SPLITS,
    apply_ucm_classes,
    check_blank_policy,
    class_from_filename,
    duplicate_error,
    image_folder,
    leaves_folder,
    line_ranges,
    outside_error,
    warn_blank,
)


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
            raise duplicate_error(f"{names_file}:{line}", fname, split, f"line {seen[fname]}")
        seen[fname] = line
        if not allow_outside and leaves_folder(fname):
            raise outside_error(f"{names_file}:{line}", fname, folder)
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
        warn_blank(caps_file, len(blanks), f"lines {line_ranges(blanks)}")
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
    check_blank_policy(blank)
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: precomp folder not found")
    if captions_per_image is None:
        raise DataFormatError(f"{folder}: data.captions_per_image=any needs a json dataset; precomp files group "
                              f"a fixed number of caption lines per image (5 in the AMFMN files)")
    name = name or folder.name.removesuffix("_precomp")
    imgs = image_folder(folder, image_dir)
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
    apply_ucm_classes(records, name)
    return Corpus(name=name, root=folder, images=records)
