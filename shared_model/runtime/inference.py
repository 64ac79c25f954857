"""Per-frame inference for a call: the sender's keypoint extractor and the receiver's renderer."""
from __future__ import annotations

import contextlib
import logging

import numpy as np
import torch

from ..media.references import ReferencePicker
from ..nets.model import CodecModel

log = logging.getLogger(__name__)


def to_tensor(images: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """uint8 RGB (H, W, 3) or (B, H, W, 3) to float (B, 3, H, W) in [0, 1]."""
    if images.ndim == 3:
        images = images[None]
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float() / 255.0


def to_image(tensor: torch.Tensor) -> np.ndarray:
    """float (1, 3, H, W) in [0, 1] to uint8 RGB (H, W, 3)."""
    return (tensor[0].float().clamp(0, 1).permute(1, 2, 0) * 255.0).round().byte().cpu().numpy()


#: torch dtypes of the reduced precisions the torch backend runs under autocast.
AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def precision_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast to ``precision`` (fp32: none)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AUTOCAST[precision])


class KeypointExtractor:
    """Sender side: a face-cropped frame at model resolution to keypoints (P, 2) and strengths (P,)."""

    def __init__(self, model: CodecModel, device: torch.device | str = "cpu", precision: str = "fp32") -> None:
        self.model, self.device, self.precision = model, torch.device(device), precision

    @torch.inference_mode()
    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with precision_context(self.device, self.precision):
            kp, strength = self.model.detector(to_tensor(frame, self.device))
        return kp[0].float().cpu().numpy(), strength[0].float().cpu().numpy()


def spread_subset(count: int, limit: int) -> list[int]:
    """``limit`` indices spread evenly over ``count`` items (all of them when there are few enough)."""
    if count <= limit:
        return list(range(count))
    return sorted({int(round(i)) for i in np.linspace(0, count - 1, limit)})


class Renderer:
    """Receiver side: holds the references with their keypoints and features computed once, and rebuilds
    a frame from received keypoints.

    ``tps`` renders from the one reference whose keypoints suit the frame best; ``iw`` attends over all the
    references at once (at most ``cfg.iw_max_refs``; a larger set is thinned evenly, with a warning).
    ``render`` returns the frame and the index of the reference nearest in keypoints (for ``iw``, the one
    shown as the frozen-reference baseline).
    """

    def __init__(self, model: CodecModel, references: list[np.ndarray], device: torch.device | str = "cpu",
                 precision: str = "fp32") -> None:
        if not references:
            raise ValueError("at least one reference image is needed")
        self.model, self.device, self.precision = model, torch.device(device), precision
        res = model.cfg.resolution
        with torch.inference_mode():
            self.sources = [to_tensor(r, self.device) for r in references]
            for s in self.sources:
                if s.shape[-1] != res or s.shape[-2] != res:
                    raise ValueError(f"reference images must be {res}x{res}, got {tuple(s.shape[-2:])}")
            kps = [model.detector(s) for s in self.sources]
            self.kp = torch.cat([k for k, _ in kps])
            self.strength = torch.cat([st for _, st in kps])
            if model.kind == "tps":
                self.feats = [model.generator.encoder(s) for s in self.sources]
            else:
                keep = spread_subset(len(self.sources), model.cfg.iw_max_refs)
                if len(keep) < len(self.sources):
                    log.warning("%d references given, iw attends over at most %d: using %s", len(self.sources),
                                len(keep), keep)
                self.reference_set = model.generator.prepare(torch.cat([self.sources[i] for i in keep])[None],
                                                             self.kp[keep][None], self.strength[keep][None])
        self.picker = ReferencePicker(self.kp, self.strength)

    @torch.inference_mode()
    def render(self, kp: np.ndarray, strength: np.ndarray) -> tuple[np.ndarray, int]:
        """The rebuilt frame (uint8 RGB) and the index of the reference nearest in keypoints."""
        kp_t = torch.as_tensor(kp, dtype=torch.float32, device=self.device)[None]
        st_t = torch.as_tensor(strength, dtype=torch.float32, device=self.device)[None]
        i = self.picker(kp_t[0], st_t[0])
        with precision_context(self.device, self.precision):
            if self.model.kind == "tps":
                out = self.model.generator(self.sources[i], self.kp[i : i + 1], self.strength[i : i + 1],
                                           kp_t, st_t, source_feats=self.feats[i])
            else:
                out = self.model.generator(self.reference_set, kp_t, st_t)
        return to_image(out["prediction"]), i
