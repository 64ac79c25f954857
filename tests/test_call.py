"""Real calls: signaling server, aiortc peers, sender streaming a generated clip, receiver recording it.

One test runs the three tools as processes with the shipped model ``tps``; the others run the sender and
receiver in-process through their async entry points with a small untrained model (fast, and independent of
the weights being refreshed).
"""
from __future__ import annotations

import asyncio
import json
import signal
import time

import cv2
import numpy as np
import pytest
from calls import FRAMES, hand_driven_sender, in_process_call, intra_encoder, start_receiver, tool

from receiver import __main__ as receiver_cli
from receiver.demo import free_port, recording_vs_sent, wait_healthy
from receiver.display import Display, DisplayUnavailable
from sender import __main__ as sender_cli
from shared_model.media.references import load_reference_images
from shared_model.media.video import read_frames
from shared_model.nets.model import available_models, load_model
from shared_model.wire.control import Bye
from shared_model.wire.keycoding import CodingSettings

#: The start of a wire v1 frame message: a msgpack array of seven fields, version 1, model "tiny".
V1_MESSAGE = b"\x97\x01\xa4tiny\xaa2fecbaa93f\x03"


def test_three_processes_end_to_end(tmp_path, clip, refs):
    """Only the sender has pictures of the speaker: it picks them from its first second and sends them; the
    receiver (no --refs) starts rendering once the first has arrived."""
    if "tps" not in available_models():
        pytest.skip("the shipped model tps (shared_model/weights/tps.pt) is not present")
    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    record, stats_path = tmp_path / "call.mp4", tmp_path / "stats.json"
    signaling = tool("signaling", "--port", str(port))
    try:
        wait_healthy(port, signaling)
        receiver = tool("receiver", "--signaling", url, "--room", "e2e", "--threads", "1",
                        "--record", str(record), "--stats-out", str(stats_path))
        sender = tool("sender", "--source", str(clip[0]), "--signaling", url, "--room", "e2e", "--threads", "1",
                      "--crops-out", str(tmp_path / "crops.json"))
        sender_log, _ = sender.communicate(timeout=90)
        receiver_log, _ = receiver.communicate(timeout=60)
    finally:
        signaling.send_signal(signal.SIGTERM)
        signaling_log, _ = signaling.communicate(timeout=15)
    assert sender.returncode == 0, sender_log
    assert receiver.returncode == 0, receiver_log
    assert signaling.returncode == 0 and "stopped" in signaling_log, signaling_log

    stats = json.loads(stats_path.read_text())
    counts = stats["sender"]
    assert stats["end_reason"] == "bye"
    assert counts["without_face"] == 0 and stats["frames_expected"] == FRAMES
    # Two pictures chosen; the first is held, the second may still be on its way when the 4 s clip ends.
    # (A refresh may follow when the receiver acknowledges them in time: the clip turns enough for one.)
    assert counts["pictures"] - counts["refreshes"] == 2
    assert stats["pictures"]["held"] >= 1 and stats["pictures"]["refused"] == 0
    # The first second's frames wait while the pictures are chosen and sent; the rest are all sent.
    assert counts["waiting_for_picture"] <= 20 and stats["frames_received"] >= 0.9 * counts["sent"] > 0, stats
    assert stats["frames_rendered"] > 0 and stats["frames_without_picture"] == stats["frames_rendered_from_own"] == 0
    assert stats["malformed"] == stats["refused"] == 0
    assert stats["latency_ms"]["median"] > 0 and stats["render_fps"] > 0
    assert stats["wire_kbps"]["received"] > stats["payload_kbps"] > 0 and stats["wire_kbps"]["sent"] > 0

    recorded = read_frames(record)
    first = stats["recording"]["first_seq"]
    assert len(recorded) == stats["recording"]["frames"] == FRAMES - first and first > 0
    model = load_model("tps")
    crops = json.loads((tmp_path / "crops.json").read_text())  # every frame the sender cropped, by seq
    assert len(crops) == FRAMES - counts["dropped_busy"] and all(len(box) == 3 for box in crops.values())
    truth, _ = recording_vs_sent(clip[0], None, model.cfg.resolution, tmp_path, stats)  # what the sender cropped
    frozen = load_reference_images(refs, model.cfg.resolution)[0][1]
    psnr_call = np.mean([cv2.PSNR(t, r) for t, r in zip(truth, recorded)])
    psnr_frozen = np.mean([cv2.PSNR(t, frozen) for t in truth])
    assert psnr_call > psnr_frozen, (psnr_call, psnr_frozen, stats)


