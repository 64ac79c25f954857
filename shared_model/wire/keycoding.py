"""Keypoint coding (the payload of wire v2): quantization, prediction and entropy coding of one frame.

Keypoints (P, 2) in [-1, 1] and strengths (P,) in [0, 1] are quantized on fixed grids, ``q = round(v / step)``;
everything after that is integer arithmetic, so the decoder rebuilds exactly the values the encoder kept.
A *predicted* frame codes ``q - q_ref`` (the reference frame's reconstructed values: closed loop); an *intra*
frame codes ``q`` itself. Each of the two blocks (keypoints, strengths) is coded as its common shift (the
per-column median of the residuals: global head motion), a 4-bit index picking a Laplace scale from a fixed
table, then every residual minus the shift under a quantized Laplace model of that scale. The encoder picks the
scale that makes the block smallest, so a still face costs a few bits and a head turn still codes well, and no
adaptive state can fall out of step between the two ends when messages are lost.

Each frame also names the reference picture the receiver renders it from (0..255, 0: none of the sender's): an
intra frame codes it in 8 bits, a predicted one as "the same as the frame it refers to" (a few hundredths of a
bit) or, rarely, the new value (about 14 bits).

Entropy coder: constriction's range coder (``constriction.stream.queue``), with quantized Laplace and uniform
models. It writes 32-bit words; the encoder cuts them to the shortest byte prefix that still decodes to the
same values when the decoder pads it with 0xFF bytes (checked by decoding), which saves about two bytes a frame.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import constriction
import numpy as np

from ..errors import CodingError, shown

#: Laplace scales a block can choose from (index coded in 4 bits).
SCALES = np.geomspace(0.1, 1000.0, 16)
#: Scale of the common shift of a predicted block (in grid steps).
SHIFT_SCALE = 1.5
#: A predicted frame's capture time is coded as its offset from the time the frame rate predicts (ms).
TIME_SCALE = 3.0
TIME_RANGE = 2**15 - 1
TIME_WRAP = 2**16
#: Picture ids a frame can name (0: none of the sender's pictures).
PICTURE_IDS = 256
#: How often a predicted frame names another picture than the frame it refers to (sets its cost in bits).
PICTURE_CHANGE = 1 / 128
_PAD = b"\xff\xff\xff"


@dataclass(frozen=True)
class CodingSettings:
    """What both ends agree on in the hello: grid steps and how often an anchor frame is sent.

    ``kp_step`` is in keypoint units (the crop spans [-1, 1]: at 128 px, 1/128 is half a pixel). Every
    ``anchor_every``-th frame refers only to a frame the receiver acknowledged (or to none), the frames
    between refer to the frame sent just before them: a lost message spoils at most ``anchor_every - 1``
    later frames.
    """

    kp_step: float = 1 / 128
    st_step: float = 1 / 16
    anchor_every: int = 4

    def __post_init__(self) -> None:
        if problem := self.problem():
            raise ValueError(problem)

    def problem(self) -> str | None:
        """Why these settings are unusable, or None."""
        limits = (("kp_step", self.kp_step, 1 / 4096, 1 / 4), ("st_step", self.st_step, 1 / 1024, 1 / 2))
        for name, value, lo, hi in limits:
            if not (isinstance(value, float) and lo <= value <= hi):
                return f"{name} must be a number in [{lo:g}, {hi:g}], got {shown(value)}"
        if not (type(self.anchor_every) is int and 1 <= self.anchor_every <= 64):
            return f"anchor_every must be an integer in [1, 64], got {shown(self.anchor_every)}"
        return None

    @classmethod
    def from_px(cls, kp_px: float, resolution: int, st_step: float = 1 / 16, anchor_every: int = 4) -> CodingSettings:
        """Settings with the keypoint step given in pixels of the model's crop."""
        return cls(2.0 * kp_px / resolution, float(st_step), anchor_every)

    @classmethod
    def from_dict(cls, fields: Any) -> CodingSettings:
        """Settings from a hello; ValueError with the reason when they are missing or out of range."""
        if not isinstance(fields, dict) or set(fields) != {"kp_step", "st_step", "anchor_every"}:
            raise ValueError(f"coding settings must hold kp_step, st_step and anchor_every, got {shown(fields)}")
        kp, st = (float(v) if type(v) is int else v for v in (fields["kp_step"], fields["st_step"]))
        return cls(kp, st, fields["anchor_every"])

    def as_dict(self) -> dict[str, float | int]:
        return {"kp_step": self.kp_step, "st_step": self.st_step, "anchor_every": self.anchor_every}

    @property
    def kp_max(self) -> int:
        return _steps_within_one(self.kp_step)

    @property
    def st_max(self) -> int:
        return _steps_within_one(self.st_step)


