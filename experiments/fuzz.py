"""``python -m experiments fuzz``: random, mutated and absurd inputs through the peers' message handlers.

Each target feeds one handler as the network would, one input at a time, and checks what comes out:

* ``frame``: the receiver's keypoint channel (``Session.check_frame``, acks fed back) in calls that mix a
  genuine stream (a real FrameEncoder with the receiver's acks fed back, a simulated clock, loss, reordering,
  skipped frames) with random bytes, mutated genuine messages, forged sequence numbers and capture times,
  rewritten headers, text and replays. A new call (fps and coding settings drawn anew) every ``CALL_INPUTS``.
* ``ack``: the sender's side of the keypoint channel (``decode_ack``, then ``FrameEncoder.acknowledge``).
* ``control``: the receiver's (``Session.on_control``, its picture inbox and decoder, its replies) and the
  sender's (``ControlInbox`` with its ``PictureOutbox``) control handlers, with valid messages of every type
  mutated field by field or byte by byte, and now and then a whole genuine AV1 picture (announcement and chunks)
  with one message or the picture's bytes mutated; after an accepted hello, a frame coded with that hello's
  settings must decode within range. Messages are wire v3's msgpack maps (``shared_model.wire.control``),
  written with ``msgpack`` itself so that mutated maps are possible. A new receiver session every
  ``CONTROL_CALL_INPUTS``.
* ``signaling``: the server's checks (``protocol.parse_join``, ``parse``, ``relayed``) and the peers'
  (``SignalingClient.expect``), on mutated signaling messages.
* ``sdp``: a real RTCPeerConnection applying a mutated offer (``apply_description``) and answering it.

Counted per target: inputs; escaped exceptions (anything but the handler's documented errors, the first few
kept with their input); hangs (an input that takes longer than ``hang_s``); accepted frames that are out of
range, not finite, or differ from what the genuine sender coded (``invalid``); forged frames accepted
(``accepted_forged``: well-formed and plausible, so indistinguishable from genuine ones; reported, with how far
ahead of the genuine stream they reached).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import msgpack
import numpy as np
from aiortc import RTCPeerConnection

from receiver.session import Expectation, Session
from sender.call import CallRefused, ControlInbox
from shared_model.call.rtc import create_channels
from shared_model.errors import WireError
from shared_model.media.picture_codec import PICTURE_CODEC, encode_picture
from shared_model.runtime.inference import ReferenceRenderer
from shared_model.training.synthetic import talking_face
from shared_model.wire.control import (
    CHUNK_BYTES,
    MAX_PICTURES,
    Accept,
    Bye,
    Control,
    Hello,
    Picture,
    PictureAck,
    PictureChunk,
    PictureRefused,
    Refuse,
    Stats,
)
from shared_model.wire.keycoding import CodingSettings, dequantize
from shared_model.wire.messages import (
    WIRE_VERSION,
    EncodedFrame,
    FrameEncoder,
    FrameMessage,
    ModelIdentity,
    decode_ack,
)
from shared_model.wire.pictures import PictureOutbox
from signaling import protocol
from signaling.client import SignalingClient, SignalingError, apply_description
from signaling.protocol import ProtocolError

from .mutations import absurd, mutate_bytes, mutate_fields, mutate_text

#: Inputs of the frame target before a new call starts.
CALL_INPUTS = 2000
#: Inputs of the control target before a new receiver session (a receiver accepts one hello per call).
CONTROL_CALL_INPUTS = 200
#: Loggers of the handlers under test, silenced during a run (every drop logs a line; the counters stay).
HANDLER_LOGGERS = ("receiver", "sender", "signaling", "shared_model")
#: How many examples of each kind (escaped, hang, invalid) a report keeps with their input.
EXAMPLES = 5
_EPOCH_NS = 1_700_000_000 * 10**9
_SDP = ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\na=msid-semantic:WMS *\r\n"
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 127.0.0.1\r\na=mid:0\r\na=sctp-port:5000\r\n"
        "a=max-message-size:262144\r\na=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n"
        "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef01234567\r\na=fingerprint:sha-256 "
        + ":".join(["AB"] * 32) + "\r\na=setup:actpass\r\n")


@dataclass
class Report:
    """What one target's inputs did."""

    inputs: int = 0
    escaped: int = 0
    hangs: int = 0
    invalid: int = 0
    accepted: int = 0
    accepted_forged: int = 0
    forged_lead_frames: int = 0  # farthest a forged accepted frame got ahead of the genuine stream
    max_ms: float = 0.0
    seconds: float = 0.0
    examples: list[dict[str, str]] = field(default_factory=list)

    def example(self, kind: str, what: str, data: Any) -> None:
        if sum(e["kind"] == kind for e in self.examples) < EXAMPLES:
            self.examples.append({"kind": kind, "what": what[:300], "input": repr(data)[:300]})


