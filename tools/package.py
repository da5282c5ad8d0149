"""Build the plugin zip for the QGIS plugin repository: ``glacierflow/`` only, as ``glacierflow-<version>.zip``.

    python tools/package.py [--out dist]      (or: make package)

Only the files git tracks under ``glacierflow/`` go in (no caches, no build leftovers), plus the
repository's LICENSE as ``glacierflow/LICENSE``; the version is ``metadata.txt``'s. Training code, tests,
benchmarks and checkpoints live beside the package and never reach the zip.
"""
from __future__ import annotations

import argparse
import configparser
import os
import subprocess
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "glacierflow"


def plugin_version(root: str = ROOT) -> str:
    """The ``version`` of ``glacierflow/metadata.txt``."""
    metadata = configparser.ConfigParser(interpolation=None)
    metadata.read(os.path.join(root, PACKAGE, "metadata.txt"), encoding="utf-8")
    return metadata["general"]["version"]


def tracked_files(root: str = ROOT) -> list[str]:
    """The package's files that git tracks, relative to ``root``."""
    listing = subprocess.run(["git", "-C", root, "ls-files", "-z", "--", PACKAGE], check=True,
                             capture_output=True).stdout.decode("utf-8")
    return sorted(p for p in listing.split("\0") if p and os.path.isfile(os.path.join(root, p)))


def build(out_folder: str, root: str = ROOT) -> str:
    """Write the zip into ``out_folder``; returns its path."""
    os.makedirs(out_folder, exist_ok=True)
    path = os.path.join(out_folder, f"{PACKAGE}-{plugin_version(root)}.zip")
    temporary = path + ".partial"
    with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for relative in tracked_files(root):
            archive.write(os.path.join(root, relative), relative)
        archive.write(os.path.join(root, "LICENSE"), f"{PACKAGE}/LICENSE")
    os.replace(temporary, path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "dist"), help="output folder (default: dist/)")
    args = parser.parse_args(argv)
    path = build(args.out)
    print(f"{path} ({os.path.getsize(path) / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
