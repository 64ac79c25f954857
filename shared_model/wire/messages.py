"""Wire format v3: one coded frame message per frame on the keypoint channel, and the receiver's acks.

The model (id, weights version, keypoint count), the resolution, the frame rate and the coding settings are
agreed once, in the hello on the reliable control channel (``control.py``); a frame message repeats none of them::

    byte 0      wire version (4 high bits, 3) | reference distance d (4 low bits: 0 = intra, else seq - d)
    bytes 1-2   seq mod 2**16, little-endian (unwrapped by the receiver next to the newest seq it decoded)
    bytes 3-    the range-coded frame (shared_model.wire.keycoding): capture time, picture, keypoints, strengths

A predicted frame refers to an earlier frame by its distance d <= 15 in sequence numbers. Anchor frames (every
``anchor_every``-th sent) refer only to frames the receiver has acknowledged, the frames between to the frame
sent just before: a lost message spoils at most ``anchor_every - 1`` later frames. Acks travel the other way on
the keypoint channel (5 bytes: ``0x30``, then the newest decoded seq as a little-endian uint32), at most every
``ACK_INTERVAL_S``: a lost ack is simply superseded by the next one. Decoding is strict: any deviation is a
``WireError``; a message of another wire version (v1 included) or before an accepted hello is a ``WireRefused``
(a subclass); a frame whose reference this end does not hold (lost) is a ``MissingReference``. See docs/wire-format.md.
"""
from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from ..errors import CodingError, MissingReference, WireError, WireRefused
from .keycoding import (
    TIME_RANGE,
    TIME_WRAP,
    CodingSettings,
    Quantized,
    decode_payload,
    dequantize,
    encode_payload,
    quantize,
)

WIRE_VERSION = 3
#: The first byte of a wire v1 message: a msgpack array of seven fields.
_V1_FIRST_BYTE = 0x97
#: Frame messages are a few dozen bytes; anything larger is rejected before decoding.
MAX_FRAME_BYTES = 2048
MAX_SEQ = 2**32 - 1
#: Farthest reference (sequence numbers back); also how many decoded frames the receiver keeps.
MAX_DISTANCE = 15
#: The receiver acknowledges the newest frame it decoded at most this often (and after every intra frame).
ACK_INTERVAL_S = 0.1
_HEADER = struct.Struct("<BH")
_ACK = struct.Struct("<BI")
_SEQ_WRAP = 2**16


@dataclass(frozen=True)
class ModelIdentity:
    """A model as the two ends of a call see it: name and weights version, keypoint count, and the version of the
    keypoint detector, which is what must match: a receiver may render with any generator trained on the same
    detector's keypoints (a personal one from ``shared_model.enrol``)."""

    model_id: str
    model_version: str
    num_keypoints: int
    detector_version: str

    @classmethod
    def of(cls, model: Any) -> ModelIdentity:
        """The identity of a loaded model."""
        return cls(model.model_id, model.version, model.cfg.num_keypoints, model.detector_version)


@dataclass(frozen=True)
class FrameMessage:
    """A decoded frame: keypoints (P, 2) in [-1, 1] and strengths (P,) in [0, 1], float32."""

    seq: int
    capture_ns: int
    keypoints: np.ndarray
    strengths: np.ndarray
    size: int  # bytes on the data channel
    ref_seq: int | None  # the frame it was predicted from; None for an intra frame
    picture: int  # the sender's reference picture to render it from; 0: the receiver's own pictures


@dataclass(frozen=True)
class EncodedFrame:
    """A frame message as the sender made it, with what it must remember once the message is sent."""

    seq: int
    capture_ms: int  # since the hello's epoch
    quantized: Quantized
    anchor: bool
    ref_seq: int | None
    data: bytes


def _unwrap(low: int, wrap: int, near: float) -> int:
    """The value congruent to ``low`` modulo ``wrap`` that lies nearest to ``near``."""
    return low + wrap * round((near - low) / wrap)


class FrameEncoder:
    """The sender's side of the keypoint coding: chooses each frame's reference and codes it.

    ``sent`` must be called for every message that really went out, ``acknowledge`` for every ack from the
    receiver (from another thread than ``encode`` if need be).
    """

    def __init__(self, identity: ModelIdentity, settings: CodingSettings, fps: float,
                 epoch_ns: int | None = None) -> None:
        self.identity, self.settings, self.fps = identity, settings, fps
        self.epoch_ns = time.time_ns() if epoch_ns is None else epoch_ns
        self._lock = threading.Lock()
        self._history: dict[int, EncodedFrame] = {}  # sent frames the next ones may refer to
        self._last: EncodedFrame | None = None
        self._acked = -1
        self._since_anchor = 0

    def _reference(self, seq: int) -> tuple[bool, EncodedFrame | None]:
        """(anchor?, the frame to predict from or None)."""
        last = self._last
        if last is not None and seq - last.seq <= MAX_DISTANCE and self._since_anchor < self.settings.anchor_every - 1:
            return False, last
        acked = self._history.get(self._acked)
        return True, acked if acked is not None and seq - acked.seq <= MAX_DISTANCE else None

    def encode(self, seq: int, capture_ns: int, keypoints: np.ndarray, strengths: np.ndarray,
               picture: int = 0) -> EncodedFrame:
        """One frame message, to be rendered from ``picture``. Shapes are checked, values clipped to their range."""
        p = self.identity.num_keypoints
        if np.shape(keypoints) != (p, 2) or np.shape(strengths) != (p,):
            raise ValueError(f"expected keypoints ({p}, 2) and strengths ({p},), got {np.shape(keypoints)} "
                             f"and {np.shape(strengths)}")
        if not 0 <= seq <= MAX_SEQ:
            raise ValueError(f"seq {seq} out of range")
        q = quantize(keypoints, strengths, self.settings, picture)
        capture_ms = (capture_ns - self.epoch_ns) // 1_000_000
        with self._lock:
            anchor, ref = self._reference(seq)
        offset = 0
        if ref is not None:
            offset = capture_ms - ref.capture_ms - round((seq - ref.seq) * 1000 / self.fps)
            if not (0 < seq - ref.seq and abs(offset) <= TIME_RANGE):
                anchor, ref = True, None
        if ref is None:
            payload = encode_payload(q, capture_ms % TIME_WRAP, None, self.settings)
        else:
            payload = encode_payload(q, offset, ref.quantized, self.settings)
        distance = 0 if ref is None else seq - ref.seq
        data = _HEADER.pack(WIRE_VERSION << 4 | distance, seq % _SEQ_WRAP) + payload
        return EncodedFrame(seq, capture_ms, q, anchor, None if ref is None else ref.seq, data)

    def sent(self, frame: EncodedFrame) -> None:
        """``frame`` went out: later frames may refer to it."""
        with self._lock:
            self._history[frame.seq] = frame
            self._last = frame
            self._since_anchor = 0 if frame.anchor else self._since_anchor + 1
            for old in [s for s in self._history if s < frame.seq - MAX_DISTANCE]:
                del self._history[old]

    def acknowledge(self, seq: int) -> None:
        """The receiver holds frame ``seq`` (ignored unless it is a frame this end still remembers)."""
        with self._lock:
            if seq in self._history:
                self._acked = max(self._acked, seq)


