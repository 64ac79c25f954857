"""The receiver's reduced precision: bf16 convolutions, the motion kept in float32, exact inference rewrites."""
import numpy as np
import torch
import torch.nn.functional as F

from shared_model.nets.generator import fuse_upsampled
from shared_model.nets.model import load_model
from shared_model.runtime.inference import Renderer


def test_fused_full_resolution_level_equals_the_concatenation():
    """The 1x1 fuse at full resolution, computed with ``x``'s share at half size, is the same convolution."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(40, 16, 1)
    x, skip = torch.rand(2, 24, 16, 16), torch.rand(2, 16, 32, 32)
    direct = conv(torch.cat([F.interpolate(x, scale_factor=2.0, mode="nearest"), skip], dim=1))
    assert torch.allclose(fuse_upsampled(conv, x, skip), direct, atol=1e-5)
    assert not torch.allclose(fuse_upsampled(conv, x.flip(-1), skip), direct, atol=1e-3)


def test_bf16_keeps_the_motion_in_float32_and_the_picture_close(face_frames):
    """Under bf16 autocast the TPS solve runs in float32 (its products in bf16 would move the flow by a pixel):
    only the blending maps come from bf16 convolutions, so the flow stays within a fraction of a pixel of
    float32's and the rendered frames within 40 dB."""
    model = load_model("tps")
    src = torch.from_numpy(face_frames[0]).permute(2, 0, 1)[None].float() / 255
    drv = torch.from_numpy(face_frames[30]).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        kp_s, st_s = model.detector(src)
        kp_d, st_d = model.detector(drv)
        full = model.generator(src, kp_s, st_s, kp_d, st_d)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model.generator(src, kp_s, st_s, kp_d, st_d)
    assert full["flow"].dtype == half["flow"].dtype == torch.float32
    pixels = (full["flow"] - half["flow"]).abs() * (src.shape[-1] - 1) / 2
    assert pixels.mean() < 0.05 and pixels.max() < 0.5, (pixels.mean(), pixels.max())

    renders = {p: Renderer(model, [face_frames[0]], "cpu", precision=p) for p in ("fp32", "bf16")}
    for i in (10, 30, 50):
        kp, strength = (t[0].detach().numpy() for t in model.detector(
            torch.from_numpy(face_frames[i]).permute(2, 0, 1)[None].float() / 255))
        a, b = (renders[p].render(kp, strength)[0] for p in ("fp32", "bf16"))
        assert a.dtype == b.dtype == np.uint8
        mse = np.mean((a.astype(np.float64) - b) ** 2)
        assert 10 * np.log10(255**2 / mse) > 40.0, (i, mse)
