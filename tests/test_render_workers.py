"""Frames rendered side by side (``receiver --workers``): shown in order, never back in time, all recorded."""
from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
import torch
from calls import intra_encoder

from receiver.__main__ import parse_args, render_threads
from receiver.session import Expectation, Session
from shared_model.media.picture_codec import PICTURE_CODEC
from shared_model.media.video import read_frames
from shared_model.nets.model import load_model
from shared_model.runtime.inference import Renderer
from shared_model.wire.control import Hello
from shared_model.wire.messages import FrameMessage, ModelIdentity


class SlowOddFrames(Renderer):
    """The real renderer, made slower on odd sequence numbers (what a busy core does to one worker): a test
    double for timing only, since a real machine's timing cannot be set."""

    def render(self, kp: np.ndarray, strength: np.ndarray, picture: int = 0) -> tuple[np.ndarray, int]:
        if kp[0, 0] > 0:  # odd frames carry a positive first coordinate, below
            time.sleep(0.15)
        return super().render(kp, strength, picture)


def test_two_workers_show_frames_in_order_and_drop_late_ones(tmp_path, face_frames, tiny_weights):
    model = load_model(tiny_weights)
    res, points = model.cfg.resolution, model.cfg.num_keypoints
    renderer = SlowOddFrames(model, [face_frames[0][::4, ::4]], "cpu")
    record = tmp_path / "call.mp4"
    session = Session(renderer, Expectation(ModelIdentity.of(model), res), record=str(record), render_workers=2)
    session.hello = Hello.of(intra_encoder(model), res, None, PICTURE_CODEC)
    shown: list[int] = []
    session.display = type("Screen", (), {"show": lambda self, image: shown.append(session._shown_seq),
                                          "close": lambda self: None})()

    async def call() -> None:
        frames = []
        for seq in range(12):
            kp = np.full((points, 2), 0.1 if seq % 2 else -0.1, np.float32)
            frames.append(FrameMessage(seq, time.time_ns(), kp, np.ones(points, np.float32), 20, None, 0))
        # Frame n (odd: slow) and n + 1 (fast) start together: n + 1 is shown first, n is then late.
        for a in range(1, 11, 2):
            await asyncio.gather(session.render(frames[a]), session.render(frames[a + 1]))
        await session.finish()

    asyncio.run(call())
    assert shown == sorted(shown) and len(set(shown)) == len(shown)
    assert shown == [2, 4, 6, 8, 10]
    assert session.stats.late == 5 and session.stats.rendered == 5
    assert len(read_frames(record)) == session.recorder.frames == 10 - 2 + 1  # slots 2-10, held frames repeated


def test_render_worker_defaults(monkeypatch):
    """On a 2-core CPU: two workers of one thread; --threads alone keeps one worker; a GPU renders one at a time;
    a worker count out of range is a clear error."""
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert render_threads(parse_args(["--input", "f"]), cpu) == (2, 1)
    assert render_threads(parse_args(["--input", "f", "--threads", "2"]), cpu) == (1, 2)
    assert render_threads(parse_args(["--input", "f", "--workers", "3"]), cpu) == (3, 1)
    assert render_threads(parse_args(["--input", "f"]), gpu) == (1, None)
    with pytest.raises(SystemExit):
        parse_args(["--input", "f", "--workers", "0"])
