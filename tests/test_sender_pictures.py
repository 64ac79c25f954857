"""The sender's picture logic without a network: the good-frame rule, the refresh rule, naming pictures."""
from __future__ import annotations

import numpy as np
import pytest

from sender.good_frames import Candidate, StartPictures, checks_passed, choose
from sender.pictures import SenderPictures
from sender.refresh import RefreshPolicy, RefreshRule, estimated_loss_db
from shared_model.media.crop import crop_image
from shared_model.media.picture_codec import BEST_CRF, DEFAULT_CRF, encode_picture
from shared_model.training.synthetic import talking_face
from shared_model.wire.control import PictureAck
from shared_model.wire.pictures import PictureOutbox


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    """A face crop, as the sender offers them."""
    return crop_image(talking_face(frames=1, size=256, seed=3)[0], 256)


def test_the_good_frame_checks(face):
    assert checks_passed(face) == 2  # frontal, both eyes open
    assert checks_passed(np.full_like(face, 128)) == 0  # no face
    shifted = np.roll(face, 60, axis=1)
    assert checks_passed(shifted) == 1  # the face is found off-centre: not frontal in this crop


def _candidate(kp_shift: float, passed: int, sharp: float) -> Candidate:
    kp = np.zeros((4, 2), np.float32) + kp_shift
    return Candidate(np.zeros((8, 8, 3), np.uint8), kp, np.ones(4, np.float32), passed, sharp)


def test_choose_prefers_checks_then_sharpness_then_variety():
    cands = [_candidate(0.0, 1, 100), _candidate(0.0, 2, 50), _candidate(0.1, 2, 60), _candidate(0.5, 2, 55),
             _candidate(0.9, 2, 10)]
    # Passing both checks, the sharper half of those (60, 55); the sharpest first.
    assert [c.sharpness for c in choose(cands, 2)] == [60, 55]
    # Three wanted: the third sharpest joins, and goes last as the nearest in keypoints to the first.
    assert [c.sharpness for c in choose(cands, 3)] == [60, 55, 50]
    # More wanted than pass both checks: topped up from the next best.
    assert sorted(c.sharpness for c in choose(cands, 5)) == [10, 50, 55, 60, 100]
    assert [c.sharpness for c in choose(cands[:2], 2)] == [50, 100]


def test_start_pictures_wait_for_the_window_then_hand_out_once(face):
    start = StartPictures(count=2, window_s=1.0)
    kp, st = np.zeros((4, 2), np.float32), np.ones(4, np.float32)
    assert start.offer(face, kp, st, 10.0) == [] and start.offer(face, kp + 0.2, st, 10.5) == []
    chosen = start.offer(face, kp + 0.4, st, 11.0)
    assert len(chosen) == 2 and start.done and start.offer(face, kp, st, 12.0) == []
    assert StartPictures(count=0).done


def test_the_refresh_rule_waits_for_a_lasting_drift():
    assert estimated_loss_db(0) < estimated_loss_db(2) < estimated_loss_db(8)
    policy = RefreshPolicy(RefreshRule(loss_db=9.0, hold_s=0.5))
    far, near = 20.0, 1.0
    assert estimated_loss_db(far) >= 9.0 > estimated_loss_db(near)
    assert [policy.due(d, t) for d, t in [(far, 0.0), (far, 0.3), (near, 0.4), (far, 0.5), (far, 0.9), (far, 1.0)]] \
        == [False, False, False, False, False, True]  # the glance at 0-0.3 s does not count
    policy.restart()
    assert not policy.due(far, 1.1)


class FakeExtractor:
    """Keypoints from the picture's mean brightness, so that pictures and frames have known distances."""

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.full((4, 2), image.mean() / 255 - 0.5, np.float32), np.ones(4, np.float32)


def grey(level: int) -> np.ndarray:
    return np.full((64, 64, 3), level, np.uint8)


def test_frames_name_only_acknowledged_pictures_and_a_drift_queues_a_refresh():
    outbox = PictureOutbox()
    pictures = SenderPictures(FakeExtractor(), 64, outbox, None, RefreshPolicy(RefreshRule(9.0, 0.2)))
    first = pictures.send(grey(100))
    kp, st = FakeExtractor()(grey(100))
    assert pictures.choose(0, grey(100), kp, st, 0.0) is None  # nothing acknowledged: the frame waits
    pictures.own_pictures = True
    assert pictures.choose(1, grey(100), kp, st, 0.1) == 0  # the receiver's own pictures meanwhile
    while (message := outbox.pending()) is not None:
        outbox.sent(message)
    outbox.acknowledged(PictureAck(first, (first,)))
    assert pictures.choose(2, grey(100), kp, st, 0.2) == first and pictures.counts.refreshes == 0
    far_kp, _ = FakeExtractor()(grey(200))  # about 50 px away at 64 px
    assert [pictures.choose(3 + i, grey(200), far_kp, st, 0.3 + 0.1 * i) for i in range(4)] == [first] * 4
    assert pictures.counts.refreshes == 1 and outbox.busy and outbox.usable() == {first}
    assert pictures.counts.pictures == 2


def test_first_pictures_are_coded_within_their_bytes_and_refreshes_at_the_crf(face):
    outbox = PictureOutbox()
    pictures = SenderPictures(FakeExtractor(), 256, outbox, None, None, crf=DEFAULT_CRF, start_bytes=2 * 10**4)
    pictures.send(face, first=True)
    first_bytes = pictures.counts.picture_bytes
    pictures.send(face)
    assert first_bytes == len(encode_picture(face, BEST_CRF))
    assert pictures.counts.picture_bytes - first_bytes == len(encode_picture(face, DEFAULT_CRF)) < first_bytes
    unlimited = SenderPictures(FakeExtractor(), 256, PictureOutbox(), None, None, crf=DEFAULT_CRF)
    unlimited.send(face, first=True)  # start_bytes 0: every picture at the crf
    assert unlimited.counts.picture_bytes == len(encode_picture(face, DEFAULT_CRF))
