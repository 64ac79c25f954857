"""Small convolution blocks shared by the networks."""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


def downsample(image: torch.Tensor, size: int) -> torch.Tensor:
    """Box-filter a (B, C, S, S) tensor down to ``size`` (S a multiple of it); unchanged when already that size."""
    factor = image.shape[-1] // size
    if factor <= 1:
        return image
    return F.avg_pool2d(image, factor)


def conv_input(x: torch.Tensor) -> torch.Tensor:
    """``x`` as the convolutions after it will read it: under autocast (the receiver's bf16), in the autocast
    dtype and channels_last, converted once here rather than by every convolution (and every concatenation
    of a reduced-precision tensor with a float32 one) after it. Unchanged otherwise."""
    device = x.device.type
    if not torch.is_autocast_enabled(device):
        return x
    return x.to(torch.get_autocast_dtype(device)).contiguous(memory_format=torch.channels_last)


def conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Down(nn.Module):
    """Halve the size: strided conv, then a conv."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn_relu(cin, cout, 3, 2), conv_bn_relu(cout, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Up(nn.Module):
    """Double the size (nearest), then a conv."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = conv_bn_relu(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ResBlock(nn.Module):
    """Pre-activation residual block."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(c), nn.ReLU(inplace=False), nn.Conv2d(c, c, 3, 1, 1),
            nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.Conv2d(c, c, 3, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Hourglass(nn.Module):
    """U-Net: ``len(channels)`` halvings and back, returning the decoder features at every level.

    ``forward`` returns a list from the coarsest decoder level to full resolution.
    """

    def __init__(self, cin: int, channels: tuple[int, ...]) -> None:
        super().__init__()
        self.down = nn.ModuleList()
        c = cin
        for cout in channels:
            self.down.append(Down(c, cout))
            c = cout
        self.up = nn.ModuleList()
        skips = [cin, *channels[:-1]]
        self.out_channels: list[int] = []
        for skip in reversed(skips):
            self.up.append(Up(c, skip))
            c = skip * 2
            self.out_channels.append(c)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        skips = [x]
        for block in self.down:
            skips.append(block(skips[-1]))
        out = skips.pop()
        outs = []
        for block in self.up:
            out = torch.cat([block(out), skips.pop()], dim=1)
            outs.append(out)
        return outs
