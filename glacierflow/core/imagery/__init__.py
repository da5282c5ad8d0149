"""Imagery sources behind one interface (search scenes, fetch them onto the job grid), and pairing rules."""
from __future__ import annotations

from ..geo.area import Area
from .base import DEFAULT_MONTHS, ImageSource, Scene, SceneCache, default_cache_dir, parse_date_bound, parse_months
from .local import LocalFolderSource
from .pairs import (
    RULES,
    ScenePair,
    cap_pairs_per_scene,
    cross_year_pairs,
    interval_pairs,
    pairs_by_rule,
    sequential_pairs,
    write_pairs_csv,
)
from .stac_profiles import PROFILES as STAC_PROFILES

EARTH_ENGINE = "earth_engine"
# Order matters: Processing's source enum stores names, but keep local_folder first (the default).
SOURCE_NAMES = ("local_folder",) + tuple(STAC_PROFILES) + (EARTH_ENGINE,)

__all__ = ["DEFAULT_MONTHS", "Area", "ImageSource", "Scene", "SceneCache", "default_cache_dir", "parse_date_bound",
           "parse_months", "LocalFolderSource", "RULES", "ScenePair", "cross_year_pairs", "interval_pairs",
           "sequential_pairs", "cap_pairs_per_scene", "pairs_by_rule", "write_pairs_csv",
           "SOURCE_NAMES", "STAC_PROFILES", "EARTH_ENGINE", "make_source"]


def make_source(name: str, folder: str = "", recursive: bool = False, band: int = 1, cache_dir: str = "",
                url: str = "", credentials: str = "", project: str = "",
                min_valid_fraction: float | None = None) -> ImageSource:
    """The source called ``name`` (see :data:`SOURCE_NAMES`), configured.

    Args:
        name: ``local_folder``, a STAC profile (``planetary_computer_landsat``, ``planetary_computer_sentinel2``,
            ``earth_search_sentinel2``) or ``earth_engine``.
        folder, recursive, band: the local folder, whether to search its sub-folders, the 1-based band read.
        cache_dir: where fetched arrays are kept (empty: :func:`default_cache_dir`).
        url: a service URL other than the default (a STAC API root, an Earth Engine endpoint).
        credentials: a Google service-account key file (Earth Engine).
        project: the Google Cloud project id (Earth Engine).
        min_valid_fraction: 0-1; when set, remote sources measure each scene's usable share of the area at
            search time (scenes under it are dropped by the caller, with a log line each).
    """
    from ..errors import GlacierFlowError

    if name == "local_folder":
        return LocalFolderSource(folder, band=band, recursive=recursive, cache_dir=cache_dir or None)
    if name in STAC_PROFILES:
        from .stac import StacSource

        return StacSource(name, api_url=url, cache_dir=cache_dir or None,
                          valid_fraction=min_valid_fraction is not None)
    if name == EARTH_ENGINE:
        from .earth_engine import EarthEngineSource

        source = EarthEngineSource(project=project or None, service_account_key=credentials or None,
                                   url=url or None, cache_dir=cache_dir or None)
        if min_valid_fraction is not None:
            source.min_valid_fraction = min_valid_fraction
        return source
    raise GlacierFlowError(f"Unknown imagery source '{name}': use one of {', '.join(SOURCE_NAMES)}.")
