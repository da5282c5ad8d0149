"""Accuracy on real texture: every engine on known flows applied to real imagery, and on the real pair.

    python -m bench.bench_realtexture [--suite full|fast|issue|sharp] [--configs ...] [--processes 2]
    python -m bench.bench_realtexture --yahtse [--configs ...]     # the real pair on stable rock

Known-flow pairs (:mod:`bench.realtexture`): crops of the real Landsat-8 Yahtse pair
(../shared/data/yahtse) warped by glacier-like flows (0.2-30 px) with an exact inverse, then degraded
(noise 0-3 %, blur of B 0-1 px, gain 0.8-1.2, an illumination ramp, a sub-pixel co-registration offset).
Per class of largest glacier motion (< 3, 3-10, 10-20, 20-30 px): the median and 90th percentile
endpoint error (px) of *every* textured glacier pixel, trusted or not, the trusted fraction, the
median error of trusted pixels, and seconds per megapixel. ``ref_dis`` / ``ref_farneback`` are the
issue's plain OpenCV script (raw images stretched to 8 bit, whole scene, 9 x 9 median), run in the
same command as the baseline. Other configs run :func:`glacierflow.core.velocity.tracking.track_block`
with the pair job's settings (``PairJob`` defaults unless the config says otherwise).

``--yahtse``: ``run_pair_job`` on the real pair for each engine, scored on the stable-rock polygons
``bench/data/stable_rock_yahtse.geojson`` (delineated for this project on both images): bias,
NMAD and 95 % half-width (m/day, east / north), the largest held-out bias after removing the offset
estimated on the other polygons, and the trusted fraction and median speed of the fast terminus.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from bench import realtexture as rt
from glacierflow.core.velocity.flow import create_engine
from glacierflow.core.velocity.flow.base import Flow
from glacierflow.core.velocity.flow.postprocess import median_filter_flow
from glacierflow.core.velocity.pair import PairJob, track_settings
from glacierflow.core.velocity.preprocess import PREPROCESSING_MODES, band_statistics
from glacierflow.core.velocity.tracking import TrackedBlock, track_block

ROCK = Path(__file__).resolve().parent / "data" / "stable_rock_yahtse.geojson"
ENGINES = ("hybrid", "dis", "ncc", "horn_schunck", "farneback")
DEFAULT_CONFIGS = ("ref_dis", "ref_farneback") + ENGINES
TERMINUS = (slice(770, 860), slice(890, 1000))  # rows, cols: crevassed trunk above the calving front
SUBSAMPLE = 4000  # errors kept per case for pooled percentiles


def reference_opencv(image_a: np.ndarray, image_b: np.ndarray, method: str = "dis") -> Flow:
    """The issue's ten-line script: OpenCV on the raw images stretched to 8 bit, whole scene, 9 x 9 median (px)."""
    import cv2

    def stretch(band: np.ndarray) -> np.ndarray:
        finite = np.isfinite(band)
        low, high = np.percentile(band[finite], [1.0, 99.0])
        scaled = (np.where(finite, band, low) - low) * (255.0 / max(high - low, 1e-9))
        return np.clip(scaled, 0, 255).astype(np.uint8)

    a8, b8 = stretch(image_a), stretch(image_b)
    if method == "dis":
        flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(a8, b8, None)
    else:
        flow = cv2.calcOpticalFlowFarneback(a8, b8, None, 0.5, 6, 15, 10, 5, 1.2, 0)
    return median_filter_flow(Flow(flow[..., 0].copy(), flow[..., 1].copy()), 9)


def config_job(config: str) -> tuple[str, str | None, dict[str, float]]:
    """(engine, preprocessing or None, engine parameters) of a config named ``<engine>[:<mode>][@k=v,...]``.

    ``hybrid@alpha=20,spacing=8`` runs the hybrid with those settings instead of its defaults (how the
    shipped settings were chosen: bench/RESULTS.md).
    """
    name, _, overrides = config.partition("@")
    engine, _, mode = name.partition(":")
    params = {key: float(value) if "." in value else int(value)
              for key, value in (item.split("=", 1) for item in overrides.split(",") if item)}
    return engine, (mode or None), params


def track_case(case: rt.Case, engine: str, preprocessing: str | None = None, **job_fields: Any) -> TrackedBlock:
    """Track a known-flow case as the pair job would (its defaults, or ``job_fields``), whole case in one block."""
    job = PairJob("", "", "", engine=engine, preprocessing=preprocessing, **job_fields)
    stats = (band_statistics([case.a], "Image A"), band_statistics([case.b], "Image B"))
    result = track_block(create_engine(engine, **job.engine_params), case.a, case.b, stats, track_settings(job))
    assert result is not None
    return result


