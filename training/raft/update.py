"""Recurrent update blocks: correlation + flow + context -> new hidden state, flow delta, upsampling mask.

Shapes at the 1/8 grid: B batch, H, W; P = L*(2r+1)^2 correlation channels;
hidden state (B, Hd, H, W); context input (B, Cx, H, W); flow (B, 2, H, W).
"""
from __future__ import annotations

import torch
from torch import nn


class FlowHead(nn.Module):
    """Hidden state (B, Hd, H, W) -> flow delta (B, 2, H, W)."""

    def __init__(self, input_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(input_dim, hidden_dim, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden_dim, 2, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.relu(self.conv1(x)))


class ConvGRU(nn.Module):
    """Convolutional GRU with k x k gates: h (B, Hd, H, W), x (B, I, H, W) -> h (B, Hd, H, W)."""

    def __init__(self, hidden_dim: int, input_dim: int, kernel: tuple[int, int] = (3, 3)) -> None:
        super().__init__()
        pad = (kernel[0] // 2, kernel[1] // 2)
        self.convz = nn.Conv2d(hidden_dim + input_dim, hidden_dim, kernel, padding=pad)
        self.convr = nn.Conv2d(hidden_dim + input_dim, hidden_dim, kernel, padding=pad)
        self.convq = nn.Conv2d(hidden_dim + input_dim, hidden_dim, kernel, padding=pad)

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        hx = torch.cat([h, x], dim=1)
        z = torch.sigmoid(self.convz(hx))
        r = torch.sigmoid(self.convr(hx))
        q = torch.tanh(self.convq(torch.cat([r * h, x], dim=1)))
        return (1 - z) * h + z * q


class SepConvGRU(nn.Module):
    """Two ConvGRUs, a horizontal 1x5 then a vertical 5x1 (the full RAFT update)."""

    def __init__(self, hidden_dim: int, input_dim: int) -> None:
        super().__init__()
        self.horizontal = ConvGRU(hidden_dim, input_dim, (1, 5))
        self.vertical = ConvGRU(hidden_dim, input_dim, (5, 1))

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.vertical(self.horizontal(h, x), x)


class MotionEncoder(nn.Module):
    """Correlation (B, P, H, W) and flow (B, 2, H, W) -> motion features (B, out_dim, H, W).

    The last two channels of the output are the flow itself, as in RAFT.
    """

    def __init__(self, corr_planes: int, small: bool) -> None:
        super().__init__()
        c1, c2, f1, f2, out = (96, None, 64, 32, 82) if small else (256, 192, 128, 64, 128)
        self.convc1 = nn.Conv2d(corr_planes, c1, 1)
        self.convc2 = nn.Conv2d(c1, c2, 3, padding=1) if c2 else None
        self.convf1 = nn.Conv2d(2, f1, 7, padding=3)
        self.convf2 = nn.Conv2d(f1, f2, 3, padding=1)
        self.conv = nn.Conv2d((c2 or c1) + f2, out - 2, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.out_dim = out

    def forward(self, flow: torch.Tensor, corr: torch.Tensor) -> torch.Tensor:
        cor = self.relu(self.convc1(corr))
        if self.convc2 is not None:
            cor = self.relu(self.convc2(cor))
        flo = self.relu(self.convf2(self.relu(self.convf1(flow))))
        out = self.relu(self.conv(torch.cat([cor, flo], dim=1)))
        return torch.cat([out, flow], dim=1)


class UpdateBlock(nn.Module):
    """One refinement step.

    Full: SepConvGRU (Hd=128), flow head and a convex-upsampling mask head
    (B, 64*9, H, W). Small: 3x3 ConvGRU (Hd=96), flow head, no mask (bilinear upsampling).

    Args:
        corr_planes: P = L*(2r+1)^2.
        context_dim: Cx channels of the context input.
        hidden_dim: Hd channels of the hidden state.
        small: RAFT-small layout.
    """

    def __init__(self, corr_planes: int, context_dim: int, hidden_dim: int, small: bool) -> None:
        super().__init__()
        self.encoder = MotionEncoder(corr_planes, small)
        gru_in = self.encoder.out_dim + context_dim
        self.gru: nn.Module = ConvGRU(hidden_dim, gru_in) if small else SepConvGRU(hidden_dim, gru_in)
        self.flow_head = FlowHead(hidden_dim, 128 if small else 256)
        self.mask: nn.Module | None = None
        if not small:
            self.mask = nn.Sequential(
                nn.Conv2d(hidden_dim, 256, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(256, 64 * 9, 1))

    def forward(self, net: torch.Tensor, inp: torch.Tensor, corr: torch.Tensor, flow: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Returns (hidden (B, Hd, H, W), mask (B, 576, H, W) or None, delta flow (B, 2, H, W))."""
        motion = self.encoder(flow, corr)                      # (B, M, H, W)
        net = self.gru(net, torch.cat([inp, motion], dim=1))   # (B, Hd, H, W)
        delta = self.flow_head(net)                            # (B, 2, H, W)
        mask = None if self.mask is None else 0.25 * self.mask(net)  # scale balances gradients
        return net, mask, delta
