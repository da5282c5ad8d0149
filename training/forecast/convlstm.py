"""ConvLSTM encoder-forecaster (Shi et al. 2015; paper 002/003 after Petrou and Tian 2019).

LSTM gates computed by 3x3 convolutions on the frames themselves instead of
flattened vectors. The encoder stack reads the input frames; the forecaster
stack starts from its states and predicts one frame per step from the
previous one (prediction or truth under teacher forcing).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .common import PersistenceSkip, to_unit_range, use_truth, zero_init

State = tuple[torch.Tensor, torch.Tensor]


class ConvLSTMCell(nn.Module):
    """One ConvLSTM cell: x (B, C_in, H, W), (h, c) (B, C, H, W) -> new (h, c)."""

    def __init__(self, in_channels: int, channels: int, kernel: int = 3) -> None:
        super().__init__()
        self.channels = channels
        self.gates = nn.Conv2d(in_channels + channels, 4 * channels, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor, state: State) -> State:
        h, c = state
        i, f, o, g = torch.chunk(self.gates(torch.cat([x, h], dim=1)), 4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class ConvLSTMForecaster(nn.Module):
    """frames (B, n_in, p, p) -> forecast (B, n_out, p, p) in [0, 1].

    Args:
        n_in: input frames.
        n_out: frames to predict.
        patch: patch side, px.
        width: hidden channels of every ConvLSTM layer.
        depth: stacked ConvLSTM layers in encoder and forecaster.
        dropout: 2-D dropout on the forecaster's top hidden state (paper: none).
    """

    def __init__(self, n_in: int = 4, n_out: int = 4, patch: int = 50, width: int = 8, depth: int = 1,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.config: dict[str, Any] = dict(n_in=n_in, n_out=n_out, patch=patch, width=width, depth=depth,
                                           dropout=dropout)
        self.n_out, self.width = n_out, width
        self.encoder = nn.ModuleList([ConvLSTMCell(1 if i == 0 else width, width) for i in range(depth)])
        self.forecaster = nn.ModuleList([ConvLSTMCell(1 if i == 0 else width, width) for i in range(depth)])
        self.drop = nn.Dropout2d(dropout)
        self.head = zero_init(nn.Conv2d(width, 1, 1))
        self.skip = PersistenceSkip(n_in, 1)

    @staticmethod
    def _step(cells: nn.ModuleList, x: torch.Tensor, states: list[State]) -> list[State]:
        new = []
        for cell, state in zip(cells, states):
            state = cell(x, state)
            new.append(state)
            x = state[0]
        return new

    def forward(self, frames: torch.Tensor, targets: torch.Tensor | None = None,
                teacher_forcing: float = 0.0) -> torch.Tensor:
        """Encode the inputs, forecast recursively (teacher forcing with probability ``teacher_forcing``)."""
        zeros = (frames[:, :1] * 0.0).expand(-1, self.width, -1, -1)     # (B, width, p, p), batch-dynamic
        states: list[State] = [(zeros, zeros) for _ in self.encoder]
        for t in range(frames.shape[1]):
            states = self._step(self.encoder, frames[:, t:t + 1], states)
        fed, window = frames[:, -1:], frames
        predicted = []
        for k in range(self.n_out):
            states = self._step(self.forecaster, fed, states)
            frame = to_unit_range(self.skip(window), self.head(self.drop(states[-1][0])))
            predicted.append(frame)
            fed = targets[:, k:k + 1] if use_truth(targets, teacher_forcing) else frame
            window = torch.cat([window[:, 1:], fed], dim=1)
        return torch.cat(predicted, dim=1)
