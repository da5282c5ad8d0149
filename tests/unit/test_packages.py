"""The package installer into a throwaway target folder, from real wheels on a local index (no network):
what a package needs is installed beside it, numpy never, and the result imports from the target."""
from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from glacierflow.core import packages

SCRIPT = packages.__file__


def _wheel(folder: Path, name: str, version: str, requires: list[str], code: str) -> None:
    """A real pure-Python wheel (PEP 427) of module ``name``."""
    dist = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": code,
             f"{dist}/METADATA": "Metadata-Version: 2.1\nName: {}\nVersion: {}\n{}".format(
                 name, version, "".join(f"Requires-Dist: {r}\n" for r in requires)),
             f"{dist}/WHEEL": ("Wheel-Version: 1.0\nGenerator: glacierflow-test\nRoot-Is-Purelib: true\n"
                               "Tag: py3-none-any\n")}
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\n".join(record + [f"{dist}/RECORD,,"]) + "\n"
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wheels")
    _wheel(folder, "gf_helper", "1.0", [], "VALUE = 21\n")
    _wheel(folder, "gf_probe", "1.0", ["numpy", "gf_helper"],
           "import numpy\nimport gf_helper\n\ndef answer():\n    return int(numpy.int64(gf_helper.VALUE) * 2)\n")
    _wheel(folder, "gf_greedy", "1.0", ["numpy>=99"], "")  # asks for a numpy QGIS does not have
    _wheel(folder, "numpy", "99.0", [], "raise ImportError('a numpy that must never be installed')\n")
    return folder


def _install(index: Path, target: Path, *requirements: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, "install", "--target", str(target), "--pip-arg=--no-index",
                           f"--pip-arg=--find-links={index}", "--", *requirements],
                          capture_output=True, text=True, timeout=300)


def test_installs_into_the_target_with_its_needs_and_imports_from_it(index, tmp_path):
    target = tmp_path / "py"
    done = _install(index, target, "gf_probe")
    assert done.returncode == 0, done.stdout + done.stderr
    names = set(os.listdir(target))
    assert {"gf_probe", "gf_helper"} <= names and not any(n.lower().startswith("numpy") for n in names)
    check = (f"import sys; from glacierflow.core.packages import activate; assert activate({str(target)!r}); "
             "import gf_probe, numpy; assert gf_probe.answer() == 42; "
             f"assert not numpy.__file__.startswith({str(target)!r}); print('ok')")
    run = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60,
                         cwd=str(Path(SCRIPT).parents[2]))
    assert run.stdout.strip() == "ok", run.stderr
    again = _install(index, target, "gf_probe")  # everything present: nothing to do
    assert again.returncode == 0 and "already installed" in again.stdout


def test_numpy_is_never_installed_even_when_a_package_asks_for_another(index, tmp_path):
    target = tmp_path / "py"
    done = _install(index, target, "gf_greedy")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Not installing numpy 99.0: QGIS owns it" in done.stdout
    assert not any(n.lower().startswith("numpy") for n in os.listdir(target))


def test_asking_for_numpy_is_refused_and_touches_nothing(index, tmp_path):
    target = tmp_path / "py"
    done = _install(index, target, "numpy==99.0")
    assert done.returncode == 1 and "Refusing to install numpy==99.0: QGIS owns numpy" in done.stdout
    assert not target.exists()


def test_versions_follow_the_python_and_the_choices():
    py39 = packages.requirements_for(["core"], (3, 9))
    assert "onnxruntime>=1.19,<1.20" in py39 and not any(r.startswith("numpy") for r in py39)
    assert not any("earthengine" in r or "torch" in r for r in py39)
    gpu = packages.requirements_for(["core", "gpu"], (3, 9))
    assert "onnxruntime-gpu>=1.19,<1.20" in gpu and not any(r.startswith("onnxruntime>") for r in gpu)
    assert packages.requirements_for(["earth_engine"], (3, 9)) == ["earthengine-api==1.6.15"]
    assert packages.requirements_for(["earth_engine"], (3, 12)) == ["earthengine-api==1.7.50"]
    assert "torch>=2.2" in packages.requirements_for(["training"], (3, 11))
    with pytest.raises(ValueError, match="Unknown component"):
        packages.requirements_for(["everything"])
    assert packages.target_folder("/base", (3, 9)) == os.path.join("/base", "py39")
