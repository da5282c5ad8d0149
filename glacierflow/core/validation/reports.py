"""Reports of the validation tools: written atomically, as JSON with a readable text beside it."""
from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from typing import Any

from ..errors import GlacierFlowError


@dataclass
class ValidationResult:
    """Figures (a JSON-ready dict) and the files a validation tool wrote."""

    statistics: dict[str, Any]
    output: str | None
    report: str | None
    text_report: str | None


def write_atomically(path: str, text: str) -> str:
    """Write ``text`` to a hidden temporary file beside ``path`` and rename it into place."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise GlacierFlowError(f"Report folder '{folder}' does not exist: create it or choose another.")
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def write_json_and_text(path: str, statistics: dict[str, Any], title: str, lines: list[str]) -> tuple[str, str]:
    """The JSON report at ``path`` and a text report beside it (.txt); returns both paths."""
    text_path = os.path.splitext(path)[0] + ".txt"
    if os.path.abspath(text_path) == os.path.abspath(path):
        text_path = path + ".txt"
    write_atomically(path, json.dumps(statistics, indent=2))
    write_atomically(text_path, title + "\n" + "\n".join(lines) + "\n")
    return path, text_path
