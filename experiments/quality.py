"""Frame quality on uint8 RGB: PSNR, SSIM and MS-SSIM, per frame.

PSNR and SSIM are ``shared_model.media.metrics`` (SSIM: 11-tap Gaussian window, sigma 1.5, valid region, mean over
channels). MS-SSIM (Wang, Simoncelli & Bovik 2003) is computed here with the same window: contrast-structure
terms at every scale but the coarsest, the full SSIM at the coarsest, combined with the standard exponents
(0.0448, 0.2856, 0.3001, 0.2363, 0.1333), per channel, then averaged over channels. A scale needs a side of at
least the window (11 px), so at 128 px there are four scales (128, 64, 32, 16 px) and the first four exponents
are renormalised to sum to one; at 176 px and above all five are used.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from shared_model.runtime.inference import to_tensor
from shared_model.media.metrics import _gaussian_window, psnr, ssim

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOW, SIGMA = 11, 1.5


def _ssim_terms(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean SSIM and mean contrast-structure term per image and channel, (B, C) each."""
    c = a.shape[1]
    mu_a, mu_b = F.conv2d(a, w, groups=c), F.conv2d(b, w, groups=c)
    var_a = F.conv2d(a * a, w, groups=c) - mu_a**2
    var_b = F.conv2d(b * b, w, groups=c) - mu_b**2
    cov = F.conv2d(a * b, w, groups=c) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    cs = (2 * cov + c2) / (var_a + var_b + c2)
    luminance = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
    return (luminance * cs).flatten(2).mean(2), cs.flatten(2).mean(2)


def ms_ssim_scales(side: int) -> int:
    """How many scales fit an image whose smaller side is ``side`` pixels (at most five)."""
    scales = 1
    while scales < len(MS_SSIM_WEIGHTS) and side // 2**scales >= WINDOW:
        scales += 1
    return scales


def ms_ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """MS-SSIM per image (B,) of (B, C, H, W) tensors in [0, 1]."""
    scales = ms_ssim_scales(min(a.shape[-2:]))
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=a.dtype)
    weights = weights / weights.sum()
    w = _gaussian_window(WINDOW, SIGMA, a.shape[1], a.device, a.dtype)
    terms = []
    for level in range(scales):
        s, cs = _ssim_terms(a, b, w)
        terms.append((s if level == scales - 1 else cs).clamp(min=0))
        if level < scales - 1:
            a, b = F.avg_pool2d(a, 2, ceil_mode=True), F.avg_pool2d(b, 2, ceil_mode=True)
    stacked = torch.stack(terms)  # (scales, B, C)
    return (stacked ** weights[:, None, None]).prod(0).mean(1)


def frame_scores(truth: np.ndarray, shown: np.ndarray, batch: int = 64) -> dict[str, np.ndarray]:
    """PSNR (dB), SSIM and MS-SSIM of every frame of uint8 RGB (T, H, W, 3) stacks."""
    out: dict[str, list[np.ndarray]] = {"psnr": [], "ssim": [], "ms_ssim": []}
    with torch.inference_mode():
        for i in range(0, len(truth), batch):
            a, b = to_tensor(truth[i : i + batch], "cpu"), to_tensor(shown[i : i + batch], "cpu")
            for name, fn in (("psnr", psnr), ("ssim", ssim), ("ms_ssim", ms_ssim)):
                out[name].append(fn(a, b).numpy())
    return {k: np.concatenate(v).astype(np.float64) for k, v in out.items()}
