"""The receiver's handling of a call's messages: checks, pictures, latest-sequence-wins, rendering, recording.

Frame messages are decoded and checked on the event loop; the newest waits in a one-frame slot and is
rendered in a worker thread. With several render workers (``render_workers``) each takes the newest frame
when it is free, so frames are rendered side by side (on a 2-core CPU two single-threaded renders give about
twice the frames of one render on two threads, and hold up better beside other work); a frame finished after a
newer one was shown is dropped (``frames_rendered_late``). A frame older than one already decoded is dropped
undecoded, so the screen never goes back in time; between frames (and through losses) the last rendered frame
stays on screen. The recording is encoded in a thread of its own, so no render waits for it. A frame
predicted from a lost one cannot be decoded (spoiled). The newest decoded frame is acknowledged to the sender
(an ack on the keypoint channel, at most every ``ACK_INTERVAL_S``), so that its anchor frames refer only to
frames this end holds.

Reference pictures arrive on the control channel (``shared_model.wire.pictures``); a complete one is decoded
and prepared in the render thread, between two frames, and then acknowledged. Each frame names the picture
to render it from: one of the sender's (held, or the frame is not rendered: counted in
``frames_without_picture``) or 0, the one of the receiver's own pictures (``--refs``) nearest in keypoints.
Before the first picture nothing is shown.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from shared_model.call.aio import LatestSlot
from shared_model.errors import MissingReference, PictureError, WireError, WireRefused
from shared_model.media.picture_codec import PICTURE_CODEC, decode_picture
from shared_model.runtime.inference import ReferenceRenderer
from shared_model.wire.control import (
    MAX_PICTURES,
    Accept,
    Bye,
    Hello,
    Picture,
    PictureChunk,
    PictureRefused,
    Refuse,
    Stats,
    decode_control,
)
from shared_model.wire.messages import ACK_INTERVAL_S, FrameDecoder, FrameMessage, ModelIdentity, encode_ack
from shared_model.wire.pictures import PictureInbox

from .bounds import FrameBounds, Implausible
from .display import Display
from .recorder import Recorder
from .stats import CallStats

log = logging.getLogger(__name__)


#: Most render workers a receiver runs (``--workers``).
MAX_WORKERS = 8
#: Rendered frames that may wait for the recording's encoder before the render thread waits for it.
RECORD_QUEUE = 50

@dataclass(frozen=True)
class Expectation:
    """What the sender must match: this end's model and resolution."""

    identity: ModelIdentity
    resolution: int


