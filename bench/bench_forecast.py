"""NDSI forecasters against persistence and seasonal climatology on held-out generated series; scene speed.

    nice python -m bench.bench_forecast            # writes bench/RESULTS_forecast.md

Accuracy: every forecaster shipped in ``glacierflow/assets/models/forecast/`` (run by the
plugin's :class:`OnnxForecaster` with onnxruntime on the CPU) and both
baselines on exactly the same samples: the test (latest) time windows of
``--series`` generated series whose seeds no training run used
(``training.forecast.data.TEST_SEEDS``), non-overlapping 50 px patches. MSE and
MAE are means over samples with 95 % percentile-bootstrap intervals; the skill
over persistence (1 - MSE_model / MSE_persistence) has a paired bootstrap
interval (the same resampled samples for both).

Speed: ``forecast_scene`` on an ``--scene`` px square scene (generated frames
tiled to that size) at each ``--strides`` value, best of ``--rounds``, with the
ratio to the fastest forecaster in the same run (absolute seconds depend on how
busy this shared machine is; ratios much less).
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import replace
from typing import Any

import numpy as np

from glacierflow.core.forecast.onnx_forecaster import OnnxForecaster, list_shipped_forecasters
from training.forecast.data import TEST_SEEDS, DataSpec, generate_series
from training.forecast.heldout import HeldOut, heldout_set, score_predictions

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS_forecast.md")
PAPERS = (("SA-LSTM-H", 0.047, 0.136), ("LSTM encoder-decoder", 0.054, 0.139), ("ConvLSTM", 0.055, 0.150))


def scene_frames(heldout: HeldOut, size: int) -> np.ndarray:
    """(n_in, size, size) masked NDSI: the first held-out series' first input windows tiled to ``size`` px."""
    spec = heldout.spec
    one = generate_series(replace(spec, seeds=(spec.seeds[0], spec.seeds[0] + 1), years=2))[0]
    frames = one.frames[:spec.n_in]
    reps = -(-size // spec.size)
    return np.ascontiguousarray(np.tile(frames, (1, reps, reps))[:, :size, :size])


def time_scene(forecaster: OnnxForecaster, frames: np.ndarray, stride: int, rounds: int) -> float:
    """Fastest of ``rounds`` whole-scene forecasts, s."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        forecaster.forecast_scene(frames, stride=stride)
        best = min(best, time.perf_counter() - start)
    return best


def ci(values: list[float], digits: int = 4) -> str:
    """"[low, high]" of a 95 % interval."""
    return f"[{values[0]:.{digits}f}, {values[1]:.{digits}f}]"


def pct(value: float, interval: list[float]) -> str:
    """A skill with its interval, in %."""
    return f"{100 * value:+.1f} % [{100 * interval[0]:+.1f}, {100 * interval[1]:+.1f}]"


def training_seeds(rows: dict[str, dict[str, Any]]) -> str:
    """The training series' seed ranges named in the cards, e.g. "0-11"."""
    ranges = sorted({tuple(row["training_seeds"]) for row in rows.values() if row.get("training_seeds")})
    return ", ".join(f"{low}-{high - 1}" for low, high in ranges) or "unknown"


def markdown(rows: dict[str, dict[str, Any]], baselines: dict[str, Any], speed: dict[str, dict[int, float]],
             persistence_s: dict[int, float], args: argparse.Namespace, command: str) -> str:
    """RESULTS_forecast.md text."""
    first = next(iter(rows.values()))
    lines = [
        "## NDSI forecasting (4 -> 4 windows of 3 months, 50 px patches)", "",
        "```bash", command, "```",
        f"Held-out: {first['test_samples']} samples, the test (latest) windows of {args.series} generated series "
        f"(seeds {TEST_SEEDS.start}-{TEST_SEEDS.start + args.series - 1}, never trained on; training used seeds "
        f"{training_seeds(rows)}), "
        f"{args.size} x {args.size} px, {args.years} years; non-overlapping patches. 95 % intervals: percentile "
        f"bootstrap over samples ({args.resamples} resamples); skill = 1 - MSE / MSE_baseline with a paired "
        "bootstrap interval. Samples of one window and series are correlated, so the intervals are optimistic.", "",
        "| forecaster | parameters | MSE [95 % CI] | MAE [95 % CI] | skill vs persistence (MSE) "
        "| skill vs climatology (MSE) |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        lines.append(f"| {row['architecture']} (`{name}.onnx`) | {row['parameters']:,} | {row['test_mse']:.4f} "
                     f"{ci(row['test_mse_ci95'])} | {row['test_mae']:.4f} {ci(row['test_mae_ci95'])} | "
                     f"{pct(row['skill_vs_persistence_mse'], row['skill_vs_persistence_mse_ci95'])} | "
                     f"{pct(row['skill_vs_climatology_mse'], row['skill_vs_climatology_mse_ci95'])} |")
    for name, label in (("persistence", "persistence (last window repeated)"),
                        ("climatology", "seasonal climatology (same window, earlier years)")):
        lines.append(f"| {label} | 0 | {baselines[f'{name}_mse']:.4f} {ci(baselines[f'{name}_mse_ci95'])} | "
                     f"{baselines[f'{name}_mae']:.4f} {ci(baselines[f'{name}_mae_ci95'])} | "
                     f"{'0 (reference)' if name == 'persistence' else '-'} | "
                     f"{'0 (reference)' if name == 'climatology' else '-'} |")
    best = min(rows, key=lambda n: rows[n]["test_mse"])
    target = rows[best]["skill_vs_persistence_mse"] >= 0.20
    lines += ["", f"Best: {rows[best]['architecture']}, {100 * rows[best]['skill_vs_persistence_mse']:.1f} % lower "
              f"MSE than persistence: the >= 20 % target is {'met' if target else 'NOT met'}.", "",
              "The papers' figures (Parvati glacier, real Landsat-8, their own split with overlapping patches "
              "across splits and no baseline; not comparable with generated data, for context only):", "",
              "| paper 003 model | MSE | MAE |", "|---|---|---|"]
    lines += [f"| {name} | {mse:.3f} | {mae:.3f} |" for name, mse, mae in PAPERS]
    strides = args.strides
    if not speed:
        return "\n".join(lines) + "\n"
    reference = min(speed, key=lambda n: speed[n][strides[0]])
    lines += ["", f"Speed: `forecast_scene` on a {args.scene} x {args.scene} px scene (4 windows), onnxruntime "
              f"CPUExecutionProvider, {args.threads or 'all'} thread(s), batch 64, best of {args.rounds}; "
              f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores shared with other work. "
              f"Ratio: time / {reference} time at the same stride.", "",
              "| forecaster | " + " | ".join(f"stride {s} px: s (ratio)" for s in strides) + " |",
              "|---|" + "---|" * len(strides)]
    for name in speed:
        lines.append(f"| {name} | " + " | ".join(f"{speed[name][s]:.2f} ({speed[name][s] / speed[reference][s]:.2f})"
                                                 for s in strides) + " |")
    lines.append("| persistence (numpy) | " + " | ".join(f"{persistence_s[s]:.3f}" for s in strides) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Score and time every shipped forecaster; print and write the markdown."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, default=6, help="held-out series (test seeds)")
    ap.add_argument("--size", type=int, default=200, help="series side, px")
    ap.add_argument("--years", type=int, default=10)
    ap.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    ap.add_argument("--scene", type=int, default=800, help="scene side for the speed test, px (0: skip)")
    ap.add_argument("--strides", type=int, nargs="+", default=[10, 25])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: the cores available)")
    ap.add_argument("--out", default=RESULTS, help="markdown file to write ('' = print only)")
    args = ap.parse_args(argv)

    shipped = list_shipped_forecasters()
    if not shipped:
        raise SystemExit("No forecaster in glacierflow/assets/models/forecast/: export them first "
                         "(training/forecast/README.md)")
    spec = DataSpec(seeds=(TEST_SEEDS.start, TEST_SEEDS.start + args.series), size=args.size, years=args.years,
                    stride=50)
    heldout = heldout_set(spec)
    frames = scene_frames(heldout, args.scene) if args.scene else None
    rows: dict[str, dict[str, Any]] = {}
    speed: dict[str, dict[int, float]] = {}
    for name, path in shipped.items():
        forecaster = OnnxForecaster(path, device="cpu", threads=args.threads or None)
        scores = score_predictions(forecaster.predict_patches(heldout.inputs), heldout, args.resamples)
        rows[name] = {"architecture": forecaster.card.architecture,
                      "parameters": int(forecaster.card.raw.get("parameters", 0)),
                      "training_seeds": forecaster.card.raw.get("training_data", {}).get("seeds"), **scores}
        if frames is not None:
            speed[name] = {s: time_scene(forecaster, frames, s, args.rounds) for s in args.strides}
        print(name, {k: rows[name][k] for k in ("test_mse", "test_mae", "skill_vs_persistence_mse")},
              speed.get(name), flush=True)
    persistence_s = {}
    for stride in args.strides:
        start = time.perf_counter()
        if frames is not None:
            np.repeat(frames[-1:], spec.n_out, axis=0)
        persistence_s[stride] = time.perf_counter() - start
    command = "nice python -m bench.bench_forecast " + " ".join(argv or [])
    text = markdown(rows, rows[next(iter(rows))], speed, persistence_s, args, command.strip())
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
