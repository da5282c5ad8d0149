"""Known-flow image pairs made from real satellite texture (Landsat-8 pan, Yahtse Glacier).

Conventions (the same as ``glacierflow.core.velocity.flow.base``): image space, ``dx`` positive to the right
(increasing column), ``dy`` positive downwards (increasing row), both in px. A feature at (row, col) of
image A is at (row + dy, col + dx) of image B. The truth ``dx``, ``dy`` is defined on A's grid.

How a pair is made
------------------
1. Base texture: a crop of one of the two real acquisitions (2016-07-18 or 2016-08-03), read with a
   margin so that B never samples outside real data.
2. Flow on A's grid, ``f(x)``: a smooth, glacier-like field. Ice moves along a curved centreline with a
   plug-flow profile across it (a core at full speed, cosine shear margins) and a speed that grows
   down-glacier; the ground beyond the margins does not move. Centrelines follow real ice of the crop,
   so the moving region carries real crevassed ice, snow or debris texture and the still ground real
   rock. A sub-pixel co-registration offset may be added to the whole field (then rock "moves" too).
3. Image B is exactly consistent with the truth: ``B(x + f(x)) = A(x)``. B is built by backward mapping:
   for each B pixel ``y`` the A position ``x`` with ``x + f(x) = y`` is found by fixed-point iteration
   ``x <- y - f(x)`` (a contraction because the margins are wide enough: ``|grad f| <= 0.8``), and A is
   sampled there with a quintic spline (``scipy.ndimage.map_coordinates``, order 5, an interpolating
   spline). :func:`verify_generator` checks the inverse to 1e-3 px and the recovered translation of
   noise-free texture to 0.01 px.
4. Degradations (each drawn per case from a seeded generator): a gain of B (0.8-1.2), an additive
   illumination ramp on B (a plane plus a smooth random field, up to 15 % of the image range), a
   Gaussian blur of B only (0-1 px sigma), independent Gaussian noise on A and B (0-3 % of the image
   range, max - min of A: 1.2-1.5 times its 2-98 % range on these crops).

A :class:`Case` carries the two images (float32, DN), the truth, and masks: ``glacier`` (moving ice,
speed above 5 % of the case's maximum), ``stable`` (still ground), ``scored`` (target inside B and away
from the border) and ``textured`` (local contrast of the noise-free texture at least
``TEXTURE_FLOOR`` of the range and at least the noise level).

Data: ``GLACIERFLOW_YAHTSE`` (environment) or ``../shared/data/yahtse`` beside the repository. Nothing here is written
to disk.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

DATA_DIR = Path(os.environ.get("GLACIERFLOW_YAHTSE",
                               str(Path(__file__).resolve().parents[2] / "shared" / "data" / "yahtse")))
ACQUISITIONS = ("LC80630182016200LGN00_B8_yahtse.TIF",  # 2016-07-18 20:37:06Z
                "LC80630182016216LGN00_B8_yahtse.TIF")  # 2016-08-03 20:37:09Z
PAD = 48                 # px of real texture read around a crop (> the largest motion + spline support)
BORDER = 8               # px at the crop edge never scored
GLACIER_SPEED = 0.05     # a pixel is glacier where its speed is at least this fraction of the case maximum
TEXTURE_WINDOW = 15      # px, window of the local contrast that decides "textured"
TEXTURE_FLOOR = 0.01     # local std / image range below which a pixel is untextured (snow, water)
MAX_DEFORMATION = 0.8    # bound on |grad f| so that x + f(x) is invertible by fixed-point iteration
SPLINE_ORDER = 5
GENERATOR_VERSION = 1    # bump when a change alters the pairs made from an unchanged recipe


# ----------------------------------------------------------------------------------------------
# Real imagery
# ----------------------------------------------------------------------------------------------

@lru_cache(maxsize=2)
def acquisition(index: int) -> np.ndarray:
    """The whole real band ``index`` (0: 2016-07-18, 1: 2016-08-03) as float32 DN (1087 x 1698 px)."""
    from osgeo import gdal

    path = DATA_DIR / ACQUISITIONS[index]
    dataset = gdal.Open(str(path))
    if dataset is None:
        raise FileNotFoundError(f"{path} is missing: set GLACIERFLOW_YAHTSE to the Yahtse data folder")
    band = dataset.GetRasterBand(1).ReadAsArray().astype(np.float32)
    band.setflags(write=False)
    return band


def data_available() -> bool:
    """True when both real acquisitions can be read."""
    return all((DATA_DIR / name).is_file() for name in ACQUISITIONS)


# ----------------------------------------------------------------------------------------------
# Crops of real texture with the real ice stream they contain
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Crop:
    """A square crop of a real acquisition and the ice stream in it.

    Attributes:
        name: short label.
        row, col: top-left corner in the full 1087 x 1698 px scene, px.
        size: side, px.
        centreline: (row, col) points of the ice stream in crop px, up-glacier first.
        core: half-width of the full-speed core, px.
        kind: what the texture is (for the report).
    """

    name: str
    row: int
    col: int
    size: int
    centreline: tuple[tuple[float, float], ...]
    core: float
    kind: str


CROPS: tuple[Crop, ...] = (
    Crop("trunk", 430, 640, 512, ((0, 360), (170, 330), (330, 290), (470, 260)), 50,
         "crevassed trunk with moraine stripes, rock nunatak west, rock east"),
    Crop("icefield", 0, 60, 512, ((180, 0), (190, 200), (230, 380), (300, 511)), 60,
         "crevassed icefield over rock ridges and a snow plateau"),
    Crop("north", 0, 780, 512, ((0, 90), (150, 150), (300, 200), (470, 220)), 40,
         "north tributary, medial moraine, rock and snow east"),
    Crop("west", 480, 0, 512, ((0, 50), (200, 70), (380, 90), (511, 60)), 40,
         "western glacier with crevasses, rock, lagoon water"),
    Crop("terminus", 575, 560, 512, ((0, 390), (150, 370), (300, 340), (400, 320)), 40,
         "terminus and calving front, rock peninsula west, fjord"),
    Crop("snowfield", 500, 1050, 512, ((60, 0), (80, 200), (120, 400), (160, 511)), 45,
         "snowfields and rock ridges, haze in the second date"),
)
FAST_CROPS: tuple[Crop, ...] = (
    Crop("trunk256", 560, 780, 256, ((0, 170), (128, 160), (255, 140)), 28, "crevassed trunk"),
    Crop("icefield256", 80, 200, 256, ((100, 0), (120, 128), (150, 255)), 32, "crevassed icefield"),
)


# ----------------------------------------------------------------------------------------------
# Flow field
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FlowSpec:
    """A glacier-like flow on a crop.

    Attributes:
        max_motion: largest displacement on the ice, px.
        margin: width of each shear margin, px (raised to keep ``|grad f| <= MAX_DEFORMATION``).
        acceleration: speed at the up-glacier end as a fraction of the down-glacier speed.
        offset: (dx, dy) co-registration offset added everywhere, px.
        smooth: Gaussian sigma applied to the field, px.
        sharp: allow margins down to half the largest motion (shear strain up to ~3) instead of
            keeping ``|grad f| <= MAX_DEFORMATION``; pure shear stays invertible (its Jacobian
            determinant stays near 1), which :func:`make_case` checks.
    """

    max_motion: float
    margin: float = 20.0
    acceleration: float = 0.6
    offset: tuple[float, float] = (0.0, 0.0)
    smooth: float = 2.0
    sharp: bool = False


def _centreline_samples(points: Sequence[tuple[float, float]], step: float = 0.5) -> np.ndarray:
    """Dense (N, 2) (row, col) samples of a smooth curve through ``points`` (Catmull-Rom)."""
    p = np.asarray(points, np.float64)
    p = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    out = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        n = max(2, int(np.ceil(np.linalg.norm(p2 - p1) / step)))
        t = np.linspace(0, 1, n, endpoint=False)[:, None]
        out.append(0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                          + (-p0 + 3 * p1 - 3 * p2 + p3) * t ** 3))
    out.append(p[-2][None])
    curve = np.vstack(out)
    # Extend both ends straight so that the stream leaves the crop instead of ending in it.
    first = (curve[1] - curve[0]) / np.linalg.norm(curve[1] - curve[0])
    last = (curve[-1] - curve[-2]) / np.linalg.norm(curve[-1] - curve[-2])
    head = curve[0] - first * np.arange(200, 0, -step)[:, None]
    tail = curve[-1] + last * np.arange(step, 200, step)[:, None]
    return np.vstack([head, curve, tail])


def glacier_flow(shape: tuple[int, int], crop: Crop, spec: FlowSpec, origin: float = 0.0
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flow (dx, dy px) and relative speed (0-1) of a glacier-like field on a grid of ``shape`` px.

    ``origin``: crop px of the grid's first row/column (negative for a padded grid).
    """
    from scipy.ndimage import gaussian_filter
    from scipy.spatial import cKDTree

    curve = _centreline_samples(crop.centreline)
    tangent = np.gradient(curve, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(curve, axis=0), axis=1))])
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64) + origin
    distance, nearest = cKDTree(curve).query(np.column_stack([rows.ravel(), cols.ravel()]))
    distance = distance.reshape(shape)
    nearest = nearest.reshape(shape)
    if spec.sharp:
        margin = max(spec.margin, 0.5 * spec.max_motion)
    else:
        margin = max(spec.margin, 0.5 * np.pi * spec.max_motion / MAX_DEFORMATION * 1.15)
    across = np.clip((distance - crop.core) / margin, 0.0, 1.0)
    profile = 0.5 + 0.5 * np.cos(np.pi * across)          # 1 in the core, 0 beyond the margin
    inside = (arc >= 200.0) & (arc <= arc[-1] - 200.0)      # the crop's part of the stream
    s = np.clip((arc[nearest] - 200.0) / max(arc[inside].ptp(), 1.0), 0.0, 1.0)
    along = spec.acceleration + (1.0 - spec.acceleration) * s
    relative = profile * along
    t_row, t_col = tangent[nearest, 0], tangent[nearest, 1]
    dx = gaussian_filter(spec.max_motion * relative * t_col, spec.smooth, mode="nearest")
    dy = gaussian_filter(spec.max_motion * relative * t_row, spec.smooth, mode="nearest")
    speed = gaussian_filter(relative, spec.smooth, mode="nearest")
    return (dx + spec.offset[0]).astype(np.float64), (dy + spec.offset[1]).astype(np.float64), speed