class Session:
    """One call's state at the receiver. ``send_control`` sends a control message on the call's channel (replies
    that come later than the message they answer: picture acks); a call file has none. ``clock`` (seconds) times
    the bounds on what the sender can have sent by now (``bounds.FrameBounds``); a replayed call file (``live``
    False) has none."""

    def __init__(self, renderer: ReferenceRenderer, expect: Expectation, record: str | None = None,
                 display: Display | None = None, live: bool = True, max_pictures: int = MAX_PICTURES,
                 clock: Callable[[], float] = time.monotonic, render_workers: int = 1) -> None:
        self.renderer, self.expect = renderer, expect
        self.clock = clock if live else None
        self.bounds: FrameBounds | None = None
        self.record_path, self.display = record, display
        self.recorder: Recorder | None = None
        self.stats = CallStats(live=live)
        self.hello: Hello | None = None
        self.decoder: FrameDecoder | None = None
        self.refusal: str | None = None
        self.bye = asyncio.Event()
        self.last_message = time.monotonic()
        self.inbox = PictureInbox(max_pictures)
        self.send_control: Callable[[bytes], None] = lambda data: None
        self._preparing: asyncio.Future | None = None
        self._newest_seq = -1
        self._last_ack = float("-inf")
        self._slot: LatestSlot[FrameMessage] = LatestSlot()
        self._workers = render_workers
        self._pool = ThreadPoolExecutor(render_workers, thread_name_prefix="render")
        self._record_pool = ThreadPoolExecutor(1, thread_name_prefix="record")
        self._record_room = threading.Semaphore(RECORD_QUEUE)
        self._render_tasks: list[asyncio.Future] = []
        self._shown_seq = -1

    # --- control channel ---

    def on_control(self, data: str | bytes) -> bytes | None:
        """Handle a control message; returns the reply to send at once, if any."""
        self.last_message = time.monotonic()
        try:
            msg = decode_control(data)
        except WireError as exc:
            self.stats.malformed += 1
            log.warning("dropped a malformed control message: %s", exc)
            if self.hello is None and self.refusal is None:  # the sender's first message must be its hello
                return self._refuse(str(exc))
            return None
        if isinstance(msg, Hello):
            return self._on_hello(msg)
        if self.hello is None:
            self.stats.refused += 1
            log.warning("refused a %s message before an accepted hello", msg.TYPE)
        elif isinstance(msg, (Picture, PictureChunk)):
            self._on_picture(msg, len(data))
        elif isinstance(msg, Stats):
            self.stats.sender = {"crop": msg.crop, **msg.counts}
            log.info("sender: %s", self.stats.sender)
        elif isinstance(msg, Bye):
            if msg.last_seq is not None and self.bounds is not None:
                if (problem := self.bounds.last_seq_problem(msg.last_seq)) is None:
                    self.stats.sender_last_seq = msg.last_seq
                else:
                    self.stats.implausible += 1
                    log.warning("ignored the last_seq of the sender's bye: %s", problem)
            log.info("sender said bye (%s)", msg.reason)
            self.bye.set()
            return Bye("bye received", None).encode()
        else:
            log.warning("ignored a %s message, which a sender does not send", msg.TYPE)
        return None

    def _refuse(self, reason: str) -> bytes:
        self.stats.refused += 1
        self.refusal = reason
        log.error("refused the call: %s", reason)
        return Refuse(reason).encode()

    def _on_hello(self, msg: Hello) -> bytes | None:
        if self.hello is not None:
            log.warning("ignored a second hello")
            return None
        try:
            msg.check(self.expect.identity, self.expect.resolution, PICTURE_CODEC)
        except WireRefused as exc:
            return self._refuse(str(exc))
        self.hello = msg
        self.decoder = FrameDecoder(self.expect.identity, msg.coding, msg.fps, msg.epoch_ns)
        self.bounds = FrameBounds(self.decoder.fps, self.clock)
        self.stats.accepted()
        log.info("accepted the sender: model %s version %s, %s fps, crop %s, coding %s", msg.model,
                 msg.model_version, msg.fps, msg.crop, msg.coding.as_dict())
        return Accept(len(self.renderer.own), self.inbox.max_pictures).encode()

    # --- reference pictures ---

    def _on_picture(self, msg: Picture | PictureChunk, size: int) -> None:
        self.stats.picture_received(size)
        try:
            if isinstance(msg, Picture):
                self.inbox.announce(msg)
                return
            complete = self.inbox.chunk(msg)
        except PictureError as exc:
            self._picture_refused(msg.id, str(exc))
            return
        if complete is not None:
            self._preparing = asyncio.ensure_future(self._prepare(*complete))

    def _picture_refused(self, picture: int, reason: str) -> None:
        self.inbox.drop(picture)
        self.stats.pictures_refused += 1
        log.warning("refused picture %d (%d so far): %s", picture, self.stats.pictures_refused, reason)
        self.send_control(PictureRefused(picture, reason[:1000]).encode())

    async def _prepare(self, announced: Picture, data: bytes) -> None:
        """Decode and prepare a complete picture in the render thread, then hold and acknowledge it."""
        try:
            await asyncio.get_running_loop().run_in_executor(self._pool, self._add_picture, announced, data)
        except PictureError as exc:
            self._picture_refused(announced.id, str(exc))
            return
        ack = self.inbox.hold(announced)
        self.stats.picture_held()
        log.info("holding picture %d (%d bytes)%s", announced.id, len(data),
                 f", dropped picture {announced.replaces}" if announced.replaces else "")
        self.send_control(ack.encode())

    def _add_picture(self, announced: Picture, data: bytes) -> None:
        image = decode_picture(data, self.expect.resolution)
        if announced.replaces is not None:
            self.renderer.remove_picture(announced.replaces)
        self.renderer.add_picture(announced.id, image)

    async def settle(self) -> None:
        """Until the picture in preparation (if any) is held or refused (a call file waits for it)."""
        if self._preparing is not None:
            await self._preparing

    # --- keypoint channel ---

    def check_frame(self, data: str | bytes) -> FrameMessage | None:
        """The decoded frame, or None when it is malformed, refused, older than one already decoded, or
        predicted from a frame this end does not hold."""
        self.last_message = time.monotonic()
        try:
            if self.decoder is None or self.bounds is None:
                raise WireRefused("frame before an accepted hello")
            seq, _ = self.decoder.header(data)
            if seq <= self._newest_seq:
                self.stats.frame_received(seq, len(data))
                self.stats.stale += 1
                return None
            frame = self.decoder.decode(data, self.bounds.admit)
        except Implausible as exc:
            self.stats.implausible += 1
            if self.stats.implausible == 1 or self.stats.implausible % 100 == 0:
                log.warning("dropped an implausible frame message (%d so far): %s", self.stats.implausible, exc)
            return None
        except WireRefused as exc:
            self.stats.refused += 1
            if self.stats.refused == 1 or self.stats.refused % 100 == 0:
                log.error("refused frame message (%d so far): %s", self.stats.refused, exc)
            return None
        except WireError as exc:
            self.stats.malformed += 1
            log.warning("dropped a malformed frame message (%d so far): %s", self.stats.malformed, exc)
            return None
        except MissingReference as exc:
            self.stats.frame_received(seq, len(data))
            self.stats.spoiled += 1
            log.debug("spoiled: %s", exc)
            return None
        self.stats.frame_received(frame.seq, frame.size, frame.capture_ns)
        self._newest_seq = frame.seq
        return frame

    def on_frame(self, data: str | bytes) -> bytes | None:
        """Network path: keep only the newest frame for the renderer; returns an ack to send, when one is due."""
        frame = self.check_frame(data)
        if frame is None:
            return None
        self._slot.put(frame)
        self.stats.skipped = self._slot.replaced
        now = time.monotonic()
        if frame.ref_seq is not None and now - self._last_ack < ACK_INTERVAL_S:
            return None
        self._last_ack = now
        return encode_ack(frame.seq)

    # --- rendering ---

    def start(self) -> None:
        self._render_tasks = [asyncio.ensure_future(self._render_loop()) for _ in range(self._workers)]

    async def _render_loop(self) -> None:
        while (frame := await self._slot.get()) is not None:
            await self.render(frame)

    async def render(self, frame: FrameMessage) -> None:
        """Render ``frame`` in a worker; show and record it unless a newer frame was shown meanwhile."""
        rendered = await asyncio.get_running_loop().run_in_executor(self._pool, self._render, frame)
        if rendered is None:
            self.stats.without_picture += 1
            if self.stats.without_picture == 1 or self.stats.without_picture % 100 == 0:
                log.info("frame %d names picture %d, which is not held: not shown (%d so far)", frame.seq,
                         frame.picture, self.stats.without_picture)
            return
        image, seconds = rendered
        if frame.seq <= self._shown_seq:
            self.stats.late += 1
            if self.record_path:
                self._record_room.release()
            return
        self._shown_seq = frame.seq
        self.stats.frame_rendered(frame, seconds)
        if self.record_path:
            self._record_pool.submit(self._record, frame.seq, frame.capture_ns, image)
        if self.display is not None:
            self.display.show(image)

    def _render(self, frame: FrameMessage) -> tuple[np.ndarray, float] | None:
        """The frame rebuilt and the seconds it took, or None when this end holds no picture to rebuild it from
        (not yet, or dropped meanwhile by a picture that replaced it). Runs in a render worker."""
        if not (frame.picture in self.renderer.pictures if frame.picture else self.renderer.own):
            return None
        t0 = time.perf_counter()
        try:
            image, _ = self.renderer.render(frame.keypoints, frame.strengths, frame.picture)
        except KeyError:  # the picture was replaced, on another worker, after the check above
            return None
        seconds = time.perf_counter() - t0
        if self.record_path:
            self._record_room.acquire()  # waits only when the encoder is RECORD_QUEUE frames behind
        return image, seconds

    def _record(self, seq: int, capture_ns: int, image: np.ndarray) -> None:
        try:
            if self.recorder is None:
                self.recorder = Recorder(self.record_path, self.hello.fps)
            self.recorder.write(seq, capture_ns, image)
        except Exception:
            log.exception("recording failed at frame %d: the call goes on unrecorded", seq)
            self.record_path = None
        finally:
            self._record_room.release()

    async def finish(self, stop: asyncio.Event | None = None) -> None:
        """Render what is pending, then finalize the recording (padded to the sender's last frame, unless
        ``stop`` is set meanwhile: SIGTERM ends the receiver promptly)."""
        abort = threading.Event()
        if stop is not None:
            aborter = asyncio.ensure_future(stop.wait())
            aborter.add_done_callback(lambda _: abort.set())
        self._slot.close()
        if self._preparing is not None and not self._preparing.done():
            self._preparing.cancel()
        await asyncio.gather(*self._render_tasks)
        await asyncio.get_running_loop().run_in_executor(self._record_pool, self._close_recording, abort)
        if stop is not None:
            aborter.cancel()
        self._pool.shutdown()
        self._record_pool.shutdown()
        if self.display is not None:
            self.display.close()

    def _close_recording(self, abort: threading.Event) -> None:
        if self.recorder is not None:
            self.recorder.close(self.stats.sender_last_seq, abort)
        elif self.record_path:
            log.warning("no frame rendered: %s not written", self.record_path)

    def report(self) -> dict[str, Any]:
        out = self.stats.as_dict()
        out["bounds_resyncs"] = 0 if self.bounds is None else self.bounds.resyncs
        out["recording"] = None if self.recorder is None else {
            "path": str(self.recorder.path), "frames": self.recorder.frames, "first_seq": self.recorder.first_seq}
        return out
