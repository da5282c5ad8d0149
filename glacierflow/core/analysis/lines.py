"""Lines on the map (a centreline, a flux gate) and stations along them at a given spacing."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import GlacierFlowError
from ..geo.crs import same_crs, transform_points


@dataclass(frozen=True)
class Line:
    """A polyline: its name and vertices ``xy`` (n x 2, map coordinates in ``crs_wkt``, m)."""

    name: str
    xy: np.ndarray
    crs_wkt: str

    def in_crs(self, crs_wkt: str) -> Line:
        """The line with its vertices in ``crs_wkt`` (the same object when the CRS is the same)."""
        if same_crs(self.crs_wkt, crs_wkt):
            return self
        moved = np.array(transform_points([tuple(p) for p in self.xy], self.crs_wkt, crs_wkt), dtype=float)
        if not np.isfinite(moved).all():
            raise GlacierFlowError(f"Line '{self.name}' cannot be projected onto the velocity's CRS: check its CRS.")
        return Line(self.name, moved, crs_wkt)

    @property
    def length(self) -> float:
        """Length along the vertices (m)."""
        return float(np.hypot(*np.diff(self.xy, axis=0).T).sum())


@dataclass(frozen=True)
class Stations:
    """Points along a line (1-D arrays of equal length).

    ``distance`` from the line's start (m); ``x``, ``y`` map coordinates; ``tx``, ``ty`` the unit tangent
    (direction of travel); ``width`` the length of line each station stands for (m; sums to the length).
    The left normal is (-ty, tx), the right normal (ty, -tx).
    """

    distance: np.ndarray
    x: np.ndarray
    y: np.ndarray
    tx: np.ndarray
    ty: np.ndarray
    width: np.ndarray


def stations(line: Line, spacing: float, centred: bool = False) -> Stations:
    """Stations every ``spacing`` m along ``line``: from the start to the end inclusive (a profile), or,
    with ``centred``, at the middles of consecutive pieces of at most ``spacing`` m, cut at the vertices
    too (a flux gate: each piece is straight)."""
    if spacing <= 0:
        raise GlacierFlowError(f"Spacing {spacing} m must be positive.")
    xy = _distinct_vertices(line)
    steps = np.hypot(*np.diff(xy, axis=0).T)
    along = np.concatenate([[0.0], np.cumsum(steps)])
    total = float(along[-1])
    if centred:  # pieces also end at the vertices, so each lies on one straight segment
        edges = np.unique(np.concatenate([np.arange(0.0, total, spacing), along]))
        edges = edges[np.concatenate([[True], np.diff(edges) > 1e-9])]
        distance, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    else:
        distance = np.append(np.arange(0.0, total, spacing), total)
        distance = distance[np.concatenate([[True], np.diff(distance) > 1e-9])]
        middles = (distance[:-1] + distance[1:]) / 2
        width = np.diff(np.concatenate([[0.0], middles, [total]]))
    segment = np.clip(np.searchsorted(along, distance, side="right") - 1, 0, len(steps) - 1)
    tx, ty = np.diff(xy[:, 0])[segment] / steps[segment], np.diff(xy[:, 1])[segment] / steps[segment]
    return Stations(distance, np.interp(distance, along, xy[:, 0]), np.interp(distance, along, xy[:, 1]),
                    tx, ty, width)


def _distinct_vertices(line: Line) -> np.ndarray:
    xy = np.asarray(line.xy, dtype=float).reshape(-1, 2)
    keep = np.concatenate([[True], np.hypot(*np.diff(xy, axis=0).T) > 1e-9])
    xy = xy[keep]
    if len(xy) < 2:
        raise GlacierFlowError(f"Line '{line.name}' has fewer than two distinct vertices: draw a longer line.")
    return xy


def lines_in_crs(lines: Sequence[Line], crs_wkt: str) -> list[Line]:
    """Every line in ``crs_wkt``; fails clearly when there is none."""
    if not lines:
        raise GlacierFlowError("No line given: choose a line layer with at least one line.")
    return [line.in_crs(crs_wkt) for line in lines]
