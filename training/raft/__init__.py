"""RAFT and RAFT-small for glacier surface displacement (Teed & Deng 2020), in torch.

Parts, one module each: :mod:`.encoder` (feature and context encoders at
1/8 resolution), :mod:`.correlation` (all-pairs correlation pyramid and a
gather-based lookup), :mod:`.update` (motion encoder, ConvGRU, flow and mask
heads), :mod:`.raft` (the recurrent model and padding helpers),
:mod:`.export` (ONNX with a model card) and :mod:`.train` (training CLI).

Flow convention (DESIGN.md): channel 0 = dx (columns, to the right),
channel 1 = dy (rows, down), in pixels of the input image.
"""
from .raft import RAFT, RAFTConfig, pad_to_multiple, padding_for, unpad

__all__ = ["RAFT", "RAFTConfig", "pad_to_multiple", "padding_for", "unpad"]
