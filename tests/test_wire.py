"""Wire format v1: exact size, quantization, strict decoding, control messages, call files."""
from __future__ import annotations

import json

import msgpack
import numpy as np
import pytest

from shared_model.records import RecordWriter, read_records
from shared_model.wire import (
    ModelIdentity,
    WireError,
    WireRefused,
    check_hello,
    decode_control,
    decode_frame,
    encode_control,
    encode_frame,
    hello_fields,
)

ID = ModelIdentity("tps", "2fecbaa93f", 50)
CAPTURE_NS = 1_790_000_000_123_456_789


def sample(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (50, 2)).astype(np.float32), rng.uniform(0, 1, 50).astype(np.float32)


def test_round_trip_and_quantization_error():
    kp, st = sample()
    msg = decode_frame(encode_frame(ID, 7, CAPTURE_NS, kp, st), ID)
    assert (msg.seq, msg.capture_ns) == (7, CAPTURE_NS)
    assert msg.keypoints.shape == (50, 2) and msg.strengths.shape == (50,)
    assert np.abs(msg.keypoints - kp).max() <= 1 / 65535 + 1e-6  # half a step of 2/65535
    assert np.abs(msg.strengths - st).max() <= 0.5 / 255 + 1e-6
    extremes = decode_frame(encode_frame(ID, 0, 0, np.array([[-1.0, 1.0]] * 50), np.array([0.0, 1.0] * 25)), ID)
    assert extremes.keypoints[0].tolist() == [-1.0, 1.0] and extremes.strengths[:2].tolist() == [0.0, 1.0]


@pytest.mark.parametrize("seq, size", [(0, 281), (127, 281), (200, 282), (60_000, 283), (2**32 - 1, 285)])
def test_exact_size(seq, size):
    """50 keypoints, model id 'tps', 10-character version: the numbers in docs/wire-format.md."""
    kp, st = sample()
    assert len(encode_frame(ID, seq, CAPTURE_NS, kp, st)) == size


def _fields(**change) -> bytes:
    """A valid frame message with some fields replaced."""
    kp, st = sample()
    fields = msgpack.unpackb(encode_frame(ID, 3, CAPTURE_NS, kp, st))
    names = ["v", "model", "version", "seq", "t", "kp", "st"]
    for name, value in change.items():
        fields[names.index(name)] = value
    return msgpack.packb(fields, use_bin_type=True)


@pytest.mark.parametrize("data", [
    b"", b"\xc1", b"garbage that is not msgpack", msgpack.packb({"v": 1}), msgpack.packb([]),
    msgpack.packb(["1"]), msgpack.packb([True]), b"x" * 5000,
    _fields(seq=-1), _fields(seq=2**32), _fields(seq=True), _fields(seq=1.0), _fields(t="now"),
    _fields(kp=b"\x00" * 199), _fields(kp=[0] * 100), _fields(st=b"\x00" * 51), _fields(model=5),
    msgpack.packb([1, "tps", "2fecbaa93f", 3, 5, b"\x00" * 200, b"\x00" * 50, "extra"]),
    _fields() + b"\x00",  # trailing bytes
])
def test_malformed_is_refused_as_malformed(data):
    with pytest.raises(WireError) as info:
        decode_frame(data, ID)
    assert not isinstance(info.value, WireRefused)


def test_text_is_malformed():
    with pytest.raises(WireError, match="binary"):
        decode_frame("hello", ID)


@pytest.mark.parametrize("change, match", [({"v": 2}, "wire version 2"), ({"model": "other"}, "model 'other'"),
                                           ({"version": "0000000000"}, "version '0000000000'")])
def test_other_version_or_model_is_refused(change, match):
    with pytest.raises(WireRefused, match=match):
        decode_frame(_fields(**change), ID)


def test_wrong_wire_version_refused_whatever_follows():
    with pytest.raises(WireRefused):
        decode_frame(msgpack.packb([2, "future layout"]), ID)


def test_encode_checks_shapes():
    kp, st = sample()
    with pytest.raises(ValueError):
        encode_frame(ID, 0, 0, kp[:49], st)
    with pytest.raises(ValueError):
        encode_frame(ID, -1, 0, kp, st)


def test_control_messages_and_hello_checks():
    hello = decode_control(encode_control("hello", **hello_fields(ID, 128, 25.0, None)))
    assert check_hello(hello, ID, 128) is None
    assert "model 'tps'" in check_hello({**hello, "model_version": "x"}, ID, 128)
    assert "wire version 2" in check_hello({**hello, "wire": 2}, ID, 128)
    assert "64 px" in check_hello(hello, ID, 64)
    assert "frame rate" in check_hello({**hello, "fps": "fast"}, ID, 128)
    for bad in (b"{}", "not json", json.dumps({"type": "shout"}), json.dumps([1]), "x" * 20000):
        with pytest.raises(WireError):
            decode_control(bad)
    with pytest.raises(ValueError):
        encode_control("shout")


def test_call_file_round_trip_and_damage(tmp_path):
    kp, st = sample()
    frame = encode_frame(ID, 0, CAPTURE_NS, kp, st)
    path = tmp_path / "call.kpc"
    with RecordWriter(path) as out:
        out.control(encode_control("hello", **hello_fields(ID, 128, 25.0, [1, 2, 3])))
        out.frame(frame)
    records = list(read_records(path))
    assert [k for k, _ in records] == [b"C", b"F"] and records[1][1] == frame
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(WireError, match="truncated"):
        list(read_records(path))
    path.write_bytes(b"Z\x00\x00\x00\x01x")
    with pytest.raises(WireError, match="bad record"):
        list(read_records(path))
