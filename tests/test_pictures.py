"""Reference pictures on the wire: the AV1 picture codec, the outbox / inbox exchange with its bound and
refusals, and the budget."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from shared_model.errors import PictureError
from shared_model.media.picture_codec import BEST_CRF, DEFAULT_CRF, decode_picture, encode_picture, encode_within
from shared_model.training.synthetic import talking_face
from shared_model.wire.budget import RESERVE_S, Budget
from shared_model.wire.control import CHUNK_BYTES, Picture, PictureChunk, decode_control
from shared_model.wire.pictures import PictureInbox, PictureOutbox


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return talking_face(frames=1, size=256, seed=5)[0]


def test_a_picture_round_trips_in_a_few_kilobytes(face):
    data = encode_picture(face)
    image = decode_picture(data, 256)
    assert 500 < len(data) < 6000 and image.shape == (256, 256, 3) and cv2.PSNR(face, image) > 27
    assert len(encode_picture(face, crf=55)) < len(data) < len(encode_picture(face, crf=25))


def test_a_first_picture_takes_the_best_quality_its_bytes_allow(face):
    by_crf = {crf: encode_picture(face, crf) for crf in range(BEST_CRF, DEFAULT_CRF + 1, 5)}
    sizes = [len(data) for data in by_crf.values()]
    assert sizes == sorted(sizes, reverse=True)  # the steps are real: each crf costs fewer bytes than the last
    assert encode_within(face, 10**6) == by_crf[BEST_CRF]
    for crf in range(BEST_CRF + 5, DEFAULT_CRF, 5):  # just too small for the crf before: this one
        assert encode_within(face, len(by_crf[crf - 5]) - 1) == by_crf[crf]
    assert encode_within(face, 10) == by_crf[DEFAULT_CRF]  # nothing fits: the refresh pictures' crf anyway
    assert encode_within(face, 10**6, worst_crf=30) == encode_picture(face, 30)  # never worse than asked


@pytest.mark.parametrize("make, match", [
    (lambda face: b"", "does not decode"), (lambda face: b"\x12\x00\x0a\x0b" * 50, "does not decode"),
    (lambda face: encode_picture(face)[:40], "does not decode|holds 0 frames"),
    (lambda face: encode_picture(cv2.resize(face, (128, 128))), "128x128, not 256x256"),
    (lambda face: encode_picture(cv2.resize(face, (512, 512))), "does not decode"),  # refused before decoding
], ids=["empty", "garbage", "truncated", "too small", "too large"])
def test_bad_pictures_are_refused(face, make, match):
    with pytest.raises(PictureError, match=match):
        decode_picture(make(face), 256)


def pump(outbox: PictureOutbox, inbox: PictureInbox) -> list[Picture]:
    """Every message the outbox has, through the inbox; the pictures completed (held and acknowledged)."""
    done = []
    while (message := outbox.pending()) is not None:
        outbox.sent(message)
        msg = decode_control(message)
        if isinstance(msg, Picture):
            inbox.announce(msg)
        elif (complete := inbox.chunk(msg)) is not None:
            outbox.acknowledged(inbox.hold(complete[0]))
            done.append(complete[0])
    return done


def test_pictures_are_named_only_once_acknowledged_and_chunked_in_order():
    outbox, inbox = PictureOutbox(), PictureInbox()
    data = bytes(range(256)) * 10  # 2560 bytes: 3 chunks
    first = outbox.add(data)
    assert outbox.usable() == frozenset() and outbox.busy
    announcement = outbox.pending()
    assert decode_control(announcement) == Picture(first, len(data), None)
    outbox.sent(announcement)
    inbox.announce(decode_control(announcement))
    chunks = []
    while (message := outbox.pending()) is not None:
        outbox.sent(message)
        chunks.append(decode_control(message))
    assert [c.index for c in chunks] == [0, 1, 2] and [len(c.data) for c in chunks] == [CHUNK_BYTES] * 2 + [560]
    assert inbox.chunk(chunks[0]) is None and inbox.chunk(chunks[1]) is None
    announced, whole = inbox.chunk(chunks[2])
    assert whole == data and outbox.usable() == frozenset()  # complete, but not yet acknowledged
    outbox.acknowledged(inbox.hold(announced))
    assert outbox.usable() == {first} and not outbox.busy


def test_a_full_set_replaces_the_picture_named_least_recently():
    outbox, inbox = PictureOutbox(max_pictures=3), PictureInbox(max_pictures=3)
    ids = [outbox.add(bytes([i]) * 10) for i in range(3)]
    pump(outbox, inbox)
    for seq, picture in enumerate([ids[0], ids[2], ids[1], ids[0]]):
        outbox.named(picture, seq)
    new = outbox.add(b"new" * 10)
    announcement = outbox.pending()
    assert decode_control(announcement).replaces == ids[2]
    outbox.sent(announcement)
    inbox.announce(decode_control(announcement))
    assert outbox.usable() == {ids[0], ids[1]}  # frames stop naming the one being replaced at once
    pump(outbox, inbox)
    assert inbox.held == outbox.held == {ids[0], ids[1], new} and new not in ids


def test_ids_skip_pictures_still_held_when_they_wrap():
    outbox, inbox = PictureOutbox(max_pictures=2), PictureInbox(max_pictures=2)
    outbox._next_id = 254
    first = [outbox.add(b"a"), outbox.add(b"b")]
    pump(outbox, inbox)
    outbox.named(first[1], 1)
    later = [outbox.add(b"c") for _ in range(3)]
    pump(outbox, inbox)
    assert first == [254, 255] and later[0] == 1 and len(inbox.held) == 2 and first[1] in inbox.held


@pytest.mark.parametrize("steps, match", [
    ([Picture(1, 10, None), Picture(2, 10, None)], "while another is in transfer"),
    ([Picture(1, 10, 5)], "replaces picture 5, which is not held"),
    ([PictureChunk(3, 0, b"x")], "not in transfer"),
    ([Picture(1, 2500, None), PictureChunk(1, 1, b"x" * CHUNK_BYTES)], "chunk 1 of 1000 bytes, expected chunk 0"),
    ([Picture(1, 2500, None), PictureChunk(1, 0, b"x" * 999)], "expected chunk 0 of 1000"),
    ([Picture(1, 10, None), PictureChunk(1, 0, b"x" * 11)], "expected chunk 0 of 10"),
    (["held 1, 2", Picture(3, 10, None)], "too many pictures: this receiver holds at most 2"),
    (["held 1, 2", Picture(2, 10, 1)], "picture 2 is already held"),
    (["held 1, 2", Picture(1, 10, 1)], "picture 1 is already held"),
], ids=["two at once", "unknown replaces", "unknown chunk", "out of order", "short chunk", "long chunk",
        "too many", "id in use", "replaces itself"])
def test_the_inbox_refuses_what_breaks_the_exchange(steps, match):
    inbox = PictureInbox(max_pictures=2)
    with pytest.raises(PictureError, match=match):
        for step in steps:
            if step == "held 1, 2":
                for picture in (Picture(1, 1, None), Picture(2, 1, None)):
                    inbox.announce(picture)
                    inbox.hold(inbox.chunk(PictureChunk(picture.id, 0, b"x"))[0])
            elif isinstance(step, Picture):
                inbox.announce(step)
            else:
                inbox.chunk(step)


def test_late_chunks_of_a_refused_picture_are_dropped_quietly_and_the_next_one_goes_through():
    inbox = PictureInbox()
    inbox.announce(Picture(1, 2500, None))
    with pytest.raises(PictureError):
        inbox.chunk(PictureChunk(1, 1, b"x" * CHUNK_BYTES))
    assert inbox.chunk(PictureChunk(1, 2, b"x" * 500)) is None
    inbox.announce(Picture(2, 5, None))
    assert inbox.chunk(PictureChunk(2, 0, b"12345"))[1] == b"12345"


def test_a_refused_picture_is_never_named_and_frees_the_outbox():
    outbox = PictureOutbox()
    picture = outbox.add(b"x" * 50)
    outbox.sent(outbox.pending())
    outbox.refused_picture(picture)
    assert outbox.pending() is None and not outbox.busy and outbox.usable() == frozenset()


def test_the_budget_holds_at_every_moment_of_a_call():
    """25 keypoint messages a second and a stream of picture chunks: by any time t at most rate * t bytes plus
    one keypoint message have gone, chunks wait for the reserve, and the spare budget goes to pictures."""
    kbps, fps, frame_bytes = 16.0, 25.0, 30
    budget = Budget(kbps, 0.0)
    sent, chunks, frames_dropped = 0, 0, 0
    for i in range(25 * 20):
        now = i / fps
        if budget.allows_frame(now):
            budget.spend(frame_bytes)
            sent += frame_bytes
        else:
            frames_dropped += 1
        size = CHUNK_BYTES + 31
        if budget.allows_chunk(size, now):
            assert budget.tokens - size >= RESERVE_S * budget.rate
            budget.spend(size)
            sent += size
            chunks += 1
        assert sent <= budget.rate * now + frame_bytes
    assert frames_dropped == 1  # only the very first, before any budget has come in
    assert sent >= 0.9 * budget.rate * 20 and chunks >= 20


@pytest.mark.skipif(not hasattr(os, "sched_getscheduler"), reason="Linux scheduling calls")
def test_encoding_leaves_the_callers_scheduling_alone():
    """SVT-AV1 run as root switches its caller to real-time FIFO 99 (inherited by every process started after:
    a test run's Chromium then starved the machine); encode_picture puts it back."""
    before = os.sched_getscheduler(0), os.sched_getparam(0)
    encode_picture(np.zeros((64, 64, 3), np.uint8))
    assert (os.sched_getscheduler(0), os.sched_getparam(0)) == before
