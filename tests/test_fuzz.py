"""A few thousand fuzzed inputs through the peers' handlers (``python -m experiments fuzz`` runs 10^6)."""
from __future__ import annotations

import json
import random

import cv2
import pytest

from experiments import __main__ as experiments_cli
from experiments.fuzz import FrameTarget, fuzz, run_target
from shared_model.runtime.backend import Backend
from shared_model.wire.messages import ModelIdentity


@pytest.fixture(scope="module")
def tiny_receiver(tiny_weights, face_frames):
    """A renderer, identity and resolution of the small untrained model (only the handlers are exercised)."""
    backend = Backend(str(tiny_weights), "torch", "cpu")
    res = backend.model.cfg.resolution
    return backend.renderer([cv2.resize(face_frames[0], (res, res))]), ModelIdentity.of(backend.model), res


def test_frames_acks_and_signaling_messages_never_escape(tiny_receiver):
    report = fuzz(4000, *tiny_receiver, seed=1, targets=("frame", "ack", "signaling"))
    assert report["totals"]["inputs"] == 4000
    assert (report["totals"]["escaped"], report["totals"]["hangs"], report["totals"]["invalid"]) == (0, 0, 0), report
    frames = report["targets"]["frame"]
    assert frames["accepted"] > 50  # the genuine stream gets through the forgeries


def test_mutated_descriptions_never_escape(tiny_receiver):
    report = fuzz(30, *tiny_receiver, seed=2, targets=("sdp",))
    assert report["totals"]["inputs"] == 30 and report["totals"]["escaped"] == 0, report


def test_control_messages_never_escape(tiny_receiver):
    report = fuzz(3000, *tiny_receiver, seed=3, targets=("control",))
    assert report["totals"]["inputs"] == 3000, report["totals"]
    assert (report["totals"]["escaped"], report["totals"]["hangs"], report["totals"]["invalid"]) == (0, 0, 0), \
        report["targets"]["control"]["examples"]
    assert report["targets"]["control"]["accepted"] > 0  # hellos and frames after them got through


def test_the_fuzzer_catches_a_frame_handler_that_lets_errors_escape(tiny_receiver, monkeypatch):
    """The harness counts what escapes: a receiver that raised on every message would not pass."""
    target = FrameTarget(*tiny_receiver)

    def broken(data):
        raise KeyError("escaped")

    rng = random.Random(0)
    target.reset(rng)
    monkeypatch.setattr(target.session, "check_frame", broken)
    monkeypatch.setattr(target, "reset", lambda rng: None)  # keep the broken session
    report = run_target(target, 20, rng, hang_s=10)
    assert report.escaped == 20 and report.examples[0]["what"] == "KeyError: 'escaped'"


def test_fuzz_command_writes_its_report(tmp_path, tiny_weights):
    out = tmp_path / "fuzz.json"
    assert experiments_cli.main(["fuzz", "--count", "300", "--targets", "frame,ack", "--model", str(tiny_weights),
                                 "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["totals"]["inputs"] == 300 and set(report["targets"]) == {"frame", "ack"}
