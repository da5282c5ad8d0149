"""Reports of the validation tools: written atomically, as JSON with a readable text beside it."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from ..io.atomic import write_text


@dataclass
class ValidationResult:
    """Figures (a JSON-ready dict) and the files a validation tool wrote."""

    statistics: dict[str, Any]
    output: str | None
    report: str | None
    text_report: str | None


def write_json_and_text(path: str, statistics: dict[str, Any], title: str, lines: list[str]) -> tuple[str, str]:
    """The JSON report at ``path`` and a text report beside it (.txt); returns both paths."""
    text_path = os.path.splitext(path)[0] + ".txt"
    if os.path.abspath(text_path) == os.path.abspath(path):
        text_path = path + ".txt"
    write_text(path, json.dumps(statistics, indent=2))
    write_text(text_path, title + "\n" + "\n".join(lines) + "\n")
    return path, text_path
