"""What the sender does with one captured frame: face crop, keypoints, coded wire message."""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from shared_model.media.crop import StreamCropper
from shared_model.runtime.backend import Extractor
from shared_model.wire.keycoding import CodingSettings
from shared_model.wire.messages import EncodedFrame, FrameEncoder, ModelIdentity

from .capture import Captured

log = logging.getLogger(__name__)


@dataclass
class SenderCounts:
    captured: int = 0
    without_face: int = 0  # skipped: no face found yet
    dropped_busy: int = 0  # captured while the previous frame was still being processed
    dropped_backlog: int = 0  # the keypoint channel still held an unsent message
    sent: int = 0
    intra: int = 0  # sent frames coded without a reference
    payload_bytes: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class FramePipeline:
    """Crop, detect, encode. Runs in a worker thread, one frame at a time; ``sent`` and ``acknowledge`` come
    from the event loop."""

    def __init__(self, extractor: Extractor, identity: ModelIdentity, resolution: int, fps: float,
                 settings: CodingSettings) -> None:
        self.extractor, self.resolution = extractor, resolution
        self.encoder = FrameEncoder(identity, settings, fps)
        self.cropper = StreamCropper(resolution)
        self.counts = SenderCounts()

    def __call__(self, item: Captured) -> EncodedFrame | None:
        """The frame's wire message, or None when it has no face (skipped and counted)."""
        face = self.cropper(item.frame)
        if face is None:
            self.counts.without_face += 1
            return None
        kp, strength = self.extractor(face)
        return self.encoder.encode(item.seq, item.capture_ns, kp, strength)

    def sent(self, frame: EncodedFrame) -> None:
        """The message went out: count it, and let later frames refer to it."""
        self.encoder.sent(frame)
        self.counts.sent += 1
        self.counts.intra += frame.ref_seq is None
        self.counts.payload_bytes += len(frame.data)

    def acknowledge(self, seq: int) -> None:
        self.encoder.acknowledge(seq)

    @property
    def crop(self) -> list[int] | None:
        crop = self.cropper.crop
        return crop.as_list() if crop is not None else None

    def hello(self) -> dict:
        return self.encoder.hello(self.resolution, self.crop)
