"""Run folders that cannot be corrupted: one writer at a time, no silent replacement, no half-made folders.

* :func:`check_target` refuses, before anything is written, to train into a folder that already holds
  files unless the caller resumes (``--resume``) or replaces it (``--overwrite``).
* :func:`claim` creates the folder, takes its lock file (``.rsnb.lock``: a second ``rsnb train`` into
  a folder in use stops with an error naming the process that holds it; a lock left by a process that
  died on this host is taken over), empties it for ``--overwrite``, removes temporary and unreferenced
  checkpoint files of an interrupted run, and, when the start fails before the first checkpoint,
  removes the folder it created.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
import warnings
from pathlib import Path

from rsnb import checkpoint as ckpt
from rsnb.config import load_yaml
from rsnb.errors import RunFolderError

LOCK = ".rsnb.lock"
#: files that mark a folder as an rsnb run folder
MARKERS = ("config.yaml", "model.json", "last.json", "best.json", "history.json")


def is_main_process() -> bool:
    """True outside torchrun and on rank 0 (the process that owns the run folder)."""
    return int(os.environ.get("RANK", "0")) == 0


def describe(run: Path) -> str:
    """What a run folder holds, in words: ``a finished run (3 of 3 epochs)``, ``a partial run ...``."""
    history = run / "history.json"
    epochs = None
    try:
        epochs = len(json.loads(history.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        pass
    try:

        planned = (load_yaml((run / "config.yaml").read_text()) or {}).get("train", {}).get("epochs")
    except Exception:  # a damaged config.yaml only makes the description vaguer
        planned = None
    if (run / "last.json").is_file() and epochs is not None:
        done = planned is not None and epochs >= int(planned)
        return f"a {'finished' if done else 'partial'} run ({epochs} of {planned or '?'} epochs)"
    if any((run / m).is_file() for m in MARKERS):
        return "an unfinished run start (no checkpoint)"
    n = sum(1 for p in run.iterdir() if p.name != LOCK)
    return f"{n} other file(s)"


def check_target(run: Path, resume: bool, overwrite: bool) -> None:
    """Refuse a training target before anything is written (see the module docstring).

    Raises:
        RunFolderError: ``run`` is a file; holds files and neither ``resume`` nor ``overwrite`` is set;
            ``resume`` without a ``last`` checkpoint; ``overwrite`` of a folder that is not a run folder.
    """
    if resume and overwrite:
        raise RunFolderError(f"{run}: --resume and --overwrite exclude each other")
    if run.exists() and not run.is_dir():
        raise RunFolderError(f"{run}: exists and is not a folder")
    content = [p for p in run.iterdir() if p.name != LOCK] if run.is_dir() else []
    if resume:
        if not (run / "last.json").is_file():
            raise RunFolderError(f"{run}: nothing to resume (no last.json checkpoint); start without --resume")
        return
    if not content:
        return
    if not overwrite:
        raise RunFolderError(f"{run} already holds {describe(run)}; pass --resume to continue it or --overwrite "
                             f"to replace it")
    if not any((run / m).is_file() for m in MARKERS):
        raise RunFolderError(f"{run}: --overwrite refused, the folder holds {describe(run)} but no rsnb run; "
                             f"choose a new or empty folder")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def acquire(run: Path) -> Path:
    """Create ``run/.rsnb.lock`` exclusively; take over a lock whose process died on this host."""
    lock = run / LOCK
    me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                other = json.loads(lock.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                other = {}
            pid, host = other.get("pid"), other.get("host")
            if host == me["host"] and isinstance(pid, int) and not _alive(pid):
                warnings.warn(f"{lock}: taking over the lock of process {pid}, which is gone", RuntimeWarning,
                              stacklevel=3)
                lock.unlink(missing_ok=True)
                continue
            raise RunFolderError(f"{run} is in use by another rsnb process (pid {pid} on {host}, since "
                                 f"{other.get('since', '?')}); wait for it to finish, or delete {lock} if that "
                                 f"process no longer runs") from None
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(me, f)
        return lock
    raise RunFolderError(f"{lock}: could not take the lock")


def release(lock: Path) -> None:
    """Remove a lock taken by :func:`acquire` (only if it is still ours)."""
    try:
        if json.loads(lock.read_text(encoding="utf-8")).get("pid") == os.getpid():
            lock.unlink()
    except (OSError, ValueError):
        pass


def _clear(run: Path) -> None:
    for p in run.iterdir():
        if p.name == LOCK:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


@contextlib.contextmanager
def claim(run: Path, overwrite: bool = False, enabled: bool = True):
    """Own ``run`` for one training: create, lock, clear (``overwrite``), clean; undo a failed start.

    Yields:
        True when this call created the folder.
    """
    if not enabled:  # torchrun ranks other than 0: rank 0 owns the folder
        run.mkdir(parents=True, exist_ok=True)
        yield False
        return
    created = not run.exists()
    run.mkdir(parents=True, exist_ok=True)
    lock = acquire(run)
    try:
        if overwrite:
            _clear(run)
        ckpt.clean_checkpoints(run)
        yield created
    except BaseException:
        if created and not (run / "last.json").is_file():  # nothing worth keeping: no half-made folder
            release(lock)
            shutil.rmtree(run, ignore_errors=True)
        raise
    finally:
        release(lock)
