"""All-pairs correlation pyramid and its lookup around the current flow estimate.

Shapes: B batch, D feature channels, H, W the 1/8 grid, N = B*H*W query
positions, L pyramid levels, r lookup radius, K = (2r+1)^2 samples per level.

The bilinear lookup is written with one ``torch.gather`` per level instead of
``grid_sample``: the lookup offsets are integers, so every query needs one
(2r+2) x (2r+2) window of integer cells starting at floor(centre) - r, and the
bilinear result is a fixed 4-tap blend of that window with the fractional
part of the centre. The levels are zero-padded by one cell, so indices
clamped into the padded level read zeros outside it (``grid_sample`` with
``padding_mode='zeros', align_corners=True`` semantics). This exports to plain
ONNX ops (Gather, Floor, Clip) with dynamic shapes and runs faster than
GridSample on onnxruntime's CPU provider.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def all_pairs_correlation(fmap1: torch.Tensor, fmap2: torch.Tensor) -> torch.Tensor:
    """Dot products of every pair of feature vectors, scaled by 1/sqrt(D).

    Args:
        fmap1: (B, D, H, W) features of image 1.
        fmap2: (B, D, H, W) features of image 2.

    Returns:
        (B*H*W, 1, H, W): for each position of image 1, its correlation with every position of image 2.
    """
    b, d, h, w = fmap1.shape
    f1 = fmap1.reshape(b, d, h * w).transpose(1, 2)            # (B, HW, D)
    f2 = fmap2.reshape(b, d, h * w)                            # (B, D, HW)
    corr = torch.matmul(f1, f2) / (float(d) ** 0.5)            # (B, HW, HW)
    return corr.reshape(b * h * w, 1, h, w)


def build_pyramid(corr: torch.Tensor, num_levels: int) -> list[torch.Tensor]:
    """Average-pool the last two dims: (N, 1, H, W) -> [(N, 1, H/2^l, W/2^l) for l < num_levels]."""
    pyramid = [corr]
    for _ in range(num_levels - 1):
        corr = F.avg_pool2d(corr, 2, stride=2)
        pyramid.append(corr)
    return pyramid


def pad_level(level: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Zero-pad a level by one cell and flatten it, once per pair.

    Args:
        level: (N, 1, h, w) correlation level.

    Returns:
        (flat (N, (h+2)*(w+2)), h+2, w+2); the sizes are 0-d float tensors
        computed from the data, so they stay dynamic in an ONNX export.
    """
    padded = F.pad(level, (1, 1, 1, 1))[:, 0]                  # (N, h+2, w+2), zero border
    hp = torch.ones_like(padded[0, :, 0]).sum()                # h+2
    wp = torch.ones_like(padded[0, 0, :]).sum()                # w+2
    return padded.flatten(1), hp, wp


def lookup_padded(flat: torch.Tensor, hp: torch.Tensor, wp: torch.Tensor, centres: torch.Tensor,
                  radius: int) -> torch.Tensor:
    """Bilinear samples on the (2r+1)^2 integer offsets around each centre of a padded level.

    Args:
        flat, hp, wp: a level from :func:`pad_level`.
        centres: (N, 2) sample centres (x = column, y = row) in the level's cells (unpadded).
        radius: r, offsets -r..r in x and y.

    Returns:
        (N, K), K = (2r+1)^2, ordered offset-y major, offset-x minor; zero outside the level.
    """
    span = 2 * radius + 2                                      # S: window side
    x, y = centres[:, 0:1], centres[:, 1:2]                    # (N, 1) each
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = (x - x0).unsqueeze(2), (y - y0).unsqueeze(2)      # (N, 1, 1) fractional parts
    steps = torch.arange(span, dtype=centres.dtype, device=centres.device) + (1 - radius)  # (S,) +1 pad
    # Padded cell indices of the window, clamped into the padded level (its border is zero).
    cols = torch.minimum(torch.clamp(x0 + steps, min=0), wp - 1)   # (N, S)
    rows = torch.minimum(torch.clamp(y0 + steps, min=0), hp - 1)   # (N, S)
    index = (rows.unsqueeze(2) * wp + cols.unsqueeze(1)).reshape(-1, span * span)   # (N, S*S)
    window = torch.gather(flat, 1, index.long()).reshape(-1, span, span)           # (N, S, S)
    top = window[:, :-1, :-1] * (1 - fx) + window[:, :-1, 1:] * fx                 # (N, S-1, S-1)
    bottom = window[:, 1:, :-1] * (1 - fx) + window[:, 1:, 1:] * fx
    out = top * (1 - fy) + bottom * fy                         # (N, 2r+1, 2r+1)
    return out.reshape(-1, (span - 1) * (span - 1))


def window_lookup(level: torch.Tensor, centres: torch.Tensor, radius: int) -> torch.Tensor:
    """Bilinear samples of one level (N, 1, h, w) on the (2r+1)^2 offsets around centres (N, 2) -> (N, K)."""
    return lookup_padded(*pad_level(level), centres, radius)


class CorrBlock:
    """Correlation pyramid of one image pair, looked up at the current coordinates.

    The levels are padded and flattened once here, so that each of the
    ``iters`` lookups is only index arithmetic and one gather per level.

    Args:
        fmap1: (B, D, H, W) features of image 1.
        fmap2: (B, D, H, W) features of image 2.
        num_levels: L pyramid levels (average pooling by 2 per level).
        radius: r lookup radius in cells of each level.
    """

    def __init__(self, fmap1: torch.Tensor, fmap2: torch.Tensor, num_levels: int = 4,
                 radius: int = 4) -> None:
        self.num_levels = num_levels
        self.radius = radius
        self.pyramid = build_pyramid(all_pairs_correlation(fmap1, fmap2), num_levels)
        self.padded = [pad_level(level) for level in self.pyramid]
        self.shape = fmap1.shape                                   # (B, D, H, W)

    @property
    def out_channels(self) -> int:
        """L * (2r+1)^2 channels returned by a lookup."""
        return self.num_levels * (2 * self.radius + 1) ** 2

    def __call__(self, coords: torch.Tensor) -> torch.Tensor:
        """Look up around coords (B, 2, H, W) (x, y in 1/8 cells) -> (B, L*K, H, W)."""
        b, _, h, w = self.shape
        centres = coords.permute(0, 2, 3, 1).reshape(-1, 2)               # (N, 2)
        out = [lookup_padded(flat, hp, wp, centres / (2 ** i), self.radius)  # (N, K) per level
               for i, (flat, hp, wp) in enumerate(self.padded)]
        corr = torch.cat(out, dim=1)                                    # (N, L*K)
        return corr.reshape(b, h, w, -1).permute(0, 3, 1, 2).contiguous()


def grid_sample_lookup(level: torch.Tensor, centres: torch.Tensor, radius: int) -> torch.Tensor:
    """Reference lookup with ``grid_sample`` (for tests); same contract as :func:`window_lookup`."""
    n, _, h, w = level.shape
    d = torch.arange(-radius, radius + 1, dtype=centres.dtype, device=centres.device)
    dy, dx = torch.meshgrid(d, d, indexing="ij")                       # (2r+1, 2r+1)
    x = centres[:, 0].view(n, 1, 1) + dx                               # (N, 2r+1, 2r+1)
    y = centres[:, 1].view(n, 1, 1) + dy
    grid = torch.stack([2 * x / (w - 1) - 1, 2 * y / (h - 1) - 1], dim=-1)
    out = F.grid_sample(level, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.reshape(n, -1)
