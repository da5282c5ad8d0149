"""The interface every optical-flow engine implements.

Conventions (see DESIGN.md): image space, ``dx`` positive to the right
(increasing column), ``dy`` positive downwards (increasing row), both in
pixels. A feature at (row, col) in image A is found at
(row + dy, col + dx) in image B.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass
class Flow:
    """Displacement field of one image pair or tile.

    Attributes:
        dx: displacement along columns, px, float32 (H, W), NaN where unknown.
        dy: displacement along rows, px, float32 (H, W), NaN where unknown.
    """

    dx: np.ndarray
    dy: np.ndarray


class FlowEngine(Protocol):
    """An optical-flow method.

    ``estimate`` takes two preprocessed images of identical shape (C, H, W),
    float32, finite everywhere (no-data already filled by the caller) and
    returns the raw :class:`Flow` from A to B in px.
    """

    name: str

    def estimate(self, image_a: np.ndarray, image_b: np.ndarray) -> Flow:
        """Flow from ``image_a`` to ``image_b`` in px; inputs are (C, H, W) float32."""
        ...
