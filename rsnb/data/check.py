"""Dataset pre-check: every image a run will read exists and decodes, before training starts.

A bad image used to surface after a whole epoch (or in the middle of validation). :func:`check_images`
opens and fully decodes each referenced file once, on a few threads (PIL and tifffile release the GIL
while decoding), with a progress bar, and records the files that passed in a small JSON cache keyed
by path, size and modification time: a second run over the same dataset re-checks only changed files
(seconds for RSICD's 10,921 images instead of a full decode).
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm.auto import tqdm

from rsnb.data.corpus import Corpus, DataFormatError
from rsnb.data.dataset import load_image


def _stamp(path: Path) -> str | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return f"{st.st_size}:{st.st_mtime_ns}"


def _decode(path: Path) -> str | None:
    """None when the file decodes, else the one-line problem."""
    try:
        load_image(path)
    except (FileNotFoundError, DataFormatError, OSError, ValueError) as e:
        return str(e)
    return None


def cache_file(cache_root: Path, corpus: Corpus) -> Path:
    """Where the check results of ``corpus`` are kept: one JSON per dataset folder under ``cache_root``."""
    key = hashlib.sha1(str(Path(corpus.root).resolve()).encode()).hexdigest()[:16]
    return Path(cache_root) / "image-check" / f"{key}.json"


def check_images(corpus: Corpus, cache: Path | None = None, progress: bool = True, workers: int | None = None) -> int:
    """Check that every image of ``corpus`` exists and decodes; return how many were decoded now.

    Args:
        corpus: the images to check (each distinct path once).
        cache: JSON file remembering files that passed (path -> size:mtime); None disables it.
        progress: show a tqdm bar while decoding.
        workers: decoding threads (default ``min(4, cpu count)``).

    Raises:
        DataFormatError: one line naming the first bad file (missing, truncated, not an image) and how
            many files are bad in all, with the record index (``images[i]``) and split.
    """
    where = {}
    for i, rec in enumerate(corpus.images):
        where.setdefault(Path(rec.path), f"images[{i}], {rec.split} split")
    known: dict[str, str] = {}
    if cache is not None and cache.is_file():
        try:
            known = json.loads(cache.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            known = {}
    missing = [p for p in where if _stamp(p) is None]
    todo = [p for p in where if p not in missing and known.get(str(p)) != _stamp(p)]
    problems = {p: f"{p}: image file not found" for p in missing}
    if todo:
        n = workers or min(4, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=n) as pool:
            results = pool.map(_decode, todo)
            bar = tqdm(zip(todo, results), total=len(todo), desc="checking images", unit="img",
                       disable=not progress, leave=False, dynamic_ncols=True)
            for p, problem in bar:
                if problem:
                    problems[p] = problem
                else:
                    known[str(p)] = _stamp(p)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(known), encoding="utf-8")
            os.replace(tmp, cache)
    if problems:
        first = next(p for p in where if p in problems)  # in dataset order
        more = f" (and {len(problems) - 1} more bad image(s))" if len(problems) > 1 else ""
        raise DataFormatError(f"{problems[first]} [{where[first]}]{more}; fix or remove it, or set "
                              f"data.check_images=false to skip this check")
    return len(todo)
