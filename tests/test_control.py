"""Control messages (msgpack, wire v3): round trips, the hello's checks, and strict refusal of anything else."""
from __future__ import annotations

import random

import msgpack
import pytest

from shared_model.errors import CodecError, WireError, WireRefused
from shared_model.wire.control import (
    CHUNK_BYTES,
    MAX_CONTROL_BYTES,
    TYPES,
    Accept,
    Bye,
    Hello,
    Picture,
    PictureAck,
    PictureChunk,
    PictureRefused,
    Refuse,
    Stats,
    decode_control,
)
from shared_model.wire.keycoding import CodingSettings
from shared_model.wire.messages import WIRE_VERSION, FrameEncoder, ModelIdentity

ID = ModelIdentity("tps", "8637786482", 50, "3f0c2a9e51")
HELLO = Hello.of(FrameEncoder(ID, CodingSettings(), 25.0, 1_790_000_000_000_000_000), 256, (10, 20, 300), "av1")
EXAMPLES = [
    HELLO, Hello.of(FrameEncoder(ID, CodingSettings(anchor_every=1), 7.5, 0), 256, None, "av1"),
    Accept(0, 8), Accept(3, 1), Refuse("sender runs model 'x'"), Stats((0, 0, 1), {"sent": 3, "captured": 2**40}),
    Stats(None, {}), Bye("source ended", 41), Bye("receiver interrupted", None), Bye("", -1),
    Picture(1, 1, None), Picture(255, 65536, 3), PictureChunk(7, 0, b"\x00" * CHUNK_BYTES), PictureChunk(7, 65, b"x"),
    PictureAck(2, (1, 2, 9)), PictureAck(2, ()), PictureRefused(9, "too many pictures"),
]


def raw(**fields) -> bytes:
    return msgpack.packb(fields, use_bin_type=True)


def body(msg) -> dict:
    return msgpack.unpackb(msg.encode())


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: m.TYPE)
def test_every_message_round_trips(msg):
    data = msg.encode()
    assert decode_control(data) == msg and len(data) <= MAX_CONTROL_BYTES
    assert msgpack.unpackb(data)["v"] == WIRE_VERSION


def test_every_type_has_an_example():
    assert {m.TYPE for m in EXAMPLES} == set(TYPES)


def test_pictures_travel_as_msgpack_bytes_not_base64():
    data = PictureChunk(1, 0, bytes(range(256)) * 3).encode()
    assert bytes(range(256)) * 3 in data and len(data) < 768 + 32


def test_hello_check_names_what_differs():
    HELLO.check(ID, 256, "av1")
    HELLO.check(ModelIdentity("tps-personal", "77aa0b1c2d", 50, ID.detector_version), 256, "av1")  # enrolled
    for identity, resolution, codec, match in [
        (ModelIdentity("tps", "8637786482", 50, "other"), 256, "av1",
         r"model 'tps' version '8637786482' \(keypoint detector '3f0c2a9e51'\).*trained on detector 'other'"),
        (ModelIdentity("tps", "8637786482", 40, ID.detector_version), 256, "av1", "50 keypoints at 256 px"),
        (ID, 128, "av1", "expects 50 at 128 px"), (ID, 256, "webp", "codes pictures as 'av1'")]:
        with pytest.raises(WireRefused, match=match):
            HELLO.check(identity, resolution, codec)


@pytest.mark.parametrize("data, match", [
    ('{"type":"hello"}', "wire version 2 sent JSON"),
    (raw(v=2, t="hello"), "wire version 2"), (raw(v=4, t="bye", reason="", last_seq=None), "wire version 4"),
    (raw(t="bye", reason="", last_seq=None), "wire version None"), (raw(v=True, t="accept"), "wire version True"),
])
def test_other_versions_are_refused(data, match):
    with pytest.raises(WireRefused, match=match):
        decode_control(data)


def _with(msg, **changes) -> bytes:
    return raw(**{**body(msg), **changes})


