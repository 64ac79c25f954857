"""Keypoint detector run by the sender: K TPS transforms x N points, plus a strength per keypoint."""
from __future__ import annotations

import torch
from torch import nn

from .blocks import conv_bn_relu, downsample
from .config import ModelConfig
from .mobilenet import channels_after, imagenet_normalise, mobilenet_v2_features

#: MobileNetV2 blocks the detector keeps: the stem and inverted residuals up to stride 16.
MOBILENET_BLOCKS = 14


class KeypointDetector(nn.Module):
    """A CNN (a small one of its own, or MobileNetV2 to stride 16) regressing keypoint coordinates in [-1, 1]
    and strengths in [0, 1].

    The last feature map is flattened (not pooled) so the regression keeps where things are.
    It reads the picture at ``cfg.core`` px: a larger input is box-filtered down first (the sender may
    also crop at that size directly). Returns ``kp`` (B, K*N, 2) and ``strength`` (B, K*N).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.num_kp = cfg.num_keypoints
        self.size = cfg.core
        self.mobilenet = cfg.kp_backbone == "mobilenet_v2"
        if self.mobilenet:  # MobileNetV2 to stride 16 (96 channels)
            self.backbone = mobilenet_v2_features(MOBILENET_BLOCKS)
            c, side = channels_after(MOBILENET_BLOCKS), cfg.core // 16
        else:
            layers: list[nn.Module] = []
            c = 3
            for cout in cfg.kp_channels:
                layers += [conv_bn_relu(c, cout, 3, 2), conv_bn_relu(cout, cout)]
                c = cout
            self.features = nn.Sequential(*layers)
            side = cfg.core // 2 ** len(cfg.kp_channels)
        self.squeeze = conv_bn_relu(c, 32, 1)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * side * side, 512), nn.ReLU(inplace=True),
                                  nn.Linear(512, self.num_kp * 3))
        nn.init.zeros_(self.head[-1].weight)
        with torch.no_grad():
            # Start from keypoints spread over the face and full strength.
            spread = torch.rand(self.num_kp, 2) * 1.2 - 0.6
            bias = self.head[-1].bias.view(self.num_kp, 3)
            bias[:, :2] = torch.atanh(spread)
            bias[:, 2] = 3.0

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image = downsample(image, self.size)
        feats = self.backbone(imagenet_normalise(image)) if self.mobilenet else self.features(image)
        out = self.head(self.squeeze(feats)).view(-1, self.num_kp, 3)
        return torch.tanh(out[..., :2]), torch.sigmoid(out[..., 2])
