"""The keypoint codec refreshing its reference picture during the call, simulated offline with the sender's own
parts (``sender.pictures``, ``sender.refresh``, ``shared_model.wire``), every byte counted.

The clip's first frame is the first picture (AV1, as the sender codes it); it is on the receiver when the clip
starts, as the reference is in ``rd``: sent while the call was set up, like a video codec's first keyframe,
its bytes count in the amortised rate but not against the budget, which starts empty with the clip. Then, frame
by frame at the clip's pace: acks that are due reach the sender, the sender names a picture for the frame and may
queue a refresh, the frame's keypoint message is coded (``StreamCoder``), and at most one picture message
(announcement or chunk) follows when the budget allows, as in a call. A picture the receiver completes is
acknowledged ``ack_delay_ms`` later.

The budget (``shared_model.wire.budget``) is in the rates' unit here, kbps at 25 frames a second (bits per
source frame x 25), so over the clip everything sent after the first picture stays within it unless the
keypoint messages alone exceed it (they are never dropped here). The receiver side runs ``PictureInbox`` and
decodes each picture as the receiver would.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from sender.pictures import SenderPictures
from sender.refresh import RefreshPolicy, RefreshRule
from shared_model.media.picture_codec import DEFAULT_CRF, decode_picture
from shared_model.runtime.backend import Extractor
from shared_model.wire.budget import Budget
from shared_model.wire.control import Picture, PictureAck, PictureChunk, decode_control
from shared_model.wire.keycoding import CodingSettings
from shared_model.wire.pictures import PictureInbox, PictureOutbox

from .keystream import REFERENCE_FPS, StreamCoder


@dataclass
class Simulated:
    """What the receiver got: per frame the message size, the decoded keypoints and the picture named (by the
    key of its bytes); every picture message's bytes; and when each picture went and arrived."""

    frame_bytes: list[int] = field(default_factory=list)
    keypoints: list[np.ndarray] = field(default_factory=list)
    strengths: list[np.ndarray] = field(default_factory=list)
    named: list[str] = field(default_factory=list)
    held: list[tuple[str, ...]] = field(default_factory=list)  # every picture the receiver held at that frame
    first_picture_bytes: int = 0
    picture_bytes: int = 0  # the pictures after the first
    images: dict[str, np.ndarray] = field(default_factory=dict)  # decoded pictures by key
    events: list[dict[str, int | str]] = field(default_factory=list)  # per picture: taken, acked, bytes


def picture_key(data: bytes) -> str:
    """A picture's name in these experiments: the same coded bytes render the same frames."""
    return hashlib.sha1(data).hexdigest()[:12]


class _Receiver:
    """The receiver's picture side: inbox, decoding, and acks that arrive ``delay`` frames later."""

    def __init__(self, resolution: int, delay: int) -> None:
        self.inbox, self.resolution, self.delay = PictureInbox(), resolution, delay
        self.held: dict[int, str] = {}  # picture id -> key, of every picture received
        self.holding: dict[int, str] = {}  # those the renderer still holds (a picture may replace an older one)
        self.acks: list[tuple[int, PictureAck]] = []
        self.images: dict[str, np.ndarray] = {}

    def take(self, message: bytes, frame: int) -> str | None:
        """A picture message sent at ``frame``; the key of the picture it completes, if it does."""
        msg = decode_control(message)
        if isinstance(msg, Picture):
            self.inbox.announce(msg)
            return None
        assert isinstance(msg, PictureChunk)
        complete = self.inbox.chunk(msg)
        if complete is None:
            return None
        announced, data = complete
        key = picture_key(data)
        self.images[key] = decode_picture(data, self.resolution)
        self.held[announced.id] = self.holding[announced.id] = key
        if announced.replaces is not None:
            self.holding.pop(announced.replaces, None)
        self.acks.append((frame + self.delay, self.inbox.hold(announced)))
        return key

    def due(self, frame: int) -> list[PictureAck]:
        due = [ack for when, ack in self.acks if when <= frame]
        self.acks = [(when, ack) for when, ack in self.acks if when > frame]
        return due


#: From a picture's last chunk to its ack at the sender: the receiver decodes and prepares it (about 60 ms on
#: one core), then the ack travels back (the frame acks' delay).
PREPARE_MS = 60.0


def simulate(frames: np.ndarray, kp: np.ndarray, st: np.ndarray, fps: float, settings: CodingSettings,
             extractor: Extractor, budget_kbps: float, rule: RefreshRule, ack_delay_ms: float = 150.0,
             crf: int = DEFAULT_CRF, every: int = 1) -> Simulated:
    """The clip sent with refresh by ``rule`` within ``budget_kbps``, keeping every ``every``-th frame (as
    ``sender --fps`` does); the lists in the result hold the kept frames."""
    resolution = frames.shape[1]
    outbox = PictureOutbox()
    pictures = SenderPictures(extractor, resolution, outbox, None, RefreshPolicy(rule), crf)
    receiver = _Receiver(resolution, max(1, round((ack_delay_ms + PREPARE_MS) / 1000 * fps / every)))
    out = Simulated()
    pictures.send(frames[0])
    while (message := outbox.pending()) is not None:  # the first picture, before the clip starts
        outbox.sent(message)
        out.first_picture_bytes += len(message)
        if (key := receiver.take(message, -receiver.delay)) is not None:
            out.events.append({"key": key, "taken": 0, "acked": -1, "bytes": out.first_picture_bytes})
    # The budget runs on the clip's clock at the rate that gives budget_kbps at 25 frames a second.
    budget = Budget(budget_kbps * fps / REFERENCE_FPS, 0.0)
    coder = StreamCoder(kp.shape[1], settings, fps / every, ack_delay_ms)
    taken = sending = 0  # the frame the picture in transfer was taken from, and its bytes so far
    for seq, i in enumerate(range(0, len(frames), every)):
        now = i / fps
        for ack in receiver.due(seq):
            outbox.acknowledged(ack)
            next(e for e in out.events if e["key"] == receiver.held[ack.id] and e["acked"] < 0)["acked"] = i
        refreshes = pictures.counts.refreshes
        picture = pictures.choose(seq, frames[i], kp[i], st[i], now)
        assert picture, "the first picture is held from the start"
        if pictures.counts.refreshes > refreshes:
            taken, sending = i, 0
        frame, decoded = coder.code(seq, kp[i], st[i], picture)
        out.frame_bytes.append(len(frame.data))
        out.keypoints.append(decoded.keypoints)
        out.strengths.append(decoded.strengths)
        out.named.append(receiver.held[picture])
        out.held.append(tuple(receiver.holding.values()))
        budget.refill(now)
        budget.spend(len(frame.data))
        message = outbox.pending()
        if message is not None and budget.allows_chunk(len(message), now):
            outbox.sent(message)
            out.picture_bytes += len(message)
            sending += len(message)
            budget.spend(len(message))
            if (key := receiver.take(message, seq)) is not None:
                out.events.append({"key": key, "taken": taken, "acked": -1, "bytes": sending})
    out.images = receiver.images
    return out
