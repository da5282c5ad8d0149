"""NDSI forecasters (torch, training and export only; the plugin runs the exported ONNX files).

Every model maps ``frames`` (batch, n_in, p, p) float32 masked NDSI in [0, 1]
to ``forecast`` (batch, n_out, p, p) in [0, 1]; build one by name with
:func:`training.forecast.registry.build_model`.
"""
