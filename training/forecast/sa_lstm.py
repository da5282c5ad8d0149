"""SA-LSTM-H (paper 003): LSTM encoder, multi-head self-attention over its hidden states, linear projection,
recursive first-in first-out decoding.

The paper: flattened 50x50 patches through an LSTM; the hidden states of the
4 input steps go through multi-head self-attention (5 heads, width 2500), are
flattened (4 x 2500 -> 10000) and projected to the next frame (2500). The
predicted frame is fed back to the LSTM; its new hidden state joins the
attention window and the oldest one leaves (first in, first out), until 4
frames are predicted. Here the LSTM width is a parameter (48 instead of 2500)
and the projection outputs a change to the persistence skip (common.py).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .common import PersistenceSkip, SelfAttention, to_unit_range, use_truth, zero_init


class SALSTMH(nn.Module):
    """frames (B, n_in, p, p) -> forecast (B, n_out, p, p) in [0, 1].

    Args:
        n_in: input frames (the attention window length).
        n_out: frames to predict, one at a time.
        patch: patch side, px.
        width: LSTM hidden size = attention width (a multiple of ``heads``); paper 2500.
        depth: stacked LSTM layers; paper 1 layer over 3 (unrolled) cells.
        heads: attention heads; paper 5.
        dropout: on the attention output and before the projection; paper 0.1.
    """

    def __init__(self, n_in: int = 4, n_out: int = 4, patch: int = 50, width: int = 48, depth: int = 1,
                 heads: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        self.config: dict[str, Any] = dict(n_in=n_in, n_out=n_out, patch=patch, width=width, depth=depth,
                                           heads=heads, dropout=dropout)
        self.n_out, self.patch = n_out, patch
        self.lstm = nn.LSTM(patch * patch, width, depth, batch_first=True, dropout=dropout if depth > 1 else 0.0)
        self.norm = nn.LayerNorm(width)
        self.attention = SelfAttention(width, heads, dropout)
        self.drop = nn.Dropout(dropout)
        self.project = zero_init(nn.Linear(n_in * width, patch * patch))
        self.skip = PersistenceSkip(n_in, 1)

    def forward(self, frames: torch.Tensor, targets: torch.Tensor | None = None,
                teacher_forcing: float = 0.0) -> torch.Tensor:
        """Recursive forecast; with ``targets`` (B, n_out, p, p), each step feeds the truth instead of the
        prediction with probability ``teacher_forcing``."""
        hidden, state = self.lstm(frames.flatten(2))            # (B, n_in, width)
        window = frames                                         # (B, n_in, p, p), first in first out
        predicted = []
        for k in range(self.n_out):
            attended = hidden + self.drop(self.attention(self.norm(hidden)))
            change = self.project(self.drop(attended.flatten(1))).reshape(-1, 1, self.patch, self.patch)
            frame = to_unit_range(self.skip(window), change)     # (B, 1, p, p)
            predicted.append(frame)
            if k + 1 == self.n_out:
                break
            fed = targets[:, k:k + 1] if use_truth(targets, teacher_forcing) else frame
            step, state = self.lstm(fed.flatten(2), state)      # (B, 1, width)
            hidden = torch.cat([hidden[:, 1:], step], dim=1)
            window = torch.cat([window[:, 1:], fed], dim=1)
        return torch.cat(predicted, dim=1)
