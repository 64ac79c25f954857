"""shared_model.enrol: reference pictures and a personal generator from one video, end to end."""
from __future__ import annotations

import json

import numpy as np

from shared_model.enrol import GENERATOR_FILE, main
from shared_model.media.references import load_reference_images
from shared_model.media.video import write_video
from shared_model.nets.model import load_model


def test_enrol_writes_references_and_a_generator_that_keeps_the_detector(tmp_path, face_video):
    out = tmp_path / "me"
    assert main(["--video", face_video, "--out", str(out), "--steps", "2", "--batch", "2", "--count", "2"]) == 0
    shipped, personal = load_model("tps"), load_model(out / GENERATOR_FILE)
    assert personal.detector_version == shipped.detector_version
    assert personal.version != shipped.version  # the generator was trained
    refs = load_reference_images(out, shipped.cfg.resolution)
    assert len(refs) == 2
    result = json.loads((out / "enrol.json").read_text())
    assert result["steps"] == 2 and result["detector_version"] == shipped.detector_version


def test_enrol_refuses_a_video_without_a_face(tmp_path, caplog):
    clip = tmp_path / "wall.mp4"
    write_video(clip, np.full((10, 64, 64, 3), 128, np.uint8), 25.0)
    assert main(["--video", str(clip), "--out", str(tmp_path / "me"), "--steps", "1"]) == 2
    assert "no face found" in caplog.text
    assert not (tmp_path / "me" / GENERATOR_FILE).exists()
