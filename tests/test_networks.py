import torch

from shared_model.training.losses import LossWeights
from shared_model.nets.model import TPSModel


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