class Target(Protocol):
    """One handler under test: ``make`` draws an input, ``feed`` gives it to the handler and checks the outcome
    (an exception escaping ``feed`` is the handler's; one escaping ``make`` is a bug of the fuzzer)."""

    name: str

    def reset(self, rng: random.Random) -> None: ...

    def make(self, rng: random.Random) -> Any: ...

    def feed(self, item: Any, report: Report) -> None: ...


class SimClock:
    """A clock the fuzzer moves by hand, so that a stream of a thousand frames a second looks like a real call."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def check_frame_values(frame: FrameMessage, count: int) -> str | None:
    """Why an accepted frame is invalid, or None."""
    kp, st = frame.keypoints, frame.strengths
    if kp.shape != (count, 2) or st.shape != (count,):
        return f"shapes {kp.shape} {st.shape}"
    if not (np.isfinite(kp).all() and np.isfinite(st).all()):
        return "not finite"
    if np.abs(kp).max() > 1.0 or st.min() < 0.0 or st.max() > 1.0:
        return f"out of range: keypoints up to {np.abs(kp).max():.3f}, strengths in [{st.min():.3f}, {st.max():.3f}]"
    return None


def _random_settings(rng: random.Random) -> tuple[float, CodingSettings]:
    """A frame rate and coding settings a hello may carry (coarse steps included)."""
    settings = CodingSettings(rng.choice((1 / 1024, 1 / 128, 1 / 64, 0.22, 0.25)), rng.choice((1 / 16, 0.383, 0.5)),
                              rng.choice((1, 4, 16)))
    return rng.choice((5.0, 10.0, 25.0, 30.0, 60.0)), settings


class FrameTarget:
    """The receiver's keypoint channel: a genuine stream with forgeries mixed in."""

    name = "frame"

    def __init__(self, renderer: ReferenceRenderer, identity: ModelIdentity, resolution: int) -> None:
        self.renderer, self.identity, self.resolution = renderer, identity, resolution

    def reset(self, rng: random.Random) -> None:
        """A new call: hello accepted, nothing sent yet."""
        self.fps, settings = _random_settings(rng)
        self.clock = SimClock()
        self.start = self.clock.now
        self.encoder = FrameEncoder(self.identity, settings, self.fps, _EPOCH_NS)
        self.forger = FrameEncoder(self.identity, settings, self.fps, _EPOCH_NS)  # never told what was sent
        self.session = Session(self.renderer, Expectation(self.identity, self.resolution), clock=self.clock)
        self.session.on_control(Hello.of(self.encoder, self.resolution, None, PICTURE_CODEC).encode())
        if self.session.decoder is None:
            raise RuntimeError(f"the receiver refused a valid hello: {self.session.refusal}")
        self.seq, self.inputs = -1, 0
        self.kp = np.array([[rng.uniform(-0.8, 0.8), rng.uniform(-0.8, 0.8)]
                            for _ in range(self.identity.num_keypoints)])
        self.sent: deque[EncodedFrame] = deque(maxlen=64)
        self.held: deque[EncodedFrame] = deque(maxlen=8)  # delayed: delivered late, out of order
        self.clean: dict[int, bool] = {}  # accepted frames: decoded from genuine messages all the way?

    def _capture_ns(self) -> int:
        return _EPOCH_NS + round((self.clock.now - self.start) * 1e9)

    def _genuine(self, rng: random.Random) -> EncodedFrame:
        self.clock.now += rng.choice((1.0, 1.0, 1.0, 0.5, 2.0, 10.0)) / self.fps
        self.seq += rng.choice((1, 1, 1, 1, 2, 7))  # the sender also numbers frames it did not send
        self.kp = np.clip(self.kp + np.array([[rng.gauss(0, 0.02), rng.gauss(0, 0.02)] for _ in self.kp]), -1, 1)
        st = np.full(len(self.kp), rng.random())
        frame = self.encoder.encode(self.seq, self._capture_ns(), self.kp, st)
        self.encoder.sent(frame)
        self.sent.append(frame)
        return frame

    def _forged(self, rng: random.Random) -> bytes | str:
        last = self.sent[-1].data if self.sent else b"\x20\x00\x00"
        kind = rng.random()
        if kind < 0.2:
            return mutate_bytes(rng, last)
        if kind < 0.3:
            return rng.randbytes(rng.choice((0, 1, 2, 3, 10, 30, 3000)))
        if kind < 0.5:
            jump = rng.choice((2**15 - 1, 2**15, 2**16 - 1, 2**16, 1000, 100, -3, -(2**15)))
            return self.forger.encode(max(0, self.seq + jump), self._capture_ns(), self.kp,
                                      np.ones(len(self.kp))).data
        if kind < 0.65:
            ahead_ns = rng.choice((-1, 1)) * rng.choice((3, 60, 3600, 10**6)) * 10**9
            return self.forger.encode(self.seq + 1, max(0, self._capture_ns() + ahead_ns), self.kp,
                                      np.ones(len(self.kp))).data
        if kind < 0.8 and len(last) >= 3:
            header = bytearray(last)
            header[rng.randrange(3)] = rng.randrange(256)
            return bytes(header)
        if kind < 0.9:
            return last.decode("latin-1")
        return rng.choice(self.sent).data if self.sent else last

    def make(self, rng: random.Random) -> tuple[bytes | str, EncodedFrame | None]:
        """A message and, when it is one, the genuine frame it carries."""
        self.inputs += 1
        if self.inputs > CALL_INPUTS:
            self.reset(rng)
        if rng.random() >= 0.35:
            return self._forged(rng), None
        genuine = self._genuine(rng)
        while rng.random() < 0.1:  # lost: the next one comes instead
            genuine = self._genuine(rng)
        if rng.random() < 0.1:  # delayed: something held back arrives instead
            self.held.append(genuine)
            genuine = self.held.popleft()
        return genuine.data, genuine

    def feed(self, item: tuple[bytes | str, EncodedFrame | None], report: Report) -> None:
        data, genuine = item
        frame = self.session.check_frame(data)
        if frame is None:
            return
        self.encoder.acknowledge(frame.seq)  # as the receiver's ack would (Session.on_frame)
        report.accepted += 1
        problem = check_frame_values(frame, self.identity.num_keypoints)
        # A genuine message decodes to what the sender coded, unless it was predicted from a frame whose
        # accepted message was forged: the receiver holds what it was sent.
        clean = genuine is not None and (frame.ref_seq is None or self.clean.get(frame.ref_seq, False))
        self.clean[frame.seq] = clean
        if clean and problem is None and genuine is not None:
            kp, st = dequantize(genuine.quantized, self.encoder.settings)
            if frame.seq != genuine.seq or not (np.array_equal(frame.keypoints, kp) and
                                                np.array_equal(frame.strengths, st)):
                problem = f"genuine frame {genuine.seq} decoded as frame {frame.seq} with other values"
        elif genuine is None:
            report.accepted_forged += 1
            report.forged_lead_frames = max(report.forged_lead_frames, frame.seq - self.seq)
        if problem is not None:
            report.invalid += 1
            report.example("invalid", problem, data)


