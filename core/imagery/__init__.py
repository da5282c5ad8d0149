"""Imagery sources behind one interface (search scenes, fetch them onto the job grid), and pairing rules."""
from __future__ import annotations

from .base import (
    DEFAULT_MONTHS,
    Area,
    ImageSource,
    Scene,
    SceneCache,
    default_cache_dir,
    parse_date_bound,
    parse_months,
)
from .local import LocalFolderSource
from .pairs import RULES, ScenePair, cross_year_pairs, interval_pairs, pairs_by_rule, write_pairs_csv

SOURCE_NAMES = ("local_folder",)

__all__ = ["DEFAULT_MONTHS", "Area", "ImageSource", "Scene", "SceneCache", "default_cache_dir", "parse_date_bound",
           "parse_months", "LocalFolderSource", "RULES", "ScenePair", "cross_year_pairs", "interval_pairs",
           "pairs_by_rule", "write_pairs_csv", "SOURCE_NAMES", "make_source"]


def make_source(name: str, folder: str = "", recursive: bool = False, band: int = 1,
                cache_dir: str = "") -> ImageSource:
    """The source called ``name`` (see :data:`SOURCE_NAMES`), configured."""
    from ..errors import GlacierFlowError

    if name == "local_folder":
        return LocalFolderSource(folder, band=band, recursive=recursive, cache_dir=cache_dir or None)
    raise GlacierFlowError(f"Unknown imagery source '{name}': use one of {', '.join(SOURCE_NAMES)}.")
