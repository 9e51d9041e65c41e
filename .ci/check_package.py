"""Packaging check (part of ``make test``): the wheel built from this checkout works outside it.

1. Copy the tracked files to a scratch folder and build a wheel there (a stale ``build/`` folder in
   the checkout can never leak into it).
2. Check that the wheel ships the presets (package data).
3. Install the wheel with ``--no-deps`` into a scratch venv that sees the running interpreter's
   site-packages through a ``.pth`` line (torch and friends are reused, not downloaded; ``.pth``
   files there, e.g. an editable install of rsnb, are not processed, so only the wheel provides rsnb).
4. From a folder outside the checkout, with ``PYTHONPATH`` unset: ``python -m rsnb --version``
   and a one-epoch quick ``rsnb train`` on a tiny synthetic dataset.

Usage: ``python .ci/check_package.py`` (exit 0 when every step passes). Takes well under a minute.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ["image_size=64", "data.synthetic={images: 40, size: 64, seed: 0}", "data.min_count=1",
        "model.embed_dim=64", "model.text_hidden=64", "model.word_dim=32", "train.epochs=1",
        "train.batch_size=20", "train.quiet=true", "train.num_workers=0", "model.pretrained=false"]


def run(cmd, **kw) -> str:
    t0 = time.perf_counter()
    res = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, **kw)
    print(f"+ {' '.join(map(str, cmd))}  [{time.perf_counter() - t0:.1f} s]", flush=True)
    if res.returncode:
        sys.exit(f"check_package: {cmd[0]} failed (exit {res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res.stdout


def copy_sources(dst: Path) -> None:
    try:
        files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        names = [n for n in files.decode().split("\0") if n]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: copy the package and metadata
        names = [str(p.relative_to(ROOT)) for p in [*ROOT.glob("rsnb/**/*"), *ROOT.glob("*.toml"),
                                                    ROOT / "README.md", ROOT / "LICENSE"] if p.is_file()]
    for n in names:
        if (ROOT / n).is_file():
            (dst / n).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / n, dst / n)


def build_args() -> list[str]:
    """Build without isolation when this interpreter has a new-enough setuptools (offline, faster)."""
    try:
        import setuptools

        if int(setuptools.__version__.split(".")[0]) >= 77:
            return ["--no-build-isolation"]
    except ImportError:
        pass
    return []


def main() -> int:
    t0 = time.perf_counter()
    version = re.search(r'^version\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    with tempfile.TemporaryDirectory(prefix="rsnb-pkg-") as tmp:
        tmp = Path(tmp)
        src, dist, venv, work = tmp / "src", tmp / "dist", tmp / "venv", tmp / "work"
        for d in (src, dist, work):
            d.mkdir()
        copy_sources(src)
        run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *build_args(), "-w", dist, src])
        wheel = next(dist.glob("rsnb-*.whl"))
        names = zipfile.ZipFile(wheel).namelist()
        presets = sorted(n for n in names if n.startswith("rsnb/configs/") and n.endswith(".yaml"))
        if len(presets) < 2 or "rsnb/configs/demo.yaml" not in presets:
            sys.exit(f"check_package: {wheel.name} ships no presets (rsnb/configs/*.yaml): {presets}")
        run([sys.executable, "-m", "venv", "--without-pip", venv])
        py = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        site = Path(run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())
        (site / "_rsnb_parent_site.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        run([sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps", "--no-index", wheel])
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(RSNB_QUICK="1", RSNB_CACHE=str(tmp / "cache"), MPLBACKEND="Agg", RSNB_FIGURES=str(work / "fig"))
        where = run([py, "-c", "import rsnb; print(rsnb.__file__)"], cwd=work, env=env).strip()
        if not Path(where).is_relative_to(venv):
            sys.exit(f"check_package: rsnb was imported from {where}, not from the wheel in {venv}")
        out = run([py, "-m", "rsnb", "--version"], cwd=work, env=env).strip()
        if out != f"rsnb {version}":
            sys.exit(f"check_package: `rsnb --version` printed {out!r}, expected 'rsnb {version}'")
        script = venv / ("Scripts/rsnb.exe" if os.name == "nt" else "bin/rsnb")
        run([script, "train", "--config", "demo", "--out", "run", "--device", "cpu", *TINY], cwd=work, env=env)
        if not (work / "run" / "last.json").is_file():
            sys.exit(f"check_package: `rsnb train` wrote no checkpoint in {work / 'run'}")
    print(f"check_package: {wheel.name} ({len(presets)} presets) installs and trains outside the checkout "
          f"in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
