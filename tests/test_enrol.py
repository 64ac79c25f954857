"""shared_model.enrol: reference pictures and a personal generator from one video, end to end; the receiver
renders with the personal generator while the sender keeps the shipped model."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from receiver import __main__ as receiver_cli
from sender import __main__ as sender_cli
from shared_model.enrol import main
from shared_model.media.references import GENERATOR_FILE, load_reference_images
from shared_model.media.video import write_video
from shared_model.nets.model import load_model


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory, face_video) -> Path:
    """An enrolment folder made from the generated face clip (2 fine-tuning steps)."""
    out = tmp_path_factory.mktemp("enrol") / "me"
    assert main(["--video", face_video, "--out", str(out), "--steps", "2", "--batch", "2", "--count", "2"]) == 0
    return out


def test_enrol_writes_references_and_a_generator_that_keeps_the_detector(enrolled):
    shipped, personal = load_model("tps"), load_model(enrolled / GENERATOR_FILE)
    assert personal.detector_version == shipped.detector_version
    assert personal.version != shipped.version  # the generator was trained
    refs = load_reference_images(enrolled, shipped.cfg.resolution)
    assert len(refs) == 2
    result = json.loads((enrolled / "enrol.json").read_text())
    assert result["steps"] == 2 and result["detector_version"] == shipped.detector_version


async def test_the_receiver_renders_with_the_personal_generator(tmp_path, enrolled, face_video, caplog):
    """A call written by a sender on the shipped ``tps``: a receiver given the enrolment folder renders it with
    ``generator.pt`` (the detectors match); one forced onto a model with another detector refuses it and says
    why."""
    caplog.set_level(logging.INFO)
    call_file, stats_path = tmp_path / "call.kpc", tmp_path / "stats.json"
    assert sender_cli.main(["--source", face_video, "--output", str(call_file),
                            "--threads", "1"]) == 0
    args = receiver_cli.parse_args(["--input", str(call_file), "--refs", str(enrolled), "--threads", "1",
                                    "--stats-out", str(stats_path)])
    assert args.model == str(enrolled / GENERATOR_FILE)
    assert await receiver_cli.run(args) == 0
    stats = json.loads(stats_path.read_text())
    assert stats["frames_rendered"] == stats["frames_received"] > 0 and stats["end_reason"] == "bye"
    assert "model tps-personal" in caplog.text

    refused = receiver_cli.parse_args(["--input", str(call_file), "--refs", str(enrolled), "--model", "tps128",
                                       "--threads", "1", "--stats-out", str(stats_path)])
    assert await receiver_cli.run(refused) == 1
    assert "keypoint detector" in json.loads(stats_path.read_text())["end_reason"]


def test_enrol_refuses_a_video_without_a_face(tmp_path, caplog):
    clip = tmp_path / "wall.mp4"
    write_video(clip, np.full((10, 64, 64, 3), 128, np.uint8), 25.0)
    assert main(["--video", str(clip), "--out", str(tmp_path / "me"), "--steps", "1"]) == 2
    assert "no face found" in caplog.text
    assert not (tmp_path / "me" / GENERATOR_FILE).exists()