def invert_flow(dx: np.ndarray, dy: np.ndarray, iterations: int = 60, tol: float = 1e-6
                ) -> tuple[np.ndarray, np.ndarray, float]:
    """Positions x (col, row px) with ``x + f(x) = y`` for every grid pixel y, by fixed-point iteration.

    Returns (src_col, src_row, max residual px). f is sampled bilinearly between grid pixels
    (it is smooth at the pixel scale, so bilinear sampling errs by far less than 1e-3 px).
    """
    from scipy.ndimage import map_coordinates

    h, w = dx.shape
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    src_c, src_r = cols - dx, rows - dy
    for _ in range(iterations):
        fx = map_coordinates(dx, [src_r, src_c], order=3, mode="nearest")
        fy = map_coordinates(dy, [src_r, src_c], order=3, mode="nearest")
        new_c, new_r = cols - fx, rows - fy
        change = max(np.abs(new_c - src_c).max(), np.abs(new_r - src_r).max())
        src_c, src_r = new_c, new_r
        if change < tol:
            break
    fx = map_coordinates(dx, [src_r, src_c], order=3, mode="nearest")
    fy = map_coordinates(dy, [src_r, src_c], order=3, mode="nearest")
    residual = float(max(np.abs(src_c + fx - cols).max(), np.abs(src_r + fy - rows).max()))
    return src_c, src_r, residual


