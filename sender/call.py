"""The sender's side of a call: signaling, the two data channels, and the frame loop.

Capture runs in its own thread, crop, keypoints and picture coding in a one-thread executor; the event loop
only moves messages. The newest captured frame wins (a frame captured while the previous one is still processed
replaces it), and a frame whose turn comes while the keypoint channel still holds an unsent message is
dropped rather than queued: aiortc never drops stale queued messages itself. After each frame's turn at most
one picture message (at most one SCTP chunk) follows, and only when the previous one has left and the budget
allows: aiortc sends all channels' messages through one queue, so a picture must never pile up in front of
keypoint messages.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection

from shared_model.call.aio import LatestSlot, unless_stopped
from shared_model.call.rtc import (
    ConnectionWatch,
    DatagramTap,
    Impairment,
    create_channels,
    wait_open,
    wire_rates,
)
from shared_model.errors import WireError
from shared_model.media.video import VideoError
from shared_model.wire.budget import Budget
from shared_model.wire.control import Accept, Bye, Control, PictureAck, PictureRefused, Refuse, Stats, decode_control
from shared_model.wire.messages import decode_ack
from shared_model.wire.pictures import PictureOutbox
from signaling.client import SignalingClient

from .capture import Captured, FrameSource
from .pipeline import FramePipeline

log = logging.getLogger(__name__)

SETUP_TIMEOUT_S = 30.0
REPLY_TIMEOUT_S = 15.0
#: How long the sender waits for the receiver's answering bye. The control channel is reliable SCTP, whose
#: retransmissions back off from a 1 s timeout (tries at about 0, 1, 3 and 7 s): under heavy loss the bye
#: or its answer can need several of them, so the wait covers four tries. It ends early if the peer goes.
BYE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class CallOptions:
    signaling: str
    room: str
    token: str | None
    rtc: RTCConfiguration
    impairment: Impairment = field(default_factory=Impairment)
    stats_interval: float = 2.0
    max_kbps: float = 16.0  # the budget: every payload byte, keypoints and pictures


class CallRefused(RuntimeError):
    """The receiver refused the hello (other wire version or model), or neither end has pictures."""


class ControlInbox:
    """Decoded control messages from the receiver; malformed ones are logged and dropped. Picture acks and
    refusals go to ``outbox`` as they arrive, the rest wait in a queue."""

    def __init__(self, channel: RTCDataChannel, outbox: PictureOutbox | None = None) -> None:
        self.queue: asyncio.Queue[Control] = asyncio.Queue()
        self.outbox = outbox
        channel.on("message", self._on_message)

    def _on_message(self, data: str | bytes) -> None:
        try:
            msg = decode_control(data)
        except WireError as exc:
            log.warning("dropped a control message: %s", exc)
            return
        if self.outbox is not None and isinstance(msg, PictureAck):
            self.outbox.acknowledged(msg)
            log.info("the receiver holds picture %d (all it holds: %s)", msg.id, list(msg.held))
        elif self.outbox is not None and isinstance(msg, PictureRefused):
            self.outbox.refused_picture(msg.id)
            log.warning("the receiver refused picture %d: %s", msg.id, msg.reason)
        else:
            self.queue.put_nowait(msg)

    async def next(self, *kinds: type[Control]) -> Control:
        while True:
            msg = await self.queue.get()
            if isinstance(msg, kinds):
                return msg
            log.debug("ignored control message %s", msg.TYPE)


def take_acks(keypoints: RTCDataChannel, acknowledge: Callable[[int], None]) -> None:
    """Pass the receiver's acks (on the keypoint channel) to ``acknowledge``; anything else is logged and dropped."""

    @keypoints.on("message")
    def _on_message(data: str | bytes) -> None:
        try:
            acknowledge(decode_ack(data))
        except WireError as exc:
            log.warning("dropped a message on the keypoint channel: %s", exc)


