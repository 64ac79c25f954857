"""Wire format v3 frames: exact round trips at every coding setting, pictures named, the loss bound, strict
decoding, acks, call files."""
from __future__ import annotations

import random

import numpy as np
import pytest

from shared_model.errors import MissingReference, WireError, WireRefused
from shared_model.wire.control import Hello
from shared_model.wire.keycoding import CodingSettings, dequantize, quantize
from shared_model.wire.messages import MAX_DISTANCE, FrameDecoder, FrameEncoder, ModelIdentity, decode_ack, encode_ack
from shared_model.wire.records import RecordWriter, read_records

ID = ModelIdentity("tps", "2fecbaa93f", 50, "3f0c2a9e51")
FPS = 25.0
EPOCH = 1_790_000_000_000_000_000
SETTINGS = [CodingSettings.from_px(px, 128, st, g)
            for px in (0.25, 0.5, 1.0, 2.0) for st, g in ((1 / 16, 4), (1 / 64, 1))]


def trajectory(frames: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints drifting like a talking head (small jitter, a head turn in the middle) and near-constant
    strengths, with a few values outside their range (clipped)."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(-0.6, 0.6, (50, 2))
    turn = np.clip(np.linspace(-2, 2, frames), -1, 1)[:, None, None] * np.array([0.15, 0.02])
    kp = base + turn + rng.normal(0, 0.002, (frames, 50, 2))
    kp[frames // 3, 0] = [1.5, -1.2]
    st = np.clip(rng.uniform(0.8, 1.0, 50) + rng.normal(0, 0.001, (frames, 50)), 0, 1.1)
    return kp.astype(np.float32), st.astype(np.float32)


def capture(seq: int) -> int:
    return EPOCH + round(seq * 1e9 / FPS) + seq % 3 * 1_000_000  # a little capture jitter


def picture_of(i: int) -> int:
    """The picture frame ``i`` names in these streams: none at first, then the sender's pictures 1 and 2."""
    return 0 if i < 7 else 1 if i < 20 else 2


def stream(settings: CodingSettings, frames: int, lose: set[int] = frozenset(), ack_delay: int = 2,
           first_seq: int = 0, shuffle: int = 0):
    """Send ``frames`` frames through an encoder; the receiver decodes those whose index is not in ``lose``
    (arriving in batches of ``shuffle + 1`` in random order), acking each decoded frame ``ack_delay`` frames later.
    Returns (sent frames, decoded messages by seq, spoiled seqs, seqs that arrived after a newer one)."""
    kp, st = trajectory(frames)
    enc, dec = FrameEncoder(ID, settings, FPS, EPOCH), FrameDecoder(ID, settings, FPS, EPOCH)
    sent, decoded, spoiled, late, acks, in_flight, newest = [], {}, [], [], [], [], -1
    rng = random.Random(1)

    def deliver() -> None:
        nonlocal newest
        rng.shuffle(in_flight)
        for n, frame in enumerate(in_flight):
            seq, _ = dec.header(frame.data)
            assert seq == frame.seq
            if any(other.seq > seq for other in in_flight[:n]):
                late.append(seq)
            if seq <= newest:
                continue  # stale: the receiver drops it undecoded
            try:
                decoded[seq] = dec.decode(frame.data)
                newest = seq
                acks.append((len(sent) + ack_delay, seq))
            except MissingReference:
                spoiled.append(seq)
        in_flight.clear()

    for i in range(frames):
        seq = first_seq + i
        for due, acked in [a for a in acks if a[0] <= len(sent)]:
            enc.acknowledge(acked)
            acks.remove((due, acked))
        frame = enc.encode(seq, capture(seq), kp[i], st[i], picture_of(i))
        enc.sent(frame)
        sent.append(frame)
        if i not in lose:
            in_flight.append(frame)
        if len(in_flight) > shuffle:
            deliver()
    deliver()
    return sent, decoded, spoiled, late


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: f"{s.kp_step:.4f}-{s.st_step:.4f}-G{s.anchor_every}")
def test_round_trip_is_exact_at_every_setting(settings):
    kp, st = trajectory(60)
    sent, decoded, spoiled, _ = stream(settings, 60)
    assert not spoiled and sorted(decoded) == list(range(60))
    for i, frame in enumerate(sent):
        msg = decoded[i]
        want_kp, want_st = dequantize(quantize(kp[i], st[i], settings), settings)
        assert np.array_equal(msg.keypoints, want_kp) and np.array_equal(msg.strengths, want_st)
        assert msg.capture_ns == EPOCH + (capture(i) - EPOCH) // 1_000_000 * 1_000_000
        assert msg.size == len(frame.data) and msg.picture == picture_of(i)
        inside = np.clip(kp[i], -1, 1)
        assert np.abs(msg.keypoints - inside).max() <= settings.kp_step / 2 + 1e-6
    assert sent[0].ref_seq is None and all(f.ref_seq is not None for f in sent[3:])  # acks come 2 frames late


def test_prediction_makes_frames_small():
    """A still face costs a few bytes a frame; a predicted frame is far smaller than an intra frame."""
    settings = CodingSettings()
    enc = FrameEncoder(ID, settings, FPS, EPOCH)
    kp, st = trajectory(1)
    sizes = []
    for seq in range(10):
        frame = enc.encode(seq, capture(seq), kp[0], st[0])
        enc.sent(frame)
        enc.acknowledge(seq)
        sizes.append(len(frame.data))
    assert sizes[0] > 60 and max(sizes[1:]) <= 3 + 4  # header + a few bytes of "nothing moved"


def test_naming_the_same_picture_is_nearly_free_and_a_new_one_costs_two_bytes():
    settings = CodingSettings(anchor_every=64)
    kp, st = trajectory(1)

    def sizes(pictures: list[int]) -> list[int]:
        enc = FrameEncoder(ID, settings, FPS, EPOCH)
        out = []
        for seq, picture in enumerate(pictures):
            frame = enc.encode(seq, capture(seq), kp[0], st[0], picture)
            enc.sent(frame)
            out.append(len(frame.data))
        return out

    same, change = sizes([3] * 30), sizes([3] * 15 + [200] * 15)
    assert sum(change) - sum(same) <= 2 and same[:15] == change[:15]


@pytest.mark.parametrize("anchor_every", [1, 2, 4, 8])
def test_a_lost_message_spoils_at_most_anchor_every_minus_one_frames(anchor_every):
    settings = CodingSettings(anchor_every=anchor_every)
    for lost in (1, 5, 6, 7, 30):
        _, decoded, spoiled, _ = stream(settings, 40, lose={lost}, ack_delay=3)
        assert len(spoiled) <= anchor_every - 1, (lost, spoiled)
        assert all(lost < s <= lost + anchor_every - 1 for s in spoiled)
        assert len(decoded) + len(spoiled) == 39
    # Random loss and reordering: a message overtaken by a newer one is as good as lost (too late to be
    # decoded); still never more than G - 1 spoiled frames per lost or overtaken one, and every decoded frame
    # exactly as sent.
    lose = set(random.Random(anchor_every).sample(range(1, 200), 40))
    sent, decoded, spoiled, late = stream(settings, 200, lose=lose, ack_delay=4, shuffle=2)
    assert late and len(spoiled) <= (anchor_every - 1) * (len(lose) + len(late))
    for seq, msg in decoded.items():
        want_kp, _ = dequantize(sent[seq].quantized, settings)
        assert np.array_equal(msg.keypoints, want_kp)
    if anchor_every == 1:
        assert not spoiled


def test_sequence_numbers_and_capture_times_unwrap():
    """seq travels mod 2**16 and intra capture times mod 2**16 ms: both come back whole across the wrap."""
    settings = CodingSettings(anchor_every=1)
    sent, decoded, spoiled, _ = stream(settings, 40, lose=set(range(10, 25)), ack_delay=50, first_seq=65_520)
    assert not spoiled and sorted(decoded) == [f.seq for i, f in enumerate(sent) if not 10 <= i < 25]
    assert max(decoded) == 65_559
    for seq, msg in decoded.items():
        assert abs(msg.capture_ns - capture(seq)) < 1_000_000


def test_references_farther_than_the_window_fall_back_to_intra():
    enc = FrameEncoder(ID, CodingSettings(anchor_every=1), FPS, EPOCH)
    kp, st = trajectory(1)
    first = enc.encode(0, capture(0), kp[0], st[0])
    enc.sent(first)
    enc.acknowledge(0)
    assert enc.encode(MAX_DISTANCE, capture(MAX_DISTANCE), kp[0], st[0]).ref_seq == 0
    assert enc.encode(MAX_DISTANCE + 1, capture(MAX_DISTANCE + 1), kp[0], st[0]).ref_seq is None


def _decoder() -> FrameDecoder:
    return FrameDecoder(ID, CodingSettings(), FPS, EPOCH)


def _intra() -> bytes:
    kp, st = trajectory(1)
    return FrameEncoder(ID, CodingSettings(), FPS, EPOCH).encode(0, capture(0), kp[0], st[0]).data


@pytest.mark.parametrize("data", [
    b"", b"\x30", b"\x30\x00", b"\x30" + b"\x00" * 5000, b"\x30\x00\x00", _intra()[:6],
    b"\x30\x00\x00" + b"\xff" * 40,  # decodes to keypoints outside the grid
], ids=["empty", "1 byte", "2 bytes", "too long", "no payload", "truncated", "out of range"])
def test_malformed_is_refused_as_malformed(data):
    with pytest.raises(WireError) as info:
        _decoder().decode(data)
    assert not isinstance(info.value, WireRefused)


def test_text_is_malformed():
    with pytest.raises(WireError, match="binary"):
        _decoder().decode("hello")


def test_garbage_never_crashes_the_decoder():
    rng = np.random.default_rng(0)
    dec = _decoder()
    for _ in range(300):
        body = rng.integers(0, 256, int(rng.integers(0, 60)), np.uint8).tobytes()
        data = bytes([0x30 | int(rng.integers(0, 16))]) + body
        try:
            dec.decode(data)
        except (WireError, MissingReference):
            pass


@pytest.mark.parametrize("data, match", [
    (b"\x97\x01\xa3tps\xaa2fecbaa93f\x03" + b"\x00" * 260, "wire version 1 message"),  # msgpack, 7 fields
    (b"\x20\x00\x00\x00", "wire version 2"), (b"\x40\x00\x00\x00", "wire version 4"),
    (b"\x10", "wire version 1,"),
])
def test_other_wire_versions_are_refused(data, match):
    with pytest.raises(WireRefused, match=match):
        _decoder().decode(data)


def test_encode_checks_shapes():
    enc = FrameEncoder(ID, CodingSettings(), FPS, EPOCH)
    kp, st = trajectory(1)
    with pytest.raises(ValueError):
        enc.encode(0, EPOCH, kp[0][:49], st[0])
    with pytest.raises(ValueError):
        enc.encode(-1, EPOCH, kp[0], st[0])


def test_acks_round_trip_and_anything_else_is_malformed():
    assert decode_ack(encode_ack(7)) == 7 and len(encode_ack(2**32 - 1)) == 5
    for bad in (b"", "ack", encode_ack(7)[:4], encode_ack(7) + b"\x00", b"\x21" + encode_ack(7)[1:]):
        with pytest.raises(WireError):
            decode_ack(bad)


def test_call_file_round_trip_and_damage(tmp_path):
    frame = _intra()
    path = tmp_path / "call.kpc"
    with RecordWriter(path) as out:
        out.control(Hello.of(FrameEncoder(ID, CodingSettings(), FPS, EPOCH), 128, (1, 2, 3), "av1").encode())
        out.frame(frame)
    records = list(read_records(path))
    assert [k for k, _ in records] == [b"C", b"F"] and records[1][1] == frame
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(WireError, match="truncated"):
        list(read_records(path))
    path.write_bytes(b"Z\x00\x00\x00\x01x")
    with pytest.raises(WireError, match="bad record"):
        list(read_records(path))
