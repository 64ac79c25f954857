"""Sender pieces without a network: pacing and subsampling of a file, frames without a face, call files."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from sender import __main__ as sender_cli
from sender.capture import FileSource, Subsampler
from shared_model.media.video import write_video
from shared_model.training.synthetic import talking_face
from shared_model.wire.control import Bye, Hello, Stats, decode_control
from shared_model.wire.records import CONTROL, FRAME, read_records


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """12 frames at 25 fps: 4 of a grey wall, then 8 of a face."""
    frames = np.concatenate([np.full((4, 256, 256, 3), 120, np.uint8), talking_face(frames=8, size=256, seed=1)])
    path = tmp_path_factory.mktemp("clip") / "wall_then_face.mp4"
    write_video(path, frames, 25.0)
    return path


def test_subsampler_keeps_a_regular_grid():
    t = np.arange(50) / 25.0
    kept = [x for x in t if Subsampler(None).keep(x)]
    assert len(kept) == 50
    sub = Subsampler(10.0)
    kept = [round(x, 2) for x in t if sub.keep(x)]
    assert kept[:5] == [0.0, 0.12, 0.2, 0.32, 0.4] and len(kept) == 20


def test_file_plays_at_its_own_pace(clip):
    start = time.monotonic()
    frames = list(FileSource(clip).frames(threading.Event()))
    assert time.monotonic() - start >= 11 / 25.0 - 0.02  # 12 frames at 25 fps, like a camera
    assert [f.seq for f in frames] == list(range(12))
    gaps = np.diff([f.capture_ns for f in frames]) / 1e9
    assert np.all(gaps > 0.02)
    fast = list(FileSource(clip, fps=10, realtime=False).frames(threading.Event()))
    assert len(fast) == 5 and np.allclose(np.diff([f.capture_ns for f in fast]) / 1e9, [0.12, 0.08, 0.12, 0.08],
                                          atol=1e-3)


def test_frames_without_a_face_are_skipped_and_counted(clip, tmp_path, tiny):
    """The wall's frames are skipped; the face's frames wait for the first picture, which is chosen from the
    first second with a face: this clip ends before that (a third of a second), so none is sent."""
    out = tmp_path / "call.kpc"
    assert sender_cli.main(["--source", str(clip), "--output", str(out), "--model", str(tiny["tiny"]),
                            "--threads", "1"]) == 0
    records = list(read_records(out))
    controls = [decode_control(p) for k, p in records if k == CONTROL]
    assert [type(c) for c in controls] == [Hello, Stats, Bye]
    stats, bye = controls[1].counts, controls[2]
    assert (stats["captured"], stats["without_face"], stats["waiting_for_picture"]) == (12, 4, 8)
    assert stats["sent"] == stats["pictures"] == 0
    assert bye.last_seq == 11 and sum(k == FRAME for k, _ in records) == 0


def test_a_sender_without_pictures_writes_frames_for_a_receiver_with_its_own(clip, tmp_path, tiny):
    out = tmp_path / "call.kpc"
    assert sender_cli.main(["--source", str(clip), "--output", str(out), "--model", str(tiny["tiny"]),
                            "--threads", "1", "--ref-count", "0"]) == 0
    records = list(read_records(out))
    stats = [decode_control(p) for k, p in records if k == CONTROL][1].counts
    assert (stats["without_face"], stats["waiting_for_picture"], stats["sent"], stats["pictures"]) == (4, 0, 8, 0)
    assert sum(k == FRAME for k, _ in records) == 8


def test_the_first_pictures_spend_a_second_of_the_budget_on_quality(clip, face_refs, tmp_path, tiny):
    """Given pictures are coded at the best crf whose bytes fit --first-picture-s of --max-kbps."""
    def picture_bytes(*extra: str) -> int:
        out = tmp_path / "call.kpc"
        assert sender_cli.main(["--source", str(clip), "--output", str(out), "--model", str(tiny["tiny"]),
                                "--threads", "1", "--refs", str(face_refs), *extra]) == 0
        stats = next(m for k, p in read_records(out) if k == CONTROL and isinstance(m := decode_control(p), Stats))
        assert stats.counts["pictures"] == 1
        return stats.counts["picture_bytes"]

    at_the_crf = picture_bytes("--first-picture-s", "0")
    assert picture_bytes() > at_the_crf  # 2 KB allowed at the default 16 kbps: a better picture
    assert at_the_crf < picture_bytes("--max-kbps", "4") <= 500  # half a kilobyte allowed
