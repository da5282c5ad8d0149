"""Farneback polynomial-expansion optical flow (OpenCV), as in the seed paper."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from . import check_pair
from .base import Flow

# OpenCV's Farneback adds an absolute 1e-3 to the determinant of each 2x2
# solve, a constant meant for 0-255 intensities; the determinant grows with
# intensity^4, so on unit-spread inputs that constant dominates and the flow
# collapses towards zero (measured: every pixel wrong at scale 1, 55 % at 8).
# The joint 0.5-99.5 % range is therefore mapped to 0-255, an 8-bit-like contrast.
_INTENSITY_SCALE = 255.0


@dataclass
class Farneback:
    """Farneback engine (``name = "farneback"``), wrapping ``cv2.calcOpticalFlowFarneback``.

    Farneback works on one channel: a 1-channel stack is used as is, a
    multi-channel one is reduced to its root-sum-square (the gradient
    magnitude for a Sobel-x / Sobel-y stack, which keeps texture in both
    directions without the sign flips of the raw gradients).

    Attributes:
        pyr_scale: size ratio between pyramid levels, 0.5 (seed paper).
        levels: pyramid levels, 6 (seed paper). OpenCV drops levels whose
            side would be under 32 px, so a 256 px tile gets 4 (coarsest
            1/8) and motions beyond ~20 px are unreliable there (measured:
            25 px failed on a Sobel stack); use larger tiles or Horn-Schunck
            for faster ice.
        iterations: iterations per level, 10 (seed paper).
        winsize: averaging window side, px, 15 (OpenCV's usual value):
            larger is more robust to noise, blurrier at shear margins.
        poly_n: neighbourhood side for the polynomial expansion, px, 5.
        poly_sigma: Gaussian sigma of that expansion, px, 1.2 (OpenCV's
            recommended pairing with poly_n 5).
        flags: OpenCV flags, 0 (box window, no initial flow).
    """

    pyr_scale: float = 0.5
    levels: int = 6
    iterations: int = 10
    winsize: int = 15
    poly_n: int = 5
    poly_sigma: float = 1.2
    flags: int = 0
    name: ClassVar[str] = "farneback"

    def estimate(self, image_a: np.ndarray, image_b: np.ndarray) -> Flow:
        """Flow from ``image_a`` to ``image_b`` in px.

        Args:
            image_a: (C, H, W) float32, finite, normalised.
            image_b: same shape as ``image_a``.

        Returns:
            Flow with dx (columns) and dy (rows) in px, float32 (H, W).
        """
        import cv2  # heavy import kept out of QGIS start-up

        a, b = check_pair(image_a, image_b)
        one_a, one_b = _single_channels(a, b)
        flow = cv2.calcOpticalFlowFarneback(
            one_a,
            one_b,
            None,
            self.pyr_scale,
            self.levels,
            self.winsize,
            self.iterations,
            self.poly_n,
            self.poly_sigma,
            self.flags,
        )
        # OpenCV: flow[..., 0] is along columns (x), flow[..., 1] along rows
        # (y), A -> B, i.e. already our dx / dy convention.
        return Flow(dx=np.ascontiguousarray(flow[..., 0]), dy=np.ascontiguousarray(flow[..., 1]))


def _single_channels(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(C, H, W) pair -> (H, W) float32 pair: channel or root-sum-square, joint 0.5-99.5 % range -> 0-255.

    One common range for both images (so a brightness change is not motion), and signed inputs
    (Wallis, raw intensity) keep their sign: the mapping is an offset and a scale, not a clip.
    """
    from .dis import joint_range, single_channel

    one_a, one_b = single_channel(a), single_channel(b)
    lo, hi = joint_range(one_a, one_b)
    scale = np.float32(_INTENSITY_SCALE / (hi - lo))
    return (np.ascontiguousarray((one_a - np.float32(lo)) * scale, dtype=np.float32),
            np.ascontiguousarray((one_b - np.float32(lo)) * scale, dtype=np.float32))
