"""What the sender does with one captured frame: face crop, keypoints, wire message."""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from shared_model.backend import Extractor
from shared_model.crop import StreamCropper
from shared_model.wire import ModelIdentity, encode_frame, hello_fields

from .capture import Captured

log = logging.getLogger(__name__)


@dataclass
class SenderCounts:
    captured: int = 0
    without_face: int = 0  # skipped: no face found yet
    dropped_busy: int = 0  # captured while the previous frame was still being processed
    dropped_backlog: int = 0  # the keypoint channel still held an unsent message
    sent: int = 0
    payload_bytes: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class FramePipeline:
    """Crop, detect, encode. Runs in a worker thread, one frame at a time."""

    def __init__(self, extractor: Extractor, identity: ModelIdentity, resolution: int) -> None:
        self.extractor, self.identity, self.resolution = extractor, identity, resolution
        self.cropper = StreamCropper(resolution)
        self.counts = SenderCounts()

    def __call__(self, item: Captured) -> bytes | None:
        """The frame's wire message, or None when it has no face (skipped and counted)."""
        face = self.cropper(item.frame)
        if face is None:
            self.counts.without_face += 1
            return None
        kp, strength = self.extractor(face)
        return encode_frame(self.identity, item.seq, item.capture_ns, kp, strength)

    @property
    def crop(self) -> list[int] | None:
        crop = self.cropper.crop
        return crop.as_list() if crop is not None else None

    def hello(self, fps: float) -> dict:
        return hello_fields(self.identity, self.resolution, fps, self.crop)