def _steps_within_one(step: float) -> int:
    """The most whole steps that stay within 1.0, so that decoded values never leave their range (1 / step
    rounded up would let a coarse step reach 1.15)."""
    n = round(1.0 / step)
    return n if n * step <= 1.0 else n - 1


@dataclass(frozen=True, eq=False)
class Quantized:
    """A frame on the grids: keypoints (P, 2) and strengths (P,) as int32, and the picture it names."""

    kp: np.ndarray
    st: np.ndarray
    picture: int = 0

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Quantized) and np.array_equal(self.kp, other.kp)
                and np.array_equal(self.st, other.st) and self.picture == other.picture)


def quantize(kp: np.ndarray, st: np.ndarray, s: CodingSettings, picture: int = 0) -> Quantized:
    """Values clipped to their range and rounded to the grids."""
    if not 0 <= picture < PICTURE_IDS:
        raise ValueError(f"picture id {picture} outside [0, {PICTURE_IDS})")
    qk = np.round(np.clip(np.asarray(kp, np.float64), -1.0, 1.0) / s.kp_step)
    qs = np.round(np.clip(np.asarray(st, np.float64), 0.0, 1.0) / s.st_step)
    return Quantized(np.clip(qk, -s.kp_max, s.kp_max).astype(np.int32), np.clip(qs, 0, s.st_max).astype(np.int32),
                     picture)


def dequantize(q: Quantized, s: CodingSettings) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints (P, 2) and strengths (P,) as float32."""
    return (q.kp * s.kp_step).astype(np.float32), (q.st * s.st_step).astype(np.float32)


@cache
def _laplace(bound: int) -> Any:
    return constriction.stream.model.QuantizedLaplace(-bound, bound)


@cache
def _uniform(size: int) -> Any:
    return constriction.stream.model.Uniform(size)


@cache
def _changed() -> Any:
    return constriction.stream.model.Categorical(np.array([1 - PICTURE_CHANGE, PICTURE_CHANGE]), perfect=False)


def _encode_picture(enc: Any, picture: int, ref: Quantized | None) -> None:
    if ref is not None:
        changed = int(picture != ref.picture)
        enc.encode(np.array([changed], np.int32), _changed())
        if not changed:
            return
    enc.encode(np.array([picture], np.int32), _uniform(PICTURE_IDS))


def _decode_picture(dec: Any, ref: Quantized | None) -> int:
    if ref is not None and not dec.decode(_changed(), 1)[0]:
        return ref.picture
    return int(dec.decode(_uniform(PICTURE_IDS), 1)[0])


def _laplace_bits(values: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Bits of integer ``values`` (N,) under zero-mean quantized Laplace models of each of ``scales`` (S,)."""
    a = np.abs(values)[None, :].astype(np.float64)
    b = scales[:, None]
    p = np.where(a == 0, 1.0 - np.exp(-0.5 / b), 0.5 * (np.exp(-(a - 0.5) / b) - np.exp(-(a + 0.5) / b)))
    return -np.log2(np.maximum(p, 2.0**-24)).sum(axis=1)


@dataclass(frozen=True)
class _Block:
    """How one block (keypoints or strengths) is coded: its value range."""

    lo: int
    hi: int

    @property
    def span(self) -> int:
        return self.hi - self.lo


def _blocks(s: CodingSettings) -> tuple[_Block, _Block]:
    return _Block(-s.kp_max, s.kp_max), _Block(0, s.st_max)


