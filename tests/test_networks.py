from dataclasses import replace

import torch
import torch.nn.functional as F

from shared_model.nets.model import TPSModel, load_model, save_model
from shared_model.train import init_model
from shared_model.training.losses import LossWeights


def test_shapes_and_ranges(small_config):
    torch.manual_seed(0)
    model = TPSModel(small_config).eval()
    x = torch.rand(2, 3, 64, 64)
    kp, strength = model.detector(x)
    assert kp.shape == (2, 50, 2) and strength.shape == (2, 50)
    assert kp.abs().max() <= 1 and 0 <= strength.min() and strength.max() <= 1
    out = model.generator(x, kp, strength, kp.flip(0), strength)
    assert out["prediction"].shape == (2, 3, 64, 64)
    assert out["flow"].shape == (2, 64, 64, 2)
    assert [o.shape[-1] for o in out["occlusion"]] == [64, 32, 16]
    assert torch.allclose(out["maps"].sum(1), torch.ones(2, 16, 16), atol=1e-5)


def test_strengths_change_the_output(small_config):
    torch.manual_seed(0)
    model = TPSModel(small_config).eval()
    x = torch.rand(1, 3, 64, 64)
    kp, strength = model.detector(x)
    kp_d = (kp + 0.05).clamp(-1, 1)
    a = model.generator(x, kp, strength, kp_d, strength)["prediction"]
    b = model.generator(x, kp, strength, kp_d, strength * 0.2)["prediction"]
    assert (a - b).abs().max() > 1e-4


def test_gradients_reach_every_part(small_config):
    torch.manual_seed(0)
    model = TPSModel(small_config).train()
    losses, _ = model.training_losses(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64), LossWeights())
    assert set(losses) == {"l1", "ssim", "equivariance", "warp"}
    sum(losses.values()).backward()
    for part in (model.detector, model.generator.dense_motion, model.generator.encoder, model.generator.decoder):
        grads = [p.grad.abs().sum() for p in part.parameters() if p.grad is not None]
        assert grads and sum(grads) > 0, part.__class__.__name__


def test_cached_source_features_give_the_same_frame(small_config):
    torch.manual_seed(0)
    model = TPSModel(small_config).eval()
    x, y = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    kp_s, st_s = model.detector(x)
    kp_d, st_d = model.detector(y)
    direct = model.generator(x, kp_s, st_s, kp_d, st_d)["prediction"]
    cached = model.generator(x, kp_s, st_s, kp_d, st_d, source_feats=model.generator.encoder(x))["prediction"]
    assert torch.allclose(direct, cached)


def test_full_resolution_level_keeps_shapes_and_gets_gradients(small_config):
    """A 64 px core with one 128 px level: every level has its mask, gradients reach the new layers."""
    torch.manual_seed(0)
    cfg = replace(small_config, resolution=128, core_resolution=64, hr_channels=(8,))
    model = TPSModel(cfg).train()
    x = torch.rand(2, 3, 128, 128)
    kp, strength = model.detector(x)
    out = model.generator(x, kp, strength, kp.flip(0), strength)
    assert out["prediction"].shape == (2, 3, 128, 128) and out["flow"].shape == (2, 128, 128, 2)
    assert [o.shape[-1] for o in out["occlusion"]] == [128, 64, 32, 16]
    # The new output layers start at zero, so the layers before them get gradients from the second step on.
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        losses, _ = model.training_losses(x, torch.rand(2, 3, 128, 128), LossWeights())
        sum(losses.values()).backward()
        opt.step()
    for name in ("encoder.hr_stems", "decoder.hr_fuse", "decoder.hr_out"):
        grads = [p.grad.abs().sum() for n, p in model.generator.named_parameters() if n.startswith(name)]
        assert grads and sum(grads) > 0, name


def test_a_grown_model_starts_as_its_core_upsampled(tmp_path, small_config):
    """Growing a 64 px model to 128 px: the new levels start at zero, so the output is the core model's motion
    applied to the 128 px reference, close to the core model's own output upsampled."""
    torch.manual_seed(0)
    core = TPSModel(small_config).eval()
    save_model(core, tmp_path / "core.pt", "core")
    grown = init_model(str(tmp_path / "core.pt"), "tps", 128).eval()
    core = load_model(tmp_path / "core.pt")
    x = F.interpolate(torch.rand(1, 3, 16, 16), size=(128, 128), mode="bilinear")  # smooth: upsampling loses little
    y = torch.roll(x, 3, -1)
    with torch.no_grad():
        big = grown.reconstruct(x, y)
        small = core.reconstruct(F.avg_pool2d(x, 2), F.avg_pool2d(y, 2))
    assert big.shape[-1] == 128
    assert (F.avg_pool2d(big, 2) - small).abs().mean() < 0.01


def test_mobilenet_detector_shapes_and_gradients(small_config):
    torch.manual_seed(0)
    model = TPSModel(replace(small_config, kp_backbone="mobilenet_v2")).train()
    torch.nn.init.normal_(model.detector.head[-1].weight, std=0.01)  # zero at the start: no gradient behind it
    kp, strength = model.detector(torch.rand(2, 3, 64, 64))
    assert kp.shape == (2, 50, 2) and strength.shape == (2, 50)
    (kp.sum() + strength.sum()).backward()
    assert model.detector.backbone[0][0].weight.grad.abs().sum() > 0
