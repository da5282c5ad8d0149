"""Names shared by the plugin's ui, processing and core layers; imports nothing, so any layer may use it."""
from __future__ import annotations

import os

PLUGIN_NAME = "glacierflow"
PROVIDER_ID = "glacierflow"  # Processing algorithm ids are "glacierflow:<name>"
PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))
ASSETS_DIR = os.path.join(PLUGIN_DIR, "assets")
# Shipped ONNX models, one folder per task: each file carries its own card (DESIGN.md).
RAFT_MODELS_DIR = os.path.join(ASSETS_DIR, "models", "raft")
FORECAST_MODELS_DIR = os.path.join(ASSETS_DIR, "models", "forecast")
ICON_PATH = os.path.join(PLUGIN_DIR, "icon.svg")
