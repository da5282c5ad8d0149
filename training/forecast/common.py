"""Parts shared by the forecasters: the persistence skip, the [0, 1] output, attention, teacher forcing.

Every forecaster predicts a *change* added to a learned linear combination of
input frames (:class:`PersistenceSkip`), initialised to the last frame: an
untrained model is exactly persistence, and the network only has to learn
what differs from it (e.g. the seasonal cycle, since with 3-month windows the
frame one year earlier is also among the inputs). The sum is clamped to
[0, 1], the range of masked NDSI.
"""
from __future__ import annotations

import math
import random

import torch
from torch import nn


class PersistenceSkip(nn.Module):
    """out[:, k] = sum_j weight[k, j] * frames[:, j]; weight starts as "repeat the last frame".

    Args:
        n_in: input frames.
        n_out: output frames (1 for recursive decoders, which apply it to their current window).
    """

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        weight = torch.zeros(n_out, n_in)
        weight[:, -1] = 1.0
        self.weight = nn.Parameter(weight)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (B, n_in, H, W) -> (B, n_out, H, W)."""
        return torch.einsum("kj,bjhw->bkhw", self.weight, frames)


def to_unit_range(base: torch.Tensor, change: torch.Tensor) -> torch.Tensor:
    """base + change clamped to [0, 1] (masked NDSI)."""
    return torch.clamp(base + change, 0.0, 1.0)


def zero_init(layer: nn.Module) -> nn.Module:
    """Zero the weights and bias of the layer that outputs the change: the untrained model is persistence."""
    for name in ("weight", "bias"):
        param = getattr(layer, name, None)
        if param is not None:
            nn.init.zeros_(param)
    return layer


class SelfAttention(nn.Module):
    """Multi-head self-attention written out (exports to plain ONNX MatMul/Softmax ops).

    Args:
        dim: token width; a multiple of ``heads``.
        heads: attention heads.
        dropout: on the attention weights (training only).
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not a multiple of heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, T, D) -> (B, T, D)."""
        b, t, d = tokens.shape
        q, k, v = self.qkv(tokens).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // self.heads), dim=-1)  # (B, h, T, T)
        mixed = (self.drop(weights) @ v).transpose(1, 2).reshape(b, t, d)
        return self.out(mixed)


def use_truth(targets: torch.Tensor | None, probability: float) -> bool:
    """Teacher forcing for one decoding step: feed the true frame with ``probability`` (training only)."""
    return targets is not None and probability > 0 and random.random() < probability


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
