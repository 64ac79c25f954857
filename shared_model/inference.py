"""Per-frame inference for a call: the sender's keypoint extractor and the receiver's renderer."""
from __future__ import annotations

import numpy as np
import torch

from .model import TPSModel
from .references import ReferencePicker


def to_tensor(images: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """uint8 RGB (H, W, 3) or (B, H, W, 3) to float (B, 3, H, W) in [0, 1]."""
    if images.ndim == 3:
        images = images[None]
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float() / 255.0


def to_image(tensor: torch.Tensor) -> np.ndarray:
    """float (1, 3, H, W) in [0, 1] to uint8 RGB (H, W, 3)."""
    return (tensor[0].clamp(0, 1).permute(1, 2, 0) * 255.0).round().byte().cpu().numpy()


class KeypointExtractor:
    """Sender side: a face-cropped frame at model resolution to keypoints (P, 2) and strengths (P,)."""

    def __init__(self, model: TPSModel, device: torch.device | str = "cpu") -> None:
        self.model, self.device = model, torch.device(device)

    @torch.inference_mode()
    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kp, strength = self.model.detector(to_tensor(frame, self.device))
        return kp[0].cpu().numpy(), strength[0].cpu().numpy()


class Renderer:
    """Receiver side: holds the references with their keypoints and encoder features computed once,
    and rebuilds a frame from received keypoints using the reference that suits them best."""

    def __init__(self, model: TPSModel, references: list[np.ndarray], device: torch.device | str = "cpu") -> None:
        if not references:
            raise ValueError("at least one reference image is needed")
        self.model, self.device = model, torch.device(device)
        res = model.cfg.resolution
        with torch.inference_mode():
            self.sources = [to_tensor(r, self.device) for r in references]
            for s in self.sources:
                if s.shape[-1] != res or s.shape[-2] != res:
                    raise ValueError(f"reference images must be {res}x{res}, got {tuple(s.shape[-2:])}")
            kps = [model.detector(s) for s in self.sources]
            self.kp = torch.cat([k for k, _ in kps])
            self.strength = torch.cat([st for _, st in kps])
            self.feats = [model.generator.encoder(s) for s in self.sources]
        self.picker = ReferencePicker(self.kp, self.strength)

    @torch.inference_mode()
    def render(self, kp: np.ndarray, strength: np.ndarray) -> tuple[np.ndarray, int]:
        """The rebuilt frame (uint8 RGB) and the index of the reference used."""
        kp_t = torch.as_tensor(kp, dtype=torch.float32, device=self.device)
        st_t = torch.as_tensor(strength, dtype=torch.float32, device=self.device)
        i = self.picker(kp_t, st_t)
        out = self.model.generator(self.sources[i], self.kp[i : i + 1], self.strength[i : i + 1],
                                   kp_t[None], st_t[None], source_feats=self.feats[i])
        return to_image(out["prediction"]), i
