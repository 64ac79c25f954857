"""Forged sequence numbers, capture times and ``last_seq``: dropped and counted, never a wrecked call.

The bounds on their own with a hand-set clock, then a real receiver fed by a real aiortc sender that forges.
"""
from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest
from calls import hand_driven_sender, intra_encoder, start_receiver

from receiver.bounds import RATE_MARGIN, RESYNC_FRAMES, SLACK_S, FrameBounds, Implausible
from shared_model.media.video import read_frames
from shared_model.nets.model import load_model
from shared_model.wire.control import Bye
from shared_model.wire.messages import MAX_DISTANCE
from signaling.server import SignalingServer, bound_port


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bounds_follow_the_time_since_the_hello_and_the_newest_frame():
    clock = Clock()
    bounds = FrameBounds(10.0, clock)
    first_limit = int(SLACK_S * 10 * RATE_MARGIN + MAX_DISTANCE) - 1
    with pytest.raises(Implausible, match="too far ahead"):
        bounds.admit(first_limit + 1, 0)
    bounds.admit(first_limit, 5_000)  # the first frame's capture time is free: it anchors the timeline
    clock.now += 60  # a minute later (a long outage), a frame 600 slots on is plausible
    bounds.admit(first_limit + 600, 65_000)
    with pytest.raises(Implausible, match="captured"):  # but not one captured far later than it arrived
        bounds.admit(first_limit + 601, 65_000 + 1000 * int(SLACK_S * RATE_MARGIN + 1))
    with pytest.raises(Implausible, match="captured"):  # nor one captured before the newest frame
        bounds.admit(first_limit + 602, 65_000 - 1000 * int(SLACK_S + 1))
    assert bounds.last_seq_problem(first_limit + 600) is None
    assert bounds.last_seq_problem(10**6) is not None and bounds.last_seq_problem(3) is not None


def test_a_stream_that_really_moved_on_is_followed():
    """A receiver that fell behind handles a burst: genuine frames far ahead of the newest, in order."""
    clock = Clock()
    bounds = FrameBounds(10.0, clock)
    bounds.admit(0, 0)
    with pytest.raises(Implausible):  # one frame far ahead: refused
        bounds.admit(5000, 500_000)
    for i in range(RESYNC_FRAMES - 1):  # a burst of them, each after the other, until the bounds follow
        with pytest.raises(Implausible):
            bounds.admit(900 + i, 90_000 + 100 * i)
    bounds.admit(900 + RESYNC_FRAMES - 1, 90_000 + 100 * (RESYNC_FRAMES - 1))
    bounds.admit(900 + RESYNC_FRAMES, 90_000 + 100 * RESYNC_FRAMES)
    assert bounds.resyncs == 1


def test_replayed_files_bound_only_last_seq():
    bounds = FrameBounds(10.0, None)
    bounds.admit(40_000, 0)  # a call file's frames come as fast as they decode
    assert bounds.last_seq_problem(40_001) is None and bounds.last_seq_problem(10**6) is not None


async def test_forged_frames_and_bye_are_dropped_and_counted(tmp_path, face_refs, tiny_weights):
    """Why: a frame jumping the sequence by 32,767 made the receiver drop every genuine frame after it and pad
    the recording to 32,788 frames; a bye claiming last_seq 10^6 kept it padding for minutes."""
    stats_path, record = tmp_path / "stats.json", tmp_path / "call.mp4"
    async with SignalingServer().serve("127.0.0.1", 0) as ws_server:
        url = f"ws://127.0.0.1:{bound_port(ws_server)}"
        receiving = start_receiver("--refs", str(face_refs), "--model", str(tiny_weights), "--signaling", url,
                                   "--room", "forged", "--stats-out", str(stats_path), "--record", str(record))
        model = load_model(tiny_weights)
        encoder = intra_encoder(model)
        kp, st = np.zeros((model.cfg.num_keypoints, 2)), np.ones(model.cfg.num_keypoints)

        def frame(seq: int, ahead_s: float = 0.0) -> bytes:
            return encoder.encode(seq, time.time_ns() + round(ahead_s * 1e9), kp, st).data

        async with hand_driven_sender(url, "forged", encoder, model.cfg.resolution) as (call, _):
            for seq in range(5):
                call.keypoints.send(frame(seq))
                await asyncio.sleep(0.1)
            call.keypoints.send(frame(4 + 32767))  # the forged jump
            call.keypoints.send(frame(5, ahead_s=20))  # captured 20 s in the future (intra: known within +-32 s)
            for seq in range(6, 10):
                await asyncio.sleep(0.1)
                call.keypoints.send(frame(seq))
            await asyncio.sleep(0.3)
            t0 = time.monotonic()
            call.control.send(Bye("test over", 10**6).encode())
            await asyncio.wait_for(call.inbox.next(Bye), 10)
        assert await asyncio.wait_for(receiving, 30) == 0
        assert time.monotonic() - t0 < 10
    stats = json.loads(stats_path.read_text())
    assert stats["implausible"] == 3  # the jump, the future capture time, the bye's last_seq
    assert (stats["frames_received"], stats["frames_stale"], stats["malformed"]) == (9, 0, 0)
    assert stats["frames_expected"] == 10 and stats["last_seq"] == 9
    assert len(read_frames(record)) == stats["recording"]["frames"] == 10 - stats["recording"]["first_seq"]