async def test_call_survives_20_percent_loss(tmp_path, signaling_url, clip, refs, tiny):
    record, stats_path = tmp_path / "call.mp4", tmp_path / "stats.json"
    # A lost bye is re-sent by SCTP (after about 1, 2, 4 s); the sender's wait for the answering bye covers
    # four tries, so a clean close does not hinge on the impairment seed (four drops in a row: 1 in 625).
    recv_rc, send_rc = await in_process_call(
        ["--refs", str(refs), "--model", str(tiny["tiny"]), "--signaling", signaling_url, "--room", "lossy",
         "--record", str(record), "--stats-out", str(stats_path)],
        ["--source", str(clip[0]), "--model", str(tiny["tiny"]), "--signaling", signaling_url, "--room", "lossy",
         "--impair-loss", "0.2", "--impair-seed", "1"])
    assert (recv_rc, send_rc) == (0, 0)
    stats = json.loads(stats_path.read_text())
    assert stats["end_reason"] == "bye" and stats["frames_expected"] == FRAMES
    # The receiver has a picture of its own, so frames flow at once (naming it) while the sender's pictures
    # travel, then name those: both sets are used.
    assert stats["sender"]["waiting_for_picture"] == 0 and stats["frames_without_picture"] == 0
    assert 0 < stats["frames_rendered_from_own"] < stats["frames_rendered"] and stats["pictures"]["held"] >= 1
    assert 0 < stats["frames_lost"] < 0.5 * FRAMES
    assert stats["frames_received"] + stats["frames_lost"] == FRAMES
    # Wire v2, anchor frames every 4: a lost message spoils at most 3 later frames.
    assert stats["frames_spoiled"] <= (CodingSettings().anchor_every - 1) * stats["frames_lost"]
    assert stats["frames_rendered"] > 0
    # Lost slots repeat the held frame: the recording still has one frame per slot.
    assert len(read_frames(record)) == stats["recording"]["frames"] == FRAMES - stats["recording"]["first_seq"]


async def test_wrong_model_is_refused_on_both_ends(tmp_path, signaling_url, clip, refs, tiny, caplog):
    stats_path = tmp_path / "stats.json"
    recv_rc, send_rc = await in_process_call(
        ["--refs", str(refs), "--model", str(tiny["tiny"]), "--signaling", signaling_url, "--room", "wrong",
         "--stats-out", str(stats_path)],
        ["--source", str(clip[0]), "--model", str(tiny["other"]), "--signaling", signaling_url, "--room", "wrong"])
    assert (recv_rc, send_rc) == (1, 1)
    stats = json.loads(stats_path.read_text())
    assert stats["refused"] == 1 and stats["frames_received"] == 0
    assert stats["end_reason"].startswith("refused: sender runs model 'other'")
    assert "the receiver refused the call: sender runs model 'other'" in caplog.text


async def test_malformed_and_foreign_messages_are_dropped_and_counted(tmp_path, signaling_url, refs, tiny):
    stats_path, record = tmp_path / "stats.json", tmp_path / "call.mp4"
    receiving = start_receiver("--refs", str(refs), "--model", str(tiny["tiny"]), "--signaling", signaling_url,
                               "--room", "bad", "--stats-out", str(stats_path), "--record", str(record))
    model = load_model(tiny["tiny"])
    encoder = intra_encoder(model)
    kp, st = np.zeros((model.cfg.num_keypoints, 2)), np.ones(model.cfg.num_keypoints)

    def good(seq: int) -> bytes:
        return encoder.encode(seq, time.time_ns(), kp, st).data

    messages = [b"\x30\x00", "text on the keypoint channel", V1_MESSAGE,
                b"\x40\x00\x00 a future wire version", good(5), good(3), good(6)]
    async with hand_driven_sender(signaling_url, "bad", encoder, model.cfg.resolution) as (call, _):
        for message in messages:
            call.keypoints.send(message)
            await asyncio.sleep(0.1)
        call.control.send(Bye("test over", 6).encode())
        await asyncio.wait_for(call.inbox.next(Bye), 10)
    assert await asyncio.wait_for(receiving, 30) == 0
    stats = json.loads(stats_path.read_text())
    assert (stats["malformed"], stats["refused"]) == (2, 2)
    assert (stats["frames_received"], stats["frames_stale"]) == (3, 1)
    assert 1 <= stats["frames_rendered"] <= 2
    assert stats["recording"] == {"path": str(record), "frames": 2, "first_seq": 5}