class FrameDecoder:
    """The receiver's side: decodes frames of one call, holding the frames later ones may refer to."""

    def __init__(self, identity: ModelIdentity, settings: CodingSettings, fps: float, epoch_ns: int) -> None:
        self.identity, self.settings, self.fps, self.epoch_ns = identity, settings, fps, epoch_ns
        self._frames: dict[int, tuple[Quantized, int]] = {}  # seq -> (values, capture ms)
        self._newest = (0, 0)  # (seq, capture ms) of the newest decoded frame; the hello's epoch at first

    def header(self, data: bytes | str) -> tuple[int, int]:
        """``(seq, reference distance)`` of a frame message; WireError / WireRefused when it is not one."""
        if not isinstance(data, bytes):
            raise WireError(f"frame message must be binary, got {type(data).__name__}")
        if len(data) > MAX_FRAME_BYTES:
            raise WireError(f"frame message of {len(data)} bytes exceeds {MAX_FRAME_BYTES}")
        if not data:
            raise WireError("empty frame message")
        if data[0] == _V1_FIRST_BYTE:
            raise WireRefused(f"a wire version 1 message (msgpack), this end speaks version {WIRE_VERSION}")
        if data[0] >> 4 != WIRE_VERSION:
            raise WireRefused(f"wire version {data[0] >> 4}, this end speaks version {WIRE_VERSION}")
        if len(data) < _HEADER.size:
            raise WireError(f"frame message of {len(data)} bytes is shorter than its {_HEADER.size}-byte header")
        first, low = _HEADER.unpack_from(data)
        seq = _unwrap(low, _SEQ_WRAP, self._newest[0])
        if seq < 0:  # before any frame: the first one may have any seq below 2**16
            seq += _SEQ_WRAP
        if seq > MAX_SEQ:
            raise WireError(f"sequence number {seq} out of range")
        return seq, first & 0x0F

    def decode(self, data: bytes | str, admit: Callable[[int, int], None] | None = None) -> FrameMessage:
        """Decode and check one frame message; it becomes a frame later ones may refer to. ``admit(seq,
        capture_ms)``, when given, may refuse it first by raising a WireError (the receiver's bounds)."""
        seq, distance = self.header(data)
        ref = None
        if distance:
            ref = self._frames.get(seq - distance)
            if ref is None:
                raise MissingReference(f"frame {seq} refers to frame {seq - distance}, which this end does not hold")
        try:
            time_code, q = decode_payload(cast(bytes, data)[_HEADER.size:], self.identity.num_keypoints,
                                          None if ref is None else ref[0], self.settings)
        except CodingError as exc:
            raise WireError(f"frame {seq}: {exc}") from exc
        if ref is None:
            newest_seq, newest_ms = self._newest
            capture_ms = _unwrap(time_code, TIME_WRAP, newest_ms + (seq - newest_seq) * 1000 / self.fps)
        else:
            capture_ms = ref[1] + round(distance * 1000 / self.fps) + time_code
        if admit is not None:
            admit(seq, capture_ms)
        self._frames[seq] = (q, capture_ms)
        if seq > self._newest[0] or len(self._frames) == 1:
            self._newest = (seq, capture_ms)
        for old in [s for s in self._frames if s < self._newest[0] - MAX_DISTANCE]:
            del self._frames[old]
        kp, st = dequantize(q, self.settings)
        return FrameMessage(seq, max(0, self.epoch_ns + capture_ms * 1_000_000), kp, st, len(data),
                            None if ref is None else seq - distance, q.picture)


def encode_ack(seq: int) -> bytes:
    """The receiver's ack of the newest frame it decoded (sent back on the keypoint channel)."""
    return _ACK.pack(WIRE_VERSION << 4, seq)


def decode_ack(data: bytes | str) -> int:
    """The sequence number an ack message acknowledges; WireError when it is not one."""
    if not (isinstance(data, bytes) and len(data) == _ACK.size and data[0] == WIRE_VERSION << 4):
        raise WireError(f"not an ack message: {data[:8]!r}")
    return _ACK.unpack(data)[1]
