"""receiver.prepare_refs: diverse face-cropped PNGs that the receiver loads as references."""
from __future__ import annotations

import numpy as np

from receiver.prepare_refs import main
from shared_model.media.reference_frames import pick_diverse
from shared_model.media.references import load_reference_images
from shared_model.media.video import write_video
from shared_model.training.synthetic import talking_face


def test_writes_loadable_distinct_references(tmp_path):
    clip = tmp_path / "me.mp4"
    write_video(clip, talking_face(frames=50, size=256, seed=5), 25.0)
    assert main(["--video", str(clip), "--out", str(tmp_path / "me"), "--count", "3", "--size", "192"]) == 0
    refs = load_reference_images(tmp_path / "me", 128)
    assert [name for name, _ in refs] == ["ref_00.png", "ref_01.png", "ref_02.png"]
    images = [img.astype(float) for _, img in refs]
    assert min(np.abs(a - b).mean() for i, a in enumerate(images) for b in images[i + 1:]) > 1.0


def test_pick_diverse_takes_the_odd_one():
    base = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (64, 1))
    same = [np.stack([base] * 3, -1)] * 5
    odd = np.stack([base.T] * 3, -1)
    assert max(pick_diverse([*same, odd], 2)) == 5


def test_video_without_face_fails_clearly(tmp_path, caplog):
    clip = tmp_path / "wall.mp4"
    write_video(clip, np.full((10, 64, 64, 3), 128, np.uint8), 25.0)
    assert main(["--video", str(clip), "--out", str(tmp_path / "me")]) == 2
    assert "no face found" in caplog.text
