"""Thin-plate-spline math: an export-safe solve, warping grids, random TPS for the equivariance loss.

Coordinates are normalised to [-1, 1] as (x, y), matching ``grid_sample(align_corners=True)``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

#: Regulariser added to the kernel block of the TPS system (a smoothing spline): keeps the solve well
#: conditioned when control points nearly coincide. Only the kernel block is regularised, so identical
#: control and target points give exactly the identity mapping (the original adds it to the whole matrix).
REGULARISER = 0.01


def tps_kernel(r2: torch.Tensor) -> torch.Tensor:
    """U(r) = r^2 log r^2 written on squared distances; 0 at r = 0 without NaN (also in exported graphs)."""
    return r2 * torch.log(torch.clamp(r2, min=1e-9))


def gauss_jordan_solve(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Solve ``a @ x = b`` for small batched systems by Gauss-Jordan elimination with partial pivoting.

    Written with static-shape ops only (argmax, one-hot row swaps, broadcasting) so it exports to ONNX,
    where ``torch.linalg.solve`` and ``torch.inverse`` do not. a: (..., n, n), b: (..., n, m).
    """
    n = a.shape[-1]
    m = torch.cat([a, b], dim=-1)
    eye = torch.eye(n, dtype=a.dtype, device=a.device)
    rows = torch.arange(n, device=a.device)
    for j in range(n):
        # Pivot: the largest |entry| in column j among rows j..n-1.
        col = m[..., :, j].abs().masked_fill(rows < j, -1.0)
        p = col.argmax(dim=-1)  # (...)
        e_j = eye[j]
        e_p = F.one_hot(p, n).to(a.dtype)
        swap = eye - e_j[:, None] * e_j - e_p[..., :, None] * e_p[..., None, :] \
            + e_j[:, None] * e_p[..., None, :] + e_p[..., :, None] * e_j
        m = swap @ m
        pivot_row = m[..., j : j + 1, :] / m[..., j : j + 1, j : j + 1]
        factors = m[..., :, j : j + 1] * (1.0 - e_j)[:, None]
        m = m - factors * pivot_row
        m = m * (1.0 - e_j)[:, None] + pivot_row * e_j[:, None]
    return m[..., n:]


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a_i - b_j|^2 for points a (..., P, 2) and b (..., N, 2) as (..., P, N), through one matrix product rather
    than a (..., P, N, 2) difference tensor (a few times faster on the 64 px grid; clamped at 0 against rounding).
    Always float32: under bf16 autocast the product would be off by far more than a heatmap's width."""
    with torch.autocast(a.device.type, enabled=False):
        a, b = a.float(), b.float()
        cross = a @ b.transpose(-1, -2)
        return ((a * a).sum(-1, keepdim=True) + (b * b).sum(-1).unsqueeze(-2) - 2.0 * cross).clamp(min=0.0)


def tps_params(ctrl: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Fit TPS mappings that send control points ``ctrl`` onto ``target``.

    ctrl, target: (B, K, N, 2). Returns (B, K, N + 3, 2): N kernel weights then the affine part
    [1, x, y] for each output coordinate.
    """
    b, k, n, _ = ctrl.shape
    r2 = ((ctrl[:, :, :, None, :] - ctrl[:, :, None, :, :]) ** 2).sum(-1)
    kmat = tps_kernel(r2) + REGULARISER * torch.eye(n, dtype=ctrl.dtype, device=ctrl.device)
    p = torch.cat([torch.ones_like(ctrl[..., :1]), ctrl], dim=-1)  # (B, K, N, 3)
    top = torch.cat([kmat, p], dim=-1)
    bottom = torch.cat([p.transpose(-1, -2), torch.zeros(b, k, 3, 3, dtype=ctrl.dtype, device=ctrl.device)], dim=-1)
    lmat = torch.cat([top, bottom], dim=-2)
    rhs = torch.cat([target, torch.zeros(b, k, 3, 2, dtype=ctrl.dtype, device=ctrl.device)], dim=-2)
    return gauss_jordan_solve(lmat, rhs)


def tps_apply(params: torch.Tensor, ctrl: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Evaluate fitted TPS mappings at points.

    params: (B, K, N + 3, 2), ctrl: (B, K, N, 2), points: (B, P, 2) or (P, 2). Returns (B, K, P, 2).
    """
    if points.dim() == 2:
        points = points.unsqueeze(0).expand(ctrl.shape[0], -1, -1)
    n = ctrl.shape[2]
    r2 = squared_distances(points[:, None], ctrl)  # (B, K, P, N)
    nonlinear = tps_kernel(r2) @ params[:, :, :n]
    affine = params[:, :, n], params[:, :, n + 1], params[:, :, n + 2]
    linear = affine[0][:, :, None] + points[:, None, :, :1] * affine[1][:, :, None] + points[:, None, :, 1:] * affine[2][:, :, None]
    return linear + nonlinear


def make_grid(h: int, w: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The (h, w, 2) grid of (x, y) pixel centres in [-1, 1], as grid_sample(align_corners=True) reads it."""
    ys = torch.linspace(-1.0, 1.0, h, device=device, dtype=dtype)
    xs = torch.linspace(-1.0, 1.0, w, device=device, dtype=dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=-1)


def warp(image: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Sample ``image`` (B, C, H, W) at ``grid`` (B, h, w, 2); 2-D bilinear, border padding."""
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


class RandomTPS:
    """A random smooth deformation (affine plus TPS on a 5x5 grid) for the equivariance loss."""

    def __init__(self, batch: int, sigma_affine: float = 0.05, sigma_tps: float = 0.005, points: int = 5,
                 device: torch.device | str = "cpu") -> None:
        noise = torch.randn(batch, 2, 3, device=device) * sigma_affine
        self.theta = noise + torch.eye(2, 3, device=device)
        self.ctrl = make_grid(points, points, device).reshape(1, -1, 2)
        self.weights = torch.randn(batch, 1, points * points, device=device) * sigma_tps

    def transform_points(self, pts: torch.Tensor) -> torch.Tensor:
        """Map points (B, P, 2) through the deformation."""
        affine = pts @ self.theta[:, :, :2].transpose(1, 2) + self.theta[:, None, :, 2]
        r2 = ((pts[:, :, None, :] - self.ctrl[:, None, :, :]) ** 2).sum(-1)
        bend = (tps_kernel(r2) * self.weights).sum(-1, keepdim=True)
        return affine + bend

    def warp_image(self, image: torch.Tensor) -> torch.Tensor:
        """The image seen through the deformation: output pixel p shows input at transform(p)."""
        b, _, h, w = image.shape
        grid = make_grid(h, w, image.device).reshape(1, -1, 2).expand(b, -1, -1)
        return warp(image, self.transform_points(grid).reshape(b, h, w, 2))
