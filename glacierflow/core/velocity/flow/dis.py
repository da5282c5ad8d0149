"""OpenCV's Dense Inverse Search (DIS) optical flow: a fast classical baseline."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from . import check_pair
from .base import Flow

PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}  # cv2.DISOPTICAL_FLOW_PRESET_*


@dataclass
class Dis:
    """DIS engine (``name = "dis"``), wrapping ``cv2.DISOpticalFlow``.

    DIS works on one 8-bit channel: the Sobel x/y stack is reduced to its gradient magnitude and both
    images are mapped to 0-255 with one common scale (their joint 99.5th percentile), so a brightness
    change between the images is not mistaken for motion.

    Attributes:
        preset: "ultrafast", "fast" or "medium" (OpenCV's presets; medium is the most accurate).
        finest_scale: finest pyramid level computed (0 = full resolution, px).
        patch_size: patch side, px; patch_stride: px between patches.
        variational_iterations: refinement iterations per level (0: none).
    """

    preset: str = "medium"
    finest_scale: int = 0
    patch_size: int = 8
    patch_stride: int = 4
    variational_iterations: int = 5
    name: ClassVar[str] = "dis"

    def estimate(self, image_a: np.ndarray, image_b: np.ndarray) -> Flow:
        """Flow from ``image_a`` to ``image_b`` in px (dx columns, dy rows), float32 (H, W)."""
        import cv2  # heavy import kept out of QGIS start-up

        a, b = check_pair(image_a, image_b)
        mag_a, mag_b = _magnitude(a), _magnitude(b)
        scale = 255.0 / max(float(np.percentile(np.concatenate([mag_a.ravel(), mag_b.ravel()]), 99.5)), 1e-6)
        dis = cv2.DISOpticalFlow.create(PRESETS[self.preset])
        dis.setFinestScale(self.finest_scale)
        dis.setPatchSize(self.patch_size)
        dis.setPatchStride(self.patch_stride)
        dis.setVariationalRefinementIterations(self.variational_iterations)
        dis.setUseSpatialPropagation(True)
        flow = dis.calc(_to_uint8(mag_a, scale), _to_uint8(mag_b, scale), None)
        return Flow(dx=np.ascontiguousarray(flow[..., 0]), dy=np.ascontiguousarray(flow[..., 1]))


def _magnitude(stack: np.ndarray) -> np.ndarray:
    return stack[0] if stack.shape[0] == 1 else np.sqrt((stack ** 2).sum(axis=0))


def _to_uint8(image: np.ndarray, scale: float) -> np.ndarray:
    return np.clip(image * scale, 0, 255).astype(np.uint8)
