"""int8 static quantization of the exported generator for onnxruntime on CPUs.

onnxruntime's QDQ format, convolutions only (weights int8 per channel, activations uint8), calibrated with
min/max ranges on frames of the generated talking face (``training.synthetic``: no data set needed). The
TPS solve, grid samples and everything else stay float32. On the development CPU (AVX-512 VNNI) the int8
generator renders about 2.5 times faster; its quality cost on real held-out clips is in docs/model.md.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..media.crop import clip_crop
from ..nets.model import TPSModel
from .graphs import io_names

log = logging.getLogger(__name__)

INT8_SUFFIX = ".int8.onnx"


def calibration_feeds(model: TPSModel, clips: int = 3, frames: int = 24) -> list[dict[str, np.ndarray]]:
    """Generator inputs for generated clips: each clip's first frame as the reference, later frames driving."""
    from ..training.synthetic import talking_face

    res = model.cfg.resolution
    names = io_names(model)["generator"][0]
    feeds = []
    with torch.inference_mode():
        for seed in range(clips):
            raw = talking_face(frames=frames, size=max(256, res), seed=100 + seed)
            crop = clip_crop(raw)
            images = torch.from_numpy(np.stack([crop.apply(f, res) for f in raw])).permute(0, 3, 1, 2).float() / 255
            kp, strength = model.detector(images)
            source = images[:1]
            feats = model.generator.encoder(source)
            for i in range(1, frames, 3):
                values = (source, kp[:1], strength[:1], kp[i : i + 1], strength[i : i + 1], *feats)
                feeds.append({n: v.numpy() for n, v in zip(names, values)})
    return feeds


def quantize_generator(folder: str | Path, model: TPSModel) -> Path:
    """Write ``generator.int8.onnx`` beside the exported ``generator.onnx``; returns its path."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    class Feeds(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter(calibration_feeds(model))

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.feeds, None)

    folder = Path(folder)
    out = folder / f"generator{INT8_SUFFIX}"
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "generator.pre.onnx"
        quant_pre_process(str(folder / "generator.onnx"), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(out), Feeds(), quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"],
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)
    log.info("wrote %s", out)
    return out
