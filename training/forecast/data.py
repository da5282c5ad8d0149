"""Training, validation and test patches from generated NDSI series (``core.forecast``).

Series seeds keep the sets apart: training series (``TRAIN_SEEDS``) give the
train and validation sets (validation = their later, held-out time windows,
split by ``core.forecast.patches.training_sets``); the export's card and the
benchmark measure on the test windows of other series (``TEST_SEEDS``), never
trained on. Patches are held as float16 to halve memory (masked NDSI in [0, 1]
loses < 5e-4 to the rounding).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

TRAIN_SEEDS = range(0, 1_000)
TEST_SEEDS = range(9_000, 10_000)


@dataclass(frozen=True)
class DataSpec:
    """What data a run was trained on (written to checkpoints and the card).

    Attributes:
        seeds: series seeds (first, last + 1).
        size: series side, px.
        years: years per series.
        stride: patch stride, px.
        patch: patch side, px.
        n_in: input windows.
        n_out: target windows.
        window_months: months per window.
    """

    seeds: tuple[int, int]
    size: int = 200
    years: int = 10
    stride: int = 20
    patch: int = 50
    n_in: int = 4
    n_out: int = 4
    window_months: int = 3


def _core() -> tuple[Any, Any]:
    """The series generator and core.forecast's patches module."""
    from glacierflow.core.forecast import patches

    from . import generator

    return generator, patches


def as_arrays(split: Any) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) of one split, whether core.forecast gives a tuple or an object with fields."""
    if isinstance(split, (tuple, list)):
        inputs, targets = split[0], split[1]
    else:
        inputs, targets = split.inputs, split.targets
    return np.asarray(inputs), np.asarray(targets)


def generate_series(spec: DataSpec) -> list[Any]:
    """The generated NdsiSeries of ``spec.seeds`` (each ``spec.size`` px square, ``spec.years`` years)."""
    generator, _ = _core()
    return [generator.synthetic_series((spec.size, spec.size), years=spec.years, seed=seed,
                                       window_months=spec.window_months)
            for seed in range(*spec.seeds)]


def load_splits(spec: DataSpec, cache_dir: str | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train" | "validation" | "test": (inputs, targets)}, each (N, n, p, p) float16, cached as .npz."""
    cache = None
    if cache_dir:
        key = "_".join(f"{v[0]}-{v[1]}" if isinstance(v, tuple) else str(v) for v in vars(spec).values())
        cache = os.path.join(cache_dir, f"forecast_patches_{key}.npz")
        if os.path.exists(cache):
            with np.load(cache) as saved:
                return {name: (saved[f"{name}_inputs"], saved[f"{name}_targets"])
                        for name in ("train", "validation", "test")}
    _, patches = _core()
    sets = patches.training_sets(generate_series(spec), patch=spec.patch, stride=spec.stride,
                                 n_in=spec.n_in, n_out=spec.n_out)
    splits = {name: tuple(a.astype(np.float16) for a in as_arrays(sets[name]))
              for name in ("train", "validation", "test")}
    if cache:
        os.makedirs(cache_dir, exist_ok=True)
        tmp = cache + ".tmp.npz"
        np.savez(tmp, **{f"{name}_{part}": arr for name, (i, t) in splits.items()
                         for part, arr in (("inputs", i), ("targets", t))})
        os.replace(tmp, cache)
    return splits  # type: ignore[return-value]


def subsample(arrays: Sequence[np.ndarray], limit: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """At most ``limit`` samples (the same random rows of every array, in order); all when limit <= 0."""
    n = len(arrays[0])
    if limit <= 0 or n <= limit:
        return tuple(arrays)
    rows = np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))
    return tuple(a[rows] for a in arrays)
