"""Training data: synthetic glacier pairs with exact flow, preprocessed as the plugin does.

A sample is ``(image1 (C, H, W), image2 (C, H, W), flow (2, H, W), valid (H, W))``
as float32 tensors; flow channel 0 = dx (columns, right), 1 = dy (rows, down), px.

Scenes come from ``training.synthetic.glacier_pair``; any generator with the same
signature can be passed. Each scene gets radiometric changes that do not move
with the ice (cast shadows, blur, gamma, noise, thin cloud, no-data holes), is
preprocessed whole (robust normalisation + Sobel, :func:`preprocess_for_flow`),
cropped (mostly around ice), then augmented by one of the 8 rotations/flips of
the square, with the flow vectors and the Sobel x/y channels rotated and
sign-flipped accordingly.

Half of the scenes get an extra surface texture that moves with the ground
(:func:`surface_texture`): sharp-edged patches and short streaks in some
regions, flat elsewhere, like the rock outcrops, crevasse fields and
featureless snow of real Landsat and Sentinel-2 scenes, which the generator's
smooth textures lack.

Half of the crops reach the model with another contrast (:func:`input_gain`),
as the plugin's tiles do after a whole-scene normalisation.

Most scenes also get a motion of the whole frame (:func:`frame_motion`): a
co-registration offset and a smooth misregistration field, added to the
truth. Without it, ground off the ice never moves in training, and the model
learns to read "rock" as "zero" from appearance alone: before this
augmentation, RAFT-small answered 0.0 px to a real Landsat rock scene shifted
by 0.5 px and 0.36 px to one shifted by 1.5 px, and near zero on much of the
moving ice of the real Yahtse pair.

Train, validation and test scenes come from disjoint seed ranges
(:data:`TRAIN_SEEDS`, :data:`VALIDATION_SEEDS`, :data:`TEST_SEEDS`): a split by
scene, never by overlapping tile.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset

TRAIN_SEEDS = range(0, 1_000_000_000)
VALIDATION_SEEDS = range(2_000_000_000, 2_000_100_000)
TEST_SEEDS = range(3_000_000_000, 3_000_100_000)   # held back for bench/, never trained or validated on

Generator = Callable[..., Any]


def default_generator() -> tuple[Generator, str]:
    """The scene generator (``training.synthetic.glacier_pair``) and its name, for the model card."""
    from ..synthetic import glacier_pair

    return glacier_pair, "training.synthetic.glacier_pair"


def preprocess_with_mask(image: np.ndarray, channels: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The model input for one band and its bool (H, W) validity mask (False next to no data).

    Exactly the plugin's preprocessing, ``core.velocity.preprocess.prepare_for_flow`` (robust
    normalisation, Sobel x/y, gradients of unit 2-98 % spread), so a model sees in training
    what it sees in QGIS.

    Args:
        image: (H, W) band (or (3, H, W) for channels=3), NaN = no data.
        channels: 2 (Sobel x/y, default), 1 (gradient magnitude) or 3 (robustly normalised RGB).

    Returns:
        ((channels, H, W) float32 finite everywhere, (H, W) bool).
    """
    from glacierflow.core.errors import GlacierFlowError
    from glacierflow.core.velocity.preprocess import band_statistics, normalise, prepare_for_flow

    bands = np.asarray(image, np.float32)
    if channels == 3:
        finite = np.all(np.isfinite(bands), axis=0)
        out = np.stack([np.nan_to_num(normalise(b, band_statistics([b]))) for b in bands])
        return out.astype(np.float32), finite
    try:
        grads, valid = prepare_for_flow(bands, band_statistics([bands]))
    except GlacierFlowError:  # an empty or textureless crop: nothing to learn from
        return np.zeros((channels,) + bands.shape, np.float32), np.zeros(bands.shape, bool)
    if channels == 1:
        grads = np.sqrt((grads ** 2).sum(axis=0, keepdims=True))
    return grads.astype(np.float32), valid