def score_case(config: str, case: rt.Case) -> dict[str, Any]:
    """Endpoint errors of ``config`` on ``case`` (px): a fixed subsample of the textured glacier, and seconds."""
    started = time.perf_counter()
    if config.startswith("ref_"):
        flow = reference_opencv(case.a, case.b, config[4:])
        dx, dy, trusted = flow.dx, flow.dy, np.ones(case.a.shape, bool)
    else:
        engine, mode, params = config_job(config)
        result = track_case(case, engine, mode, engine_params=params)
        dx, dy, trusted = result.dx, result.dy, result.trust
    seconds = time.perf_counter() - started
    scored = case.glacier & case.textured
    error = np.hypot(dx - case.dx, dy - case.dy)
    error = np.where(np.isfinite(error), error, 99.0)[scored]  # a missing value counts as a gross error
    pick = np.random.default_rng(0).choice(error.size, size=min(SUBSAMPLE, error.size), replace=False)
    return {"class": rt.motion_class(case.flow.max_motion), "error": error[pick].astype(np.float32),
            "trusted": trusted[scored][pick], "median": float(np.median(error)), "seconds": seconds,
            "pixels": case.a.size}


def suite_cases(suite: str) -> list[rt.Case]:
    """The cases of a suite (see :mod:`bench.realtexture`)."""
    if suite == "full":
        return rt.benchmark_cases()
    if suite == "fast":
        return rt.fast_cases()
    if suite == "issue":
        return rt.issue_cases()
    return [rt.make_case(*recipe) for recipe in rt.sharp_plan()]


def _score_all(task: tuple[str, int, str]) -> tuple[str, int, dict[str, Any]]:
    import cv2

    cv2.setNumThreads(1)  # one process per core
    config, index, suite = task
    return config, index, score_case(config, suite_cases_cached(suite)[index])


_CASES: dict[str, list[rt.Case]] = {}


def suite_cases_cached(suite: str) -> list[rt.Case]:
    """:func:`suite_cases`, built once per process."""
    if suite not in _CASES:
        _CASES[suite] = suite_cases(suite)
    return _CASES[suite]


