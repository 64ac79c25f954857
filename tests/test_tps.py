import numpy as np
import torch

from shared_model.nets.tps import (
    REGULARISER,
    RandomTPS,
    gauss_jordan_solve,
    make_grid,
    squared_distances,
    tps_apply,
    tps_params,
    warp,
)


def numpy_tps_params(ctrl: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Independent NumPy reference of the regularised TPS fit (one transform)."""
    n = len(ctrl)
    d2 = ((ctrl[:, None] - ctrl[None]) ** 2).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.where(d2 > 0, d2 * np.log(d2), 0.0)
    p = np.hstack([np.ones((n, 1)), ctrl])
    lmat = np.block([[k + REGULARISER * np.eye(n), p], [p.T, np.zeros((3, 3))]])
    return np.linalg.solve(lmat, np.vstack([target, np.zeros((3, 2))]))


def test_gauss_jordan_matches_numpy_solve():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20, 8, 8))
    a[:, 0, 0] = 0.0  # a zero leading pivot needs row swaps
    b = rng.normal(size=(20, 8, 2))
    got = gauss_jordan_solve(torch.tensor(a), torch.tensor(b)).numpy()
    np.testing.assert_allclose(got, np.linalg.solve(a, b), rtol=1e-8, atol=1e-8)


def test_tps_solve_matches_numpy_reference():
    rng = np.random.default_rng(1)
    ctrl = rng.uniform(-0.8, 0.8, size=(3, 4, 5, 2))
    target = ctrl + rng.normal(scale=0.1, size=ctrl.shape)
    got = tps_params(torch.tensor(ctrl, dtype=torch.float32), torch.tensor(target, dtype=torch.float32)).numpy()
    for b in range(3):
        for k in range(4):
            np.testing.assert_allclose(got[b, k], numpy_tps_params(ctrl[b, k], target[b, k]), atol=2e-4)


def test_identity_control_points_give_identity_warp():
    rng = np.random.default_rng(2)
    ctrl = torch.tensor(rng.uniform(-0.9, 0.9, size=(2, 10, 5, 2)), dtype=torch.float32)
    params = tps_params(ctrl, ctrl)
    grid = make_grid(16, 16).reshape(-1, 2)
    mapped = tps_apply(params, ctrl, grid)
    assert torch.allclose(mapped, grid.expand_as(mapped), atol=1e-4)
    image = torch.rand(1, 3, 16, 16)
    assert torch.allclose(warp(image, mapped[0, 0].reshape(1, 16, 16, 2)), image, atol=1e-4)


def test_tps_fit_hits_its_targets():
    rng = np.random.default_rng(3)
    ctrl = torch.tensor(rng.uniform(-0.8, 0.8, size=(1, 1, 5, 2)), dtype=torch.float32)
    target = ctrl + 0.1
    mapped = tps_apply(tps_params(ctrl, target), ctrl, ctrl[0, 0])
    # The 0.01 regulariser makes it a smoothing fit: close to, not exactly on, the targets.
    assert (mapped[0, 0] - target[0, 0]).abs().max() < 0.02


def test_random_tps_warps_points_and_images_consistently():
    tps = RandomTPS(2, sigma_affine=0.1, sigma_tps=0.01)
    image = torch.zeros(2, 1, 65, 65)
    image[:, :, 32, 32] = 1.0  # a dot at the centre
    warped = tps.warp_image(image)
    # The output pixel showing the dot is where transform(p) lands on the centre.
    grid = make_grid(65, 65).reshape(1, -1, 2).expand(2, -1, -1)
    moved = tps.transform_points(grid)
    for b in range(2):
        expected = (moved[b] - torch.zeros(2)).norm(dim=-1).argmin()
        assert warped[b, 0].flatten().argmax() == expected


def test_squared_distances_match_the_difference_form_also_under_bf16():
    torch.manual_seed(0)
    a, b = torch.rand(3, 400, 2) * 2 - 1, torch.rand(3, 7, 2) * 2 - 1
    direct = ((a[:, :, None] - b[:, None]) ** 2).sum(-1)
    assert torch.allclose(squared_distances(a, b), direct, atol=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.allclose(squared_distances(a, b), direct, atol=1e-6)
