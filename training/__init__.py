"""Torch model definitions, training and ONNX export (not plugin runtime code).

Nothing here is imported by the plugin at run time; the plugin only reads the
exported ``.onnx`` files (and their model card) with onnxruntime.
"""
