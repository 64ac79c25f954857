"""Training losses of the TPS codec model."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..media.metrics import ssim


@dataclass(frozen=True)
class LossWeights:
    pyramid_l1: float = 10.0  # per scale
    ssim: float = 5.0
    equivariance: float = 10.0
    warp: float = 1.0
    scales: tuple[float, ...] = (1.0, 0.5, 0.25, 0.125)


def pyramid_l1(prediction: torch.Tensor, target: torch.Tensor, scales: tuple[float, ...]) -> torch.Tensor:
    """Mean absolute error summed over an image pyramid (area downsampling)."""
    total = prediction.new_zeros(())
    for s in scales:
        if s == 1.0:
            p, t = prediction, target
        else:
            size = max(int(prediction.shape[-1] * s), 8)
            p = F.interpolate(prediction, size=(size, size), mode="area")
            t = F.interpolate(target, size=(size, size), mode="area")
        total = total + (p - t).abs().mean()
    return total


def warp_loss(warped_feats: list[torch.Tensor], driving_feats: list[torch.Tensor]) -> torch.Tensor:
    """Encoder features of the driving frame against the warped (and masked) source features."""
    return sum((w - d).abs().mean() for w, d in zip(warped_feats, driving_feats))


def reconstruction_loss(prediction: torch.Tensor, target: torch.Tensor, w: LossWeights) -> dict[str, torch.Tensor]:
    return {"l1": w.pyramid_l1 * pyramid_l1(prediction, target, w.scales),
            "ssim": w.ssim * (1.0 - ssim(prediction, target)).mean()}
