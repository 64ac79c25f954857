"""TPS generator: dense motion plus an inpainting network that warps its encoder features at every scale."""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from .blocks import Down, ResBlock, conv_bn_relu, conv_input, downsample
from .config import ModelConfig
from .dense_motion import DenseMotion, resize_flow
from .tps import warp


class SourceEncoder(nn.Module):
    """Feature pyramid of an image, finest level first. Run once per reference image at the receiver.

    The core levels read the picture at ``cfg.core`` px; each full-resolution level is one light
    convolution of the picture at that level's size.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        ch = cfg.gen_channels
        self.core = cfg.core
        self.stem = conv_bn_relu(3, ch[0], 7)
        self.down = nn.ModuleList(Down(ch[i], ch[i + 1]) for i in range(len(ch) - 1))
        self.hr_stems = nn.ModuleList(conv_bn_relu(3, c, 3) for c in cfg.hr_channels)  # coarsest first

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.stem(downsample(image, self.core))]
        for block in self.down:
            feats.append(block(feats[-1]))
        size = self.core
        for stem in self.hr_stems:
            size *= 2
            feats.insert(0, stem(downsample(image, size)))
        return feats


class Decoder(nn.Module):
    """From the warped, occlusion-masked feature pyramid to an image.

    Each full-resolution level fuses the upsampled features with that level's warped features (1x1: a level of
    the output's size must stay cheap) and adds a correction to the upsampled output logits (zero at the start).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        ch = cfg.gen_channels
        self.hr_levels = len(cfg.hr_channels)
        self.bottleneck = nn.Sequential(*[ResBlock(ch[-1]) for _ in range(cfg.gen_res_blocks)])
        self.fuse = nn.ModuleList()
        self.res = nn.ModuleList()
        for i in reversed(range(len(ch) - 1)):
            self.fuse.append(conv_bn_relu(ch[i + 1] + ch[i], ch[i]))
            self.res.append(nn.Sequential(*[ResBlock(ch[i]) for _ in range(cfg.gen_res_blocks)]) if i > 0 else nn.Identity())
        self.out = nn.Conv2d(ch[0], 3, 7, 1, 3)
        self.hr_fuse = nn.ModuleList()
        self.hr_out = nn.ModuleList()
        c = ch[0]
        for hc in cfg.hr_channels:
            self.hr_fuse.append(conv_bn_relu(c + hc, hc, 1))
            self.hr_out.append(nn.Conv2d(hc, 3, 1))
            nn.init.zeros_(self.hr_out[-1].weight)
            nn.init.zeros_(self.hr_out[-1].bias)
            c = hc

    def features(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """The core-resolution features the output layer reads (``feats``: the core levels only)."""
        x = self.bottleneck(feats[-1])
        for level, (fuse, res) in enumerate(zip(self.fuse, self.res)):
            skip = feats[-2 - level]
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = res(fuse(torch.cat([x, skip], dim=1)))
        return x

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """``feats``: every level, finest first (full-resolution levels, then the core levels)."""
        hr = feats[: self.hr_levels]
        x = self.features(feats[self.hr_levels :])
        logits = self.out(x)
        for fuse, out, skip in zip(self.hr_fuse, self.hr_out, reversed(hr)):
            x = fuse[2](fuse[1](fuse_upsampled(fuse[0], x, skip)))
            logits = F.interpolate(logits, scale_factor=2.0, mode="bilinear", align_corners=False) + out(x)
        return torch.sigmoid(logits)


def fuse_upsampled(conv: nn.Conv2d, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """``conv(cat([upsample_nearest_2x(x), skip]))`` for a 1x1 ``conv`` without its concatenation at full size:
    a 1x1 convolution commutes with nearest upsampling, so ``x``'s share is computed at half size."""
    c = x.shape[1]
    return F.interpolate(F.conv2d(x, conv.weight[:, :c]), scale_factor=2.0, mode="nearest") \
        + F.conv2d(skip, conv.weight[:, c:], conv.bias)


class TPSGenerator(nn.Module):
    """Rebuilds the driving frame from a source image, source keypoints and driving keypoints."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.dense_motion = DenseMotion(cfg)
        self.encoder = SourceEncoder(cfg)
        self.decoder = Decoder(cfg)

    def warp_features(self, feats: list[torch.Tensor], flow: torch.Tensor,
                      occlusion: list[torch.Tensor]) -> list[torch.Tensor]:
        return [conv_input(warp(f, resize_flow(flow, f.shape[-1])) * occ) for f, occ in zip(feats, occlusion)]

    def forward(self, source: torch.Tensor, kp_src: torch.Tensor, str_src: torch.Tensor,
                kp_drv: torch.Tensor, str_drv: torch.Tensor,
                source_feats: list[torch.Tensor] | None = None) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """``source`` at the output resolution; ``source_feats`` may carry its encoder pyramid computed
        earlier (receiver cache)."""
        motion = self.dense_motion(source, kp_src, str_src, kp_drv, str_drv)
        flow, occlusion = motion["flow"], motion["occlusion"]
        feats = self.encoder(source) if source_feats is None else source_feats
        warped = self.warp_features(feats, flow, occlusion)
        generated = self.decoder(warped)
        warped_source = motion["warped_source"]
        occ = occlusion[0]
        prediction = generated * (1.0 - occ) + warped_source * occ
        return {"prediction": prediction, "warped_feats": warped, **motion}