def pooled(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Median / p90 of all scored errors (px), trusted fraction, trusted median (px), seconds per MP."""
    error = np.concatenate([r["error"] for r in rows])
    trusted = np.concatenate([r["trusted"] for r in rows])
    return {"median": float(np.median(error)), "p90": float(np.percentile(error, 90)),
            "trusted": float(trusted.mean()),
            "trusted_median": float(np.median(error[trusted])) if trusted.any() else float("nan"),
            "s_per_mp": sum(r["seconds"] for r in rows) / (sum(r["pixels"] for r in rows) / 1e6)}


def run_suite(configs: list[str], suite: str, processes: int) -> str:
    """Score every config on every case of ``suite``; a Markdown table (rows: configs, columns: motion classes)."""
    count = len(suite_cases_cached(suite))
    tasks = [(config, i, suite) for config in configs for i in range(count)]
    results: dict[str, list[dict[str, Any]]] = {config: [] for config in configs}
    with ProcessPoolExecutor(max_workers=processes) as pool:
        for config, _, row in pool.map(_score_all, tasks):
            results[config].append(row)
    labels = [label for label, _, _ in rt.MOTION_CLASSES]
    present = [label for label in labels if any(r["class"] == label for r in results[configs[0]])]
    lines = ["| config | " + " | ".join(f"{label}: median / p90 / trusted / trusted median" for label in present)
             + " | s/MP |", "|---|" + "---|" * (len(present) + 1)]
    for config in configs:
        cells = []
        for label in present:
            stats = pooled([r for r in results[config] if r["class"] == label])
            cells.append(f"{stats['median']:.3f} / {stats['p90']:.3f} / {100 * stats['trusted']:.1f} % / "
                         f"{stats['trusted_median']:.3f}")
        lines.append(f"| {config} | " + " | ".join(cells) + f" | {pooled(results[config])['s_per_mp']:.1f} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- the real pair on stable rock ---
def rock_masks(grid_path: str) -> dict[str, np.ndarray]:
    """Bool mask per stable-rock polygon (pixel centres inside) on the grid of the raster ``grid_path``."""
    from osgeo import gdal, ogr

    reference = gdal.Open(grid_path)
    source = ogr.Open(str(ROCK))
    layer = source.GetLayer()
    masks = {}
    names = [feature.GetField("name") for feature in layer]  # read first: a filter restarts the reading
    for name in names:
        target = gdal.GetDriverByName("MEM").Create("", reference.RasterXSize, reference.RasterYSize, 1, gdal.GDT_Byte)
        target.SetGeoTransform(reference.GetGeoTransform())
        target.SetProjection(reference.GetProjection())
        layer.SetAttributeFilter(f"name = '{name}'")
        gdal.RasterizeLayer(target, [1], layer, burn_values=[1])
        layer.SetAttributeFilter(None)
        masks[name] = target.ReadAsArray().astype(bool)
    return masks


def rock_statistics(east: np.ndarray, north: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, Any]:
    """Bias, NMAD, 95 % half-width and held-out bias (m/day) over the trusted (finite) rock pixels."""
    union = np.any(list(masks.values()), axis=0)
    selected = union & np.isfinite(east) & np.isfinite(north)
    e, n = east[selected], north[selected]
    bias_e, bias_n = float(np.median(e)), float(np.median(n))

    def nmad(values: np.ndarray) -> float:
        return 1.4826 * float(np.median(np.abs(values - np.median(values))))

    def half_width(values: np.ndarray) -> float:
        return 0.5 * float(np.subtract(*np.percentile(values, [97.5, 2.5])))

    held_out = []
    for mask in masks.values():
        inside, others = mask & selected, union & ~mask & selected
        if inside.sum() >= 10 and others.sum() >= 10:
            held_out.append(max(abs(np.median(east[inside]) - np.median(east[others])),
                                abs(np.median(north[inside]) - np.median(north[others]))))
    return {"coverage": float(selected.sum() / union.sum()), "bias": (bias_e, bias_n),
            "nmad": (nmad(e), nmad(n)), "hw95": (half_width(e), half_width(n)),
            "held_out": max(held_out, default=float("nan"))}


def run_yahtse(configs: list[str]) -> str:
    """Each config on the real Yahtse pair (run_pair_job, or the reference script); a Markdown table."""
    from osgeo import gdal

    data = rt.DATA_DIR
    path_a, path_b = (str(data / name) for name in rt.ACQUISITIONS)
    days = 16.0 + 3.0 / 86400.0
    lines = ["| config | s | rock trusted | bias E / N (m/day) | NMAD E / N | HW95 E / N | held-out bias (max) "
             "| terminus trusted | terminus median (m/day) |", "|---" * 9 + "|"]
    with tempfile.TemporaryDirectory() as folder:
        masks = rock_masks(path_a)
        for config in configs:
            started = time.perf_counter()
            if config.startswith("ref_"):
                flow = reference_opencv(rt.acquisition(0), rt.acquisition(1), config[4:])
                east, north = flow.dx * 15.0 / days, -flow.dy * 15.0 / days
            else:
                engine, mode, params = config_job(config)
                output = os.path.join(folder, f"{engine}.tif")
                from glacierflow.core.velocity.pair import run_pair_job

                run_pair_job(PairJob(path_a, path_b, output, engine=engine, preprocessing=mode, engine_params=params))
                product = gdal.Open(output)
                bands = {product.GetRasterBand(i).GetDescription(): product.GetRasterBand(i).ReadAsArray()
                         for i in range(1, product.RasterCount + 1)}
                east, north = bands["vx"] / 365.25, bands["vy"] / 365.25
            seconds = time.perf_counter() - started
            rock = rock_statistics(east, north, masks)
            terminus_e, terminus_n = east[TERMINUS], north[TERMINUS]
            covered = np.isfinite(terminus_e)
            speed = np.hypot(terminus_e - rock["bias"][0], terminus_n - rock["bias"][1])[covered]
            lines.append(
                f"| {config} | {seconds:.1f} | {100 * rock['coverage']:.0f} % | {rock['bias'][0]:+.3f} / "
                f"{rock['bias'][1]:+.3f} | {rock['nmad'][0]:.3f} / {rock['nmad'][1]:.3f} | {rock['hw95'][0]:.3f} / "
                f"{rock['hw95'][1]:.3f} | {rock['held_out']:.3f} | {100 * covered.mean():.0f} % | "
                f"{np.median(speed) if speed.size else float('nan'):.2f} |")
            print(lines[-1], flush=True)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="full", choices=["full", "fast", "issue", "sharp"])
    parser.add_argument("--configs", nargs="*", default=list(DEFAULT_CONFIGS),
                        help="ref_dis, ref_farneback, <engine> or <engine>:<preprocessing>")
    parser.add_argument("--matrix", action="store_true", help="every classical engine x every preprocessing mode")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--yahtse", action="store_true", help="the real pair on stable rock instead")
    args = parser.parse_args()
    if not rt.data_available():
        raise SystemExit(f"{rt.DATA_DIR} is absent: this benchmark needs ../shared/data beside the repository")
    configs = list(args.configs)
    if args.matrix:
        configs = ["ref_dis", "ref_farneback"] + [f"{engine}:{mode}" for engine in ENGINES
                                                  for mode in PREPROCESSING_MODES]
    if args.yahtse:
        print(run_yahtse(configs))
    else:
        started = time.perf_counter()
        print(f"## Real-texture benchmark, suite {args.suite}\n")
        print(run_suite(configs, args.suite, args.processes))
        print(f"\n({time.perf_counter() - started:.0f} s, {args.processes} processes)")


if __name__ == "__main__":
    main()
