"""``make demo``: the velocity job run headless through qgis_process on the built-in sample.

Writes into --out: the sample GeoTIFFs, ``velocity_sample.tif`` (+ .qml style),
``velocity_sample.png`` (speed with direction arrows) and ``summary.txt`` /
``summary.json`` (error against the sample's exact flow); then the NDSI forecast on the
built-in NDSI sample: ``ndsi_series.tif``, ``ndsi_forecast.tif`` (+ flow), ``ndsi_forecast.png``
and ``forecast_summary.txt`` (hindcast against persistence and climatology).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def run_qgis_process(algorithm: str, parameters: dict) -> dict:
    """Run ``algorithm`` with ``qgis_process --json run`` and return its parsed JSON answer."""
    command = [os.environ.get("QGIS_PROCESS", "qgis_process.bin"), "--json", "run", algorithm, "--"]
    command += [f"{key}={value}" for key, value in parameters.items()]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        sys.stderr.write(completed.stdout + completed.stderr)
        raise SystemExit(f"qgis_process failed with exit code {completed.returncode}")
    return json.loads(completed.stdout[completed.stdout.index("{"):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "demo_output"))
    parser.add_argument("--engine", default=None,
                        help="default: the most accurate engine measured on real texture (hybrid)")
    args = parser.parse_args()
    from glacierflow.core.velocity.flow import default_engine_name

    args.engine = args.engine or default_engine_name()
    from glacierflow.core.validation.metrics import endpoint_error_summary
    from training.sample import write_sample

    from .render import read_product, read_single_band, render_velocity_map

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sample = write_sample(str(out / "sample"))
    output = out / "velocity_sample.tif"
    answer = run_qgis_process("glacierflow:velocity_pair", {
        "IMAGE_A": sample.image_a, "IMAGE_B": sample.image_b, "OUTLINES": sample.outlines,
        "ENGINE": args.engine, "TILE_SIZE": 256, "OVERLAP": 64, "OUTPUT": output})
    product = read_product(str(output))
    truth = {"vx": read_single_band(sample.truth_vx), "vy": read_single_band(sample.truth_vy)}
    summary = _summary(product, truth, endpoint_error_summary, answer)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.txt").write_text(_as_text(summary))
    render_velocity_map(str(output), str(out / "velocity_sample.png"), read_single_band(sample.image_a),
                        f"GlacierFlow sample, {args.engine}: speed (m/yr) and flow direction")
    print(_as_text(summary))
    forecast_lines = run_forecast_demo(out)
    (out / "forecast_summary.txt").write_text("\n".join(forecast_lines) + "\n")
    print("\n".join(forecast_lines))
    print(f"Outputs in {out}")


def run_forecast_demo(out: Path) -> list:
    """The NDSI forecast on the built-in NDSI sample: series, then forecast, both through qgis_process."""
    from glacierflow.core.forecast.onnx_forecaster import list_shipped_forecasters
    from glacierflow.processing.forecast_ndsi import PREFERRED_MODEL
    from training.forecast.generator import write_sample_scenes

    from .render import render_forecast_map

    shipped = list_shipped_forecasters()
    if not shipped:
        return ["NDSI forecast: no forecaster shipped in glacierflow/assets/models/forecast, skipped."]
    model = PREFERRED_MODEL if PREFERRED_MODEL in shipped else sorted(shipped)[0]
    write_sample_scenes(str(out / "ndsi_sample"), shape=(160, 160), years=5, seed=0)
    series = run_qgis_process("glacierflow:ndsi_series", {
        "SOURCE": "local_folder", "FOLDER": out / "ndsi_sample", "OUTPUT": out / "ndsi_series.tif"})
    forecast = run_qgis_process("glacierflow:forecast_ndsi", {
        "SERIES": out / "ndsi_series.tif", "MODEL": model, "OUTPUT": out / "ndsi_forecast.tif",
        "FLOW_OUTPUT": out / "ndsi_forecast_flow.tif"})
    render_forecast_map(str(out / "ndsi_series.tif"), str(out / "ndsi_forecast.tif"),
                        str(out / "ndsi_forecast.png"), f"GlacierFlow NDSI sample: forecast by {model}")
    scores = forecast.get("results", {})
    return [f"NDSI forecast ({model}): {int(series['results']['WINDOWS'])} windows in the series; hindcast of its "
            "last 4 windows (MSE, NDSI units): " + ", ".join(
                f"{name.split('_')[0].lower()} {scores[name]:.4f}" for name in
                ("MODEL_MSE", "PERSISTENCE_MSE", "CLIMATOLOGY_MSE") if name in scores)]


def _summary(product: dict, truth: dict, score, answer: dict) -> dict:
    meta = product["metadata"]
    glacier = product["glacier"] == 1
    stable = product["glacier"] == 0
    pixel_m = abs(product["transform"][1])
    years = float(meta["INTERVAL_DAYS"]) / 365.25
    per_px = pixel_m / years  # m/yr of a 1 px displacement
    result = {"engine": meta["ENGINE"], "interval_days": float(meta["INTERVAL_DAYS"]),
              "m_per_yr_per_px": per_px, "qgis_process_results": answer.get("results", {})}
    for name, region in (("glacier", glacier), ("stable_ground", stable)):
        errors = score(product["vx"], product["vy"], truth["vx"], truth["vy"], region)
        result[name] = {"median_error_m_per_yr": errors["median"], "p95_error_m_per_yr": errors["p95"],
                        "median_error_px": errors["median"] / per_px, "coverage": errors["coverage"]}
    true_speed = np.hypot(truth["vx"], truth["vy"])[glacier]
    result["glacier"]["true_max_speed_m_per_yr"] = float(true_speed.max())
    result["glacier"]["estimated_p95_speed_m_per_yr"] = float(np.nanpercentile(product["speed"][glacier], 95))
    return result


def _as_text(summary: dict) -> str:
    lines = [f"GlacierFlow demo: engine {summary['engine']}, {summary['interval_days']:.3f} days between images "
             f"(1 px = {summary['m_per_yr_per_px']:.2f} m/yr)"]
    for name in ("glacier", "stable_ground"):
        s = summary[name]
        lines.append(f"  {name:13s}: median error {s['median_error_m_per_yr']:.2f} m/yr "
                     f"({s['median_error_px']:.3f} px), 95th percentile {s['p95_error_m_per_yr']:.2f} m/yr, "
                     f"{100 * s['coverage']:.1f} % of pixels trusted")
    g = summary["glacier"]
    lines.append(f"  glacier speed: true maximum {g['true_max_speed_m_per_yr']:.1f} m/yr, "
                 f"estimated 95th percentile {g['estimated_p95_speed_m_per_yr']:.1f} m/yr")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
