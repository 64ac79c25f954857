"""Wire format v1: one msgpack message per frame on the keypoint channel, JSON control messages.

A frame message is a msgpack array of seven fields, in this order::

    [wire_version, model_id, model_version, seq, capture_ns, keypoints, strengths]

``keypoints`` is ``P * 2`` little-endian uint16 (x then y of each point, [-1, 1] mapped onto 0..65535) and
``strengths`` is ``P`` uint8 ([0, 1] mapped onto 0..255). See docs/wire-format.md for sizes.
Decoding is strict: any deviation in type, length or range is a ``WireError``; a message from another wire
version or another model is a ``WireRefused`` (a subclass), so callers can count the two apart.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np

WIRE_VERSION = 1
#: Frame messages are a few hundred bytes; anything larger is rejected before unpacking.
MAX_FRAME_BYTES = 2048
#: Control messages (JSON) are small too.
MAX_CONTROL_BYTES = 16384
MAX_SEQ = 2**32 - 1
_KP_SCALE = 65535 / 2.0
_ST_SCALE = 255.0
_FIELDS = 7


class WireError(ValueError):
    """A message that does not follow the wire format (dropped and counted as malformed)."""


class WireRefused(WireError):
    """A well-formed message from another wire version or another model (refused and counted)."""


@dataclass(frozen=True)
class ModelIdentity:
    """What both ends must agree on: model name, weights version and keypoint count."""

    model_id: str
    model_version: str
    num_keypoints: int

    @classmethod
    def of(cls, model: Any) -> ModelIdentity:
        """The identity of a loaded ``TPSModel``."""
        return cls(model.model_id, model.version, model.cfg.num_keypoints)


@dataclass(frozen=True)
class FrameMessage:
    """A decoded frame: keypoints (P, 2) in [-1, 1] and strengths (P,) in [0, 1], float32."""

    seq: int
    capture_ns: int
    keypoints: np.ndarray
    strengths: np.ndarray
    size: int  # bytes on the data channel


def quantize_keypoints(kp: np.ndarray) -> bytes:
    q = np.round((np.clip(np.asarray(kp, np.float64), -1.0, 1.0) + 1.0) * _KP_SCALE)
    return q.astype("<u2").tobytes()


def dequantize_keypoints(data: bytes, count: int) -> np.ndarray:
    return (np.frombuffer(data, "<u2").astype(np.float32) / np.float32(_KP_SCALE) - 1.0).reshape(count, 2)


def quantize_strengths(strength: np.ndarray) -> bytes:
    return np.round(np.clip(np.asarray(strength, np.float64), 0.0, 1.0) * _ST_SCALE).astype(np.uint8).tobytes()


def dequantize_strengths(data: bytes) -> np.ndarray:
    return np.frombuffer(data, np.uint8).astype(np.float32) / np.float32(_ST_SCALE)


def encode_frame(identity: ModelIdentity, seq: int, capture_ns: int, keypoints: np.ndarray,
                 strengths: np.ndarray) -> bytes:
    """One frame message. Shapes and ranges of the inputs are checked, values are clipped to their range."""
    p = identity.num_keypoints
    if np.shape(keypoints) != (p, 2) or np.shape(strengths) != (p,):
        raise ValueError(f"expected keypoints ({p}, 2) and strengths ({p},), got {np.shape(keypoints)} "
                         f"and {np.shape(strengths)}")
    if not 0 <= seq <= MAX_SEQ or capture_ns < 0:
        raise ValueError(f"seq {seq} or capture time {capture_ns} out of range")
    return msgpack.packb([WIRE_VERSION, identity.model_id, identity.model_version, int(seq), int(capture_ns),
                          quantize_keypoints(keypoints), quantize_strengths(strengths)], use_bin_type=True)


def _is_int(value: Any) -> bool:
    return type(value) is int  # bool is an int subclass: excluded on purpose


def decode_frame(data: bytes, identity: ModelIdentity) -> FrameMessage:
    """Decode and check one frame message against the model this end runs."""
    if not isinstance(data, bytes):
        raise WireError(f"frame message must be binary, got {type(data).__name__}")
    if len(data) > MAX_FRAME_BYTES:
        raise WireError(f"frame message of {len(data)} bytes exceeds {MAX_FRAME_BYTES}")
    try:
        fields = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True,
                                 max_bin_len=MAX_FRAME_BYTES, max_str_len=256, max_array_len=16, max_map_len=16)
    except Exception as exc:  # msgpack raises many types (ExtraData, FormatError, ValueError, ...)
        raise WireError(f"not a msgpack message: {exc}") from exc
    if not isinstance(fields, list) or not fields:
        raise WireError("frame message is not a msgpack array")
    version = fields[0]
    if not _is_int(version):
        raise WireError("frame message has no integer wire version first")
    if version != WIRE_VERSION:
        raise WireRefused(f"wire version {version}, this end speaks version {WIRE_VERSION}")
    if len(fields) != _FIELDS:
        raise WireError(f"frame message has {len(fields)} fields, wire v{WIRE_VERSION} has {_FIELDS}")
    _, model_id, model_version, seq, capture_ns, kp, st = fields
    if not (isinstance(model_id, str) and isinstance(model_version, str)):
        raise WireError("model id and version must be strings")
    if (model_id, model_version) != (identity.model_id, identity.model_version):
        raise WireRefused(f"frame from model {model_id!r} version {model_version!r}, this end runs "
                          f"{identity.model_id!r} version {identity.model_version!r}")
    if not (_is_int(seq) and 0 <= seq <= MAX_SEQ):
        raise WireError(f"bad sequence number {seq!r}")
    if not (_is_int(capture_ns) and capture_ns >= 0):
        raise WireError(f"bad capture time {capture_ns!r}")
    p = identity.num_keypoints
    if not (isinstance(kp, bytes) and len(kp) == 4 * p):
        raise WireError(f"keypoints must be {4 * p} bytes ({p} points x 2 x uint16)")
    if not (isinstance(st, bytes) and len(st) == p):
        raise WireError(f"strengths must be {p} bytes ({p} x uint8)")
    return FrameMessage(seq, capture_ns, dequantize_keypoints(kp, p), dequantize_strengths(st), len(data))


# --- control messages (JSON text on the reliable channel) ---

#: Control message types and who sends them: hello/stats (sender), accept/refuse (receiver), bye (both).
CONTROL_TYPES = frozenset({"hello", "accept", "refuse", "stats", "bye"})


def encode_control(kind: str, **fields: Any) -> str:
    if kind not in CONTROL_TYPES:
        raise ValueError(f"unknown control message type {kind!r}")
    return json.dumps({"type": kind, **fields}, separators=(",", ":"))


def decode_control(data: str | bytes) -> dict[str, Any]:
    """A control message as a dict with a known ``type``; anything else is a ``WireError``."""
    if not isinstance(data, str):
        raise WireError(f"control message must be text, got {type(data).__name__}")
    if len(data) > MAX_CONTROL_BYTES:
        raise WireError(f"control message of {len(data)} characters exceeds {MAX_CONTROL_BYTES}")
    try:
        msg = json.loads(data)
    except ValueError as exc:
        raise WireError(f"control message is not JSON: {exc}") from exc
    if not isinstance(msg, dict) or msg.get("type") not in CONTROL_TYPES:
        raise WireError(f"control message without a known type: {str(data)[:80]!r}")
    return msg


def hello_fields(identity: ModelIdentity, resolution: int, fps: float, crop: list[int] | None) -> dict[str, Any]:
    """The sender's hello: everything the receiver checks before accepting frames. ``crop`` ([x, y, side] in
    source pixels) is None until a face has been seen; it follows the face and is repeated in the stats."""
    return {"wire": WIRE_VERSION, "model": identity.model_id, "model_version": identity.model_version,
            "keypoints": identity.num_keypoints, "resolution": resolution, "fps": fps, "crop": crop}


def check_hello(msg: dict[str, Any], identity: ModelIdentity, resolution: int) -> str | None:
    """Why a hello must be refused, or None when this end can render the sender's frames."""
    wire = msg.get("wire")
    if not _is_int(wire) or wire != WIRE_VERSION:
        return f"sender speaks wire version {wire!r}, this receiver speaks {WIRE_VERSION}"
    if (msg.get("model"), msg.get("model_version")) != (identity.model_id, identity.model_version):
        return (f"sender runs model {msg.get('model')!r} version {msg.get('model_version')!r}, this receiver runs "
                f"{identity.model_id!r} version {identity.model_version!r}")
    if msg.get("keypoints") != identity.num_keypoints or msg.get("resolution") != resolution:
        return (f"sender sends {msg.get('keypoints')!r} keypoints at {msg.get('resolution')!r} px, this receiver "
                f"expects {identity.num_keypoints} at {resolution} px")
    fps = msg.get("fps")
    if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not 0 < fps <= 240:
        return f"bad frame rate {fps!r} in hello"
    return None
