"""Hybrid engine: a matcher's start polished by a variational refinement at full resolution.

Large motions come from the matchers, sub-pixel precision from the refinement:

1. start: OpenCV DIS (:class:`.dis.Dis`, its own coarse-to-fine pyramid finds motions of tens of px);
2. correlation: least-squares matching of 24 px chips every 12 px (:func:`.ncc.lsm_refine`, the NCC
   engine's sub-pixel step) started from DIS; where the chip field agrees with DIS within
   ``agree_px`` it replaces DIS (chips are the more precise on flow that is uniform over a chip), and
   DIS is kept where they disagree (shear margins, chips straddling ice and rock);
3. refinement: OpenCV's ``VariationalRefinement`` (brightness and gradient constancy, robust
   penalties, smoothness) at full resolution from that start.

Measured on the real-texture benchmark (bench/RESULTS.md), this fused start + refinement is the most
accurate engine in every motion class (about 0.03 px under 3 px, 0.13 px at 20-30 px). Inputs are
prepared (C, H, W) float32 channels (``wallis`` by default); output in px.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ...errors import GlacierFlowError
from . import check_pair
from .base import Flow
from .dis import Dis, joint_range, single_channel
from .ncc import clean_nodes, interpolate_nodes, lsm_refine, node_positions


@dataclass
class Hybrid:
    """DIS start, chip least-squares matching where it agrees, variational refinement (``name = "hybrid"``).

    Attributes:
        chip: chip side of the correlation step, px, 24.
        spacing: node spacing of the correlation step, px, 12 (0: no correlation step, DIS start only;
            against 8 on the real-texture benchmark: 0.003-0.005 px smaller medians from 3 px of motion
            up, the same under 3 px and at sharp margins, 44 % of the chips; 16 lost 0.004 px at sharp
            margins).
        agree_px: largest chip-vs-DIS difference for the chip field to be used, px, 0.5.
        max_deviation: largest distance of a chip node from its 3 x 3 node median, px, 1.0.
        lsm_iterations: Gauss-Newton iterations of the chip matching, 5.
        start_stride: DIS patch stride of the start, px, 2; start_iterations: its refinement iterations, 10
            (a cheaper start, 3 / 5, lost 2.5 points of trusted glacier and 0.17 px of p90 at 20-30 px).
        alpha: smoothness weight of the refinement, 30 (OpenCV's units on a 0-255 image; against 20 on
            the real-texture benchmark: the same medians (within 0.001 px), a smaller 90th percentile in
            every class, 95.4 % instead of 94.9 % trusted at 20-30 px, and on Yahtse's stable rock a 95 %
            half-width of 0.148 / 0.258 m/day instead of 0.175 / 0.286; 40 smooths more but loses
            0.003 px at 10-20 px).
        delta: brightness-constancy weight, 5; gamma: gradient-constancy weight, 10.
        fixed_point_iterations: outer iterations, 10; sor_iterations: inner SOR iterations, 10 (measured
            on the real-texture benchmark: as accurate as 20 x 20, at 60 % of the time).
    """

    chip: int = 24
    spacing: int = 12
    agree_px: float = 0.5
    max_deviation: float = 1.0
    lsm_iterations: int = 5
    start_stride: int = 2
    start_iterations: int = 10
    alpha: float = 30.0
    delta: float = 5.0
    gamma: float = 10.0
    fixed_point_iterations: int = 10
    sor_iterations: int = 10
    name: ClassVar[str] = "hybrid"

    def __post_init__(self) -> None:
        """Reject settings that cannot work, with a message saying what to change."""
        if self.chip < 4 or self.spacing < 0 or self.agree_px < 0 or min(self.fixed_point_iterations,
                                                                           self.sor_iterations) < 1:
            raise GlacierFlowError("Hybrid settings: chip >= 4 px, spacing >= 0 px, agree_px >= 0 and at "
                                   "least one refinement iteration are needed.")

    def estimate(self, image_a: np.ndarray, image_b: np.ndarray) -> Flow:
        """Flow from ``image_a`` to ``image_b`` in px; inputs (C, H, W) float32."""
        a, b = check_pair(image_a, image_b)
        start = self._start(a, b)
        if self.spacing > 0:
            start = self._fused(a, b, start)
        return self._refine(a, b, start)

    def consistency_estimate(self, image_a: np.ndarray, image_b: np.ndarray) -> Flow:
        """The flow for the forward-backward check (px): DIS start and refinement, no chip step.

        The backward flow only has to agree with the forward one within the check's 0.5 px tolerance;
        without the chip step it differs from the full engine by about 0.01 px (real-texture
        benchmark) and costs half as much.
        """
        a, b = check_pair(image_a, image_b)
        return self._refine(a, b, self._start(a, b))

    def _start(self, a: np.ndarray, b: np.ndarray) -> Flow:
        """The DIS start (px)."""
        return self.start_engine().estimate(a, b)

    def start_engine(self) -> Dis:
        """The DIS engine of the start (patch stride ``start_stride`` px, ``start_iterations`` iterations)."""
        return Dis(patch_stride=self.start_stride, variational_iterations=self.start_iterations)

    def _fused(self, a: np.ndarray, b: np.ndarray, dis: Flow) -> Flow:
        """The chip field where it agrees with ``dis`` within ``agree_px`` px, ``dis`` elsewhere."""
        one_a, one_b = (np.ascontiguousarray(x[0] if x.shape[0] == 1 else np.moveaxis(x, 0, -1)) for x in (a, b))
        h, w = one_a.shape[:2]
        rows, cols = node_positions(h, self.spacing), node_positions(w, self.spacing)
        start_x, start_y = dis.dx[np.ix_(rows, cols)], dis.dy[np.ix_(rows, cols)]
        node_x, node_y = lsm_refine(one_a, one_b, rows, cols, start_x, start_y, self.chip, self.lsm_iterations)
        node_x, node_y = clean_nodes(node_x, node_y, np.ones_like(node_x), 0.0, self.max_deviation)
        chips = interpolate_nodes(rows, cols, node_x, node_y, (h, w))
        agree = np.hypot(chips.dx - dis.dx, chips.dy - dis.dy) <= self.agree_px
        return Flow(np.where(agree, chips.dx, dis.dx).astype(np.float32),
                    np.where(agree, chips.dy, dis.dy).astype(np.float32))

    def _refine(self, a: np.ndarray, b: np.ndarray, start: Flow) -> Flow:
        """OpenCV ``VariationalRefinement`` at full resolution from ``start`` (px)."""
        one_a, one_b = single_channel(a), single_channel(b)
        lo, hi = joint_range(one_a, one_b)
        scale = np.float32(255.0 / (hi - lo))
        flow = self.refiner().calc(np.ascontiguousarray((one_a - np.float32(lo)) * scale),
                                   np.ascontiguousarray((one_b - np.float32(lo)) * scale),
                                   np.dstack([start.dx, start.dy]).astype(np.float32))
        return Flow(np.ascontiguousarray(flow[..., 0]), np.ascontiguousarray(flow[..., 1]))

    def refiner(self) -> Any:
        """The ``cv2.VariationalRefinement`` with these settings (float32 images on a 0-255 scale, px)."""
        import cv2

        refiner = cv2.VariationalRefinement.create()
        refiner.setAlpha(self.alpha)
        refiner.setDelta(self.delta)
        refiner.setGamma(self.gamma)
        refiner.setFixedPointIterations(self.fixed_point_iterations)
        refiner.setSorIterations(self.sor_iterations)
        return refiner
