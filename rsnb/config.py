"""Run-mode switches read in one place.

``RSNB_QUICK=1`` shrinks data, image size and epochs so that every notebook and test runs on a
2-core CPU in minutes; without it notebooks use the paper settings. ``RSNB_DATA`` points at a
real dataset folder (UCM/Sydney/RSICD/RSITMD in their original formats).
"""

from __future__ import annotations

import os
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}


def is_quick() -> bool:
    """Return True when ``RSNB_QUICK`` is set to a true value (1/true/yes/on)."""
    return os.environ.get("RSNB_QUICK", "").strip().lower() in _TRUE


def data_root() -> Path | None:
    """Return the real-dataset folder named by ``RSNB_DATA``, or None when unset."""
    value = os.environ.get("RSNB_DATA", "").strip()
    return Path(value).expanduser() if value else None


def mode_banner() -> str:
    """One line that notebooks print so the reader knows which mode runs."""
    if is_quick():
        return "rsnb mode: QUICK (RSNB_QUICK=1): small data, small images, few epochs"
    return "rsnb mode: FULL (paper settings); set RSNB_QUICK=1 for a fast run"


def quick_or_full(quick, full):
    """Pick ``quick`` in quick mode and ``full`` otherwise."""
    return quick if is_quick() else full


def cache_dir() -> Path:
    """Folder for generated data and notebook runs: ``RSNB_CACHE``, else ``~/.cache/rsnb``."""
    value = os.environ.get("RSNB_CACHE", "").strip()
    path = Path(value).expanduser() if value else Path.home() / ".cache" / "rsnb"
    path.mkdir(parents=True, exist_ok=True)
    return path
