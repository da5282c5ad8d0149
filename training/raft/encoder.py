"""Feature and context encoders: images (B, C, H, W) -> maps at 1/8 resolution (B, D, H/8, W/8).

As in RAFT: a 7x7 stride-2 stem, three stages of residual blocks (strides
1, 2, 2) and a 1x1 projection. The full variant uses basic residual blocks
(64/96/128 channels); RAFT-small uses bottleneck blocks (32/64/96 channels).
The feature encoder uses instance norm (per-image contrast invariance); the
context encoder uses batch norm (full) or no norm (small).
"""
from __future__ import annotations

import torch
from torch import nn


def make_norm(norm: str, channels: int) -> nn.Module:
    """Normalisation layer by name: 'instance', 'batch', 'group' or 'none'."""
    if norm == "instance":
        return nn.InstanceNorm2d(channels)
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "group":
        return nn.GroupNorm(num_groups=max(1, channels // 8), num_channels=channels)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {norm!r}")


class ResidualBlock(nn.Module):
    """Two 3x3 convs with a skip: (B, Cin, H, W) -> (B, Cout, H/s, W/s)."""

    def __init__(self, in_planes: int, planes: int, norm: str, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, padding=1, stride=stride)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1)
        self.norm1 = make_norm(norm, planes)
        self.norm2 = make_norm(norm, planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride), make_norm(norm, planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.norm1(self.conv1(x)))
        y = self.relu(self.norm2(self.conv2(y)))
        return self.relu(self.downsample(x) + y)


class BottleneckBlock(nn.Module):
    """1x1 -> 3x3 (strided) -> 1x1 with a skip, as in RAFT-small: (B, Cin, H, W) -> (B, Cout, H/s, W/s)."""

    def __init__(self, in_planes: int, planes: int, norm: str, stride: int = 1) -> None:
        super().__init__()
        mid = planes // 4
        self.conv1 = nn.Conv2d(in_planes, mid, 1)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1, stride=stride)
        self.conv3 = nn.Conv2d(mid, planes, 1)
        self.norm1 = make_norm(norm, mid)
        self.norm2 = make_norm(norm, mid)
        self.norm3 = make_norm(norm, planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride), make_norm(norm, planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.norm1(self.conv1(x)))
        y = self.relu(self.norm2(self.conv2(y)))
        y = self.relu(self.norm3(self.conv3(y)))
        return self.relu(self.downsample(x) + y)


class Encoder(nn.Module):
    """Image (B, C, H, W) -> feature map (B, output_dim, H/8, W/8).

    Args:
        in_channels: input channels (1 Sobel magnitude, 2 Sobel x/y, 3 RGB).
        output_dim: channels of the output map.
        norm: 'instance' (feature encoder), 'batch' or 'none' (context encoder).
        small: bottleneck blocks with 32/64/96 channels instead of basic blocks with 64/96/128.
        dropout: dropout probability before the projection (0 disables it).
    """

    def __init__(self, in_channels: int, output_dim: int, norm: str, small: bool,
                 dropout: float = 0.0) -> None:
        super().__init__()
        block = BottleneckBlock if small else ResidualBlock
        widths = (32, 64, 96) if small else (64, 96, 128)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 7, stride=2, padding=3),
            make_norm(norm, widths[0]), nn.ReLU(inplace=True))
        layers = []
        in_planes = widths[0]
        for width, stride in zip(widths, (1, 2, 2)):
            layers += [block(in_planes, width, norm, stride), block(width, width, norm, 1)]
            in_planes = width
        self.layers = nn.Sequential(*layers)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.proj = nn.Conv2d(in_planes, output_dim, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)      # (B, w0, H/2, W/2)
        x = self.layers(x)    # (B, w2, H/8, W/8)
        return self.proj(self.dropout(x))  # (B, output_dim, H/8, W/8)
