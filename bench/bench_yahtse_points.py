"""Every engine against independent matches on the real Yahtse pair, and the zero-motion prior test.

    python -m bench.bench_yahtse_points [--model glacierflow/assets/models/raft/raft_small_glacier.onnx]

Reference points: normalised cross-correlation (OpenCV ``matchTemplate``, parabolic
sub-pixel peak) of chips of image A searched in image B every 20 px, kept only
where three variants agree within 1 px in x and y (32 px chips of the raw band,
32 px chips of the Sobel gradient magnitude, 48 px chips of the raw band) and the
correlation peak is at least 0.5. Each engine's displacement (px, from its m/yr
product and the true interval) is compared with them, by displacement class.
Points on moving ice are few and all of them lie where the surface keeps its
texture for 16 days; they say how an engine does there, not where it fails.

Zero-motion prior (``--shift-test``): a 256 px crop of stable rock of image A is
shifted by known sub-pixel and pixel amounts and fed to RAFT as image B; the
median recovered shift should equal the applied one. A model that has learned
that rock never moves answers 0 for small shifts.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from glacierflow.core.velocity.flow import runnable_engine_names
from glacierflow.core.velocity.pair import PairJob, run_pair_job

from .bench_yahtse import DATA, PAIR
from .render import product_displacement, read_product, read_single_band

VARIANTS = (("raw", 16), ("gradient", 16), ("raw", 24))   # (image, chip half-size px)
SEARCH = 28          # search radius, px (Yahtse's terminus moves about 13 px in 16 days)
SPACING = 20         # reference grid spacing, px
CLASSES = (("under 0.5 px", 0.0, 0.5), ("1-5 px", 1.0, 5.0), ("5 px and more", 5.0, np.inf))


def _variant(image: np.ndarray, kind: str) -> np.ndarray:
    import cv2

    filled = np.nan_to_num(image.astype(np.float32), nan=float(np.nanmedian(image)))
    if kind == "raw":
        return filled
    return np.hypot(cv2.Sobel(filled, cv2.CV_32F, 1, 0), cv2.Sobel(filled, cv2.CV_32F, 0, 1))


def _parabola(minus: float, centre: float, plus: float) -> float:
    curvature = minus - 2 * centre + plus
    return 0.0 if curvature == 0 else 0.5 * (minus - plus) / curvature


def match_chip(a: np.ndarray, b: np.ndarray, row: int, col: int, half: int, search: int = SEARCH
               ) -> tuple[float, float] | None:
    """(dx, dy) px of the chip of ``a`` centred at (row, col) in ``b``, or None (flat, weak or at the edge)."""
    import cv2

    chip = a[row - half:row + half, col - half:col + half]
    window = b[row - half - search:row + half + search, col - half - search:col + half + search]
    if chip.shape != (2 * half, 2 * half) or window.shape != (2 * (half + search),) * 2 or chip.std() == 0:
        return None
    score = cv2.matchTemplate(window, chip, cv2.TM_CCOEFF_NORMED)
    _, peak, _, (px, py) = cv2.minMaxLoc(score)
    if peak < 0.5 or not (0 < px < score.shape[1] - 1 and 0 < py < score.shape[0] - 1):
        return None
    dx = px - search + _parabola(score[py, px - 1], score[py, px], score[py, px + 1])
    dy = py - search + _parabola(score[py - 1, px], score[py, px], score[py + 1, px])
    return dx, dy


def reference_points(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) rows of (row, col, dx px, dy px) where the three NCC variants agree within 1 px."""
    images = {kind: (_variant(a, kind), _variant(b, kind)) for kind in ("raw", "gradient")}
    margin = SEARCH + max(half for _, half in VARIANTS) + 4
    points: list[tuple[float, ...]] = []
    for row in range(margin, a.shape[0] - margin, SPACING):
        for col in range(margin, a.shape[1] - margin, SPACING):
            if not (np.isfinite(a[row, col]) and np.isfinite(b[row, col])):
                continue
            found = [match_chip(*images[kind], row, col, half) for kind, half in VARIANTS]
            if any(m is None for m in found):
                continue
            shifts = np.array(found)
            if np.ptp(shifts[:, 0]) < 1 and np.ptp(shifts[:, 1]) < 1:
                points.append((row, col, *shifts.mean(axis=0)))
    return np.array(points, np.float64).reshape(-1, 4)


