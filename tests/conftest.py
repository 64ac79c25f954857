"""Shared fixtures: small generated data only (never the development videos)."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from shared_model.nets.config import ModelConfig
from shared_model.training.synthetic import talking_face
from shared_model.media.video import write_video
from signaling.client import TOKEN_ENV
from signaling.tokens import new_token

# Two threads on the 2-core CI machine; OMP_NUM_THREADS (e.g. 1 beside a training job) wins when set.
if "OMP_NUM_THREADS" not in os.environ:
    torch.set_num_threads(2)
# Peers in the tests take their room token from the environment, as a user's would: one per test session.
os.environ.setdefault(TOKEN_ENV, new_token())


@pytest.fixture(scope="session")
def face_frames() -> np.ndarray:
    """60 frames (256 px) of the procedurally animated astronaut face."""
    return talking_face(frames=60, size=256, seed=1)


@pytest.fixture(scope="session")
def face_video(tmp_path_factory, face_frames) -> str:
    path = tmp_path_factory.mktemp("clip") / "face.mp4"
    write_video(path, face_frames, 25.0)
    return str(path)


@pytest.fixture(scope="session")
def small_config() -> ModelConfig:
    """A tiny 64 px model configuration: fast enough to train for a few steps in a test."""
    return ModelConfig(resolution=64, kp_channels=(16, 32, 32), motion_channels=(32, 64), gen_channels=(16, 32, 64))
