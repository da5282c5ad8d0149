"""The forecaster families by name: build one from its name and config (what checkpoints store)."""
from __future__ import annotations

from typing import Any

from torch import nn

from .convlstm import ConvLSTMForecaster
from .lstm_encdec import LSTMEncoderDecoder
from .sa_lstm import SALSTMH
from .transformer import FrameTransformer
from .unet import UNet

# name -> (class, architecture written to the card, recursive decoder: teacher forcing applies)
FAMILIES: dict[str, tuple[type[nn.Module], str, bool]] = {
    "sa_lstm": (SALSTMH, "SA-LSTM-H", True),
    "lstm_encdec": (LSTMEncoderDecoder, "LSTM encoder-decoder", True),
    "convlstm": (ConvLSTMForecaster, "ConvLSTM encoder-forecaster", True),
    "unet": (UNet, "U-net", False),
    "transformer": (FrameTransformer, "Transformer", False),
}
MODEL_NAMES = tuple(FAMILIES)


def build_model(name: str, **config: Any) -> nn.Module:
    """A fresh forecaster of family ``name`` (see :data:`FAMILIES`) with its constructor ``config``."""
    if name not in FAMILIES:
        raise ValueError(f"unknown forecaster {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    return FAMILIES[name][0](**config)


def architecture(name: str) -> str:
    """The architecture's name as the card writes it."""
    return FAMILIES[name][1]


def is_recursive(name: str) -> bool:
    """True when the family decodes one frame at a time (teacher forcing applies)."""
    return FAMILIES[name][2]
