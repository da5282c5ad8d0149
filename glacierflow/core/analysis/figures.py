"""Figures with matplotlib (Agg, no display, no network): saved as PNG atomically or embedded in HTML.

matplotlib is imported only when a figure is made, so the plugin loads without it; a missing matplotlib
gives a message saying how to install it.
"""
from __future__ import annotations

import base64
import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import GlacierFlowError
from ..io.atomic import write_bytes, write_text


def require_matplotlib() -> None:
    """Fail clearly, before any work, when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise GlacierFlowError("Plots need matplotlib: install it into QGIS's Python (OSGeo4W: the "
                               "python3-matplotlib package; pip: 'python -m pip install matplotlib').") from None


def new_figure(width_in: float = 7.0, height_in: float = 4.5) -> Any:
    """A matplotlib Figure on an Agg canvas (sizes in inches, 100 dpi)."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in), dpi=100, constrained_layout=True)
    FigureCanvasAgg(figure)
    return figure


def png_bytes(figure: Any) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def save_png(figure: Any, path: str) -> str:
    """Write the figure as a PNG at ``path`` atomically; returns ``path``."""
    return write_bytes(path, png_bytes(figure))


def html_image(figure: Any, alt: str) -> str:
    """An ``<img>`` tag holding the figure as an embedded PNG (the page needs no other file)."""
    encoded = base64.b64encode(png_bytes(figure)).decode("ascii")
    return f'<img alt="{alt}" src="data:image/png;base64,{encoded}">'


def write_csv(path: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Write a CSV with a header row atomically; floats with 6 significant digits, NaN as empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(value) for value in row])
    return write_text(path, buffer.getvalue())


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return "" if value != value else f"{value:.6g}"
    return value