def engine_errors(product_path: str, points: np.ndarray) -> np.ndarray:
    """Endpoint error (px) of a velocity product at the reference points; NaN where it is masked."""
    dx, dy = product_displacement(read_product(product_path))
    rows, cols = points[:, 0].astype(int), points[:, 1].astype(int)
    return np.hypot(dx[rows, cols] - points[:, 2], dy[rows, cols] - points[:, 3])


def shift_test(model_path: str, shifts: tuple[float, ...] = (0.25, 0.5, 1.0, 1.5, 3.0)) -> list[tuple[float, float]]:
    """(applied shift px, median recovered shift px) on a stable-rock crop of Yahtse image A."""
    import cv2

    from glacierflow.core.velocity.flow.raft_onnx import RaftOnnx
    from glacierflow.core.velocity.preprocess import band_statistics, prepare_for_flow

    rock = read_single_band(str(DATA / PAIR[0]))[700:956, 550:806].astype(np.float32)
    engine = RaftOnnx(model_path or None)
    rows = []
    for shift in shifts:
        moved = cv2.warpAffine(rock, np.float32([[1, 0, shift], [0, 1, 0]]), rock.shape[::-1],
                               flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        stats = band_statistics([rock, moved])
        first, _ = prepare_for_flow(rock, stats)
        second, _ = prepare_for_flow(moved, stats)
        flow = engine.estimate(first, second)
        rows.append((shift, float(np.median(flow.dx[32:-32, 32:-32]))))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", nargs="*", default=list(runnable_engine_names()))
    parser.add_argument("--model", help="RAFT .onnx to use for the raft engine (default: the shipped one)")
    parser.add_argument("--out", default="yahtse_points")
    parser.add_argument("--shift-test", action="store_true", help="also run the zero-motion prior test")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} is absent: this benchmark needs ../shared/data beside the repository")
    from pathlib import Path

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    a, b = (read_single_band(str(DATA / name)) for name in PAIR)
    points = reference_points(a, b)
    length = np.hypot(points[:, 2], points[:, 3])
    print(f"{len(points)} reference points\n")
    print("| engine | seconds | " + " | ".join(f"median EPE {name} (px) [n, covered]" for name, _, _ in CLASSES) + " |")
    print("|---|---|" + "---|" * len(CLASSES))
    for engine in args.engines:
        params = {"model_path": args.model} if engine == "raft" and args.model else {}
        product = out / f"yahtse_{engine}.tif"
        started = time.perf_counter()
        run_pair_job(PairJob(str(DATA / PAIR[0]), str(DATA / PAIR[1]), str(product), engine=engine,
                             engine_params=params))
        seconds = time.perf_counter() - started
        errors = engine_errors(str(product), points)
        cells = []
        for _, low, high in CLASSES:
            chosen = (length >= low) & (length < high)
            kept = chosen & np.isfinite(errors)
            median = float(np.median(errors[kept])) if kept.any() else float("nan")
            cells.append(f"{median:.3f} [{chosen.sum()}, {kept.sum() / max(chosen.sum(), 1):.0%}]")
        print(f"| {engine} | {seconds:.1f} | " + " | ".join(cells) + " |", flush=True)
    if args.shift_test:
        print("\n| applied shift (px) | RAFT median (px) |\n|---|---|")
        for applied, found in shift_test(args.model or ""):
            print(f"| {applied:.2f} | {found:.3f} |")


if __name__ == "__main__":
    main()