class Streamer:
    """The frame loop of one connected call: frame messages, then picture messages, within the budget."""

    def __init__(self, source: FrameSource, pipeline: FramePipeline, keypoints: RTCDataChannel,
                 control: RTCDataChannel, budget: Budget) -> None:
        self.source, self.pipeline, self.keypoints, self.control = source, pipeline, keypoints, control
        self.budget = budget
        self.slot: LatestSlot[Captured] = LatestSlot()
        self.stop_capture = threading.Event()
        self.error: Exception | None = None

    def _capture(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            for item in self.source.frames(self.stop_capture):
                self.pipeline.counts.captured += 1
                loop.call_soon_threadsafe(self.slot.put, item)
        except VideoError as exc:
            self.error = exc
            log.error("%s", exc)
        finally:
            loop.call_soon_threadsafe(self.slot.close)

    async def run(self) -> None:
        """Until the source ends."""
        loop = asyncio.get_running_loop()
        counts = self.pipeline.counts
        threading.Thread(target=self._capture, args=(loop,), name="capture", daemon=True).start()
        with ThreadPoolExecutor(1, thread_name_prefix="keypoints") as worker:
            while (item := await self.slot.get()) is not None:
                frame = await loop.run_in_executor(worker, self.pipeline, item)
                counts.dropped_busy = self.slot.replaced
                if self.keypoints.readyState != "open":
                    log.warning("keypoint channel %s: stopping", self.keypoints.readyState)
                    return
                if frame is None:
                    pass
                elif self.keypoints.bufferedAmount > 0:
                    counts.dropped_backlog += 1
                elif not self.budget.allows_frame(time.monotonic()):
                    counts.dropped_budget += 1
                else:
                    self.keypoints.send(frame.data)
                    self.budget.spend(len(frame.data))
                    self.pipeline.sent(frame)
                self.send_picture_message()

    def send_picture_message(self) -> None:
        """The next picture message, if one is waiting, the last one has left aiortc's queue and the budget
        allows it. It queues behind the frame message just sent and has a frame interval to leave before the
        next one (one that still waits then is dropped and counted in ``dropped_backlog``)."""
        pictures = self.pipeline.pictures
        message = pictures.outbox.pending()
        frames_flow = pictures.own_pictures or bool(pictures.outbox.usable())  # else keep nothing back for them
        if (message is None or self.control.readyState != "open" or self.control.bufferedAmount > 0
                or not self.budget.allows_chunk(len(message), time.monotonic(), reserve=frames_flow)):
            return
        self.control.send(message)
        pictures.outbox.sent(message)
        self.budget.spend(len(message))
        self.pipeline.counts.picture_message_bytes += len(message)

    @property
    def last_seq(self) -> int:
        return self.pipeline.counts.captured - 1


async def _every(interval: float, action: Callable[[], None]) -> None:
    while True:
        await asyncio.sleep(interval)
        action()


async def run_call(source: FrameSource, pipeline: FramePipeline, opts: CallOptions, stop: asyncio.Event) -> int:
    """One call as the offerer; 0 when it ended normally, 1 when it was refused or the connection failed."""
    async with SignalingClient(opts.signaling, opts.room, "sender", opts.token, stop=stop) as sig:
        if not sig.peer_present:
            log.info("in room %r: waiting for the receiver", opts.room)
        await unless_stopped(sig.wait_for_peer(), stop)
        pc = RTCPeerConnection(opts.rtc)
        try:
            return await _call(pc, sig, source, pipeline, opts, stop)
        except CallRefused as exc:
            log.error("the receiver refused the call: %s", exc)
            return 1
        finally:
            await pc.close()


@dataclass
class OpenCall:
    """A connected call, as the offerer sees it."""

    keypoints: RTCDataChannel
    control: RTCDataChannel
    inbox: ControlInbox
    watch: ConnectionWatch
    tap: DatagramTap


async def open_call(pc: RTCPeerConnection, sig: SignalingClient, stop: asyncio.Event,
                    outbox: PictureOutbox | None = None) -> OpenCall:
    """Offer (with the negotiated channels and every ICE candidate), take the answer, wait until connected."""
    keypoints, control = create_channels(pc)
    inbox, watch = ControlInbox(control, outbox), ConnectionWatch(pc)
    await pc.setLocalDescription(await pc.createOffer())
    tap = DatagramTap(pc)
    await sig.send("offer", sdp=pc.localDescription.sdp)
    await unless_stopped(sig.take_description(pc, "answer", timeout=SETUP_TIMEOUT_S), stop)
    await unless_stopped(watch.wait_connected(SETUP_TIMEOUT_S), stop)
    await wait_open(control, SETUP_TIMEOUT_S)
    return OpenCall(keypoints, control, inbox, watch, tap)


async def _call(pc: RTCPeerConnection, sig: SignalingClient, source: FrameSource, pipeline: FramePipeline,
                opts: CallOptions, stop: asyncio.Event) -> int:
    pictures = pipeline.pictures
    call = await open_call(pc, sig, stop, pictures.outbox)
    keypoints, control, inbox, watch, tap = call.keypoints, call.control, call.inbox, call.watch, call.tap
    tap.impair(opts.impairment)
    take_acks(keypoints, pipeline.acknowledge)
    control.send(pipeline.hello().encode())
    try:
        reply = await asyncio.wait_for(inbox.next(Accept, Refuse), REPLY_TIMEOUT_S)
    except TimeoutError as exc:
        raise CallRefused(f"no answer to the hello within {REPLY_TIMEOUT_S} s") from exc
    if isinstance(reply, Refuse):
        raise CallRefused(reply.reason)
    assert isinstance(reply, Accept)
    pictures.outbox.max_pictures, pictures.own_pictures = reply.max_pictures, reply.own_pictures > 0
    if not (pictures.own_pictures or pictures.sends_pictures):
        raise CallRefused("neither end has pictures of the speaker: give the sender --refs or --ref-count, or the "
                          "receiver --refs")
    log.info("call accepted: streaming at %.1f fps within %g kbps; the receiver holds up to %d pictures and has "
             "%d of its own", source.fps, opts.max_kbps, reply.max_pictures, reply.own_pictures)

    streamer = Streamer(source, pipeline, keypoints, control, Budget(opts.max_kbps, time.monotonic()))
    start = tap.counts()

    def send_stats() -> None:
        if control.readyState == "open":
            control.send(Stats(pipeline.crop, pipeline.stats()).encode())

    tasks = {"source ended": asyncio.ensure_future(streamer.run()),
             "connection lost": asyncio.ensure_future(watch.ended.wait()),
             "receiver left": asyncio.ensure_future(sig.wait_gone()),
             "receiver hung up": asyncio.ensure_future(inbox.next(Bye)),
             "interrupted": asyncio.ensure_future(stop.wait())}
    ticker = asyncio.ensure_future(_every(opts.stats_interval, send_stats))
    done, _ = await asyncio.wait(tasks.values(), return_when=asyncio.FIRST_COMPLETED)
    reason = next(name for name, task in tasks.items() if task in done)
    streamer.stop_capture.set()
    ticker.cancel()
    for task in tasks.values():
        task.cancel()
    if tasks["source ended"] in done and tasks["source ended"].exception() is not None:
        raise tasks["source ended"].exception()
    log.info("call ending: %s", reason)
    if reason not in ("connection lost", "receiver left") and control.readyState == "open":
        send_stats()
        control.send(Bye(reason, streamer.last_seq).encode())
        if reason != "receiver hung up":
            # The receiver answers bye once it has read everything before it.
            ends = [asyncio.ensure_future(inbox.next(Bye)), asyncio.ensure_future(watch.ended.wait()),
                    asyncio.ensure_future(sig.wait_gone())]
            done, pending = await asyncio.wait(ends, timeout=BYE_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            if ends[0] not in done:
                log.warning("no bye from the receiver within %.0f s", BYE_TIMEOUT_S)
    rates = wire_rates(start, tap.counts())
    log.info("sent %s; wire %s kbps out, %s kbps in; %d datagrams dropped by --impair-loss",
             pipeline.stats(), _fmt(rates["sent_kbps"]), _fmt(rates["received_kbps"]), tap.dropped_packets)
    ok = reason not in ("connection lost", "receiver left") and streamer.error is None
    return 0 if ok else 1


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"
