"""Control messages (wire v3): msgpack maps on the reliable control channel, parsed once, at the edge, into
frozen dataclasses.

Every message is one map ``{"v": 3, "t": TYPE, FIELD: value, ...}`` of at most ``MAX_CONTROL_BYTES``; binary
payloads (picture chunks) are msgpack ``bin``, never base64. ``decode_control`` checks everything a message holds
before anyone reads it: the version (another one is a ``WireRefused``), the type, that every field is present and
no other, each field's type, range and size, and the nesting of the few structured fields (a crop is three
integers, the coding settings a map of three numbers, the sender's counters a flat map of at most 32
integers). Anything else is a ``WireError``; nothing malformed ever reaches the call logic.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import msgpack

from ..errors import WireError, WireRefused, shown
from .keycoding import CodingSettings
from .messages import MAX_SEQ, WIRE_VERSION, FrameEncoder, ModelIdentity

#: A control message, msgpack-coded, is at most this long (a picture chunk is the largest: about 1.03 KB).
MAX_CONTROL_BYTES = 4096
#: Picture data per chunk: one chunk is one SCTP DATA chunk (aiortc 1.16 fragments above 1160 bytes).
CHUNK_BYTES = 1000
#: A reference picture is at most this long (a 256 px AV1 picture at the default quality is about 1.3 KB).
MAX_PICTURE_BYTES = 65536
#: Picture ids on the wire: 1..255 (0 in a frame means "none of the sender's: the receiver's own pictures").
MAX_PICTURE_ID = 255
#: A receiver holds at most this many of the sender's pictures (it says how many in its accept).
MAX_PICTURES = 8
_TEXT = 1000  # longest reason text
#: A sender's frame rate: at least one frame every 10 s (a rate of 5e-324 once made every later frame raise:
#: the frame interval overflowed), at most 240 a second.
MIN_FPS, MAX_FPS = 0.1, 240.0

Check = Callable[[Any], Any]


def integer(lo: int, hi: int) -> Check:
    def check(value: Any) -> int:
        if type(value) is not int or not lo <= value <= hi:  # bool is an int subclass: excluded on purpose
            raise WireError(f"must be an integer in [{lo}, {hi}], got {shown(value)}")
        return value
    return check


def number(lo: float, hi: float) -> Check:
    """A finite number in [lo, hi]."""
    def check(value: Any) -> float:
        if type(value) not in (int, float) or not math.isfinite(value) or not lo <= value <= hi:
            raise WireError(f"must be a number in [{lo:g}, {hi:g}], got {shown(value)}")
        return float(value)
    return check


def text(max_len: int) -> Check:
    def check(value: Any) -> str:
        if type(value) is not str or len(value) > max_len:
            raise WireError(f"must be text of at most {max_len} characters, got {type(value).__name__}")
        return value
    return check


def blob(max_len: int) -> Check:
    def check(value: Any) -> bytes:
        if type(value) is not bytes or not 0 < len(value) <= max_len:
            raise WireError(f"must be 1 to {max_len} bytes, got {type(value).__name__}")
        return value
    return check


def optional(inner: Check) -> Check:
    def check(value: Any) -> Any:
        return None if value is None else inner(value)
    return check


def integers(lo: int, hi: int, max_len: int) -> Check:
    """A list of at most ``max_len`` distinct integers in [lo, hi], kept as a sorted tuple."""
    one = integer(lo, hi)

    def check(value: Any) -> tuple[int, ...]:
        if type(value) is not list or len(value) > max_len:
            raise WireError(f"must be a list of at most {max_len} integers")
        items = tuple(sorted(one(v) for v in value))
        if len(set(items)) != len(items):
            raise WireError("holds an integer twice")
        return items
    return check


def crop_box(value: Any) -> tuple[int, int, int]:
    """``[x, y, side]`` of the face crop in source pixels."""
    if type(value) is not list or len(value) != 3:
        raise WireError("must be a list [x, y, side]")
    x, y, side = (integer(0, 2**16)(v) for v in value)
    if side < 1:
        raise WireError("side must be at least 1")
    return x, y, side


def coding_settings(value: Any) -> CodingSettings:
    try:
        return CodingSettings.from_dict(value)
    except ValueError as exc:
        raise WireError(str(exc)) from exc


def counter_map(value: Any) -> dict[str, int]:
    """A flat map of at most 32 names (32 characters at most) to non-negative integers."""
    if type(value) is not dict or len(value) > 32:
        raise WireError("must be a map of at most 32 counters")
    count = integer(0, 2**63 - 1)
    return {text(32)(k): count(v) for k, v in value.items()}


def _spec(check: Check) -> Any:
    return field(metadata={"check": check})


def _plain(value: Any) -> Any:
    """A field's value as msgpack takes it."""
    return value.as_dict() if isinstance(value, CodingSettings) else value


