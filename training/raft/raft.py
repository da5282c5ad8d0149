"""RAFT: recurrent all-pairs field transforms, full and small variants.

Input: two images (B, C, H, W), H and W multiples of 8 and >= 128 (use
:func:`pad_to_multiple` / :func:`unpad`). Output: a list of ``iters`` flows
(B, 2, H, W) in input pixels, channel 0 = dx (columns, right), channel 1 =
dy (rows, down): a feature at (row, col) in image 1 is at (row + dy, col + dx)
in image 2.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .correlation import CorrBlock
from .encoder import Encoder
from .update import UpdateBlock

MULTIPLE = 8
MIN_SIZE = 128


@dataclass
class RAFTConfig:
    """Hyper-parameters of a RAFT model (stored in checkpoints and the ONNX card).

    Attributes:
        small: RAFT-small (bottleneck encoders, ConvGRU, bilinear upsampling) instead of full RAFT.
        in_channels: 1 (Sobel magnitude), 2 (Sobel x/y) or 3 (RGB).
        iters: default number of refinement iterations.
        corr_levels: correlation pyramid levels.
        corr_radius: lookup radius; None = 3 (small) or 4 (full).
        dropout: encoder dropout.
        context_norm: None = 'none' (small) or 'batch' (full).
    """

    small: bool = True
    in_channels: int = 2
    iters: int = 12
    corr_levels: int = 4
    corr_radius: int | None = None
    dropout: float = 0.0
    context_norm: str | None = None

    def resolved(self) -> RAFTConfig:
        """A copy with the variant defaults filled in."""
        cfg = RAFTConfig(**asdict(self))
        if cfg.corr_radius is None:
            cfg.corr_radius = 3 if cfg.small else 4
        if cfg.context_norm is None:
            cfg.context_norm = "none" if cfg.small else "batch"
        return cfg


def coords_grid(like: torch.Tensor) -> torch.Tensor:
    """Pixel coordinates (B, 2, H, W) (x = column, y = row) of a map like (B, C, H, W).

    Built with cumsum so that H and W stay dynamic in an ONNX export.
    """
    ones = torch.ones_like(like[:, :1])                  # (B, 1, H, W)
    return torch.cat([ones.cumsum(3) - 1, ones.cumsum(2) - 1], dim=1)


def convex_upsample(flow: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Flow (B, 2, H, W) at 1/8 -> (B, 2, 8H, 8W) px, each fine pixel a convex blend of 3x3 coarse cells.

    Args:
        flow: coarse flow in 1/8 cells.
        mask: (B, 9*64, H, W) logits of the blend weights.
    """
    b, _, h, w = flow.shape
    weights = torch.softmax(mask.reshape(b, 1, 9, 8, 8, h, w), dim=2)     # (B, 1, 9, 8, 8, H, W)
    padded = F.pad(8 * flow, (1, 1, 1, 1))                                 # (B, 2, H+2, W+2)
    ends = (-2, -1, None)
    patches = [padded[:, :, i:ends[i], j:ends[j]] for i in range(3) for j in range(3)]
    patches_t = torch.stack(patches, dim=2).reshape(b, 2, 9, 1, 1, h, w)   # (B, 2, 9, 1, 1, H, W)
    up = torch.sum(weights * patches_t, dim=2)                             # (B, 2, 8, 8, H, W)
    up = up.permute(0, 1, 4, 2, 5, 3)                                      # (B, 2, H, 8, W, 8)
    return up.reshape(b, 2, h * 8, w * 8)


def bilinear_upsample(flow: torch.Tensor) -> torch.Tensor:
    """Flow (B, 2, H, W) at 1/8 -> (B, 2, 8H, 8W) px, bilinear with pixel-centre alignment."""
    return 8 * F.interpolate(flow, scale_factor=8, mode="bilinear", align_corners=False)


