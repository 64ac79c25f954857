"""Picture quality on tensors in [0, 1] and on uint8 RGB frames: PSNR, SSIM, MS-SSIM (also used as losses).

SSIM: 11-tap Gaussian window, sigma 1.5, valid region, mean over channels (as scikit-image's gaussian mode).
MS-SSIM (Wang, Simoncelli & Bovik 2003) uses the same window: contrast-structure terms at every scale but the
coarsest, the full SSIM at the coarsest, combined with the standard exponents (0.0448, 0.2856, 0.3001, 0.2363,
0.1333), per channel, then averaged over channels. A scale needs a side of at least the window (11 px), so at
128 px there are four scales (128, 64, 32, 16 px) and the first four exponents are renormalised to sum to one;
at 176 px and above all five are used.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOW, SIGMA = 11, 1.5


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image of (B, C, H, W) tensors in [0, 1]."""
    mse = ((a - b) ** 2).flatten(1).mean(1).clamp(min=1e-10)
    return 10.0 * torch.log10(1.0 / mse)


def _gaussian_window(size: int, sigma: float, channels: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2.0
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def _ssim_terms(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SSIM and contrast-structure maps (B, C, h, w) over the valid region of window ``w``."""
    c = a.shape[1]
    mu_a, mu_b = F.conv2d(a, w, groups=c), F.conv2d(b, w, groups=c)
    var_a = F.conv2d(a * a, w, groups=c) - mu_a**2
    var_b = F.conv2d(b * b, w, groups=c) - mu_b**2
    cov = F.conv2d(a * b, w, groups=c) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    cs = (2 * cov + c2) / (var_a + var_b + c2)
    luminance = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
    return luminance * cs, cs


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = WINDOW, sigma: float = SIGMA) -> torch.Tensor:
    """Mean SSIM per image (B,) over channels."""
    s, _ = _ssim_terms(a, b, _gaussian_window(window, sigma, a.shape[1], a.device, a.dtype))
    return s.flatten(1).mean(1)


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
        terms.append((s if level == scales - 1 else cs).flatten(2).mean(2).clamp(min=0))
        if level < scales - 1:
            a, b = F.avg_pool2d(a, 2, ceil_mode=True), F.avg_pool2d(b, 2, ceil_mode=True)
    stacked = torch.stack(terms)  # (scales, B, C)
    return (stacked ** weights[:, None, None]).prod(0).mean(1)


def _as_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0


def frame_scores(truth: np.ndarray, shown: np.ndarray, batch: int = 64) -> dict[str, np.ndarray]:
    """PSNR (dB), SSIM and MS-SSIM of every frame of uint8 RGB (T, H, W, 3) stacks."""
    out: dict[str, list[np.ndarray]] = {"psnr": [], "ssim": [], "ms_ssim": []}
    with torch.inference_mode():
        for i in range(0, len(truth), batch):
            a, b = _as_tensor(truth[i : i + batch]), _as_tensor(shown[i : i + batch])
            for name, fn in (("psnr", psnr), ("ssim", ssim), ("ms_ssim", ms_ssim)):
                out[name].append(fn(a, b).numpy())
    return {k: np.concatenate(v).astype(np.float64) for k, v in out.items()}
