"""Shared fixtures: small generated data only (never the development videos)."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from shared_model.media.video import write_video
from shared_model.nets.config import ModelConfig
from shared_model.nets.model import TPSModel, save_model
from shared_model.training.synthetic import talking_face
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


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory, small_config) -> Path:
    """Weights of an untrained ``small_config`` TPS model, saved as the shipped ones are (id ``tiny``)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    save_model(TPSModel(small_config), path, "tiny")
    return path


@pytest.fixture(scope="session")
def face_refs(tmp_path_factory, face_frames) -> Path:
    """A reference folder holding the first frame of ``face_frames``."""
    folder = tmp_path_factory.mktemp("refs")
    cv2.imwrite(str(folder / "first.png"), cv2.cvtColor(face_frames[0], cv2.COLOR_RGB2BGR))
    return folder
