"""Shared fixtures: small generated data only (never the development videos)."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from calls import FPS, FRAMES

from shared_model.media.video import write_video
from shared_model.nets.config import ModelConfig
from shared_model.nets.model import TPSModel, save_model
from shared_model.training.synthetic import talking_face
from signaling.client import TOKEN_ENV
from signaling.server import SignalingServer, bound_port
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
def clip(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """The call tests' clip: FRAMES frames at FPS of the generated face (256 px)."""
    frames = talking_face(frames=FRAMES, size=256, seed=3)
    path = tmp_path_factory.mktemp("clip") / "face.mp4"
    write_video(path, frames, FPS)
    return path, frames


@pytest.fixture(scope="session")
def refs(tmp_path_factory, clip) -> Path:
    """A reference folder holding the clip's first frame."""
    folder = tmp_path_factory.mktemp("refs")
    cv2.imwrite(str(folder / "first.png"), cv2.cvtColor(clip[1][0], cv2.COLOR_RGB2BGR))
    return folder


@pytest.fixture(scope="session")
def tiny(tmp_path_factory, small_config) -> dict[str, Path]:
    """Two small untrained models: ``tiny`` and ``other`` (another id and other weights)."""
    folder = tmp_path_factory.mktemp("models")
    paths = {}
    for seed, name in enumerate(("tiny", "other")):
        torch.manual_seed(seed)
        paths[name] = folder / f"{name}.pt"
        save_model(TPSModel(small_config), paths[name], name)
    return paths


@pytest.fixture
async def signaling_url():
    async with SignalingServer().serve("127.0.0.1", 0) as ws_server:
        yield f"ws://127.0.0.1:{bound_port(ws_server)}"


@pytest.fixture(scope="session")
def tiny_weights(tiny) -> Path:
    """Weights of an untrained ``small_config`` TPS model, saved as the shipped ones are (id ``tiny``)."""
    return tiny["tiny"]


@pytest.fixture(scope="session")
def face_refs(tmp_path_factory, face_frames) -> Path:
    """A reference folder holding the first frame of ``face_frames``."""
    folder = tmp_path_factory.mktemp("refs")
    cv2.imwrite(str(folder / "first.png"), cv2.cvtColor(face_frames[0], cv2.COLOR_RGB2BGR))
    return folder