class RAFT(nn.Module):
    """RAFT / RAFT-small optical flow (see :class:`RAFTConfig`)."""

    def __init__(self, config: RAFTConfig | None = None) -> None:
        super().__init__()
        self.config = (config or RAFTConfig()).resolved()
        cfg = self.config
        self.hidden_dim, self.context_dim = (96, 64) if cfg.small else (128, 128)
        feature_dim = 128 if cfg.small else 256
        self.fnet = Encoder(cfg.in_channels, feature_dim, "instance", cfg.small, cfg.dropout)
        self.cnet = Encoder(cfg.in_channels, self.hidden_dim + self.context_dim,
                            str(cfg.context_norm), cfg.small, cfg.dropout)
        corr_planes = cfg.corr_levels * (2 * int(cfg.corr_radius or 0) + 1) ** 2
        self.update = UpdateBlock(corr_planes, self.context_dim, self.hidden_dim, cfg.small)

    def upsample(self, flow: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Coarse flow (B, 2, H/8, W/8) in cells -> (B, 2, H, W) in px."""
        return bilinear_upsample(flow) if mask is None else convex_upsample(flow, mask)

    def forward(self, image1: torch.Tensor, image2: torch.Tensor, iters: int | None = None,
                flow_init: torch.Tensor | None = None, final_only: bool = False) -> list[torch.Tensor]:
        """Flow from image1 to image2.

        Args:
            image1, image2: (B, C, H, W) preprocessed images; H, W multiples of 8 and >= 128.
            iters: refinement iterations (default: config.iters).
            flow_init: optional (B, 2, H/8, W/8) initial flow in 1/8 cells.
            final_only: return only the last prediction (inference).

        Returns:
            List of (B, 2, H, W) flows in px, one per iteration (or only the last).
        """
        iters = self.config.iters if iters is None else iters
        b = image1.shape[0]
        fmaps = self.fnet(torch.cat([image1, image2], dim=0))        # (2B, Df, H/8, W/8)
        fmap1, fmap2 = fmaps[:b], fmaps[b:]
        corr_fn = CorrBlock(fmap1, fmap2, self.config.corr_levels, int(self.config.corr_radius or 0))
        context = self.cnet(image1)                                   # (B, Hd+Cx, H/8, W/8)
        net = torch.tanh(context[:, :self.hidden_dim])                # (B, Hd, H/8, W/8)
        inp = torch.relu(context[:, self.hidden_dim:])                # (B, Cx, H/8, W/8)
        coords0 = coords_grid(fmap1)                                  # (B, 2, H/8, W/8)
        coords1 = coords0 if flow_init is None else coords0 + flow_init
        predictions: list[torch.Tensor] = []
        for i in range(iters):
            coords1 = coords1.detach()
            corr = corr_fn(coords1)                                   # (B, P, H/8, W/8)
            net, mask, delta = self.update(net, inp, corr, coords1 - coords0)
            coords1 = coords1 + delta
            if final_only and i < iters - 1:
                continue
            predictions.append(self.upsample(coords1 - coords0, mask))  # (B, 2, H, W)
        return predictions


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def padding_for(height: int, width: int, multiple: int = MULTIPLE, min_size: int = MIN_SIZE
                ) -> tuple[int, int, int, int]:
    """Padding (top, bottom, left, right) that makes (height, width) multiples of ``multiple``
    and at least ``min_size``, split as evenly as possible (extra pixel at the bottom/right)."""
    def target(n: int) -> int:
        return max(int(math.ceil(n / multiple)) * multiple, int(math.ceil(min_size / multiple)) * multiple)

    ph, pw = target(height) - height, target(width) - width
    return ph // 2, ph - ph // 2, pw // 2, pw - pw // 2


def pad_to_multiple(x: torch.Tensor, multiple: int = MULTIPLE, min_size: int = MIN_SIZE,
                    mode: str = "constant") -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Pad (..., H, W) for the model; returns (padded, pads) for :func:`unpad`.

    ``mode='constant'`` pads with 0, which is "no texture" for the zero-centred
    Sobel inputs; 'replicate' or 'reflect' also work (then the input must be 3-D or 4-D).
    """
    pads = padding_for(x.shape[-2], x.shape[-1], multiple, min_size)
    top, bottom, left, right = pads
    if mode == "constant":
        return F.pad(x, (left, right, top, bottom)), pads
    return F.pad(x, (left, right, top, bottom), mode=mode), pads


def unpad(x: torch.Tensor, pads: tuple[int, int, int, int]) -> torch.Tensor:
    """Crop (..., H', W') back to the size before :func:`pad_to_multiple`."""
    top, bottom, left, right = pads
    h, w = x.shape[-2], x.shape[-1]
    return x[..., top:h - bottom, left:w - right]
