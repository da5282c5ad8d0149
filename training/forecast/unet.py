"""U-net (Ronneberger et al. 2015; paper 002) with the input frames as channels and the forecast as channels.

Contracting path of ``depth`` levels (two 3x3 conv + batch norm + ReLU, then
2x2 max pooling), an expanding path with transposed convolutions and skip
connections. The patch is padded (replicate) to a multiple of 2**depth and
the output cropped back. Paper 002 ran its U-net recursively, one frame at a
time; here it predicts all frames at once.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .common import PersistenceSkip, to_unit_range, zero_init


def conv_block(in_channels: int, channels: int) -> nn.Sequential:
    """Two (3x3 conv, batch norm, ReLU)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
        nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


class UNet(nn.Module):
    """frames (B, n_in, p, p) -> forecast (B, n_out, p, p) in [0, 1].

    Args:
        n_in: input frames (channels).
        n_out: predicted frames (channels).
        patch: patch side, px.
        width: channels of the first level (doubled at each level down); original U-net 64.
        depth: pooling levels; original U-net 4.
        dropout: 2-D dropout at the bottleneck.
    """

    def __init__(self, n_in: int = 4, n_out: int = 4, patch: int = 50, width: int = 16, depth: int = 2,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.config: dict[str, Any] = dict(n_in=n_in, n_out=n_out, patch=patch, width=width, depth=depth,
                                           dropout=dropout)
        multiple = 2 ** depth
        padded = -(-patch // multiple) * multiple
        self.pad = ((padded - patch) // 2, padded - patch - (padded - patch) // 2)   # before, after, px
        self.patch = patch
        widths = [width * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList([conv_block(n_in if i == 0 else widths[i - 1], widths[i]) for i in range(depth)])
        self.bottom = conv_block(widths[depth - 1] if depth else n_in, widths[depth])
        self.drop = nn.Dropout2d(dropout)
        self.up = nn.ModuleList([nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                                 for i in reversed(range(depth))])
        self.merge = nn.ModuleList([conv_block(2 * widths[i], widths[i]) for i in reversed(range(depth))])
        self.head = zero_init(nn.Conv2d(widths[0], n_out, 1))
        self.skip = PersistenceSkip(n_in, n_out)

    def forward(self, frames: torch.Tensor, targets: torch.Tensor | None = None,
                teacher_forcing: float = 0.0) -> torch.Tensor:
        """All future frames at once (``targets`` and ``teacher_forcing`` are unused: no recursion)."""
        before, after = self.pad
        x = F.pad(frames, (before, after, before, after), mode="replicate")
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.drop(self.bottom(x))
        for up, merge, skip in zip(self.up, self.merge, reversed(skips)):
            x = merge(torch.cat([up(x), skip], dim=1))
        change = self.head(x)[:, :, before:before + self.patch, before:before + self.patch]
        return to_unit_range(self.skip(frames), change)
