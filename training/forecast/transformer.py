"""A transformer over the input time steps with patch embedding of the frames (after ViT and paper 002).

Each frame is cut into square ``tile`` x ``tile`` px pieces; every (time, piece)
is one token (linear embedding plus learned time and position embeddings).
Pre-norm encoder layers attend over all tokens of all times jointly. The
forecast of a piece is read from its tokens of every input time (concatenated)
by one linear layer giving all future frames of that piece. No recursion:
paper 002's decoder with a start token predicted recursively; predicting all
steps at once is cheaper and needs no teacher forcing.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .common import PersistenceSkip, SelfAttention, to_unit_range, zero_init


class EncoderLayer(nn.Module):
    """Pre-norm transformer encoder layer: x + attention(norm x), then x + MLP(norm x)."""

    def __init__(self, dim: int, heads: int, dropout: float, expansion: int = 2) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = SelfAttention(dim, heads, dropout)
        self.mlp = nn.Sequential(nn.Linear(dim, expansion * dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(expansion * dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attention(self.norm1(x)))
        return x + self.drop(self.mlp(self.norm2(x)))


class FrameTransformer(nn.Module):
    """frames (B, n_in, p, p) -> forecast (B, n_out, p, p) in [0, 1].

    Args:
        n_in: input frames.
        n_out: predicted frames.
        patch: patch side, px (a multiple of ``tile``).
        width: token width (a multiple of ``heads``).
        depth: encoder layers.
        heads: attention heads.
        tile: side of the square piece one token covers, px.
        dropout: on attention weights, MLP and residual branches.
    """

    def __init__(self, n_in: int = 4, n_out: int = 4, patch: int = 50, width: int = 64, depth: int = 2,
                 heads: int = 4, tile: int = 10, dropout: float = 0.1) -> None:
        super().__init__()
        if patch % tile:
            raise ValueError(f"patch {patch} px is not a multiple of the token tile {tile} px")
        self.config: dict[str, Any] = dict(n_in=n_in, n_out=n_out, patch=patch, width=width, depth=depth,
                                           heads=heads, tile=tile, dropout=dropout)
        self.n_in, self.n_out, self.tile, self.grid = n_in, n_out, tile, patch // tile
        self.embed = nn.Linear(tile * tile, width)
        self.time_embedding = nn.Parameter(torch.randn(1, n_in, 1, width) * 0.02)
        self.place_embedding = nn.Parameter(torch.randn(1, 1, self.grid * self.grid, width) * 0.02)
        self.layers = nn.ModuleList([EncoderLayer(width, heads, dropout) for _ in range(depth)])
        self.norm = nn.LayerNorm(width)
        self.head = zero_init(nn.Linear(n_in * width, n_out * tile * tile))
        self.skip = PersistenceSkip(n_in, n_out)

    def forward(self, frames: torch.Tensor, targets: torch.Tensor | None = None,
                teacher_forcing: float = 0.0) -> torch.Tensor:
        """All future frames at once (``targets`` and ``teacher_forcing`` are unused: no recursion)."""
        g, s = self.grid, self.tile
        pieces = frames.reshape(-1, self.n_in, g, s, g, s).permute(0, 1, 2, 4, 3, 5)   # (B, T, g, g, s, s)
        tokens = self.embed(pieces.reshape(-1, self.n_in, g * g, s * s))                # (B, T, g*g, width)
        tokens = tokens + self.time_embedding + self.place_embedding
        width = tokens.shape[-1]
        x = tokens.reshape(-1, self.n_in * g * g, width)
        for layer in self.layers:
            x = layer(x)
        x = self.norm(x).reshape(-1, self.n_in, g * g, width).permute(0, 2, 1, 3)       # (B, g*g, T, width)
        change = self.head(x.reshape(-1, g * g, self.n_in * width))                      # (B, g*g, n_out*s*s)
        change = change.reshape(-1, g, g, self.n_out, s, s).permute(0, 3, 1, 4, 2, 5)
        return to_unit_range(self.skip(frames), change.reshape(-1, self.n_out, g * s, g * s))
