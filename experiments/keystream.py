"""The keypoint stream of a clip, coded offline exactly as the sender codes it (wire v2).

The sender keeps every ``every``-th frame; each kept frame is coded by a ``FrameEncoder`` and decoded by a
``FrameDecoder``; the receiver's acks reach the sender ``ack_delay_ms`` after a frame is sent (rounded up to
whole frame intervals, at least one). Nothing is lost, so every kept frame decodes, and the decoded values do
not depend on the anchor period or the ack delay: only the bits do.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from shared_model.wire.keycoding import CodingSettings
from shared_model.wire.messages import EncodedFrame, FrameDecoder, FrameEncoder, FrameMessage, ModelIdentity

#: Keypoint stream bitrates are quoted at this frame rate (bits per source frame x 25).
REFERENCE_FPS = 25.0


@dataclass(frozen=True)
class CodedStream:
    sizes: np.ndarray  # bytes of each kept frame's message
    kept: np.ndarray  # source frame index of each kept frame
    keypoints: np.ndarray  # (kept, P, 2) as decoded
    strengths: np.ndarray  # (kept, P)
    intra: int  # kept frames coded without a reference

    def bits_per_kept_frame(self, skip_first: bool) -> float:
        """Mean message size in bits; ``skip_first`` leaves out the first (intra) message."""
        sizes = self.sizes[1:] if skip_first and len(self.sizes) > 1 else self.sizes
        return 8.0 * float(sizes.mean())


class StreamCoder:
    """Codes the kept frames of a clip one by one as the sender does, and decodes them as the receiver does;
    the receiver's acks reach the sender ``ack_delay_ms`` after a frame is sent."""

    def __init__(self, num_keypoints: int, settings: CodingSettings, sent_fps: float, ack_delay_ms: float) -> None:
        self.delay = max(1, math.ceil(ack_delay_ms / 1000.0 * sent_fps - 1e-9))
        identity = ModelIdentity("experiment", "-", num_keypoints, "-")
        self.sent_fps = sent_fps
        self.encoder = FrameEncoder(identity, settings, sent_fps, epoch_ns=0)
        self.decoder = FrameDecoder(identity, settings, sent_fps, 0)

    def code(self, seq: int, kp: np.ndarray, st: np.ndarray, picture: int = 0) -> tuple[EncodedFrame, FrameMessage]:
        """Frame ``seq`` (counting kept frames from 0) as sent and as decoded."""
        if seq >= self.delay:
            self.encoder.acknowledge(seq - self.delay)
        frame = self.encoder.encode(seq, round(seq * 1e9 / self.sent_fps), kp, st, picture)
        self.encoder.sent(frame)
        return frame, self.decoder.decode(frame.data)


def code_stream(kp: np.ndarray, st: np.ndarray, settings: CodingSettings, fps: float, every: int = 1,
                ack_delay_ms: float = 150.0) -> CodedStream:
    """Code keypoints (T, P, 2) and strengths (T, P) of a clip at ``fps`` keeping every ``every``-th frame."""
    coder = StreamCoder(kp.shape[1], settings, fps / every, ack_delay_ms)
    kept = np.arange(0, len(kp), every)
    coded = [coder.code(seq, kp[i], st[i]) for seq, i in enumerate(kept)]
    return CodedStream(np.array([len(f.data) for f, _ in coded]), kept, np.stack([m.keypoints for _, m in coded]),
                       np.stack([m.strengths for _, m in coded]), sum(f.ref_seq is None for f, _ in coded))


def held_frames(rendered: np.ndarray, kept: np.ndarray, total: int) -> np.ndarray:
    """One frame per source slot: each kept frame's rendering, held until the next kept frame."""
    slot_to_kept = np.searchsorted(kept, np.arange(total), side="right") - 1
    return rendered[slot_to_kept]
