"""What the sender does with one captured frame: face crop, keypoints, the picture to name, coded wire message."""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from shared_model.media.crop import StreamCropper
from shared_model.media.picture_codec import PICTURE_CODEC
from shared_model.runtime.backend import Extractor
from shared_model.wire.control import Hello
from shared_model.wire.keycoding import CodingSettings
from shared_model.wire.messages import EncodedFrame, FrameEncoder, ModelIdentity

from .capture import Captured
from .pictures import SenderPictures

log = logging.getLogger(__name__)


@dataclass
class SenderCounts:
    captured: int = 0
    without_face: int = 0  # skipped: no face found yet
    waiting_for_picture: int = 0  # skipped: the receiver holds no picture to rebuild it from yet
    dropped_busy: int = 0  # captured while the previous frame was still being processed
    dropped_backlog: int = 0  # the keypoint channel still held an unsent message
    dropped_budget: int = 0  # the budget (--max-kbps) had nothing left
    sent: int = 0
    intra: int = 0  # sent frames coded without a reference
    payload_bytes: int = 0  # frame messages sent
    picture_message_bytes: int = 0  # picture messages sent (announcements and chunks)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class FramePipeline:
    """Crop, detect, name a picture, encode. Runs in a worker thread, one frame at a time; ``sent`` and
    ``acknowledge`` come from the event loop."""

    def __init__(self, extractor: Extractor, identity: ModelIdentity, resolution: int, fps: float,
                 settings: CodingSettings, pictures: SenderPictures) -> None:
        self.extractor, self.resolution, self.pictures = extractor, resolution, pictures
        self.encoder = FrameEncoder(identity, settings, fps)
        self.cropper = StreamCropper(resolution)
        self.counts = SenderCounts()
        self.crop_log: dict[int, tuple[int, int, int]] | None = None  # seq -> crop box, when asked for

    def __call__(self, item: Captured) -> EncodedFrame | None:
        """The frame's wire message, or None when it has no face or no picture to be rebuilt from yet (skipped
        and counted)."""
        face = self.cropper(item.frame)
        if face is None:
            self.counts.without_face += 1
            return None
        if self.crop_log is not None and self.crop is not None:
            self.crop_log[item.seq] = self.crop
        kp, strength = self.extractor(face)
        picture = self.pictures.choose(item.seq, face, kp, strength, item.capture_ns / 1e9)
        if picture is None:
            self.counts.waiting_for_picture += 1
            return None
        return self.encoder.encode(item.seq, item.capture_ns, kp, strength, picture)

    def sent(self, frame: EncodedFrame) -> None:
        """The message went out: count it, and let later frames refer to it."""
        self.encoder.sent(frame)
        self.counts.sent += 1
        self.counts.intra += frame.ref_seq is None
        self.counts.payload_bytes += len(frame.data)

    def acknowledge(self, seq: int) -> None:
        self.encoder.acknowledge(seq)

    @property
    def crop(self) -> tuple[int, int, int] | None:
        crop = self.cropper.crop
        return None if crop is None else (crop.x, crop.y, crop.size)

    def hello(self) -> Hello:
        return Hello.of(self.encoder, self.resolution, self.crop, PICTURE_CODEC)

    def stats(self) -> dict[str, int]:
        """Every counter, the pictures' included (the stats message)."""
        return {**self.counts.as_dict(), **self.pictures.as_dict()}