class AckTarget:
    """The sender's side of the keypoint channel: acks, genuine and forged."""

    name = "ack"

    def __init__(self, identity: ModelIdentity) -> None:
        self.identity = identity

    def reset(self, rng: random.Random) -> None:
        self.encoder = FrameEncoder(self.identity, CodingSettings(), 25.0, _EPOCH_NS)
        kp, st = np.zeros((self.identity.num_keypoints, 2)), np.ones(self.identity.num_keypoints)
        for seq in range(3):
            self.encoder.sent(self.encoder.encode(seq, _EPOCH_NS + seq * 40_000_000, kp, st))

    def make(self, rng: random.Random) -> bytes | str:
        data = bytes([0x20]) + rng.choice((0, 1, 2, 3, 2**31, 2**32 - 1)).to_bytes(4, "little")
        if rng.random() < 0.7:
            return mutate_bytes(rng, data) if rng.random() < 0.8 else data.decode("latin-1")
        return data

    def feed(self, data: bytes | str, report: Report) -> None:
        try:
            self.encoder.acknowledge(decode_ack(data))
        except WireError:
            pass


#: Stands in for a mutated map that msgpack cannot even write (nested too deep): an array nested 5,000 deep.
TOO_DEEP = b"\x91" * 5000 + b"\xc0"