@pytest.mark.parametrize("data, match", [
    (b"", "non-empty"), (b"\xc1", "not msgpack"), (b"\x91" * 3000, "not msgpack"),  # too deep
    (raw(v=3, t="bye", reason="", last_seq=None) + b"\x00", "not msgpack"), (b"\xa2\xff\xfe", "not msgpack"),
    (msgpack.packb([3, "bye"]), "must be a map"), (msgpack.packb({1: 2}), "not msgpack"),
    (raw(v=3, t="shout"), "unknown type"), (raw(v=3, t=["hello"]), "unknown type"),
    (b"\x00" * (MAX_CONTROL_BYTES + 1), "exceeds"),
    (_with(Accept(0, 8), extra=1), "unknown fields \\['extra'\\]"),
    (raw(v=3, t="accept", own_pictures=0), "missing fields \\['max_pictures'\\]"),
    (_with(Accept(0, 8), max_pictures=9), "max_pictures must be an integer in \\[1, 8\\]"),
    (_with(Accept(0, 8), own_pictures=True), "own_pictures must be an integer"),
    (_with(HELLO, fps=float("nan")), "fps must be a number"), (_with(HELLO, fps=0), "fps must be a number"),
    (_with(HELLO, fps=5e-324), r"fps must be a number in \[0.1, 240\]"),
    (_with(HELLO, fps="fast"), "fps must be a number"), (_with(HELLO, model="m" * 65), "model must be text"),
    (_with(HELLO, crop=[1, 2]), "crop must be a list"), (_with(HELLO, crop=[1, 2, 0]), "side must be at least 1"),
    (_with(HELLO, crop=[[1], 2, 3]), "crop must be an integer"), (_with(HELLO, epoch_ns=-1), "epoch_ns"),
    (_with(HELLO, coding=None), "coding settings must hold"),
    (_with(HELLO, coding={**body(HELLO)["coding"], "kp_step": 0.9}), "kp_step must be a number"),
    (_with(Stats(None, {}), counts={f"c{i}": 1 for i in range(33)}), "at most 32 counters"),
    (_with(Stats(None, {}), counts={"sent": -1}), "counts must be an integer"),
    (_with(Stats(None, {}), counts={"sent": {"deep": 1}}), "counts must be an integer"),
    (_with(Stats(None, {}), counts={"s" * 33: 1}), "counts must be text"),
    (_with(Bye("", None), reason="x" * 1001), "reason must be text"),
    (_with(Bye("", None), last_seq=2**32), "last_seq must be an integer"),
    (_with(Picture(1, 1, None), id=0), "id must be an integer in \\[1, 255\\]"),
    (_with(Picture(1, 1, None), size=65537), "size must be an integer"),
    (_with(PictureChunk(1, 0, b"x"), data=b""), "data must be 1 to 1000 bytes"),
    (_with(PictureChunk(1, 0, b"x"), data=b"x" * 1001), "data must be 1 to 1000 bytes"),
    (_with(PictureChunk(1, 0, b"x"), data="text"), "data must be 1 to 1000 bytes"),
    (_with(PictureAck(1, ()), held=list(range(1, 10))), "held must be a list of at most 8"),
    (_with(PictureAck(1, ()), held=[1, 1]), "held holds an integer twice"),
    (_with(PictureAck(1, ()), held=[msgpack.ExtType(5, b"x")]), "held must be an integer"),
])
def test_malformed_messages_are_refused_with_the_reason(data, match):
    with pytest.raises(WireError, match=match) as info:
        decode_control(data)
    assert not isinstance(info.value, WireRefused)


def test_an_oversize_message_cannot_be_made():
    with pytest.raises(ValueError, match="exceeds"):
        Refuse("x" * 5000).encode()


def test_mutated_and_random_messages_only_ever_raise_codec_errors():
    """Every example with bytes flipped, cut or inserted, and random maps of the right keys with random values:
    a message decodes to a checked dataclass or raises a CodecError, never anything else."""
    rng = random.Random(0)
    values = [None, True, -1, 0, 1, 7, 2**31, 2**64 - 1, -2**63, 0.5, float("inf"), "", "x" * 40, b"", b"\x00" * 9,
              [], [1, 2, 3], [[1]], {}, {"a": 1}, msgpack.ExtType(1, b"")]
    decoded = 0
    for _ in range(3000):
        msg = rng.choice(EXAMPLES)
        data = bytearray(msg.encode())
        if rng.random() < 0.5:
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(len(data))
                data[i:i + 1] = rng.choice([b"", bytes([rng.randrange(256)]), bytes([rng.randrange(256)]) * 2])
        else:
            fields = body(msg)
            fields[rng.choice(list(fields))] = rng.choice(values)
            data = bytearray(msgpack.packb(fields, use_bin_type=True))
        try:
            result = decode_control(bytes(data))
        except CodecError:
            continue
        decoded += 1
        assert type(result) in TYPES.values() and decode_control(result.encode()) == result
    assert decoded > 100  # some mutations keep a valid message


def test_messages_have_readable_sizes():
    """The sizes docs/wire-format.md gives."""
    sizes = {m.TYPE: len(m.encode()) for m in (HELLO, Accept(0, 8), Picture(1, 1300, None), PictureAck(1, (1,)))}
    assert sizes == {"hello": 208, "accept": 41, "picture": 36, "picture-ack": 29}, sizes
    assert len(PictureChunk(1, 0, b"\x00" * CHUNK_BYTES).encode()) == CHUNK_BYTES + 31
