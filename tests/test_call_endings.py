"""How calls end when a process dies: the signaling server killed (the call goes on), the receiver sent
SIGTERM (it ends promptly, stats and recording written) or killed (the recording stays playable).

The receiver and the signaling server run as processes so that the signals are real; the sender runs in this
event loop, with a small untrained model.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import av
import pytest
from calls import tool

from receiver.demo import free_port, wait_healthy
from sender import __main__ as sender_cli
from signaling.server import SignalingServer, bound_port


class LogEvent(logging.Handler):
    """Sets an asyncio event when a log message containing ``text`` is emitted (on the event loop thread)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text, self.event = text, asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


@contextlib.contextmanager
def watching(logger: str, text: str) -> Iterator[asyncio.Event]:
    handler, log = LogEvent(text), logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        yield handler.event
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def start_receiver(url: str, room: str, weights: Path, refs: Path, out: Path) -> subprocess.Popen:
    return tool("receiver", "--refs", str(refs), "--model", str(weights), "--signaling", url, "--room", room,
                "--threads", "1", "--record", str(out / "call.mp4"), "--stats-out", str(out / "stats.json"))


def sender(url: str, room: str, weights: Path, video: str, *extra: str) -> asyncio.Future:
    args = ["--source", video, "--model", str(weights), "--signaling", url, "--room", room, "--threads", "1",
            "--fps", "10", *extra]
    return asyncio.ensure_future(sender_cli.run(sender_cli.parse_args(args)))


def decodable_frames(path: Path) -> int:
    """Frames of an mp4, decoded to the end; raises if any part of it is broken."""
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


async def test_call_outlives_its_signaling_server(tmp_path, tiny_weights, face_refs, face_video):
    """Why: killing the signaling server ended the call on both ends within ~1.3 s."""
    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    server = tool("signaling", "--port", str(port))
    wait_healthy(port, server)
    receiver = start_receiver(url, "outlive", tiny_weights, face_refs, tmp_path)
    try:
        with watching("sender.call", "call accepted") as accepted:
            sending = sender(url, "outlive", tiny_weights, face_video)
            await asyncio.wait_for(accepted.wait(), 60)
        server.send_signal(signal.SIGKILL)
        server.wait(5)
        assert await asyncio.wait_for(sending, 60) == 0
        log, _ = receiver.communicate(timeout=30)
    finally:
        for proc in (server, receiver):
            proc.kill()
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert receiver.returncode == 0 and stats["end_reason"] == "bye", log
    assert "lost the signaling server" in log
    assert stats["frames_received"] >= 0.8 * stats["frames_expected"] >= 0.8 * 20
    assert decodable_frames(tmp_path / "call.mp4") == stats["recording"]["frames"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_receiver_ends_promptly_and_its_recording_stays_playable(tmp_path, tiny_weights, face_refs,
                                                                       face_video, sig):
    """Why: a receiver padding its recording was deaf to SIGTERM and left an unplayable mp4 and no stats."""
    async with SignalingServer().serve("127.0.0.1", 0) as ws_server:
        url = f"ws://127.0.0.1:{bound_port(ws_server)}"
        receiver = start_receiver(url, "endings", tiny_weights, face_refs, tmp_path)
        try:
            with watching("sender.call", "call accepted") as accepted:
                sending = sender(url, "endings", tiny_weights, face_video, "--loop")
                await asyncio.wait_for(accepted.wait(), 60)
            await asyncio.sleep(3.5)  # a few fragments of recording
            receiver.send_signal(sig)
            t0 = time.monotonic()
            log, _ = await asyncio.to_thread(receiver.communicate, timeout=30)
            took = time.monotonic() - t0
            sent = await asyncio.wait_for(sending, 30)
        finally:
            receiver.kill()
    frames = decodable_frames(tmp_path / "call.mp4")
    assert frames >= 10, log
    if sig == signal.SIGTERM:
        stats = json.loads((tmp_path / "stats.json").read_text())
        assert receiver.returncode == 0 and stats["end_reason"] == "interrupted" and took < 5, (took, log)
        assert frames == stats["recording"]["frames"] and sent == 0  # the sender heard the receiver's bye
    else:
        assert receiver.returncode == -signal.SIGKILL and sent == 1  # the sender saw the receiver vanish
