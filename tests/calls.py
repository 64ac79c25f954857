"""Helpers of the call tests: the tools in-process and as processes, and a sender driven by hand."""
from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from aiortc import RTCPeerConnection

from receiver import __main__ as receiver_cli
from sender import __main__ as sender_cli
from sender.call import OpenCall, open_call
from shared_model.call.rtc import ice_configuration
from shared_model.nets.model import TPSModel
from shared_model.wire.control import Accept, Hello, Refuse
from shared_model.wire.keycoding import CodingSettings
from shared_model.wire.messages import FrameEncoder, ModelIdentity
from signaling.client import SignalingClient

ROOT = Path(__file__).resolve().parents[1]
#: The generated clip of the call tests: 40 frames at 10 fps.
FRAMES, FPS = 40, 10.0


def start_receiver(*argv: str) -> asyncio.Future:
    """The receiver's async entry point as a task in this event loop."""
    return asyncio.ensure_future(receiver_cli.run(receiver_cli.parse_args([*argv, "--threads", "1"])))


async def in_process_call(receiver_argv: list[str], sender_argv: list[str]) -> tuple[int, int]:
    """Run receiver and sender in this event loop; their exit codes."""
    receiving = start_receiver(*receiver_argv)
    sent = await asyncio.wait_for(sender_cli.run(sender_cli.parse_args([*sender_argv, "--threads", "1"])), 60)
    return await asyncio.wait_for(receiving, 30), sent


def tool(*args: str) -> subprocess.Popen:
    """``python -m`` one of the tools, output captured."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@contextlib.asynccontextmanager
async def hand_driven_sender(url: str, room: str, encoder: FrameEncoder,
                             resolution: int) -> AsyncIterator[tuple[OpenCall, Accept]]:
    """A real aiortc offerer that says hello with ``encoder``'s model and coding, then sends whatever the test
    sends; yields the call and the receiver's accept."""
    async with SignalingClient(url, room, "sender") as sig:
        await sig.wait_for_peer()
        pc = RTCPeerConnection(ice_configuration())
        try:
            call = await open_call(pc, sig, asyncio.Event())
            call.control.send(Hello.of(encoder, resolution, None, "av1").encode())
            accept = await asyncio.wait_for(call.inbox.next(Accept, Refuse), 10)
            assert isinstance(accept, Accept)
            yield call, accept
        finally:
            await pc.close()


def intra_encoder(model: TPSModel) -> FrameEncoder:
    """Codes every frame on its own (no acks in these tests)."""
    return FrameEncoder(ModelIdentity.of(model), CodingSettings(anchor_every=1), FPS)