def wire_map(msg: Control) -> dict[str, Any]:
    """A control message's map as ``Control.encode`` writes it."""
    result: dict[str, Any] = msgpack.unpackb(msg.encode(), raw=False)
    return result


def genuine_picture(resolution: int) -> bytes:
    """A real AV1 reference picture (a generated face) at ``resolution``."""
    return encode_picture(talking_face(frames=1, size=resolution, seed=3)[0])


class ControlTarget:
    """The receiver's and the sender's control handlers; the receiver's replies (accept,
    refuse, bye, picture acks and refusals) go to the sender's handler too."""

    name = "control"

    def __init__(self, renderer: ReferenceRenderer, identity: ModelIdentity, resolution: int,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.renderer, self.identity, self.resolution = renderer, identity, resolution
        self.loop = loop
        self.pc = RTCPeerConnection()
        self.inbox = ControlInbox(create_channels(self.pc)[1], PictureOutbox())
        self.picture = genuine_picture(resolution)
        self.session: Session | None = None

    def reset(self, rng: random.Random) -> None:
        if self.session is not None:
            self.loop.run_until_complete(self.session.finish())
        self.session = Session(self.renderer, Expectation(self.identity, self.resolution), clock=SimClock(),
                               max_pictures=rng.randint(1, MAX_PICTURES))
        self.session.send_control = self._sender_reads
        self.inbox.queue = asyncio.Queue()
        self.inputs = 0

    def _valid(self, rng: random.Random) -> Control:
        fps, settings = _random_settings(rng)
        picture = rng.choice((1, 2, 3, 255))
        return rng.choice((
            Hello.of(FrameEncoder(self.identity, settings, fps, _EPOCH_NS), self.resolution,
                     rng.choice((None, (1, 2, 30))), PICTURE_CODEC),
            Accept(rng.randint(0, 3), rng.randint(1, MAX_PICTURES)), Refuse("no"),
            Stats((1, 2, 3), {"captured": 10, "intra": 1}),
            Bye("done", rng.choice((-1, 0, 5, 100, None))),
            Picture(picture, rng.choice((1, 999, 1000, 1001, len(self.picture), 65536)), rng.choice((None, 1, 2))),
            PictureChunk(picture, rng.choice((0, 1, 2, 65)), rng.randbytes(rng.choice((1, 500, CHUNK_BYTES)))),
            PictureAck(picture, tuple(sorted({picture, *rng.sample(range(1, 9), rng.randint(0, 3))}))),
            PictureRefused(picture, "bad")))

    def _picture_messages(self, rng: random.Random) -> list[bytes]:
        """A genuine picture's messages (a hello first, if none was accepted), one of them or the picture's bytes
        mutated."""
        data = self.picture
        if rng.random() < 0.5:
            data = mutate_bytes(rng, data)[:65536] or b"\x00"
        picture = rng.randint(1, 9)
        messages = [Picture(picture, len(data), rng.choice((None, picture - 1 or None))).encode()]
        messages += [PictureChunk(picture, i, data[i * CHUNK_BYTES:(i + 1) * CHUNK_BYTES]).encode()
                     for i in range(-(-len(data) // CHUNK_BYTES))]
        if data is self.picture:
            i = rng.randrange(len(messages))
            messages[i] = mutate_bytes(rng, messages[i])
        assert self.session is not None
        if self.session.hello is None:
            encoder = FrameEncoder(self.identity, CodingSettings(), 25.0, _EPOCH_NS)
            messages.insert(0, Hello.of(encoder, self.resolution, None, PICTURE_CODEC).encode())
        return messages

    def make(self, rng: random.Random) -> str | bytes | list[bytes]:
        self.inputs += 1
        if self.inputs > CONTROL_CALL_INPUTS:
            self.reset(rng)
        kind = rng.random()
        if kind < 0.03:
            return self._picture_messages(rng)
        msg = wire_map(self._valid(rng))
        if kind < 0.15:
            return msgpack.packb(msg, use_bin_type=True)
        if kind < 0.6:
            msg = mutate_fields(rng, msg)
        elif kind < 0.7:
            msg = {"v": WIRE_VERSION, "t": absurd(rng)} if rng.random() < 0.5 else absurd(rng)
        try:
            data = msgpack.packb(msg, use_bin_type=True)
        except (ValueError, TypeError, OverflowError, RecursionError):  # msgpack cannot even write it
            data = TOO_DEEP
        return mutate_bytes(rng, data) if kind >= 0.7 else data

    def feed(self, item: str | bytes | list[bytes], report: Report) -> None:
        assert self.session is not None
        for data in item if isinstance(item, list) else [item]:
            hello_before = self.session.hello
            reply = self.session.on_control(data)
            self.loop.run_until_complete(self.session.settle())  # a complete picture: decoded, held or refused
            self._sender_reads(data)
            if reply is not None:
                self._sender_reads(reply)
            if self.session.decoder is not None and self.session.hello is not hello_before:
                self._frame_after_hello(report)

    def _sender_reads(self, data: str | bytes) -> None:
        """What the sender does with a control message: its inbox (picture acks and refusals to its outbox), then
        the waits of a call."""
        self.inbox._on_message(data)
        while not self.inbox.queue.empty():
            reply = self.inbox.queue.get_nowait()
            if isinstance(reply, Refuse):
                str(CallRefused(reply.reason))
            elif isinstance(reply, Accept):
                self.inbox.outbox = PictureOutbox(reply.max_pictures)

    def _frame_after_hello(self, report: Report) -> None:
        """Two frames (intra, then predicted) coded with the accepted hello's settings and epoch: the receiver
        must decode them within range, whatever frame rate the hello claimed."""
        assert self.session is not None and self.session.hello is not None
        hello = self.session.hello
        encoder = FrameEncoder(self.identity, hello.coding, 25.0, hello.epoch_ns)
        kp = np.linspace(-1, 1, 2 * self.identity.num_keypoints).reshape(-1, 2)
        for seq in range(2):
            coded = encoder.encode(seq, hello.epoch_ns + seq * 40_000_000, kp, np.ones(len(kp)))
            encoder.sent(coded)
            encoder.acknowledge(seq)
            frame = self.session.check_frame(coded.data)
            if frame is not None:
                report.accepted += 1
                if problem := check_frame_values(frame, self.identity.num_keypoints):
                    report.invalid += 1
                    report.example("invalid", f"after hello {hello}: {problem}", coded.data)

    def close(self) -> None:
        if self.session is not None:
            self.loop.run_until_complete(self.session.finish())
        self.loop.run_until_complete(self.pc.close())


class SignalingTarget:
    """The server's and the peers' checks of signaling messages."""

    name = "signaling"

    def __init__(self) -> None:
        self.client = SignalingClient("ws://127.0.0.1:9", "room", "receiver", "t" * 22)

    def reset(self, rng: random.Random) -> None:
        pass

    def make(self, rng: random.Random) -> str | bytes:
        msg = rng.choice(({"type": "join", "room": "room", "role": "sender", "token": "t" * 22},
                          {"type": "joined", "room": "room", "role": "sender", "peer": True},
                          {"type": "peer-joined", "role": "sender"}, {"type": "peer-left", "role": "sender"},
                          {"type": "offer", "sdp": _SDP}, {"type": "answer", "sdp": _SDP}, {"type": "bye"},
                          {"type": "error", "reason": "x"}))
        kind = rng.random()
        if kind < 0.5:
            msg = mutate_fields(rng, msg)
        try:
            raw = json.dumps(msg)
        except (ValueError, TypeError, RecursionError):
            raw = "{" * 3000
        return mutate_text(rng, raw) if kind >= 0.8 else raw

    def feed(self, raw: str | bytes, report: Report) -> None:
        for check in (protocol.parse_join, lambda r: protocol.relayed(protocol.parse(r)),
                      lambda r: self.client.expect(r, ("offer",))):
            try:
                check(raw)
            except (ProtocolError, SignalingError):
                pass


class SdpTarget:
    """A real peer connection applying a mutated offer and answering it, as the receiver does."""

    name = "sdp"

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def reset(self, rng: random.Random) -> None:
        pass

    def make(self, rng: random.Random) -> str:
        lines = _SDP.split("\r\n")
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(lines))
            action = rng.random()
            if action < 0.3:
                del lines[i]
            elif action < 0.5:
                rng.shuffle(lines)
            else:
                lines[i] = lines[i][: rng.randint(0, len(lines[i]))] + rng.choice(("", "x", " 99999999999999999999",
                                                                                   "\x00", ":", " -1"))
        return "\r\n".join(lines)

    def feed(self, sdp: str, report: Report) -> None:
        self.loop.run_until_complete(self._answer(sdp))

    @staticmethod
    async def _answer(sdp: str) -> None:
        pc = RTCPeerConnection()
        try:
            create_channels(pc)
            with contextlib.suppress(SignalingError):
                await apply_description(pc, "offer", sdp)
        finally:
            await pc.close()


def run_target(target: Target, count: int, rng: random.Random, hang_s: float,
               progress: Callable[[str, int], None] | None = None) -> Report:
    """``count`` inputs through ``target``; anything escaping its handler is counted (and the target reset)."""
    report = Report()
    target.reset(rng)
    started = time.perf_counter()
    for i in range(count):
        item = target.make(rng)
        t0 = time.perf_counter()
        try:
            target.feed(item, report)
        except Exception as exc:
            report.escaped += 1
            report.example("escaped", f"{type(exc).__name__}: {exc}", item)
            target.reset(rng)
        took = time.perf_counter() - t0
        report.max_ms = max(report.max_ms, 1000 * took)
        if took > hang_s:
            report.hangs += 1
            report.example("hang", f"{took:.2f} s", item)
        report.inputs += 1
        if progress is not None and (i + 1) % 10_000 == 0:
            progress(target.name, i + 1)
    report.seconds = time.perf_counter() - started
    return report


#: Share of the inputs each target gets.
SHARES = {"frame": 0.4, "control": 0.25, "signaling": 0.25, "ack": 0.095, "sdp": 0.005}


def fuzz(count: int, renderer: ReferenceRenderer, identity: ModelIdentity, resolution: int, seed: int = 0,
         targets: tuple[str, ...] = tuple(SHARES), hang_s: float = 10.0,
         progress: Callable[[str, int], None] | None = None) -> dict[str, Any]:
    """``count`` inputs shared among ``targets``; the reports by target, and their totals."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    levels = {name: logging.getLogger(name).level for name in HANDLER_LOGGERS}
    for name in HANDLER_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    control = ControlTarget(renderer, identity, resolution, loop)
    makers: dict[str, Callable[[], Target]] = {
        "frame": lambda: FrameTarget(renderer, identity, resolution), "ack": lambda: AckTarget(identity),
        "control": lambda: control, "signaling": SignalingTarget, "sdp": lambda: SdpTarget(loop)}
    total = sum(SHARES[t] for t in targets)
    reports = {}
    try:
        for name in targets:
            rng = random.Random(f"{seed}-{name}")
            reports[name] = asdict(run_target(makers[name](), round(count * SHARES[name] / total), rng, hang_s,
                                              progress))
    finally:
        control.close()
        loop.close()
        asyncio.set_event_loop(None)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    sums = {k: sum(r[k] for r in reports.values()) for k in ("inputs", "escaped", "hangs", "invalid", "accepted")}
    return {"seed": seed, "hang_s": hang_s, "totals": sums, "targets": reports}
