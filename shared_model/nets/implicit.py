"""Implicit-warping generator (after Mallya, Wang & Liu, NeurIPS 2022), guided by TPS motion.

One cross-modal attention layer chooses, for every location of the frame, among all the references and a few
learned "none of these" key/values. What makes it trainable on a CPU is the prior it starts from: each
reference is first moved by the TPS dense motion (the shipped ``tps`` network, one run per reference), so
the attention does not have to learn correspondence from nothing; it only has to learn which reference (or
none) shows each place best. Queries come from the frame's keypoints, keys from each reference's keypoints
and picture as moved onto the frame, plus a per-reference prior from the keypoint distance (the rule TPS's
receiver picks its one reference by). The attention weights mix the moved reference features at every
level of the decoder, the moved reference pixels, and learned values; a residual branch (zero at the
start) adds what a weighted average cannot express.

With one reference and the extra key/values unused this is exactly the TPS generator, so training starts at
TPS's quality and the attention has to earn every change from there.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..media.references import keypoint_distance
from .blocks import Hourglass, conv_input, downsample
from .config import ModelConfig
from .dense_motion import DenseMotion, keypoint_heatmaps, resize_flow
from .generator import Decoder, SourceEncoder
from .tps import warp


#: Distances (crop units, [-1, 1]) below this count as equal in the prior's ratio term: about the keypoints'
#: jitter from frame to frame of a still face.
PRIOR_EPS = 0.005


class KeypointMap(nn.Module):
    """All keypoints rendered into one ``C``-channel map: a Gaussian per keypoint, scaled by its strength,
    painted in a learned colour, so the networks after it see ``C`` channels whatever the keypoint count."""

    def __init__(self, num_keypoints: int, channels: int, size: int, variance: float) -> None:
        super().__init__()
        self.size, self.variance = size, variance
        self.colours = nn.Parameter(torch.randn(num_keypoints, channels))

    def forward(self, kp: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
        heat = keypoint_heatmaps(kp, strength, self.size, self.size, self.variance)  # (B, P, s, s)
        return torch.einsum("bphw,pc->bchw", heat, self.colours)


class EmbeddingNet(nn.Module):
    """U-Net at the attention grid and a 1x1 projection: (B, C, s, s) to (B, dim, s, s)."""

    def __init__(self, cin: int, channels: tuple[int, ...], dim: int, zero_init: bool = False) -> None:
        super().__init__()
        self.unet = Hourglass(cin, channels)
        self.proj = nn.Conv2d(self.unet.out_channels[-1], dim, 1)
        if zero_init:
            nn.init.zeros_(self.proj.weight)
            nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.unet(conv_input(x))[-1]).float()


@dataclass
class ReferenceSet:
    """What a set of R references gives every frame, computed once per set."""

    images: torch.Tensor  # (B * R, 3, H, W)
    feats: list[torch.Tensor]  # the encoder pyramid of each, finest first: (B * R, C, h, w)
    maps: torch.Tensor  # their keypoint maps (B * R, C, s, s)
    kp: torch.Tensor  # (B, R, P, 2)
    strength: torch.Tensor  # (B, R, P)

    @property
    def count(self) -> int:
        return self.kp.shape[1]


class IWGenerator(nn.Module):
    """Rebuilds a frame from driving keypoints and a set of references with their keypoints.

    The dense motion, source encoder and decoder have the TPS generator's names and shapes, so a ``tps``
    model's weights start them (``train --model iw --init tps``).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.dense_motion = DenseMotion(cfg)
        self.encoder = SourceEncoder(cfg)
        self.decoder = Decoder(cfg)
        #: Side of the attention grid: where the flow is composed (core / flow_scale).
        self.size = s = cfg.core // cfg.flow_scale
        d, m = cfg.iw_dim, cfg.iw_extra_kv
        self.kp_map = KeypointMap(cfg.num_keypoints, cfg.iw_map_channels, s, cfg.heatmap_variance)
        self.query_net = EmbeddingNet(cfg.iw_map_channels, cfg.iw_unet_channels, d)
        # Keys: the reference's keypoint map and picture moved onto the frame, and its occlusion there. Zero at
        # the start, so the keypoint-distance prior alone chooses (TPS's rule, softened).
        self.key_net = EmbeddingNet(cfg.iw_map_channels + 4, cfg.iw_unet_channels, d, zero_init=True)
        channels = (*cfg.hr_channels[::-1], *cfg.gen_channels)  # every decoder level, finest first
        self.level_sizes = [cfg.resolution // 2**i for i in range(len(channels))]
        self.extra_keys = nn.Parameter(torch.zeros(m, d))
        self.extra_bias = nn.Parameter(torch.tensor(-6.0))  # the learned entries start nearly unused
        self.extra_values = nn.ParameterList(nn.Parameter(torch.zeros(m, c)) for c in channels)
        # Residual branch at the attention grid's level: attended keys and the query, to what mixing misses.
        self.residual_level = self.level_sizes.index(s)
        self.residual = nn.Sequential(nn.Conv2d(2 * d, 64, 1), nn.ReLU(inplace=True),
                                      nn.Conv2d(64, channels[self.residual_level], 1))
        nn.init.zeros_(self.residual[-1].weight)
        nn.init.zeros_(self.residual[-1].bias)
        # Reference prior: each reference's logits lose exp(reference_prior) x its keypoint distance to the frame
        # beyond the nearest one's, and exp(reference_ratio) x the log of the ratio of the two distances. The gap
        # term alone: 200 starts near TPS's hard choice of the nearest; 20 mixed the warps of similar references
        # into a blur (-0.5 to -1 dB against TPS-nearest-of-4 on training clips), 1000 was too hard. The ratio
        # term makes the choice hard when one reference is almost the frame (a gap of a few hundredths of the
        # crop is then everything) and soft when all are far alike.
        self.reference_prior = nn.Parameter(torch.tensor(math.log(200.0)))
        self.reference_ratio = nn.Parameter(torch.tensor(math.log(2.0)))

    def prepare(self, refs: torch.Tensor, kp: torch.Tensor, strength: torch.Tensor) -> ReferenceSet:
        """References (B, R, 3, H, W) with keypoints (B, R, P, 2) and strengths (B, R, P) to a set."""
        images = refs.flatten(0, 1)
        return ReferenceSet(images, self.encoder(images), self.kp_map(kp.flatten(0, 1), strength.flatten(0, 1)),
                            kp, strength)

    def forward(self, refs: ReferenceSet, kp_drv: torch.Tensor, str_drv: torch.Tensor,
                ref_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``ref_mask`` (B, R, s, s), True where a reference may be attended (default: everywhere; while
        training a random ``iw_kv_dropout`` share is hidden). Returns the prediction and the attention
        (B, R + extra, s, s)."""
        b, r, s = kp_drv.shape[0], refs.count, self.size
        kp_rep, st_rep = kp_drv.repeat_interleave(r, 0), str_drv.repeat_interleave(r, 0)
        motion = self.dense_motion(refs.images, refs.kp.flatten(0, 1), refs.strength.flatten(0, 1), kp_rep, st_rep)
        flow, occlusion = motion["flow"], motion["occlusion"]
        small_flow = resize_flow(flow, s)
        occ_small = occlusion[self.level_sizes.index(s)]
        moved = torch.cat([warp(refs.maps, small_flow), downsample(motion["warped_source"], s), occ_small], 1)
        keys = self.key_net(moved).view(b, r, -1, s, s)
        query = self.query_net(self.kp_map(kp_drv, str_drv))  # (B, d, s, s)
        scale = 1.0 / math.sqrt(query.shape[1])
        prior = self.prior(refs.kp, refs.strength, kp_drv, str_drv)
        ref_logits = (query[:, None] * keys).sum(2) * scale - prior[..., None, None]
        extra_logits = torch.einsum("bdhw,md->bmhw", query, self.extra_keys) * scale + self.extra_bias
        if ref_mask is None and self.training and self.cfg.iw_kv_dropout > 0:
            ref_mask = torch.rand(b, r, s, s, device=query.device) >= self.cfg.iw_kv_dropout
        if ref_mask is not None:
            ref_logits = ref_logits.masked_fill(~ref_mask, float("-inf"))
        attention = torch.softmax(torch.cat([ref_logits, extra_logits], 1), dim=1)
        weights = {size: resize_weights(attention, size) for size in self.level_sizes}  # finest: the output's
        feats = []
        for level, (f, occ, extra) in enumerate(zip(refs.feats, occlusion, self.extra_values)):
            a = weights[f.shape[-1]]
            moved_f = (warp(f, resize_flow(flow, f.shape[-1])) * occ).unflatten(0, (b, r))
            mixed = (a[:, :r, None] * moved_f).sum(1) + torch.einsum("bmhw,mc->bchw", a[:, r:], extra)
            if level == self.residual_level:
                attended_keys = (attention[:, :r, None] * keys).sum(1)
                mixed = mixed + self.residual(torch.cat([attended_keys, query], 1))
            feats.append(conv_input(mixed))
        generated = self.decoder(feats)
        a = weights[self.level_sizes[0]][:, :r, None]
        shown = a * occlusion[0].unflatten(0, (b, r))  # (B, R, 1, H, W): how much of each moved picture shows
        prediction = generated * (1.0 - shown.sum(1)) + (shown * motion["warped_source"].unflatten(0, (b, r))).sum(1)
        return {"prediction": prediction, "attention": attention}

    def prior(self, kp_refs: torch.Tensor, str_refs: torch.Tensor, kp_drv: torch.Tensor,
              str_drv: torch.Tensor) -> torch.Tensor:
        """What each reference's logits lose (B, R) for its keypoint distance to the frame; the nearest loses 0."""
        distance = keypoint_distance(kp_refs, str_refs, kp_drv, str_drv)  # (B, R), crop units
        nearest = distance.min(1, keepdim=True).values
        ratio = torch.log((distance + PRIOR_EPS) / (nearest + PRIOR_EPS))
        return self.reference_prior.exp() * (distance - nearest) + self.reference_ratio.exp() * ratio


def resize_weights(weights: torch.Tensor, size: int) -> torch.Tensor:
    """Attention maps (B, N, s, s) at ``size``: bilinear up, box down; both keep every location's sum."""
    if weights.shape[-1] == size:
        return weights
    if weights.shape[-1] > size:
        return downsample(weights, size)
    return F.interpolate(weights, size=(size, size), mode="bilinear", align_corners=False)
