"""Karpathy-style json (UCM, Sydney, RSICD, RSITMD with keywords, and the synthetic ``dataset.json``)."""

from __future__ import annotations

import json
from pathlib import Path

from rsnb.data.corpus import Corpus, DataFormatError, ImageRecord
from rsnb.data.formats.common import (
    KNOWN_KEYS,
    SPLITS,
    apply_ucm_classes,
    check_blank_policy,
    class_from_filename,
    duplicate_error,
    image_folder,
    leaves_folder,
    outside_error,
    warn_blank,
)


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
    check_blank_policy(blank)
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
    default_dir = image_folder(path.parent, image_dir)
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
            raise duplicate_error(where, fname, str(split), f"images[{seen[key]}]")
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
        if not allow_outside_paths and leaves_folder(fname):
            raise outside_error(where, fname, folder)
        keywords = img.get("keywords") or []
        if not isinstance(keywords, list):
            raise DataFormatError(f"{where}: 'keywords' must be a list")
        keywords = [" ".join(k) if isinstance(k, list) else str(k) for k in keywords]
        meta = {k: v for k, v in img.items() if k not in KNOWN_KEYS}
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
        warn_blank(path, len(blanks), ", ".join(blanks[:10]) + (" ..." if len(blanks) > 10 else ""))
    apply_ucm_classes(records, name)
    return Corpus(name=name, root=path.parent, images=records)
