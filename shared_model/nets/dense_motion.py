"""Dense motion network: blends K TPS warps and the identity into one flow, and predicts occlusion masks."""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from .blocks import Hourglass, Up, conv_input
from .config import ModelConfig
from .tps import make_grid, squared_distances, tps_apply, tps_params, warp


def keypoint_heatmaps(kp: torch.Tensor, strength: torch.Tensor, h: int, w: int, variance: float) -> torch.Tensor:
    """One Gaussian map per keypoint, scaled by its strength: (B, P, h, w)."""
    grid = make_grid(h, w, kp.device, kp.dtype).view(1, h * w, 2)
    d2 = squared_distances(kp, grid).view(kp.shape[0], kp.shape[1], h, w)
    return torch.exp(-0.5 * d2 / variance) * strength[:, :, None, None]


class DenseMotion(nn.Module):
    """Predicts, at core/motion_scale, K+1 contribution maps and occlusion masks for every generator level.

    The flow is composed at core / flow_scale: each TPS mapping is evaluated on that grid and blended with
    the upsampled contribution maps, so the warp stays sharp while the network runs small. Finer levels get
    the flow upsampled (it is smooth); the full-resolution levels' occlusion masks are the finest core mask
    upsampled.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        k = cfg.num_tps
        cin = 3 * (k + 1) + cfg.num_keypoints
        self.hourglass = Hourglass(cin, cfg.motion_channels)
        c_last = self.hourglass.out_channels[-1]
        self.maps = nn.Conv2d(c_last, k + 1, 7, 1, 3)
        # Occlusion masks: one per core generator level. Levels at or below the motion resolution read
        # hourglass outputs; finer levels come from extra up-blocks.
        self.levels = len(cfg.gen_channels)
        motion_res = cfg.core // cfg.motion_scale
        self.level_sizes = [cfg.core // 2**i for i in range(self.levels)]  # finest first
        finer = [s for s in self.level_sizes if s > motion_res]
        self.extra_up = nn.ModuleList()
        c = c_last
        for _ in finer:
            self.extra_up.append(Up(c, 16))
            c = 16
        self.occlusion = nn.ModuleDict()
        chans = dict(zip([motion_res // 2**i for i in range(len(self.hourglass.out_channels))],
                         reversed(self.hourglass.out_channels)))
        chans.update({s: 16 for s in finer})
        for s in self.level_sizes:
            self.occlusion[str(s)] = nn.Conv2d(chans[s], 1, 7, 1, 3)
        self.hr_levels = len(cfg.hr_channels)
        self.dropout_p = 0.0

    def forward(self, source: torch.Tensor, kp_src: torch.Tensor, str_src: torch.Tensor,
                kp_drv: torch.Tensor, str_drv: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """``source`` at the output resolution. Returns the flow (output resolution), the contribution maps,
        the occlusion masks (finest first, one per generator level) and the reference warped by the flow."""
        cfg = self.cfg
        b = source.shape[0]
        k, n = cfg.num_tps, cfg.points_per_tps
        core, fine = cfg.core, cfg.core // cfg.flow_scale
        small = core // cfg.motion_scale
        # Mappings from driving coordinates to source coordinates, one per TPS transform; always in float32
        # (under bf16 autocast the solve's products would move the flow by a pixel).
        with torch.autocast(source.device.type, enabled=False):
            ctrl = kp_drv.float().view(b, k, n, 2)
            params = tps_params(ctrl, kp_src.float().view(b, k, n, 2))
            grid_small = make_grid(small, small, source.device).view(-1, 2)
            mapped_small = tps_apply(params, ctrl, grid_small).view(b, k, small, small, 2)
        identity_small = grid_small.view(1, 1, small, small, 2).expand(b, 1, -1, -1, -1)
        mapped_small = torch.cat([identity_small, mapped_small], dim=1)  # (B, K+1, s, s, 2)
        src_small = F.interpolate(source, size=(small, small), mode="bilinear", align_corners=False, antialias=True)
        deformed = warp(src_small.repeat_interleave(k + 1, 0), mapped_small.reshape(b * (k + 1), small, small, 2))
        heat = keypoint_heatmaps(kp_drv, str_drv, small, small, cfg.heatmap_variance) \
            - keypoint_heatmaps(kp_src, str_src, small, small, cfg.heatmap_variance)
        feats = self.hourglass(conv_input(torch.cat([deformed.view(b, -1, small, small), heat], dim=1)))
        logits = self.maps(feats[-1])
        if self.training and self.dropout_p > 0:
            keep = (torch.rand(b, k, 1, 1, device=logits.device) > self.dropout_p).to(logits.dtype)
            logits = logits + torch.log(torch.cat([torch.ones_like(keep[:, :1]), keep], 1).clamp(min=1e-6))
        maps = torch.softmax(logits, dim=1)
        # The flow from upsampled contribution maps and TPS mappings evaluated at core / flow_scale.
        with torch.autocast(source.device.type, enabled=False):
            grid_fine = make_grid(fine, fine, source.device).view(-1, 2)
            mapped_fine = tps_apply(params, ctrl, grid_fine).view(b, k, fine, fine, 2)
            maps_fine = F.interpolate(maps.float(), size=(fine, fine), mode="bilinear", align_corners=False)
            flow = maps_fine[:, 0, :, :, None] * grid_fine.view(1, fine, fine, 2) \
                + (maps_fine[:, 1:, :, :, None] * mapped_fine).sum(1)
        # Occlusion logits of the core levels, finest first.
        by_size = {f.shape[-1]: f for f in feats}
        x = feats[-1]
        for block in self.extra_up:
            x = block(x)
            by_size[x.shape[-1]] = x
        occ_logits = [self.occlusion[str(s)](by_size[s]) for s in self.level_sizes]
        for _ in range(self.hr_levels):  # full-resolution levels: the finest mask upsampled
            occ_logits.insert(0, F.interpolate(occ_logits[0], scale_factor=2.0, mode="bilinear", align_corners=False))
        flow = resize_flow(flow, source.shape[-1])
        return {"flow": flow, "maps": maps, "occlusion": [torch.sigmoid(o) for o in occ_logits],
                "warped_source": warp(source, flow)}


def resize_flow(flow: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a (B, H, W, 2) sampling grid to (B, size, size, 2)."""
    if flow.shape[1] == size:
        return flow
    return F.interpolate(flow.permute(0, 3, 1, 2), size=(size, size), mode="bilinear",
                         align_corners=True).permute(0, 2, 3, 1)
