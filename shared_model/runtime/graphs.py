"""The three ONNX graphs a model is exported to (static shapes, batch 1), their inputs and names, and the
export itself: ``detector.onnx`` (image -> keypoints, strengths; sender), ``encoder.onnx`` (image -> feature
pyramid; run once per reference at the receiver), ``generator.onnx`` (source image, source and driving
keypoints and strengths, cached encoder features -> rebuilt frame; dense motion, TPS solve, warps and
decoder) and ``meta.json`` naming the model id and version they were exported from.
"""
from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from ..nets.model import TPSModel

log = logging.getLogger(__name__)

OPSET = 18
PARTS = ("detector", "encoder", "generator")
META_FILE = "meta.json"
#: Loggers of the exporter and its graph optimizer, chatty at INFO / WARNING about things that do not matter
#: here (e.g. torchvision ops this model does not use).
_NOISY_LOGGERS = ("torch.onnx", "onnxscript", "onnx_ir")


class _Encoder(nn.Module):
    """The source encoder with its pyramid as a tuple (ONNX outputs are flat)."""

    def __init__(self, model: TPSModel) -> None:
        super().__init__()
        self.encoder = model.generator.encoder

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.encoder(image))


class _Generator(nn.Module):
    """The generator with the encoder features as inputs and only the prediction as output."""

    def __init__(self, model: TPSModel) -> None:
        super().__init__()
        self.generator = model.generator

    def forward(self, source: torch.Tensor, kp_source: torch.Tensor, strength_source: torch.Tensor,
                kp_driving: torch.Tensor, strength_driving: torch.Tensor, *features: torch.Tensor) -> torch.Tensor:
        return self.generator(source, kp_source, strength_source, kp_driving, strength_driving,
                              source_feats=list(features))["prediction"]


def feature_names(model: TPSModel) -> list[str]:
    return [f"feature_{i}" for i in range(len(model.cfg.hr_channels) + len(model.cfg.gen_channels))]


def example_inputs(model: TPSModel) -> dict[str, tuple[torch.Tensor, ...]]:
    """Batch-1 inputs of every part (their shapes become the graphs' static shapes)."""
    res = model.cfg.resolution
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, res, res, generator=gen)
    with torch.inference_mode():
        kp, strength = model.detector(image)
        feats = model.generator.encoder(image)
    kp_driving = (kp + 0.05 * torch.randn(kp.shape, generator=gen)).clamp(-1, 1)
    return {"detector": (image,), "encoder": (image,),
            "generator": (image, kp, strength, kp_driving, strength, *feats)}


def part_modules(model: TPSModel) -> dict[str, nn.Module]:
    return {"detector": model.detector, "encoder": _Encoder(model), "generator": _Generator(model)}


def io_names(model: TPSModel) -> dict[str, tuple[list[str], list[str]]]:
    feats = feature_names(model)
    return {"detector": (["image"], ["keypoints", "strengths"]),
            "encoder": (["image"], feats),
            "generator": (["source", "kp_source", "strength_source", "kp_driving", "strength_driving", *feats],
                          ["prediction"])}


def export_model(model: TPSModel, out: str | Path, int8: bool = True) -> Path:
    """Write the three graphs (and, with ``int8``, the quantized generator) and meta.json to ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    inputs, names = example_inputs(model), io_names(model)
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for part, module in part_modules(model).items():
        path = out / f"{part}.onnx"
        log.info("exporting %s to %s", part, path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter warns about torchvision ops this model does not use
            torch.onnx.export(module, inputs[part], path, input_names=names[part][0], output_names=names[part][1],
                              opset_version=OPSET, dynamo=True, external_data=False, verbose=False)
    if int8:
        from .quantize import quantize_generator

        quantize_generator(out, model)
    meta = {"model": model.model_id, "model_version": model.version, "detector_version": model.detector_version,
            "resolution": model.cfg.resolution,
            "num_keypoints": model.cfg.num_keypoints, "opset": OPSET, "torch": torch.__version__, "int8": int8}
    (out / META_FILE).write_text(json.dumps(meta, indent=1))
    return out