def _encode_block(enc: Any, block: _Block, values: np.ndarray, pred: np.ndarray | None) -> None:
    cols = values.reshape(len(values), -1)
    r = cols if pred is None else cols - pred.reshape(cols.shape)
    shift = np.round(np.median(r, axis=0)).astype(np.int32)
    if pred is None:
        enc.encode((shift - block.lo).astype(np.int32), _uniform(block.span + 1))
    else:
        enc.encode(shift, _laplace(block.span), np.zeros(len(shift)), np.full(len(shift), SHIFT_SCALE))
    e = (r - shift).ravel().astype(np.int32)
    index = int(np.argmin(_laplace_bits(e, SCALES)))
    enc.encode(np.array([index], np.int32), _uniform(len(SCALES)))
    enc.encode(e, _laplace(2 * block.span), np.zeros(len(e)), np.full(len(e), SCALES[index]))


def _decode_block(dec: Any, block: _Block, shape: tuple[int, ...], pred: np.ndarray | None) -> np.ndarray:
    n, c = shape[0], int(np.prod(shape[1:]))
    if pred is None:
        shift = dec.decode(_uniform(block.span + 1), c) + block.lo
    else:
        shift = dec.decode(_laplace(block.span), np.zeros(c), np.full(c, SHIFT_SCALE))
    index = int(dec.decode(_uniform(len(SCALES)), 1)[0])
    e = dec.decode(_laplace(2 * block.span), np.zeros(n * c), np.full(n * c, SCALES[index])).reshape(n, c)
    values = e + shift if pred is None else e + shift + pred.reshape(n, c)
    if values.min() < block.lo or values.max() > block.hi:
        raise CodingError(f"decoded values outside [{block.lo}, {block.hi}]")
    return values.reshape(shape).astype(np.int32)


def encode_payload(q: Quantized, time: int, ref: Quantized | None, s: CodingSettings) -> bytes:
    """A frame's coded fields. ``time`` is coded uniformly in [0, 2**16) for an intra frame (``ref`` None) and
    as a Laplace offset in [-TIME_RANGE, TIME_RANGE] for a predicted one."""
    enc = constriction.stream.queue.RangeEncoder()
    if ref is None:
        if not 0 <= time < TIME_WRAP:
            raise ValueError(f"intra time {time} outside [0, {TIME_WRAP})")
        enc.encode(np.array([time], np.int32), _uniform(TIME_WRAP))
    else:
        if abs(time) > TIME_RANGE:
            raise ValueError(f"time offset {time} outside +-{TIME_RANGE}")
        enc.encode(np.array([time], np.int32), _laplace(TIME_RANGE), np.zeros(1), np.full(1, TIME_SCALE))
    _encode_picture(enc, q.picture, ref)
    kp_block, st_block = _blocks(s)
    _encode_block(enc, kp_block, q.kp, None if ref is None else ref.kp)
    _encode_block(enc, st_block, q.st, None if ref is None else ref.st)

    def decodes_back(data: bytes) -> bool:
        try:
            return decode_payload(data, len(q.st), ref, s) == (time, q)
        except CodingError:
            return False

    return _shortest(enc.get_compressed().astype(">u4").tobytes(), decodes_back)


def _shortest(full: bytes, decodes_back: Callable[[bytes], bool]) -> bytes:
    """The shortest prefix of the coder's words that decodes to the same frame (the whole words always do)."""
    for n in range(max(0, len(full) - 8), len(full)):
        if decodes_back(full[:n]):
            return full[:n]
    return full


def decode_payload(data: bytes, count: int, ref: Quantized | None, s: CodingSettings) -> tuple[int, Quantized]:
    """``(time, quantized frame)`` of ``count`` keypoints; CodingError when the data cannot be such a frame."""
    words = np.frombuffer(data + _PAD[: (-len(data)) % 4], ">u4").astype(np.uint32)
    try:
        dec = constriction.stream.queue.RangeDecoder(words)
        if ref is None:
            time = int(dec.decode(_uniform(TIME_WRAP), 1)[0])
        else:
            time = int(dec.decode(_laplace(TIME_RANGE), np.zeros(1), np.full(1, TIME_SCALE))[0])
        picture = _decode_picture(dec, ref)
        kp_block, st_block = _blocks(s)
        kp = _decode_block(dec, kp_block, (count, 2), None if ref is None else ref.kp)
        st = _decode_block(dec, st_block, (count,), None if ref is None else ref.st)
    except CodingError:
        raise
    except Exception as exc:  # constriction asserts on data that no encoder wrote
        raise CodingError(f"undecodable payload: {exc}") from exc
    return time, Quantized(kp, st, picture)
