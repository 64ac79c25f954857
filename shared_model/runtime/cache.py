"""Where exported ONNX graphs are kept by default (no torch here: the signaling server serves them)."""
from __future__ import annotations

import os
from pathlib import Path


def onnx_cache_root() -> Path:
    """``$XDG_CACHE_HOME/keypoint-codec/onnx`` (``~/.cache/…``): one folder per model and weights version."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "keypoint-codec" / "onnx"
