"""The receiver's side of a call (the answerer), and the replay of a call file (``--input``)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection

from shared_model.call.aio import unless_stopped
from shared_model.call.rtc import ConnectionWatch, DatagramTap, create_channels, selected_pair
from shared_model.wire.control import Bye
from shared_model.wire.records import CONTROL, read_records
from signaling.client import SignalingClient

from .session import Session

log = logging.getLogger(__name__)

SETUP_TIMEOUT_S = 30.0
BYE_GRACE_S = 2.0


@dataclass(frozen=True)
class CallOptions:
    signaling: str
    room: str
    token: str | None
    rtc: RTCConfiguration
    idle_timeout: float = 10.0


async def _idle(session: Session, timeout: float) -> None:
    """Returns once no message has arrived for ``timeout`` seconds."""
    while (left := session.last_message + timeout - time.monotonic()) > 0:
        await asyncio.sleep(min(left, 0.5))


async def receive_call(session: Session, opts: CallOptions, stop: asyncio.Event) -> str:
    """Wait for the sender's offer, run the call until it ends; returns why it ended (``session.finish`` is
    left to the caller)."""
    async with SignalingClient(opts.signaling, opts.room, "receiver", opts.token, stop=stop) as sig:
        log.info("in room %r: waiting for the sender", opts.room)
        pc = RTCPeerConnection(opts.rtc)
        try:
            keypoints, control = create_channels(pc)
            watch = ConnectionWatch(pc)

            def _answer(channel: RTCDataChannel, reply: str | bytes | None) -> None:
                if reply is not None and channel.readyState == "open":
                    channel.send(reply)

            keypoints.on("message", lambda data: _answer(keypoints, session.on_frame(data)))
            control.on("message", lambda data: _answer(control, session.on_control(data)))
            session.send_control = lambda data: _answer(control, data)

            await unless_stopped(sig.take_description(pc, "offer"), stop)
            session.stats.tap = DatagramTap(pc)
            await sig.send("answer", sdp=pc.localDescription.sdp)
            await unless_stopped(watch.wait_connected(SETUP_TIMEOUT_S), stop)
            session.stats.ice_pair = selected_pair(pc)
            log.info("connected: %s", session.stats.ice_pair)
            session.last_message = time.monotonic()
            session.start()
            ends = {"bye": session.bye.wait(), "connection lost": watch.ended.wait(),
                    "sender left": sig.wait_gone(), "idle timeout": _idle(session, opts.idle_timeout),
                    "interrupted": stop.wait()}
            tasks = {name: asyncio.ensure_future(aw) for name, aw in ends.items()}
            done, _ = await asyncio.wait(tasks.values(), return_when=asyncio.FIRST_COMPLETED)
            for task in tasks.values():
                task.cancel()
            reason = next(name for name, task in tasks.items() if task in done)
            if reason == "interrupted" and control.readyState == "open":
                control.send(Bye("receiver interrupted", None).encode())
                with contextlib.suppress(TimeoutError):  # give the sender a moment to read it and hang up
                    await asyncio.wait_for(watch.ended.wait(), BYE_GRACE_S)
            return reason
        finally:
            await pc.close()


async def replay_file(session: Session, path: str | Path) -> str:
    """Render every frame of a call file, in order (no real-time pacing, nothing dropped); each picture is held
    before the frames after it."""
    for kind, payload in read_records(path):
        if kind == CONTROL:
            session.on_control(payload)
            await session.settle()
        elif (frame := session.check_frame(payload)) is not None:
            await session.render(frame)
    return "bye" if session.bye.is_set() else "end of file"