async def test_silent_sender_ends_the_call_after_the_idle_timeout(tmp_path, signaling_url, refs, tiny):
    stats_path, record = tmp_path / "stats.json", tmp_path / "call.mp4"
    receiving = start_receiver("--refs", str(refs), "--model", str(tiny["tiny"]), "--signaling", signaling_url,
                               "--room", "quiet", "--stats-out", str(stats_path), "--record", str(record),
                               "--idle-timeout", "1.5")
    model = load_model(tiny["tiny"])
    encoder = intra_encoder(model)
    p = model.cfg.num_keypoints
    async with hand_driven_sender(signaling_url, "quiet", encoder, model.cfg.resolution) as (call, _):
        for seq in range(3):
            call.keypoints.send(encoder.encode(seq, time.time_ns(), np.zeros((p, 2)), np.ones(p)).data)
        assert await asyncio.wait_for(receiving, 30) == 1  # while this peer stays connected, silent
    stats = json.loads(stats_path.read_text())
    assert stats["end_reason"] == "idle timeout"
    assert stats["frames_received"] == 3 and len(read_frames(record)) == stats["recording"]["frames"] >= 1


def test_display_without_gui_is_a_clear_error(refs, tiny, caplog):
    try:
        Display().close()
        pytest.skip("this OpenCV build has GUI support")
    except DisplayUnavailable:
        pass
    args = receiver_cli.parse_args(["--refs", str(refs), "--model", str(tiny["tiny"]), "--input", "x", "--display"])
    assert asyncio.run(receiver_cli.run(args)) == 2
    assert "opencv-python-headless has none" in caplog.text


async def test_call_file_round_trip(tmp_path, clip, tiny):
    """sender --output writes the call's messages, pictures included; receiver --input (no pictures of its own)
    renders every frame from them."""
    call_file, record, stats_path = tmp_path / "call.kpc", tmp_path / "call.mp4", tmp_path / "stats.json"
    model = str(tiny["tiny"])
    assert sender_cli.main(["--source", str(clip[0]), "--output", str(call_file), "--model", model,
                            "--threads", "1"]) == 0
    assert await receiver_cli.run(receiver_cli.parse_args(
        ["--model", model, "--input", str(call_file), "--record", str(record), "--threads", "1",
         "--stats-out", str(stats_path)])) == 0
    stats = json.loads(stats_path.read_text())
    sender = stats["sender"]
    # The first second (10 frames at 10 fps) is where the two pictures are chosen from; its frames wait.
    assert sender["pictures"] == stats["pictures"]["held"] >= 2 and sender["waiting_for_picture"] == 11
    assert stats["frames_received"] == stats["frames_rendered"] == sender["sent"] == FRAMES - 11
    assert stats["frames_spoiled"] == stats["malformed"] == stats["frames_without_picture"] == 0
    # Every frame of a file counts as acknowledged: one intra frame, then frames predicted from the one before.
    assert sender["intra"] == 1
    assert stats["bytes_per_message"] * sender["sent"] == sender["payload_bytes"]
    assert stats["bytes_per_message"] < 281 / 4  # wire v1 took 281 bytes a frame
    assert stats["pictures"]["bytes"] == sender["picture_message_bytes"] > sender["picture_bytes"]
    assert len(read_frames(record)) == stats["recording"]["frames"] == FRAMES - 11


def test_missing_refs_folder_is_a_clear_error(tmp_path):
    proc = tool("receiver", "--refs", str(tmp_path / "nope"), "--input", str(tmp_path / "call.kpc"))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert f"reference folder not found: {tmp_path / 'nope'}" in out and "Traceback" not in out


@pytest.mark.parametrize("content, message", [(None, "no face found in reference image"),
                                              (b"not an image", "cannot read reference image")])
async def test_bad_reference_names_the_file(tmp_path, tiny, caplog, content, message):
    bad = tmp_path / "refs" / "bad.png"
    bad.parent.mkdir()
    if content is None:
        cv2.imwrite(str(bad), np.full((200, 200, 3), 90, np.uint8))
    else:
        bad.write_bytes(content)
    rc = await receiver_cli.run(receiver_cli.parse_args(
        ["--refs", str(bad.parent), "--model", str(tiny["tiny"]), "--input", str(tmp_path / "x.kpc")]))
    assert rc == 2 and f"{message} {bad}" in caplog.text


def test_sender_bad_source_is_a_clear_error(tmp_path, tiny, caplog):
    assert sender_cli.main(["--source", str(tmp_path / "none.mp4"), "--output", str(tmp_path / "o.kpc"),
                            "--model", str(tiny["tiny"])]) == 2
    assert "video file not found" in caplog.text