def preprocess_for_flow(image: np.ndarray, channels: int = 2) -> np.ndarray:
    """:func:`preprocess_with_mask` without the mask: (channels, H, W) float32."""
    return preprocess_with_mask(image, channels)[0]


# ---------------------------------------------------------------- augmentation
def rotate_vectors(field: np.ndarray, k: int) -> np.ndarray:
    """Rotate a vector field (2, H, W) (x = col, y = row components) by ``np.rot90(k)``.

    ``np.rot90`` moves (r, c) to (W-1-c, r), so a vector (x, y) becomes (y, -x).
    """
    out = field
    for _ in range(k % 4):
        out = np.rot90(out, 1, axes=(1, 2))
        out = np.stack([out[1], -out[0]])
    return np.ascontiguousarray(out)


def flip_vectors(field: np.ndarray) -> np.ndarray:
    """Flip a vector field (2, H, W) left-right: columns reversed, x component negated."""
    out = field[:, :, ::-1]
    return np.ascontiguousarray(np.stack([-out[0], out[1]]))


def augment(images: Sequence[np.ndarray], flow: np.ndarray, valid: np.ndarray, k: int, flip: bool,
            vector_images: bool) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Apply rot90^k then an optional left-right flip to images (C, H, W), flow (2, H, W), valid (H, W).

    ``vector_images``: the image channels are Sobel x/y gradients and transform like the flow.
    """
    def scalar(a: np.ndarray) -> np.ndarray:
        a = np.rot90(a, k, axes=(-2, -1))
        return np.ascontiguousarray(a[..., ::-1] if flip else a)

    def vector(a: np.ndarray) -> np.ndarray:
        a = rotate_vectors(a, k)
        return flip_vectors(a) if flip else a

    out_images = [vector(im) if vector_images else scalar(im) for im in images]
    return out_images, vector(flow), scalar(valid)


# ---------------------------------------------------------------- dataset
class GlacierFlowDataset(Dataset):
    """Crops of synthetic scenes; item ``k`` is deterministic.

    Item ``k`` uses scene ``scene_seeds[k % n]`` (n = len(scene_seeds)) and a
    crop/augmentation drawn from ``(seed, k // n)``, so a finite pool of
    scenes yields ever new crops, rotations and radiometric changes.

    Args:
        scene_seeds: scene seeds (a slice of TRAIN_SEEDS, VALIDATION_SEEDS or TEST_SEEDS).
        length: number of items (default n).
        crop: square crop size in px (multiple of 8, >= 128 for the model).
        scene_size: size of the generated square scene, preprocessed whole, then cropped.
        in_channels: model input channels (2 Sobel x/y, 1 gradient magnitude, 3 repeated grey).
        augment: rotations/flips and radiometric changes (shadows that do not move, blur,
            gamma, noise, thin cloud, no-data holes).
        max_displacement: (low, high) range of a scene's peak displacement, px.
        glacier_bias: probability that a crop is centred on an ice pixel.
        generator: ``glacier_pair``-like function; default :func:`default_generator`.
        cache_dir: where generated scenes are kept as .npz (None: no cache).
    """

    def __init__(self, scene_seeds: Sequence[int], length: int | None = None, crop: int = 128,
                 scene_size: int = 256, in_channels: int = 2, augment: bool = True,
                 max_displacement: tuple[float, float] = (0.0, 30.0), glacier_bias: float = 0.8,
                 generator: Generator | None = None, cache_dir: str | None = None) -> None:
        self.scene_seeds = scene_seeds
        self.length = len(scene_seeds) if length is None else int(length)
        self.crop = crop
        self.scene_size = max(scene_size, crop)
        self.in_channels = in_channels
        self.augment = augment
        self.max_displacement = max_displacement
        self.glacier_bias = glacier_bias
        if generator is None:
            self.generator, self.generator_name = default_generator()
        else:
            self.generator, self.generator_name = generator, getattr(generator, "__name__", "custom")
        self.cache_dir = cache_dir
        if cache_dir:
            os.makedirs(cache_dir, exist_ok=True)

    def __len__(self) -> int:
        return self.length

    def scene(self, seed: int) -> dict[str, np.ndarray]:
        """The scene of one seed: image_a, image_b, dx, dy (float32) and glacier (bool), (S, S)."""
        path = os.path.join(self.cache_dir, f"scene_{seed}.npz") if self.cache_dir else None
        if path and os.path.exists(path):
            try:
                with np.load(path) as z:
                    return {k: z[k] for k in z.files}
            except (OSError, ValueError, EOFError):
                pass                                    # a torn file: generate again
        rng = np.random.default_rng([seed, 1])
        low, high = self.max_displacement
        high = min(high, 0.2 * self.scene_size)
        peak = rng.uniform(low, min(high, 5.0)) if rng.uniform() < 0.3 else rng.uniform(low, high)
        kwargs: dict[str, Any] = dict(noise=float(rng.uniform(0.0, 0.02)),
                                      brightness_change=bool(rng.uniform() < 0.8))
        params = _wide_params(self.generator)
        if params is not None:
            kwargs["params"] = params
        for attempt in range(4):
            try:
                pair = self.generator(shape=(self.scene_size, self.scene_size),
                                      max_displacement_px=float(peak) * 0.7 ** attempt,
                                      seed=int(seed) + attempt * 7919, **kwargs)
                break
            except Exception:                           # e.g. flow inversion did not converge
                if attempt == 3:
                    raise
        scene = {"image_a": np.asarray(pair.image_a, np.float32),
                 "image_b": np.asarray(pair.image_b, np.float32),
                 "dx": np.asarray(pair.dx, np.float32), "dy": np.asarray(pair.dy, np.float32),
                 "glacier": np.asarray(pair.glacier, bool)}
        if getattr(pair, "valid", None) is not None:
            scene["valid"] = np.asarray(pair.valid, bool)
        if path:
            tmp = f"{path}.{os.getpid()}.tmp.npz"
            np.savez(tmp, **scene)
            os.replace(tmp, path)
        return scene

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(image1 (C, H, W), image2 (C, H, W), flow (2, H, W) px, valid (H, W) 0/1), float32."""
        return self.item(k)[:4]

    def item(self, k: int) -> tuple[torch.Tensor, ...]:
        """Like ``self[k]`` plus the ice mask of the crop (H, W) bool as a fifth tensor."""
        n = len(self.scene_seeds)
        seed = int(self.scene_seeds[k % n])
        sc = self.scene(seed)
        rng = np.random.default_rng([seed, k // n, 2])
        a, b = sc["image_a"].copy(), sc["image_b"].copy()
        flow = np.stack([sc["dx"], sc["dy"]]).astype(np.float32)               # (2, S, S)
        if self.augment:
            a, b = surface_texture(rng, a, b, flow)
            a, b = radiometric_augment(rng, a, b)
            b, flow = frame_motion(rng, b, flow)
        if self.in_channels == 3:                   # grey scenes: the band repeated as RGB
            a, b = np.stack([a] * 3), np.stack([b] * 3)
        im1, valid1 = preprocess_with_mask(a, self.in_channels)
        im2, valid2 = preprocess_with_mask(b, self.in_channels)
        if self.augment:
            im1, im2 = input_gain(rng, im1, im2)
        valid = valid1 & np.all(np.isfinite(flow), axis=0) & _lands_inside(flow, valid2)
        if "valid" in sc:
            valid &= sc["valid"]
        flow = np.nan_to_num(flow)
        top, left = _crop_origin(rng, sc["glacier"], self.crop, self.glacier_bias)
        c = self.crop
        window = (slice(None), slice(top, top + c), slice(left, left + c))
        im1, im2, flow = im1[window], im2[window], flow[window]
        valid, ice = valid[top:top + c, left:left + c], sc["glacier"][top:top + c, left:left + c]
        if self.augment:
            k_rot, flip = int(rng.integers(4)), bool(rng.integers(2))
            (im1, im2), flow, valid = augment([im1, im2], flow, valid, k_rot, flip,
                                              vector_images=self.in_channels == 2)
            ice = augment([], flow, ice, k_rot, flip, vector_images=False)[2]
        return (torch.from_numpy(np.ascontiguousarray(im1)), torch.from_numpy(np.ascontiguousarray(im2)),
                torch.from_numpy(np.ascontiguousarray(flow)),
                torch.from_numpy(np.ascontiguousarray(valid, dtype=np.float32)),
                torch.from_numpy(np.ascontiguousarray(ice)))


def _wide_params(generator: Generator) -> Any:
    """SceneParams with glaciers from narrow to wide, when the generator is training.synthetic's."""
    try:
        from ..synthetic import SceneParams, glacier_pair
    except ImportError:
        return None
    if generator is not glacier_pair:
        return None
    return SceneParams(halfwidth_frac=(0.065, 0.2))


def _crop_origin(rng: np.random.Generator, glacier: np.ndarray, crop: int, bias: float) -> tuple[int, int]:
    """Top-left of a crop: centred on a random ice pixel with probability ``bias``, else uniform."""
    s_h, s_w = glacier.shape
    if rng.uniform() < bias and glacier.any():
        rows, cols = np.nonzero(glacier)
        i = int(rng.integers(rows.size))
        top = int(np.clip(rows[i] - crop // 2 + rng.integers(-crop // 4, crop // 4 + 1), 0, s_h - crop))
        left = int(np.clip(cols[i] - crop // 2 + rng.integers(-crop // 4, crop // 4 + 1), 0, s_w - crop))
        return top, left
    return int(rng.integers(0, s_h - crop + 1)), int(rng.integers(0, s_w - crop + 1))


def _blob(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Smooth random field in 0..1 with features of about ``scale`` px."""
    import cv2

    h, w = shape
    small = rng.standard_normal((max(2, int(h / scale) + 2), max(2, int(w / scale) + 2))).astype(np.float32)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return (big - big.min()) / max(float(big.max() - big.min()), 1e-6)


def radiometric_augment(rng: np.random.Generator, a: np.ndarray, b: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Differences between two acquisitions that do not move with the ice; the flow truth is unchanged.

    Cast shadows at fixed places with date-dependent depth, blur of one image
    (PSF / resampling), gamma, extra noise, thin cloud, and no-data holes (NaN).
    """
    import cv2

    shape = a.shape
    if rng.uniform() < 0.35:                        # cast shadow: same place, different depth
        shadow = _blob(rng, shape, rng.uniform(16, 64)) > rng.uniform(0.55, 0.75)
        soft = cv2.GaussianBlur(shadow.astype(np.float32), (0, 0), rng.uniform(1, 4))
        a = a * (1 - rng.uniform(0.0, 0.6) * soft)
        b = b * (1 - rng.uniform(0.0, 0.6) * soft)
    if rng.uniform() < 0.3:                         # blur one image
        sigma = rng.uniform(0.3, 1.2)
        if rng.uniform() < 0.5:
            a = cv2.GaussianBlur(a.astype(np.float32), (0, 0), sigma)
        else:
            b = cv2.GaussianBlur(b.astype(np.float32), (0, 0), sigma)
    if rng.uniform() < 0.4:                         # contrast / gamma change of B
        b = np.clip(b, 0, None) ** rng.uniform(0.75, 1.3) * rng.uniform(0.8, 1.25)
    if rng.uniform() < 0.3:                         # extra sensor noise
        a = a + rng.normal(0, rng.uniform(0, 0.02), shape)
        b = b + rng.normal(0, rng.uniform(0, 0.02), shape)
    if rng.uniform() < 0.15:                        # thin cloud on one image
        cloud = np.clip(_blob(rng, shape, rng.uniform(24, 96)) * 2 - 1, 0, 1) * rng.uniform(0.2, 0.7)
        if rng.uniform() < 0.5:
            a = a * (1 - cloud) + 0.8 * cloud
        else:
            b = b * (1 - cloud) + 0.8 * cloud
    if rng.uniform() < 0.1:                         # no-data hole (NaN) in one image
        hole = _blob(rng, shape, rng.uniform(16, 64)) > rng.uniform(0.8, 0.95)
        if rng.uniform() < 0.5:
            a = np.where(hole, np.nan, a)
        else:
            b = np.where(hole, np.nan, b)
    return a.astype(np.float32), b.astype(np.float32)


def input_gain(rng: np.random.Generator, im1: np.ndarray, im2: np.ndarray, probability: float = 0.5,
               low: float = 0.6, high: float = 2.5) -> tuple[np.ndarray, np.ndarray]:
    """Scale both model inputs by one random gain (log-uniform in ``[low, high]``).

    Training normalises each 256 px scene to unit gradient spread; the plugin normalises a whole
    scene, so its tiles reach the model with other contrasts: on the Yahtse pair the tiles' own
    spread is 0.70-2.35 times the scene's (10-90 %: 0.92-1.78).
    """
    if rng.uniform() >= probability:
        return im1, im2
    gain = np.float32(np.exp(rng.uniform(np.log(low), np.log(high))))
    return im1 * gain, im2 * gain


def _streaks(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Short parallel streaks (crevasse-like) in 0..1: white noise smeared along a random direction."""
    import cv2

    long_px, short_px = rng.uniform(3, 9), rng.uniform(0.6, 1.4)
    half = int(3 * long_px)
    grid = np.arange(-half, half + 1, dtype=np.float32)
    cols, rows = np.meshgrid(grid, grid)
    angle = rng.uniform(0, np.pi)
    along = cols * np.cos(angle) + rows * np.sin(angle)
    across = -cols * np.sin(angle) + rows * np.cos(angle)
    kernel = np.exp(-0.5 * ((along / long_px) ** 2 + (across / short_px) ** 2)).astype(np.float32)
    smeared = cv2.filter2D(rng.standard_normal(shape).astype(np.float32), -1, kernel / kernel.sum())
    smeared /= max(float(smeared.std()), 1e-6)
    return np.clip((smeared - rng.uniform(1.0, 1.8)) / 0.4, 0, 1)


def _patches(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Blocky patches with sharp edges (outcrops, debris, snow) in 0..1: thresholded two-scale noise."""
    noise = _blob(rng, shape, rng.uniform(6, 24)) + 0.4 * _blob(rng, shape, rng.uniform(2, 5))
    edge = rng.uniform(0.01, 0.05)
    return np.clip((noise - np.quantile(noise, rng.uniform(0.5, 0.85))) / edge, 0, 1)


def surface_texture(rng: np.random.Generator, a: np.ndarray, b: np.ndarray, flow: np.ndarray,
                    probability: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Paint a texture that moves with the ground onto both images; the truth is unchanged.

    The texture T (patches and/or streaks, dark or bright, inside random regions)
    is drawn on image 1's grid. Image 2 gets T at x(y), the point of image 1 that
    the truth carries to y (x + f(x) = y, solved exactly by
    ``training.synthetic.invert_flow``), so the pair stays consistent with ``flow``.
    Where no such point exists inside the scene, image 2 becomes no data.

    Args:
        rng: random generator.
        a, b: (S, S) images 1 and 2, reflectance-like (about 0..1), NaN = no data.
        flow: (2, S, S) truth dx, dy px (NaN allowed).
        probability: chance that a texture is painted.

    Returns:
        (image 1, image 2) float32.
    """
    from ..synthetic import bilinear_sample, invert_flow

    if rng.uniform() >= probability:
        return a, b
    shape = a.shape
    kinds = [_patches, _streaks] if rng.uniform() < 0.3 else [[_patches, _streaks][int(rng.integers(2))]]
    texture = np.maximum.reduce([kind(rng, shape) for kind in kinds])
    region = np.clip((_blob(rng, shape, rng.uniform(40, 120)) - rng.uniform(0.2, 0.6)) / 0.1, 0, 1)
    texture = (texture * region).astype(np.float32)
    h, w = shape
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    src_col, src_row, residual = invert_flow(np.nan_to_num(flow[0]), np.nan_to_num(flow[1]), cols, rows,
                                             tol=1e-4, max_iter=20)
    moved = bilinear_sample(texture, src_col, src_row).astype(np.float32)
    lost = (residual > 1e-2) | (src_col < 0) | (src_col > w - 1) | (src_row < 0) | (src_row > h - 1)
    strength, bright = rng.uniform(0.2, 0.8), rng.uniform() < 0.4

    def paint(image: np.ndarray, t: np.ndarray) -> np.ndarray:
        return image + strength * t * (0.9 - image) if bright else image * (1 - strength * t)

    return paint(a, texture).astype(np.float32), np.where(lost, np.nan, paint(b, moved)).astype(np.float32)


def frame_motion(rng: np.random.Generator, b: np.ndarray, flow: np.ndarray,
                 probability: float = 0.7, max_offset: float = 4.0, max_field: float = 1.5
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Move all of image 2 by a motion g that has nothing to do with the ice; add it to the truth.

    g is a translation (the co-registration offset of two scenes; its length is
    ``max_offset * u**2`` px, u uniform, so that sub-pixel offsets, the hardest
    to see, are common) plus, in 40 % of the cases, a smooth field of up to
    ``max_field`` px with features of 48-192 px (orthorectification and jitter
    residuals). Image 2 becomes b'(y) = b(y - g(y)) (bicubic, NaN outside), and
    the new truth at x is y - x where y - g(y) = x + f(x), solved by
    fixed-point iteration (a contraction: g varies slowly), so it stays exact.

    Args:
        rng: random generator.
        b: (S, S) image 2, NaN = no data.
        flow: (2, S, S) truth dx, dy in px (NaN allowed).
        probability: chance that the frame moves at all.
        max_offset: largest translation, px.
        max_field: largest amplitude of the smooth field, px.

    Returns:
        (moved image 2, new truth (2, S, S) px), or the inputs unchanged.
    """
    import cv2

    if rng.uniform() >= probability:
        return b, flow
    h, w = b.shape
    angle, length = rng.uniform(0, 2 * np.pi), max_offset * rng.uniform() ** 2
    g = np.empty((2, h, w), np.float32)
    g[0], g[1] = length * np.cos(angle), length * np.sin(angle)
    if rng.uniform() < 0.4:
        amplitude, scale = rng.uniform(0, max_field), rng.uniform(48, 192)
        for channel in g:
            channel += amplitude * (2 * _blob(rng, (h, w), scale) - 1)
    cols, rows = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    moved = cv2.remap(b.astype(np.float32), cols - g[0], rows - g[1], cv2.INTER_CUBIC,
                      borderMode=cv2.BORDER_CONSTANT, borderValue=float("nan"))
    target_x, target_y = cols + np.nan_to_num(flow[0]), rows + np.nan_to_num(flow[1])
    y_x, y_y = target_x.copy(), target_y.copy()
    for _ in range(4):                              # y = x + f(x) + g(y)
        y_x = target_x + cv2.remap(g[0], y_x, y_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        y_y = target_y + cv2.remap(g[1], y_x, y_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    new_flow = np.stack([y_x - cols, y_y - rows]).astype(np.float32)
    return moved.astype(np.float32), np.where(np.isfinite(flow), new_flow, np.nan).astype(np.float32)


def _lands_inside(flow: np.ndarray, valid2: np.ndarray) -> np.ndarray:
    """True where p + f(p) falls on a valid pixel of image 2 (nearest neighbour)."""
    h, w = valid2.shape
    rows, cols = np.mgrid[0:h, 0:w]
    r = np.rint(rows + np.nan_to_num(flow[1])).astype(np.int64)
    c = np.rint(cols + np.nan_to_num(flow[0])).astype(np.int64)
    inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
    out = np.zeros((h, w), bool)
    out[inside] = valid2[r[inside], c[inside]]
    return out


def collate(samples: Sequence[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
    """Stack samples into batch tensors (B, ...)."""
    return tuple(torch.stack(parts) for parts in zip(*samples))