def warp_to_b(texture: np.ndarray, src_col: np.ndarray, src_row: np.ndarray) -> np.ndarray:
    """B(y) = A(x(y)): ``texture`` sampled at (src_row, src_col) px with a quintic spline."""
    from scipy.ndimage import map_coordinates

    return map_coordinates(texture.astype(np.float64), [src_row, src_col], order=SPLINE_ORDER,
                           mode="mirror").astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Degradations
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Degradation:
    """Radiometric and geometric differences between A and B.

    Attributes:
        noise: Gaussian noise sigma on A and on B, fraction of the full (min-max) range of A.
        blur_b: Gaussian blur sigma of B only, px.
        gain: multiplies B (about zero DN, like a change of sun elevation or sensor gain).
        ramp: amplitude of an additive illumination field on B (a plane plus smooth random
            variation), fraction of the full range of A.
    """

    noise: float = 0.0
    blur_b: float = 0.0
    gain: float = 1.0
    ramp: float = 0.0


def _illumination(shape: tuple[int, int], amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth additive field: a random plane plus a low-frequency random field, peak ``amplitude``."""
    from scipy.ndimage import gaussian_filter

    h, w = shape
    rows, cols = np.mgrid[0:h, 0:w] / max(h, w)
    angle = rng.uniform(0, 2 * np.pi)
    plane = np.cos(angle) * cols + np.sin(angle) * rows
    blob = gaussian_filter(rng.standard_normal(shape), max(h, w) / 6.0, mode="reflect")
    blob /= max(np.abs(blob).max(), 1e-12)
    field_ = plane - plane.mean() + 0.5 * blob
    return (amplitude * field_ / max(np.abs(field_).max(), 1e-12)).astype(np.float32)


def degrade(a: np.ndarray, b: np.ndarray, deg: Degradation, value_range: float,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``deg`` to a clean pair (float32 DN); ``value_range``: the image range of A (min-max, DN).

    Noise and the illumination ramp are fractions of it (the issue's "% of the image range").
    """
    import cv2

    b = b.astype(np.float32)
    if deg.blur_b > 0:
        b = cv2.GaussianBlur(b, (0, 0), deg.blur_b, borderType=cv2.BORDER_REFLECT)
    b = b * np.float32(deg.gain)
    if deg.ramp > 0:
        b = b + _illumination(b.shape, deg.ramp * value_range, rng)
    sigma = deg.noise * value_range  # value_range: the full (min-max) range of A, DN
    a_out = a + (rng.standard_normal(a.shape) * sigma).astype(np.float32)
    b_out = b + (rng.standard_normal(b.shape) * sigma).astype(np.float32)
    return a_out.astype(np.float32), b_out.astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Cases
# ----------------------------------------------------------------------------------------------

@dataclass
class Case:
    """One known-flow pair. Images in DN (float32), truth in px on A's grid.

    Attributes:
        name: unique label.
        a, b: images (H, W).
        dx, dy: true displacement A -> B, px.
        glacier, stable, scored, textured: bool masks (H, W), see the module docstring.
        crop, date, flow, degradation: how it was made.
        value_range: 2-98 % range of A, DN.
    """

    name: str
    a: np.ndarray
    b: np.ndarray
    dx: np.ndarray
    dy: np.ndarray
    glacier: np.ndarray
    stable: np.ndarray
    scored: np.ndarray
    textured: np.ndarray
    crop: Crop
    date: int
    flow: FlowSpec
    degradation: Degradation
    value_range: float
    meta: dict[str, float] = field(default_factory=dict)

    @property
    def max_motion(self) -> float:
        """Largest true displacement on the glacier, px (co-registration offset included)."""
        return float(np.hypot(self.dx, self.dy)[self.glacier].max())


def _texture_mask(clean: np.ndarray, value_range: float, noise: float) -> np.ndarray:
    """Local std over TEXTURE_WINDOW px of the noise-free texture >= max(floor, noise) x range."""
    import cv2

    img = clean.astype(np.float64)
    k = (TEXTURE_WINDOW, TEXTURE_WINDOW)
    mean = cv2.blur(img, k, borderType=cv2.BORDER_REFLECT)
    var = np.maximum(cv2.blur(img * img, k, borderType=cv2.BORDER_REFLECT) - mean * mean, 0.0)
    return np.sqrt(var) >= max(TEXTURE_FLOOR, noise) * value_range


def make_case(crop: Crop, date: int, spec: FlowSpec, deg: Degradation, seed: int,
              name: str | None = None) -> Case:
    """Build one known-flow pair from real texture (deterministic for a given ``seed``)."""
    scene = acquisition(date)
    r0, c0, n = crop.row, crop.col, crop.size
    pr0, pc0 = max(r0 - PAD, 0), max(c0 - PAD, 0)
    pr1, pc1 = min(r0 + n + PAD, scene.shape[0]), min(c0 + n + PAD, scene.shape[1])
    padded = np.asarray(scene[pr0:pr1, pc0:pc1], np.float64)
    top, left = r0 - pr0, c0 - pc0
    if r0 + n > scene.shape[0] or c0 + n > scene.shape[1]:
        raise ValueError(f"crop {crop.name} leaves the scene")
    dx, dy, rel = glacier_flow((n, n), crop, spec)
    src_c, src_r, residual = invert_flow(dx, dy, iterations=200)
    gy_x, gx_x = np.gradient(dx)
    gy_y, gx_y = np.gradient(dy)
    min_det = float(((1 + gx_x) * (1 + gy_y) - gy_x * gx_y).min())
    if residual > 1e-3 or min_det < 0.2:
        raise ValueError(f"flow of {crop.name} is not invertible (residual {residual:.1e} px, det {min_det:.2f})")
    clean_b = warp_to_b(padded, src_c + left, src_r + top)
    clean_a = padded[top:top + n, left:left + n].astype(np.float32)
    low, high = np.percentile(clean_a, [2.0, 98.0])
    value_range = float(high - low)
    full_range = float(clean_a.max() - clean_a.min())
    rng = np.random.default_rng(seed)
    a, b = degrade(clean_a, clean_b, deg, full_range, rng)
    rows, cols = np.mgrid[0:n, 0:n]
    target_c, target_r = cols + dx, rows + dy
    inside = ((target_c >= BORDER) & (target_c <= n - 1 - BORDER) & (target_r >= BORDER)
              & (target_r <= n - 1 - BORDER) & (cols >= BORDER) & (cols <= n - 1 - BORDER)
              & (rows >= BORDER) & (rows <= n - 1 - BORDER))
    glacier = rel >= GLACIER_SPEED
    stable = rel < 1e-3
    textured = _texture_mask(clean_a, value_range, deg.noise * full_range / value_range)
    label = name or f"{crop.name}-d{date}-m{spec.max_motion:g}-s{seed}"
    return Case(label, a, b, dx.astype(np.float32), dy.astype(np.float32), glacier & inside,
                stable & inside, inside, textured, crop, date, spec, deg, value_range,
                {"inverse_residual_px": residual, "min_jacobian": min_det})


def _random_degradation(rng: np.random.Generator) -> Degradation:
    return Degradation(noise=float(rng.uniform(0.0, 0.03)), blur_b=float(rng.uniform(0.0, 1.0)),
                       gain=float(rng.uniform(0.8, 1.2)), ramp=float(rng.uniform(0.0, 0.15)))


MOTION_CLASSES: tuple[tuple[str, float, float], ...] = (
    ("<3 px", 0.2, 3.0), ("3-10 px", 3.0, 10.0), ("10-20 px", 10.0, 20.0), ("20-30 px", 20.0, 30.0))


def motion_class(max_motion: float) -> str:
    """The label of :data:`MOTION_CLASSES` that ``max_motion`` (px, without offset) falls in."""
    for label, _low, high in MOTION_CLASSES:
        if max_motion < high or label == MOTION_CLASSES[-1][0]:
            return label
    return MOTION_CLASSES[-1][0]


def case_plan(per_class: int = 6, seed: int = 13) -> list[tuple[Crop, int, FlowSpec, Degradation, int, str]]:
    """The full benchmark's recipe: ``per_class`` cases in each motion class, crops and dates cycled.

    Motions are spread evenly inside each class (log-spaced in the smallest one); degradations,
    co-registration offsets (each component -0.5..0.5 px), margin widths and acceleration are drawn
    from one seeded generator, so the plan is identical on every machine.
    """
    rng = np.random.default_rng(seed)
    plan = []
    k = 0
    for _, low, high in MOTION_CLASSES:
        if low < 1.0:
            motions = np.geomspace(low, high * 0.95, per_class)
        else:
            motions = np.linspace(low + 0.5, high - 0.5 if high < 30 else high, per_class)
        for motion in motions:
            crop = CROPS[k % len(CROPS)]
            date = (k // len(CROPS) + k) % 2
            spec = FlowSpec(max_motion=float(motion), margin=float(rng.uniform(12.0, 40.0)),
                            acceleration=float(rng.uniform(0.4, 0.9)),
                            offset=(float(rng.uniform(-0.5, 0.5)), float(rng.uniform(-0.5, 0.5))))
            plan.append((crop, date, spec, _random_degradation(rng), 1000 + k,
                         f"{crop.name}-d{date}-m{motion:.2f}"))
            k += 1
    return plan


def sharp_plan(seed: int = 31) -> list[tuple[Crop, int, FlowSpec, Degradation, int, str]]:
    """Eight cases with narrow shear margins (half the motion wide), 3-20 px: resolution at margins."""
    rng = np.random.default_rng(seed)
    plan = []
    for k, motion in enumerate(np.linspace(3.0, 19.5, 8)):
        crop = CROPS[k % len(CROPS)]
        spec = FlowSpec(max_motion=float(motion), margin=4.0, acceleration=float(rng.uniform(0.5, 0.9)),
                        offset=(float(rng.uniform(-0.5, 0.5)), float(rng.uniform(-0.5, 0.5))), sharp=True)
        plan.append((crop, k % 2, spec, _random_degradation(rng), 2000 + k, f"sharp-{crop.name}-m{motion:.2f}"))
    return plan


def benchmark_cases(per_class: int = 6, seed: int = 13) -> list[Case]:
    """The full real-texture benchmark (``per_class`` x 4 cases of 512 px)."""
    return [make_case(*recipe) for recipe in case_plan(per_class, seed)]


def fast_cases() -> list[Case]:
    """Three 256 px cases for unit tests (about 2, 8 and 18 px), degraded like the issue's pairs."""
    issue_like = Degradation(noise=0.02, blur_b=0.6, gain=0.9, ramp=0.05)
    return [
        make_case(FAST_CROPS[0], 0, FlowSpec(2.0, margin=16.0, offset=(0.2, -0.1)), issue_like, 1, "fast-trunk-2px"),
        make_case(FAST_CROPS[1], 1, FlowSpec(8.0, margin=20.0, offset=(-0.3, 0.25)), issue_like, 2,
                  "fast-icefield-8px"),
        make_case(FAST_CROPS[0], 1, FlowSpec(18.0, margin=30.0), issue_like, 3, "fast-trunk-18px"),
    ]


def issue_cases() -> list[Case]:
    """Four pairs like those of issue 13: motions 2-19 px, noise 1-3 %, B blurred 0.6 px, gain 0.85-1.08."""
    settings = [(CROPS[0], 0, 2.0, 0.01, 0.85), (CROPS[1], 1, 7.0, 0.02, 1.08),
                (CROPS[2], 0, 12.0, 0.03, 0.95), (CROPS[4], 1, 19.0, 0.02, 0.9)]
    return [make_case(crop, date, FlowSpec(motion, margin=25.0), Degradation(noise, 0.6, gain, 0.0), 77 + i,
                      f"issue-{crop.name}-{motion:g}px")
            for i, (crop, date, motion, noise, gain) in enumerate(settings)]


# ----------------------------------------------------------------------------------------------
# Verification of the generator
# ----------------------------------------------------------------------------------------------

def global_shift(a: np.ndarray, b: np.ndarray, iterations: int = 20) -> tuple[float, float]:
    """Translation (dx, dy) px with B(x + d) = A(x), by Gauss-Newton on spline-interpolated B.

    An independent, interpolation-based estimator used only to verify the generator.
    """
    from scipy.ndimage import map_coordinates, spline_filter

    a64 = a.astype(np.float64)
    coeffs = spline_filter(b.astype(np.float64), order=SPLINE_ORDER, mode="mirror")
    h, w = a.shape
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    m = 20
    inner = (slice(m, h - m), slice(m, w - m))
    import cv2

    window = cv2.createHanningWindow((w, h), cv2.CV_64F)
    (px, py), _ = cv2.phaseCorrelate(a64.copy(), b.astype(np.float64), window)  # it may write its inputs
    d = np.array([round(px), round(py)], np.float64)  # integer start inside Gauss-Newton's reach
    for _ in range(iterations):
        def samp(dr, dc, d=d):
            return map_coordinates(coeffs, [rows + d[1] + dr, cols + d[0] + dc], order=SPLINE_ORDER,
                                   mode="mirror", prefilter=False)[inner]
        bw = samp(0, 0)
        gx = 0.5 * (samp(0, 0.5) - samp(0, -0.5)) * 2.0
        gy = 0.5 * (samp(0.5, 0) - samp(-0.5, 0)) * 2.0
        r = (bw - a64[inner]).ravel()
        j = np.column_stack([gx.ravel(), gy.ravel()])
        step = np.linalg.lstsq(j, -r, rcond=None)[0]
        d += step
        if np.abs(step).max() < 1e-6:
            break
    return float(d[0]), float(d[1])


def verify_generator(shifts: Sequence[tuple[float, float]] = ((0.3, -0.7), (5.25, 2.5), (-12.6, 17.1)),
                     size: int = 256) -> dict[str, float]:
    """Round-trip checks on noise-free real texture; returns the worst errors (px).

    * ``inverse``: max |x + f(x) - y| of the fixed-point inverse on a 20 px glacier flow.
    * ``translation``: max error of the translation recovered (Gauss-Newton) from pairs made with
      constant flows ``shifts`` through the same path as every case.
    * ``round_trip``: max error of the motion recovered between A and B warped back by the truth
      (B sampled at x + f(x)), on the glacier flow, in 64 px blocks (should be ~0).
    """
    from scipy.ndimage import map_coordinates

    crop = Crop("verify", 560, 780, size, ((0, 170), (128, 160), (255, 140)), 28, "trunk")
    worst_translation = 0.0
    for sx, sy in shifts:
        case = make_case(crop, 0, FlowSpec(0.0, offset=(sx, sy), smooth=0.0), Degradation(), 0, "shift")
        ex, ey = global_shift(case.a, case.b)
        worst_translation = max(worst_translation, abs(ex - sx), abs(ey - sy))
    case = make_case(crop, 0, FlowSpec(20.0, margin=30.0), Degradation(), 0, "glacier")
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    back = map_coordinates(case.b.astype(np.float64), [rows + case.dy, cols + case.dx], order=SPLINE_ORDER,
                           mode="mirror").astype(np.float32)
    worst_rt = 0.0
    for r in range(32, size - 96, 64):
        for c in range(32, size - 96, 64):
            if not case.scored[r:r + 64, c:c + 64].all():
                continue
            ex, ey = global_shift(case.a[r:r + 64, c:c + 64], back[r:r + 64, c:c + 64])
            worst_rt = max(worst_rt, abs(ex), abs(ey))
    return {"inverse": case.meta["inverse_residual_px"], "translation": worst_translation,
            "round_trip": worst_rt}


def with_degradation(case: Case, deg: Degradation, seed: int = 0) -> Case:
    """The same flow and crop with other degradations (recomputed from the clean texture)."""
    return make_case(case.crop, case.date, case.flow, deg, seed, case.name + "-re")


if __name__ == "__main__":
    import json

    print(json.dumps(verify_generator(), indent=1))