@dataclass(frozen=True)
class Control:
    """A control message. Subclasses name their ``TYPE`` and give each field its check."""

    TYPE: ClassVar[str] = ""

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> Control:
        """The message from its map (without ``v`` and ``t``); WireError naming the first bad field."""
        names = {f.name for f in fields(cls)}
        if set(body) != names:
            missing, extra = sorted(names - set(body)), sorted(map(str, set(body) - names))
            raise WireError(f"{cls.TYPE} message: missing fields {missing}, unknown fields {extra}")
        values = {}
        for f in fields(cls):
            try:
                values[f.name] = f.metadata["check"](body[f.name])
            except WireError as exc:
                raise WireError(f"{cls.TYPE} message: {f.name} {exc}") from None
        return cls(**values)

    def encode(self) -> bytes:
        body = {f.name: _plain(getattr(self, f.name)) for f in fields(self)}
        data = msgpack.packb({"v": WIRE_VERSION, "t": self.TYPE, **body}, use_bin_type=True)
        if len(data) > MAX_CONTROL_BYTES:
            raise ValueError(f"{self.TYPE} message of {len(data)} bytes exceeds {MAX_CONTROL_BYTES}")
        return data


@dataclass(frozen=True)
class Hello(Control):
    """The sender's first message: everything the receiver checks and needs before it decodes frames.

    ``crop`` ([x, y, side] in source pixels) is None until a face has been seen; frame capture times are coded
    in milliseconds since ``epoch_ns`` (the sender's wall clock).
    """

    TYPE: ClassVar[str] = "hello"
    model: str = _spec(text(64))
    model_version: str = _spec(text(64))
    detector: str = _spec(text(64))
    keypoints: int = _spec(integer(1, 1024))
    resolution: int = _spec(integer(16, 4096))
    fps: float = _spec(number(MIN_FPS, MAX_FPS))
    crop: tuple[int, int, int] | None = _spec(optional(crop_box))
    coding: CodingSettings = _spec(coding_settings)
    epoch_ns: int = _spec(integer(0, 2**63 - 1))
    picture_codec: str = _spec(text(16))

    @classmethod
    def of(cls, encoder: FrameEncoder, resolution: int, crop: tuple[int, int, int] | None,
           picture_codec: str) -> Hello:
        """The hello of a sender coding with ``encoder``."""
        identity = encoder.identity
        return cls(identity.model_id, identity.model_version, identity.detector_version, identity.num_keypoints,
                   resolution, encoder.fps, crop, encoder.settings, encoder.epoch_ns, picture_codec)

    def check(self, identity: ModelIdentity, resolution: int, picture_codec: str) -> None:
        """WireRefused with the reason when this end cannot decode and render the sender's frames: the keypoints
        must come from the detector this end's generator was trained on (the models' names and versions may
        differ: a personal generator keeps the shipped detector)."""
        if self.detector != identity.detector_version:
            raise WireRefused(f"sender runs model {self.model!r} version {self.model_version!r} (keypoint detector "
                              f"{self.detector!r}), this receiver runs {identity.model_id!r} version "
                              f"{identity.model_version!r}, trained on detector {identity.detector_version!r}: "
                              "run the same model on both ends, or enrol from the sender's model")
        if (self.keypoints, self.resolution) != (identity.num_keypoints, resolution):
            raise WireRefused(f"sender sends {self.keypoints} keypoints at {self.resolution} px, this receiver "
                              f"expects {identity.num_keypoints} at {resolution} px")
        if self.picture_codec != picture_codec:
            raise WireRefused(f"sender codes pictures as {self.picture_codec!r}, this receiver decodes "
                              f"{picture_codec!r}")


@dataclass(frozen=True)
class Accept(Control):
    """The receiver takes the call. ``own_pictures``: how many reference pictures it has of its own
    (``receiver --refs``); ``max_pictures``: how many of the sender's it keeps at most."""

    TYPE: ClassVar[str] = "accept"
    own_pictures: int = _spec(integer(0, 255))
    max_pictures: int = _spec(integer(1, MAX_PICTURES))


