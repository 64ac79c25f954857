"""One switch between torch and onnxruntime for the sender's extractor and the receiver's renderer."""
from __future__ import annotations

import argparse
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from ..nets.model import DEFAULT_MODEL, CodecModel, load_model, pick_device
from .cache import onnx_cache_root
from .inference import KeypointExtractor, ReferenceRenderer, Renderer

if TYPE_CHECKING:
    from .onnx_backend import OnnxModel

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx")
#: Precisions each backend runs: torch under autocast (bf16 / fp16), onnxruntime with the int8 generator.
PRECISIONS = {"torch": ("fp32", "bf16", "fp16"), "onnx": ("fp32", "int8")}


def auto_precision(backend: str, device: torch.device) -> str:
    """``--precision auto``: bf16 with torch on a CPU that computes in bf16 natively (avx512_bf16 / AMX: the
    receiver 1.7x faster for -0.03 dB on the held-out people, docs/model.md), else fp32 (a CPU without it only
    emulates bf16; the GPU's reduced precision is not measured yet)."""
    if backend == "torch" and device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return "bf16"
    return "fp32"


class Extractor(Protocol):
    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def add_model_arguments(parser: argparse.ArgumentParser, default_model: str | None = DEFAULT_MODEL,
                        model_help: str = f"(default {DEFAULT_MODEL})") -> None:
    """``--model --backend --device --onnx-dir``, the same on both ends."""
    g = parser.add_argument_group("model")
    g.add_argument("--model", default=default_model, help=f"shipped model name or weights file {model_help}")
    g.add_argument("--backend", choices=BACKENDS, default="torch", help="run the networks with torch or onnxruntime")
    g.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto", help="GPU when present (auto)")
    g.add_argument("--precision", choices=["auto", *sorted({p for ps in PRECISIONS.values() for p in ps})],
                   default="auto", help="int8: onnxruntime's quantized generator (--backend onnx); bf16 / fp16: "
                                        "torch autocast; auto (default): bf16 with torch on a CPU with native bf16, "
                                        "else fp32")
    g.add_argument("--threads", type=int, help="CPU threads per network run (default: torch's / onnxruntime's "
                                               "choice; 1 is best on a CPU busy with other work)")
    g.add_argument("--onnx-dir", help="exported ONNX graphs for --backend onnx (default: exported on first use "
                                      "to ~/.cache/keypoint-codec/onnx/MODEL-VERSION)")


def default_onnx_dir(model: CodecModel) -> Path:
    return onnx_cache_root() / f"{model.model_id}-{model.version}"


class Backend:
    """A loaded model and the way to run it, built from the ``add_model_arguments`` flags."""

    def __init__(self, model: str, backend: str = "torch", device: str = "auto", onnx_dir: str | None = None,
                 threads: int | None = None, precision: str = "fp32") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}")
        if precision == "auto":
            precision = auto_precision(backend, pick_device(device) if backend == "torch" else torch.device("cpu"))
        if precision not in PRECISIONS[backend]:
            raise ValueError(f"--precision {precision} is not one --backend {backend} runs "
                             f"({', '.join(PRECISIONS[backend])})")
        if threads is not None and threads < 1:
            raise ValueError("--threads must be at least 1")
        if threads:
            torch.set_num_threads(threads)
        self.kind, self.requested_device, self.threads, self.precision = backend, device, threads, precision
        self.device = pick_device(device) if backend == "torch" else pick_device("cpu")
        self.model = load_model(model, self.device)
        if backend == "onnx" and self.model.kind != "tps":
            raise ValueError(f"--backend onnx covers the tps generator only; run {self.model.model_id} "
                             f"({self.model.kind}) with --backend torch")
        self.onnx_dir = Path(onnx_dir) if onnx_dir else default_onnx_dir(self.model)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Backend:
        return cls(args.model, args.backend, args.device, args.onnx_dir, args.threads, args.precision)

    def _onnx(self, parts: tuple[str, ...]) -> OnnxModel:
        from .graphs import META_FILE, export_model
        from .onnx_backend import OnnxModel  # onnxruntime only when asked for

        if not (self.onnx_dir / META_FILE).is_file():
            log.info("no ONNX export of %s yet: exporting to %s (once)", self.model.model_id, self.onnx_dir)
            # Export beside the target and rename, so a peer starting at the same moment never reads half a folder.
            tmp = self.onnx_dir.with_name(f"{self.onnx_dir.name}.tmp{os.getpid()}")
            export_model(self.model, tmp)
            try:
                tmp.rename(self.onnx_dir)
            except OSError:  # the other peer finished first
                shutil.rmtree(tmp, ignore_errors=True)
        return OnnxModel(self.onnx_dir, self.model, self.requested_device, parts, self.threads, self.precision)

    def extractor(self) -> Extractor:
        if self.kind == "torch":
            return KeypointExtractor(self.model, self.device, self.precision)
        from .onnx_backend import OnnxKeypointExtractor

        return OnnxKeypointExtractor(self._onnx(("detector",)))

    def renderer(self, references: list[np.ndarray]) -> ReferenceRenderer:
        if self.kind == "torch":
            return Renderer(self.model, references, self.device, self.precision)
        from .onnx_backend import OnnxRenderer

        return OnnxRenderer(self._onnx(("detector", "encoder", "generator")), references)
