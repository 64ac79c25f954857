"""Training losses of the codec model."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from ..media.metrics import ssim
from ..nets.mobilenet import imagenet_normalise, load_imagenet, mobilenet_v2_features


@dataclass(frozen=True)
class LossWeights:
    pyramid_l1: float = 10.0  # per scale
    ssim: float = 5.0
    equivariance: float = 10.0
    warp: float = 1.0
    feature: float = 0.0  # ImageNet MobileNetV2 feature L1 (summed over FEATURE_TAPS); 0: off
    scales: tuple[float, ...] = (1.0, 0.5, 0.25, 0.125)


#: MobileNetV2 blocks whose outputs the feature loss compares: ends of the stride-4, -8 and -16 stages.
FEATURE_TAPS = (4, 7, 14)


class FeatureNet(nn.Module):
    """Frozen ImageNet MobileNetV2, returning the features at ``FEATURE_TAPS``."""

    def __init__(self) -> None:
        super().__init__()
        self.features = mobilenet_v2_features(max(FEATURE_TAPS))
        load_imagenet(self.features)
        self.requires_grad_(False)
        self.eval()

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x, out = imagenet_normalise(image), []
        for i, block in enumerate(self.features, start=1):
            x = block(x)
            if i in FEATURE_TAPS:
                out.append(x)
        return out


@lru_cache(maxsize=None)
def feature_net(device: str) -> FeatureNet:
    return FeatureNet().to(device)


def feature_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between the MobileNetV2 features of the prediction and of the target, summed over taps."""
    net = feature_net(str(prediction.device))
    with torch.no_grad():
        want = net(target)
    return sum((p - t).abs().mean() for p, t in zip(net(prediction), want))


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
    """The image losses, in float32 even under autocast: SSIM's variance terms cancel badly in bf16 (its ratio
    reached infinity on real batches)."""
    with torch.autocast(prediction.device.type, enabled=False):
        prediction, target = prediction.float(), target.float()
        losses = {"l1": w.pyramid_l1 * pyramid_l1(prediction, target, w.scales),
                  "ssim": w.ssim * (1.0 - ssim(prediction, target)).mean()}
    if w.feature:
        losses["feature"] = w.feature * feature_loss(prediction, target)
    return losses
