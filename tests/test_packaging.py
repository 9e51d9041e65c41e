"""Packaging metadata: presets are package data, the build bound fits the license field, conda env = pyproject.

The full check (build a wheel, install it into a scratch venv, train outside the checkout) is
``.ci/check_package.py``, run by ``make test``.
"""

import re
from pathlib import Path

import yaml

from rsnb import experiment as ex

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = (ROOT / "pyproject.toml").read_text()


def _names(reqs):
    return {re.split(r"[<>=!~ \[]", r.strip(), maxsplit=1)[0].lower() for r in reqs if r.strip()}


def _pyproject_list(key: str) -> list[str]:
    block = re.search(rf"^{key} = \[(.*?)^\]", PYPROJECT, re.M | re.S).group(1)
    return re.findall(r'"([^"]+)"', block)


def test_presets_are_package_data():
    assert str(ex.PRESETS).startswith(str(Path(ex.__file__).parent))  # inside the package, not the checkout
    assert not (ROOT / "configs").exists()  # one copy only
    assert 'rsnb = ["configs/*.yaml"]' in PYPROJECT
    for name in ex.preset_names():
        assert (ex.PRESETS / f"{name}.yaml").is_file()


def test_license_field_matches_the_setuptools_bound():
    # `license = "MIT"` (an SPDX string) and `license-files` need setuptools >= 77
    assert re.search(r'^license = "MIT"$', PYPROJECT, re.M)
    bound = re.search(r'requires = \["setuptools>=(\d+)', PYPROJECT)
    assert bound and int(bound.group(1)) >= 77


def test_environment_yml_is_conda_forge_only_and_matches_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert [c for c in env["channels"] if c != "nodefaults"] == ["conda-forge"]
    conda = {d.split(">")[0].split("=")[0].strip().lower() for d in env["dependencies"] if isinstance(d, str)}
    conda = {"torch" if n == "pytorch" else n for n in conda} - {"python", "pip"}
    wanted = _names(_pyproject_list("dependencies")) | _names(_pyproject_list("dev"))
    assert conda == wanted, (conda ^ wanted)
    assert "nbformat" not in wanted  # nbmake brings it


def test_declared_runtime_dependencies_are_used():
    src = "\n".join(p.read_text() for p in (ROOT / "rsnb").rglob("*.py"))
    import_name = {"pillow": "PIL", "pyyaml": "yaml", "umap-learn": "umap", "scikit-learn": "sklearn"}
    for dep in _names(_pyproject_list("dependencies")):
        mod = import_name.get(dep, dep.replace("-", "_"))
        assert re.search(rf"^\s*(import|from) {mod}\b", src, re.M), f"{dep} is declared but never imported"
