"""Patches, input/target sequences and a time split without leakage, as the forecasters need them.

A series of T windows (T, H, W) is cut into P x P patches (50 x 50 with a
stride of 10 px in the papers); a *sequence* starting at window ``s`` uses
windows ``s .. s + n_in - 1`` as input and ``s + n_in .. s + n_in + n_out - 1``
as target (4 and 4 in the papers).

Split rule (:func:`split_windows`), by time, later windows for testing:

- test sequences are the last ones; let ``t0`` be the first window any test
  sequence uses (as input or target);
- a validation or training sequence may use only windows before ``t0``
  (all its targets, hence all its windows, end before ``t0``): no window a
  test sequence sees is ever a target in training or validation;
- let ``v0`` be the first *target* window of the validation sequences;
  a training sequence may only have targets before ``v0``: no validation
  target is a training target (validation inputs may be earlier training
  targets: a forecaster always sees its past).

Because the test windows are disjoint from every window used in training
and validation, overlapping patches cannot leak between the splits (the
papers' split mixed overlapping patches across train and test).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import GlacierFlowError
from .series import NdsiSeries

SPLITS = ("train", "validation", "test")


def patch_origins(shape: tuple[int, int], patch: int = 50, stride: int = 10) -> list[tuple[int, int]]:
    """Top-left (row, col) px of patches covering the whole image, the last flush with each edge.

    Raises:
        GlacierFlowError: when the image is smaller than one patch.
    """
    height, width = shape
    if height < patch or width < patch:
        raise GlacierFlowError(
            f"The area is {height} x {width} px, smaller than one {patch} x {patch} px patch: draw a larger area.")
    if stride < 1:
        raise GlacierFlowError(f"The patch stride must be at least 1 px (got {stride}).")
    return [(row, col) for row in _axis_origins(height, patch, stride) for col in _axis_origins(width, patch, stride)]


def _axis_origins(length: int, patch: int, stride: int) -> list[int]:
    origins = list(range(0, length - patch + 1, stride))
    if origins[-1] != length - patch:
        origins.append(length - patch)
    return origins


def extract_patches(frames: np.ndarray, origins: Sequence[tuple[int, int]], patch: int = 50) -> np.ndarray:
    """Patches of a (T, H, W) stack at ``origins``: float32 (N, T, patch, patch)."""
    stack = np.asarray(frames)
    if stack.ndim == 2:
        stack = stack[None]
    out = np.empty((len(origins), stack.shape[0], patch, patch), dtype=np.float32)
    for index, (row, col) in enumerate(origins):
        out[index] = stack[:, row:row + patch, col:col + patch]
    return out


def sequence_starts(n_windows: int, n_in: int = 4, n_out: int = 4) -> list[int]:
    """Every window index at which a full sequence of ``n_in`` inputs and ``n_out`` targets starts."""
    return list(range(max(0, n_windows - n_in - n_out + 1)))


def split_windows(n_windows: int, n_in: int = 4, n_out: int = 4, validation_fraction: float = 0.15,
                  test_fraction: float = 0.2) -> dict[str, list[int]]:
    """Sequence starts for "train", "validation" and "test", split by time without leakage (module docstring).

    The fractions are of all sequence starts; test and (if its fraction is
    positive) validation get at least one start each. Starts that would
    break the rule are left out (the gap between the splits).

    Raises:
        GlacierFlowError: when the series is too short for the three splits.
    """
    starts = sequence_starts(n_windows, n_in, n_out)
    n_test = max(1, int(round(test_fraction * len(starts))))
    n_validation = max(1, int(round(validation_fraction * len(starts)))) if validation_fraction > 0 else 0
    test = starts[len(starts) - n_test:] if starts else []
    if not test:
        raise GlacierFlowError(_too_short(n_windows, n_in, n_out))
    first_test_window = test[0]
    # Validation sequences end (targets included) before the first window a test sequence uses.
    last_validation = first_test_window - n_in - n_out
    validation = list(range(max(0, last_validation - n_validation + 1), last_validation + 1)) if n_validation else []
    first_validation_target = (validation[0] + n_in) if validation else first_test_window
    # Training targets end before the first validation target (and so before every test window).
    last_train = first_validation_target - n_in - n_out
    train = list(range(0, last_train + 1))
    if not train or (n_validation and not validation):
        raise GlacierFlowError(_too_short(n_windows, n_in, n_out))
    return {"train": train, "validation": validation, "test": test}


def _too_short(n_windows: int, n_in: int, n_out: int) -> str:
    return (f"{n_windows} windows are too few for separate training, validation and test periods of "
            f"{n_in} + {n_out}-window sequences: use a longer date range (about 4 years or more of 3-month "
            "windows) or shorter windows.")


def windows_used(start: int, n_in: int = 4, n_out: int = 4) -> tuple[list[int], list[int]]:
    """(input windows, target windows) of the sequence starting at ``start``."""
    return list(range(start, start + n_in)), list(range(start + n_in, start + n_in + n_out))


@dataclass
class SequenceSet:
    """Samples of one split, with where and when each comes from.

    Attributes:
        inputs: float32 (N, n_in, P, P) masked NDSI.
        targets: float32 (N, n_out, P, P).
        starts: int (N,) window index of each sample's first input.
        origins: int (N, 2) top-left (row, col) px of each patch.
        series_index: int (N,) which series of the list each sample comes from.
    """

    inputs: np.ndarray
    targets: np.ndarray
    starts: np.ndarray
    origins: np.ndarray
    series_index: np.ndarray

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def __iter__(self):
        """Unpacks as ``inputs, targets`` for callers that want the plain pair."""
        return iter((self.inputs, self.targets))


def training_sets(series: Sequence[NdsiSeries], patch: int = 50, stride: int = 10, n_in: int = 4, n_out: int = 4,
                  validation_fraction: float = 0.15, test_fraction: float = 0.2,
                  test_stride: int | None = None) -> dict[str, SequenceSet]:
    """Train, validation and test samples from one or more series, split by time (module docstring).

    Args:
        series: masked-NDSI series (each split on its own time axis).
        patch: patch side, px.
        stride: patch stride for training and validation, px.
        n_in, n_out: input and target windows per sequence.
        validation_fraction, test_fraction: of each series' sequence starts.
        test_stride: patch stride of the test set; default ``patch``
            (non-overlapping patches, so test samples do not repeat pixels).

    Returns:
        {"train" | "validation" | "test": SequenceSet}.
    """
    if not series:
        raise GlacierFlowError("No series to cut into training samples.")
    parts: dict[str, list[SequenceSet]] = {name: [] for name in SPLITS}
    for index, one in enumerate(series):
        splits = split_windows(one.frames.shape[0], n_in, n_out, validation_fraction, test_fraction)
        for name in SPLITS:
            step = (test_stride or patch) if name == "test" else stride
            origins = patch_origins((one.frames.shape[1], one.frames.shape[2]), patch, step)
            parts[name].append(_sequences(one.frames, origins, splits[name], patch, n_in, n_out, index))
    return {name: _concatenate(parts[name]) for name in SPLITS}


def _sequences(frames: np.ndarray, origins: list[tuple[int, int]], starts: list[int], patch: int, n_in: int,
               n_out: int, series_index: int) -> SequenceSet:
    patches = extract_patches(frames, origins, patch)  # (n_origins, T, P, P)
    inputs = [patches[:, s:s + n_in] for s in starts]
    targets = [patches[:, s + n_in:s + n_in + n_out] for s in starts]
    count = len(starts) * len(origins)
    return SequenceSet(
        inputs=np.concatenate(inputs) if inputs else np.zeros((0, n_in, patch, patch), dtype=np.float32),
        targets=np.concatenate(targets) if targets else np.zeros((0, n_out, patch, patch), dtype=np.float32),
        starts=np.repeat(np.asarray(starts, dtype=np.int64), len(origins)),
        origins=np.tile(np.asarray(origins, dtype=np.int64).reshape(-1, 2), (len(starts), 1)),
        series_index=np.full(count, series_index, dtype=np.int64))


def _concatenate(parts: list[SequenceSet]) -> SequenceSet:
    return SequenceSet(
        inputs=np.concatenate([p.inputs for p in parts]).astype(np.float32, copy=False),
        targets=np.concatenate([p.targets for p in parts]).astype(np.float32, copy=False),
        starts=np.concatenate([p.starts for p in parts]),
        origins=np.concatenate([p.origins for p in parts]).reshape(-1, 2),
        series_index=np.concatenate([p.series_index for p in parts]))


def blend_weights(patch: int) -> np.ndarray:
    """(P, P) weights for reassembly: a raised cosine, highest at the centre, small but positive at the edges.

    Patch predictions are least reliable at their borders (less context), so
    overlapping patches hand over smoothly from one to the next: no seams.
    """
    ramp = np.sin(np.pi * (np.arange(patch) + 0.5) / patch) ** 2
    return np.outer(ramp, ramp)


def assemble_patches(patches: np.ndarray, origins: Sequence[tuple[int, int]], shape: tuple[int, int]) -> np.ndarray:
    """Reassemble (N, C, P, P) patches at ``origins`` into a (C, H, W) image, blended without seams.

    Each pixel is the :func:`blend_weights`-weighted mean of the patches
    covering it, so the result is exact where the patches agree. Pixels no
    patch covers are NaN.
    """
    stack = np.asarray(patches, dtype=np.float64)
    if stack.ndim == 3:
        stack = stack[:, None]
    count, channels, size = stack.shape[0], stack.shape[1], stack.shape[-1]
    if count != len(origins):
        raise ValueError(f"{count} patches but {len(origins)} origins")
    weights = blend_weights(size)
    total = np.zeros((channels,) + tuple(shape), dtype=np.float64)
    weight_sum = np.zeros(tuple(shape), dtype=np.float64)
    for values, (row, col) in zip(stack, origins):
        total[:, row:row + size, col:col + size] += values * weights
        weight_sum[row:row + size, col:col + size] += weights
    with np.errstate(invalid="ignore", divide="ignore"):
        image = np.where(weight_sum > 0, total / np.maximum(weight_sum, 1e-300), np.nan)
    return image.astype(np.float32)
