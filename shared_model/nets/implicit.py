"""Implicit-warping generator (Mallya, Wang & Liu, NeurIPS 2022): one cross-modal attention layer picks, for
every output location, features from any of the reference images; no flow is computed.

Tokens live on a ``G x G`` grid per image, ``G = resolution / 4 / iw_reduction``. A reference token's value is
the patch of the encoder pyramid under it (space-to-depth of every level at least as fine as the grid), so
the attention moves fine detail, not just a coarse feature. Queries come from the driving keypoints only;
keys from a reference's keypoints together with the reference image.

The attention applied to the reference pixels (the residual branch's input) is also an image: the output
blends it with the decoded image through a predicted mask, as TPS blends its warped source, so sharp
reference detail reaches the output from the first training step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Down, Hourglass
from .config import ModelConfig
from .dense_motion import keypoint_heatmaps
from .generator import Decoder, SourceEncoder
from ..media.references import keypoint_distance


def positional_encoding(size: int, dim: int) -> torch.Tensor:
    """Fixed 2-D sinusoidal encoding of a ``size x size`` grid: (size*size, dim), row-major."""
    if dim % 4:
        raise ValueError("the attention width must be a multiple of 4")
    freqs = torch.exp(torch.arange(dim // 4) * (-math.log(size * 4.0) / max(1, dim // 4 - 1))) * math.pi
    coords = torch.arange(size, dtype=torch.float32)
    angle = coords[:, None] * freqs[None]  # (size, dim/4)
    axis = torch.cat([angle.sin(), angle.cos()], dim=1)  # (size, dim/2)
    y = axis[:, None, :].expand(size, size, -1)
    x = axis[None, :, :].expand(size, size, -1)
    return torch.cat([y, x], dim=-1).reshape(size * size, dim)


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


class TokenNet(nn.Module):
    """U-Net at the map size, patch merging by ``reduction`` onto the token grid, and a 1x1 projection:
    (B, C, s, s) to tokens (B, G*G, out)."""

    def __init__(self, cin: int, channels: tuple[int, ...], reduction: int, out: int) -> None:
        super().__init__()
        self.unet = Hourglass(cin, channels)
        self.reduction = reduction
        self.proj = nn.Conv2d(self.unet.out_channels[-1] * reduction**2, out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.unet(x)[-1]
        if self.reduction > 1:
            f = F.pixel_unshuffle(f, self.reduction)
        return self.proj(f).flatten(2).transpose(1, 2)


@dataclass
class ReferenceSet:
    """Every token of a set, computed once per set: keys (with position), values and pixels of the
    ``count`` reference tokens, followed by the learned extra pairs."""

    keys: torch.Tensor  # (B, count + extra, dim)
    values: torch.Tensor  # (B, count + extra, value_dim)
    pixels: torch.Tensor  # (B, count + extra, 3 * (resolution / G)^2)
    kp: torch.Tensor  # (B, R, P, 2): the references' keypoints, for the reference prior
    strength: torch.Tensor  # (B, R, P)
    count: int  # reference tokens: R * G * G


class IWGenerator(nn.Module):
    """Rebuilds a frame from driving keypoints and a set of references with their keypoints."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        res, ch = cfg.resolution, cfg.gen_channels
        map_size = res // 4
        if map_size % cfg.iw_reduction:
            raise ValueError("resolution / 4 must be divisible by iw_reduction")
        self.grid = g = map_size // cfg.iw_reduction
        self.kp_map = KeypointMap(cfg.num_keypoints, cfg.iw_map_channels, map_size, cfg.heatmap_variance)
        self.query_net = TokenNet(cfg.iw_map_channels, cfg.iw_unet_channels, cfg.iw_reduction, cfg.iw_dim)
        self.key_net = TokenNet(cfg.iw_map_channels + 3, cfg.iw_unet_channels, cfg.iw_reduction, cfg.iw_dim)
        self.encoder = SourceEncoder(cfg)
        self.decoder = Decoder(cfg)
        sizes = [res // 2**i for i in range(len(ch))]
        #: Pyramid levels carried in the values (finest first) with their patch side; coarser levels are
        #: rebuilt from the attended features by strided blocks.
        self.value_levels = [(i, s // g) for i, s in enumerate(sizes) if s >= g]
        self.coarse = nn.ModuleList(Down(ch[i - 1], ch[i]) for i in range(len(self.value_levels), len(ch)))
        self.value_dim = sum(ch[i] * p * p for i, p in self.value_levels)
        self.pixel_patch = res // g
        pixel_dim = 3 * self.pixel_patch**2
        m, d = cfg.iw_extra_kv, cfg.iw_dim
        self.extra_keys = nn.Parameter(torch.randn(m, d))
        self.extra_values = nn.Parameter(torch.zeros(m, self.value_dim))
        self.extra_pixels = nn.Parameter(torch.full((m, pixel_dim), 0.5))
        # Residual branch: attended pixels and keys with the query, to what a weighted average misses.
        self.residual = nn.Sequential(nn.Linear(pixel_dim + 2 * d, 256), nn.ReLU(inplace=True),
                                      nn.Linear(256, self.value_dim))
        nn.init.zeros_(self.residual[-1].weight)
        nn.init.zeros_(self.residual[-1].bias)
        self.mask = nn.Conv2d(ch[0], 1, 7, 1, 3)
        nn.init.constant_(self.mask.bias, 2.0)  # start by showing the attended reference pixels
        self.register_buffer("position", positional_encoding(g, d), persistent=False)
        # Large enough at the start that each location attends to the same place in the reference.
        self.position_scale = nn.Parameter(torch.tensor(2.0))
        # Reference prior: every token of a reference loses exp(this) x its keypoint distance to the frame.
        self.reference_prior = nn.Parameter(torch.tensor(math.log(20.0)))

    def prepare(self, refs: torch.Tensor, kp: torch.Tensor, strength: torch.Tensor) -> ReferenceSet:
        """References (B, R, 3, H, W) with keypoints (B, R, P, 2) and strengths (B, R, P) to one token set."""
        b, r = refs.shape[:2]
        flat = refs.flatten(0, 1)
        small = F.interpolate(flat, size=(self.kp_map.size,) * 2, mode="area")
        keys = self.key_net(torch.cat([self.kp_map(kp.flatten(0, 1), strength.flatten(0, 1)), small], 1))
        feats = self.encoder(flat)
        values = torch.cat([F.pixel_unshuffle(feats[i], p) if p > 1 else feats[i] for i, p in self.value_levels], 1)
        pixels = F.pixel_unshuffle(flat, self.pixel_patch)
        count = r * self.grid**2
        with_extra = lambda t, extra: torch.cat([t.reshape(b, count, -1), extra.expand(b, -1, -1)], 1)
        keys = with_extra(keys + self.position_scale * self.position, self.extra_keys)
        values = with_extra(values.flatten(2).transpose(1, 2), self.extra_values)
        pixels = with_extra(pixels.flatten(2).transpose(1, 2), self.extra_pixels)
        return ReferenceSet(keys, values, pixels, kp, strength, count)

    def forward(self, refs: ReferenceSet, kp_drv: torch.Tensor, str_drv: torch.Tensor,
                token_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``token_mask`` (B, refs.count), True where a reference token may be attended (default: all;
        while training a random ``iw_kv_dropout`` share is hidden). Returns the prediction and the
        attention (B, G*G, refs.count + extra)."""
        b = kp_drv.shape[0]
        q = self.query_net(self.kp_map(kp_drv, str_drv)) + self.position_scale * self.position
        logits = q @ refs.keys.transpose(1, 2) / math.sqrt(q.shape[-1])
        distance = keypoint_distance(refs.kp, refs.strength, kp_drv[:, None], str_drv[:, None])[:, 0]  # (B, R)
        prior = -self.reference_prior.exp() * distance.repeat_interleave(self.grid**2, dim=1)
        logits = logits + torch.cat([prior, prior.new_zeros(b, self.cfg.iw_extra_kv)], 1)[:, None, :]
        if token_mask is None and self.training and self.cfg.iw_kv_dropout > 0:
            token_mask = torch.rand(b, refs.count, device=q.device) >= self.cfg.iw_kv_dropout
        if token_mask is not None:
            hidden = torch.cat([~token_mask, token_mask.new_zeros(b, self.cfg.iw_extra_kv)], 1)
            logits = logits.masked_fill(hidden[:, None, :], float("-inf"))
        attn = torch.softmax(logits, dim=-1)
        pixels = attn @ refs.pixels
        values = attn @ refs.values + self.residual(torch.cat([pixels, attn @ refs.keys, q], -1))
        x = self.decoder.features(self.pyramid(values))
        attended = F.pixel_shuffle(pixels.transpose(1, 2).reshape(b, -1, self.grid, self.grid), self.pixel_patch)
        mask = torch.sigmoid(self.mask(x))
        prediction = torch.sigmoid(self.decoder.out(x)) * (1 - mask) + attended * mask
        return {"prediction": prediction, "attention": attn, "attended_pixels": attended, "mask": mask}

    def pyramid(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """Attended tokens (B, G*G, value_dim) back to the decoder's feature pyramid, finest first."""
        b, g = tokens.shape[0], self.grid
        grid = tokens.transpose(1, 2).reshape(b, -1, g, g)
        feats, start = [], 0
        for i, p in self.value_levels:
            width = self.cfg.gen_channels[i] * p * p
            level = grid[:, start:start + width]
            feats.append(F.pixel_shuffle(level, p) if p > 1 else level)
            start += width
        for block in self.coarse:
            feats.append(block(feats[-1]))
        return feats
