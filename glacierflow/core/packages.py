"""Installing GlacierFlow's Python packages without disturbing a shared QGIS.

Rules (what careful QGIS plugins do):

- Packages go into a **plugin-local target folder** (one per Python version, e.g. ``<QGIS profile>/python/
  glacierflow-packages/py39``), appended to ``sys.path`` by :func:`activate`: QGIS's own site-packages are
  never written, and QGIS's packages always win over ours.
- **numpy is never installed**: QGIS owns it (its GDAL is built against it). pip resolves the choice against
  QGIS's Python (what QGIS already has is not installed again), numpy is removed from the plan, and the rest is
  installed with ``--no-deps``.
- **Versions by Python version**: onnxruntime 1.19.x for Python 3.9 (QGIS 3.22-3.28 on Windows), newer ones
  for newer Pythons (:func:`requirements_for`).
- **Optional parts are separate choices** (:data:`COMPONENTS`): the velocity and forecast engines (``core``),
  the GPU build of onnxruntime (``gpu``, instead of the CPU one), Earth Engine (``earth_engine``) and training
  (``training``: torch, onnx).
- ``ensurepip`` bootstraps pip when QGIS's Python has none.

This file uses only the standard library and runs as a script in QGIS's Python (the dependency dialog starts
``python packages.py install --target DIR -- REQUIREMENT...`` in a QProcess, so QGIS stays responsive)::

    python packages.py install --target DIR [--pip-arg=ARG ...] -- onnxruntime==1.19.2 opencv-python-headless
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess  # nosec B404
import sys
import tempfile
from collections.abc import Sequence

NEVER_INSTALLED = ("numpy",)  # owned by QGIS: its GDAL and every other plugin use that build

#: Choices offered to the user: name -> (label, what it adds).
COMPONENTS: dict[str, str] = {
    "core": "Velocity and forecast engines (OpenCV, onnxruntime on the CPU)",
    "gpu": "NVIDIA GPU for RAFT and the forecasters (onnxruntime-gpu instead of onnxruntime; needs CUDA 12)",
    "earth_engine": "Google Earth Engine imagery source (earthengine-api)",
    "training": "Training and fine-tuning (torch, onnx; about 1 GB)",
}


def _onnxruntime(python: tuple[int, int], gpu: bool) -> str:
    name = "onnxruntime-gpu" if gpu else "onnxruntime"
    if python < (3, 10):
        return f"{name}>=1.19,<1.20"  # the last line with wheels for Python 3.9
    if python < (3, 11):
        return f"{name}>=1.19,<1.23"
    return f"{name}==1.31.1" if not gpu else f"{name}>=1.20"


def requirements_for(components: Sequence[str], python: tuple[int, int] | None = None) -> list[str]:
    """pip requirements of the chosen ``components`` (names of :data:`COMPONENTS`) for a Python version
    (default: this one); never numpy."""
    python = python or (sys.version_info[0], sys.version_info[1])
    unknown = [name for name in components if name not in COMPONENTS]
    if unknown:
        raise ValueError(f"Unknown component(s) {', '.join(unknown)}: choose from {', '.join(COMPONENTS)}.")
    chosen = set(components)
    requirements: list[str] = []
    if chosen & {"core", "gpu"}:
        requirements += ["opencv-python-headless>=4.5,<5", _onnxruntime(python, gpu="gpu" in chosen)]
    if "earth_engine" in chosen:
        requirements.append("earthengine-api==1.7.50" if python >= (3, 11) else "earthengine-api==1.6.15")
    if "training" in chosen:
        requirements += ["torch>=2.2", "onnx>=1.16"]
    return requirements


def target_folder(base: str, python: tuple[int, int] | None = None) -> str:
    """The plugin-local package folder under ``base`` for a Python version (binary wheels differ by version)."""
    python = python or (sys.version_info[0], sys.version_info[1])
    return os.path.join(base, f"py{python[0]}{python[1]}")


def activate(folder: str) -> bool:
    """Append ``folder`` to ``sys.path`` (after QGIS's own packages, which keep precedence); True if added."""
    if not os.path.isdir(folder) or folder in sys.path:
        return False
    sys.path.append(folder)
    return True


def _project_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else ""


def check_requirements(requirements: Sequence[str]) -> None:
    """Refuse a request to install a package QGIS owns."""
    owned = [r for r in requirements if _project_name(r) in NEVER_INSTALLED]
    if owned:
        raise ValueError(f"Refusing to install {', '.join(owned)}: QGIS owns numpy (its GDAL is built against it). "
                         "Install it with QGIS's own installer (OSGeo4W, the system package manager) if needed.")


def _run(command: list[str], env: dict[str, str] | None = None) -> int:
    print("$ " + " ".join(command), flush=True)
    return subprocess.call(command, env=env)  # nosec B603


def ensure_pip(python: str) -> None:
    """Bootstrap pip with ``ensurepip`` when ``python`` has none."""
    if subprocess.call([python, "-m", "pip", "--version"], stdout=subprocess.DEVNULL,  # nosec B603
                       stderr=subprocess.DEVNULL) == 0:
        return
    print("pip is missing from this Python: bootstrapping it with ensurepip.", flush=True)
    if _run([python, "-m", "ensurepip", "--upgrade", "--user"]) != 0:
        raise RuntimeError("pip could not be bootstrapped (ensurepip failed): install pip for QGIS's Python.")


def plan(python: str, requirements: Sequence[str], target: str, pip_args: Sequence[str] = ()) -> list[str]:
    """Pinned ``name==version`` of everything ``requirements`` need that QGIS's Python (with ``target``) lacks,
    numpy removed; from pip's resolver (``--dry-run --report``)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [target, os.environ.get("PYTHONPATH", "")])))
    with tempfile.TemporaryDirectory() as scratch:
        report = os.path.join(scratch, "report.json")
        code = _run([python, "-m", "pip", "install", "--dry-run", "--quiet", "--report", report,
                     *pip_args, *requirements], env)
        if code != 0:
            raise RuntimeError(f"pip could not resolve {' '.join(requirements)} (exit code {code}): see the log.")
        with open(report, encoding="utf-8") as handle:
            installs = json.load(handle).get("install", [])
    pinned = []
    for item in installs:
        metadata = item.get("metadata", {})
        name, version = str(metadata.get("name", "")), str(metadata.get("version", ""))
        if _project_name(name) in NEVER_INSTALLED:
            print(f"Not installing {name} {version}: QGIS owns it.", flush=True)
            continue
        pinned.append(f"{name}=={version}")
    return pinned


def install(python: str, requirements: Sequence[str], target: str, pip_args: Sequence[str] = ()) -> list[str]:
    """Install ``requirements`` (and what they need, numpy excepted) into ``target``; returns what was installed."""
    check_requirements(requirements)
    ensure_pip(python)
    os.makedirs(target, exist_ok=True)
    pinned = plan(python, requirements, target, pip_args)
    if not pinned:
        print("Everything is already installed.", flush=True)
        return []
    code = _run([python, "-m", "pip", "install", "--no-deps", "--upgrade", "--target", target, *pip_args, *pinned])
    if code != 0:
        raise RuntimeError(f"pip failed (exit code {code}): see the log above.")
    _remove_owned(target)
    return pinned


def _remove_owned(target: str) -> None:
    """Belt and braces: nothing QGIS owns may stay in the target (a package shipping numpy inside its wheel)."""
    for entry in os.listdir(target):
        if _project_name(entry.split("-")[0].split(".")[0]) in NEVER_INSTALLED:
            path = os.path.join(target, entry)
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)


def main(argv: Sequence[str] | None = None) -> int:
    """``install --target DIR [--pip-arg ARG]... -- REQUIREMENT...``: exit code 0 on success."""
    parser = argparse.ArgumentParser(description="Install GlacierFlow's packages into a plugin-local folder.")
    parser.add_argument("action", choices=["install"])
    parser.add_argument("--target", required=True)
    parser.add_argument("--pip-arg", action="append", default=[], help="passed to pip (an index, --no-index, ...)")
    parser.add_argument("requirements", nargs="+")
    options = parser.parse_args(argv)
    try:
        installed = install(sys.executable, options.requirements, options.target, options.pip_arg)
    except (RuntimeError, ValueError) as error:
        print(f"ERROR: {error}", flush=True)
        return 1
    print(f"Installed {len(installed)} package(s) into {options.target}: restart QGIS.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
