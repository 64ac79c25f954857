"""TPS generator: dense motion plus an inpainting network that warps its encoder features at every scale."""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from .blocks import Down, ResBlock, conv_bn_relu
from .config import ModelConfig
from .dense_motion import DenseMotion
from .tps import warp


def resize_flow(flow: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a (B, H, W, 2) sampling grid to (B, size, size, 2)."""
    if flow.shape[1] == size:
        return flow
    return F.interpolate(flow.permute(0, 3, 1, 2), size=(size, size), mode="bilinear",
                         align_corners=True).permute(0, 2, 3, 1)


class SourceEncoder(nn.Module):
    """Feature pyramid of an image, finest level first. Run once per reference image at the receiver."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        ch = cfg.gen_channels
        self.stem = conv_bn_relu(3, ch[0], 7)
        self.down = nn.ModuleList(Down(ch[i], ch[i + 1]) for i in range(len(ch) - 1))

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.stem(image)]
        for block in self.down:
            feats.append(block(feats[-1]))
        return feats


class Decoder(nn.Module):
    """From the warped, occlusion-masked feature pyramid to an image."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        ch = cfg.gen_channels
        self.bottleneck = nn.Sequential(*[ResBlock(ch[-1]) for _ in range(cfg.gen_res_blocks)])
        self.fuse = nn.ModuleList()
        self.res = nn.ModuleList()
        for i in reversed(range(len(ch) - 1)):
            self.fuse.append(conv_bn_relu(ch[i + 1] + ch[i], ch[i]))
            self.res.append(nn.Sequential(*[ResBlock(ch[i]) for _ in range(cfg.gen_res_blocks)]) if i > 0 else nn.Identity())
        self.out = nn.Conv2d(ch[0], 3, 7, 1, 3)

    def features(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """The full-resolution features the output layer reads."""
        x = self.bottleneck(feats[-1])
        for level, (fuse, res) in enumerate(zip(self.fuse, self.res)):
            skip = feats[-2 - level]
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = res(fuse(torch.cat([x, skip], dim=1)))
        return x

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return torch.sigmoid(self.out(self.features(feats)))


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
        return [warp(f, resize_flow(flow, f.shape[-1])) * occ for f, occ in zip(feats, occlusion)]

    def forward(self, source: torch.Tensor, kp_src: torch.Tensor, str_src: torch.Tensor,
                kp_drv: torch.Tensor, str_drv: torch.Tensor,
                source_feats: list[torch.Tensor] | None = None) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """``source_feats`` may carry the encoder pyramid of ``source`` computed earlier (receiver cache)."""
        motion = self.dense_motion(source, kp_src, str_src, kp_drv, str_drv)
        flow, occlusion = motion["flow"], motion["occlusion"]
        feats = self.encoder(source) if source_feats is None else source_feats
        warped = self.warp_features(feats, flow, occlusion)
        generated = self.decoder(warped)
        warped_source = warp(source, flow)
        occ = occlusion[0]
        prediction = generated * (1.0 - occ) + warped_source * occ
        return {"prediction": prediction, "warped_source": warped_source, "warped_feats": warped, **motion}