@dataclass(frozen=True)
class Refuse(Control):
    TYPE: ClassVar[str] = "refuse"
    reason: str = _spec(text(_TEXT))


@dataclass(frozen=True)
class Stats(Control):
    """The sender's counters (every 2 s and before bye) and its current crop."""

    TYPE: ClassVar[str] = "stats"
    crop: tuple[int, int, int] | None = _spec(optional(crop_box))
    counts: dict[str, int] = _spec(counter_map)


@dataclass(frozen=True)
class Bye(Control):
    """Either end hangs up; the sender's names its last frame slot (-1: none)."""

    TYPE: ClassVar[str] = "bye"
    reason: str = _spec(text(_TEXT))
    last_seq: int | None = _spec(optional(integer(-1, MAX_SEQ)))


@dataclass(frozen=True)
class Picture(Control):
    """A reference picture follows in ``ceil(size / CHUNK_BYTES)`` chunks. Once it is complete the receiver
    drops the picture ``replaces`` (if any) and acknowledges this one."""

    TYPE: ClassVar[str] = "picture"
    id: int = _spec(integer(1, MAX_PICTURE_ID))
    size: int = _spec(integer(1, MAX_PICTURE_BYTES))
    replaces: int | None = _spec(optional(integer(1, MAX_PICTURE_ID)))

    @property
    def chunks(self) -> int:
        return -(-self.size // CHUNK_BYTES)


@dataclass(frozen=True)
class PictureChunk(Control):
    """Bytes ``index * CHUNK_BYTES`` onwards of picture ``id`` (every chunk but the last is full)."""

    TYPE: ClassVar[str] = "chunk"
    id: int = _spec(integer(1, MAX_PICTURE_ID))
    index: int = _spec(integer(0, MAX_PICTURE_BYTES // CHUNK_BYTES))
    data: bytes = _spec(blob(CHUNK_BYTES))


@dataclass(frozen=True)
class PictureAck(Control):
    """The receiver holds picture ``id``, ready to render from; ``held`` lists every sender picture it holds."""

    TYPE: ClassVar[str] = "picture-ack"
    id: int = _spec(integer(1, MAX_PICTURE_ID))
    held: tuple[int, ...] = _spec(integers(1, MAX_PICTURE_ID, MAX_PICTURES))


@dataclass(frozen=True)
class PictureRefused(Control):
    """The receiver dropped picture ``id`` (bad bytes, wrong size, too many): frames must not name it."""

    TYPE: ClassVar[str] = "picture-refused"
    id: int = _spec(integer(1, MAX_PICTURE_ID))
    reason: str = _spec(text(_TEXT))


TYPES: dict[str, type[Control]] = {c.TYPE: c for c in (Hello, Accept, Refuse, Stats, Bye, Picture, PictureChunk,
                                                       PictureAck, PictureRefused)}


def decode_control(data: bytes | str) -> Control:
    """One control message, checked through; WireError (WireRefused for another wire version) otherwise."""
    if isinstance(data, str):
        raise WireRefused("a text control message (wire version 2 sent JSON), this end speaks msgpack, "
                          f"wire version {WIRE_VERSION}")
    if not isinstance(data, bytes) or not data:
        raise WireError(f"control message must be non-empty bytes, got {type(data).__name__}")
    if len(data) > MAX_CONTROL_BYTES:
        raise WireError(f"control message of {len(data)} bytes exceeds {MAX_CONTROL_BYTES}")
    try:
        msg = msgpack.unpackb(data, raw=False, strict_map_key=True, timestamp=0)
    except (ValueError, TypeError) as exc:  # ExtraData, FormatError, StackError, bad UTF-8 are ValueErrors
        raise WireError(f"control message is not msgpack: {exc}") from exc
    if type(msg) is not dict:
        raise WireError(f"control message must be a map, got {type(msg).__name__}")
    version, kind = msg.pop("v", None), msg.pop("t", None)
    if version != WIRE_VERSION or type(version) is not int:
        raise WireRefused(f"control message of wire version {shown(version)}, this end speaks {WIRE_VERSION}")
    if type(kind) is not str or kind not in TYPES:
        raise WireError(f"control message of unknown type {shown(kind)}")
    return TYPES[kind].parse(msg)
