"""Run GlacierFlow's algorithms through the real ``qgis_process`` binary, as a user's script does.

One place for the environment (headless Qt, a throwaway profile, the plugin folder, the venv's packages
only) and for reading the ``--json`` answer, so the headless tests differ only in what they run.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import glacierflow

REPOSITORY_PLUGINS = str(Path(glacierflow.__path__[0]).parent)  # the folder holding the glacierflow package


def qgis_process_env(profile: Path, plugins: str = REPOSITORY_PLUGINS) -> tuple[str, dict[str, str]]:
    """The ``qgis_process`` binary and an environment with the plugin enabled in ``profile``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(profile), QGIS_PLUGINPATH=plugins,
               # the venv's packages (numpy, OpenCV, onnxruntime) only: the plugin comes from ``plugins``
               PYTHONPATH=os.pathsep.join(p for p in sys.path if p.endswith("site-packages")))
    binary = os.environ.get("QGIS_PROCESS", "qgis_process.bin")
    enabled = subprocess.run([binary, "plugins", "enable", "glacierflow"], env=env, capture_output=True, text=True)
    if enabled.returncode != 0:  # it says so when the profile has it enabled already
        listing = subprocess.run([binary, "plugins"], env=env, capture_output=True, text=True).stdout
        assert any(line.split()[:2] == ["*", "glacierflow"] for line in listing.splitlines()), enabled.stderr
    return binary, env


def run_json(algorithm: str, parameters: dict[str, Any], profile: Path, plugins: str = REPOSITORY_PLUGINS,
             timeout: int = 300) -> tuple[subprocess.CompletedProcess, dict[str, Any] | None]:
    """``qgis_process --json run glacierflow:<algorithm> -- NAME=value ...``: the finished process and its
    parsed answer (None when it printed none)."""
    binary, env = qgis_process_env(profile, plugins)
    arguments = [f"{name}={value}" for name, value in parameters.items()]
    completed = subprocess.run([binary, "--json", "run", f"glacierflow:{algorithm}", "--", *arguments],
                               env=env, capture_output=True, text=True, timeout=timeout)
    answer = json.loads(completed.stdout[completed.stdout.index("{"):]) if "{" in completed.stdout else None
    return completed, answer
