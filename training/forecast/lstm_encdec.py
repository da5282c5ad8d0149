"""LSTM encoder-decoder (paper 002, after Srivastava et al. 2015 and Petrou and Tian 2017).

The encoder LSTM reads the flattened input frames; its hidden and cell states
are copied to a decoder LSTM, which predicts the future frames one at a time
from the previous frame (the prediction, or the truth under teacher forcing).
Frames are embedded by one shared linear layer (p*p -> width) before the LSTMs,
which keeps the small model small; the paper fed the 2500 values directly.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .common import PersistenceSkip, to_unit_range, use_truth, zero_init


class LSTMEncoderDecoder(nn.Module):
    """frames (B, n_in, p, p) -> forecast (B, n_out, p, p) in [0, 1].

    Args:
        n_in: input frames.
        n_out: frames to predict.
        patch: patch side, px.
        width: embedding and LSTM hidden size.
        depth: stacked LSTM layers in encoder and decoder.
        dropout: on embeddings and decoder outputs (and between LSTM layers); paper 0.1.
    """

    def __init__(self, n_in: int = 4, n_out: int = 4, patch: int = 50, width: int = 96, depth: int = 1,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.config: dict[str, Any] = dict(n_in=n_in, n_out=n_out, patch=patch, width=width, depth=depth,
                                           dropout=dropout)
        self.n_out, self.patch = n_out, patch
        between = dropout if depth > 1 else 0.0
        self.embed = nn.Linear(patch * patch, width)
        self.encoder = nn.LSTM(width, width, depth, batch_first=True, dropout=between)
        self.decoder = nn.LSTM(width, width, depth, batch_first=True, dropout=between)
        self.drop = nn.Dropout(dropout)
        self.head = zero_init(nn.Linear(width, patch * patch))
        self.skip = PersistenceSkip(n_in, 1)

    def forward(self, frames: torch.Tensor, targets: torch.Tensor | None = None,
                teacher_forcing: float = 0.0) -> torch.Tensor:
        """Encode, then decode recursively (teacher forcing with probability ``teacher_forcing``)."""
        _, state = self.encoder(self.drop(self.embed(frames.flatten(2))))
        fed, window = frames[:, -1:], frames
        predicted = []
        for k in range(self.n_out):
            out, state = self.decoder(self.drop(self.embed(fed.flatten(2))), state)    # (B, 1, width)
            change = self.head(self.drop(out)).reshape(-1, 1, self.patch, self.patch)
            frame = to_unit_range(self.skip(window), change)
            predicted.append(frame)
            fed = targets[:, k:k + 1] if use_truth(targets, teacher_forcing) else frame
            window = torch.cat([window[:, 1:], fed], dim=1)
        return torch.cat(predicted, dim=1)
