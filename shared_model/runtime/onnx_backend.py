"""onnxruntime versions of ``KeypointExtractor`` and ``Renderer``, running the graphs ``shared_model.export`` writes.

Provider choice: the CUDA provider when onnxruntime offers it, else the CPU provider with a warning; the
providers a session really got are checked after it is created, since onnxruntime falls back to the CPU on
its own when there is no GPU or the CUDA libraries do not load (a warning is logged then too).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from ..media.references import ReferencePicker
from ..nets.model import TPSModel
from .graphs import META_FILE, PARTS, feature_names
from .quantize import INT8_SUFFIX

log = logging.getLogger(__name__)

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


class OnnxModelError(RuntimeError):
    """The ONNX folder is missing, incomplete, or exported from other weights."""


def providers_for(device: str) -> list[str]:
    """Execution providers to ask for: ``auto`` prefers CUDA when this onnxruntime offers it, ``cuda`` insists.
    Whether a GPU really serves it shows only once a session exists (``create_session`` checks)."""
    offered = CUDA in ort.get_available_providers()
    if device == "cuda" and not offered:
        raise RuntimeError("--device cuda asked for, but this onnxruntime has no CUDA provider "
                           "(install onnxruntime-gpu instead of onnxruntime)")
    if device != "cpu" and offered:
        return [CUDA, CPU]
    if device == "auto":
        log.warning("onnxruntime runs on the CPU: it has no CUDA provider")
    return [CPU]


def create_session(path: Path, wanted: list[str], threads: int | None = None) -> ort.InferenceSession:
    """A session on the ``wanted`` providers, warning when CUDA was wanted but did not load (no GPU, or
    missing CUDA / cuDNN libraries: onnxruntime then falls back to the CPU on its own)."""
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=wanted)
    got = session.get_providers()
    if wanted[0] == CUDA and got[0] != CUDA:
        log.warning("%s: the CUDA provider did not load (no GPU or no CUDA libraries): running on %s",
                    path.name, got[0])
    return session


def image_input(image: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) to float32 (1, 3, H, W) in [0, 1], as ``inference.to_tensor``."""
    return np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255.0)


def image_output(prediction: np.ndarray) -> np.ndarray:
    """float (1, 3, H, W) in [0, 1] to uint8 RGB (H, W, 3), as ``inference.to_image``."""
    return (np.clip(prediction[0], 0.0, 1.0).transpose(1, 2, 0) * 255.0).round().astype(np.uint8)


class OnnxModel:
    """The three sessions of an exported model, checked against the weights this end loaded."""

    def __init__(self, folder: str | Path, model: TPSModel, device: str = "auto", parts: tuple[str, ...] = PARTS,
                 threads: int | None = None, precision: str = "fp32") -> None:
        folder = Path(folder)
        meta_path = folder / META_FILE
        files = {part: f"{part}{INT8_SUFFIX}" if precision == "int8" and part == "generator" else f"{part}.onnx"
                 for part in parts}
        missing = [p for p in (META_FILE, *files.values()) if not (folder / p).is_file()]
        if missing:
            raise OnnxModelError(f"{folder} lacks {', '.join(missing)}: run python -m shared_model.export")
        meta = json.loads(meta_path.read_text())
        if (meta.get("model"), meta.get("model_version")) != (model.model_id, model.version):
            raise OnnxModelError(f"{folder} holds model {meta.get('model')!r} version {meta.get('model_version')!r}, "
                                 f"not {model.model_id!r} version {model.version!r}: export it again")
        self.model = model
        providers = providers_for(device)
        self.sessions = {part: create_session(folder / name, providers, threads) for part, name in files.items()}
        log.info("onnxruntime providers: %s", {p: s.get_providers()[0] for p, s in self.sessions.items()})

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints (P, 2) and strengths (P,) of a uint8 RGB image at model resolution."""
        kp, strength = self.sessions["detector"].run(None, {"image": image_input(image)})
        return kp[0], strength[0]


class OnnxKeypointExtractor:
    """Sender side, as ``inference.KeypointExtractor``."""

    def __init__(self, onnx: OnnxModel) -> None:
        self.onnx = onnx

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.onnx.detect(frame)


class OnnxRenderer:
    """Receiver side, as ``inference.Renderer``: references' keypoints and encoder features computed once,
    the reference that suits a frame picked with hysteresis, the frame rebuilt by the generator graph."""

    def __init__(self, onnx: OnnxModel, references: list[np.ndarray]) -> None:
        if not references:
            raise ValueError("at least one reference image is needed")
        res = onnx.model.cfg.resolution
        for r in references:
            if r.shape != (res, res, 3):
                raise ValueError(f"reference images must be {res}x{res}, got {r.shape[:2]}")
        self.onnx = onnx
        self.sources = [image_input(r) for r in references]
        detected = [onnx.detect(r) for r in references]
        self.kp = np.stack([k for k, _ in detected])
        self.strength = np.stack([s for _, s in detected])
        names = feature_names(onnx.model)
        self.feats = [dict(zip(names, onnx.sessions["encoder"].run(None, {"image": s}))) for s in self.sources]
        self.picker = ReferencePicker(torch.from_numpy(self.kp), torch.from_numpy(self.strength))

    def render(self, kp: np.ndarray, strength: np.ndarray) -> tuple[np.ndarray, int]:
        """The rebuilt frame (uint8 RGB) and the index of the reference used."""
        kp = np.asarray(kp, np.float32)
        strength = np.asarray(strength, np.float32)
        i = self.picker(torch.from_numpy(kp), torch.from_numpy(strength))
        inputs = {"source": self.sources[i], "kp_source": self.kp[i : i + 1],
                  "strength_source": self.strength[i : i + 1], "kp_driving": kp[None],
                  "strength_driving": strength[None], **self.feats[i]}
        (prediction,) = self.onnx.sessions["generator"].run(None, inputs)
        return image_output(prediction), i
