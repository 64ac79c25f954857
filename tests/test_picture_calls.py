"""Reference pictures in real calls (aiortc peers on loopback, the websockets signaling server): frames never
rendered from a picture the receiver lacks, bad pictures refused and counted, the budget kept, a lasting head
turn refreshed, and how the receiver's own pictures combine with the sender's."""
from __future__ import annotations

import asyncio
import json
import time

import cv2
import numpy as np
import pytest
from calls import FPS, hand_driven_sender, in_process_call, intra_encoder, start_receiver

from receiver import __main__ as receiver_cli
from receiver.demo import sender_crops
from sender import __main__ as sender_cli
from shared_model.media.picture_codec import encode_picture
from shared_model.media.video import read_frames, write_video
from shared_model.nets.model import available_models, load_model
from shared_model.training.synthetic import talking_face
from shared_model.wire.control import Bye, Picture, PictureAck, PictureChunk, PictureRefused
from shared_model.wire.pictures import picture_messages


async def send_picture(call, picture: int, data: bytes, replaces: int | None = None) -> PictureAck | PictureRefused:
    """Send a picture's messages on the control channel; the receiver's answer."""
    for message in picture_messages(picture, data, replaces):
        call.control.send(message)
    return await asyncio.wait_for(call.inbox.next(PictureAck, PictureRefused), 10)


async def send_frames(call, encoder, seqs: range, picture: int, points: int) -> None:
    for seq in seqs:
        call.keypoints.send(encoder.encode(seq, time.time_ns(), np.zeros((points, 2)), np.ones(points), picture).data)
        await asyncio.sleep(0.15)


async def test_frames_naming_a_picture_the_receiver_lacks_are_never_rendered(tmp_path, signaling_url, clip, tiny):
    """A picture lost or late: the frames naming it are counted, not shown; once it is held they render."""
    stats_path, record = tmp_path / "stats.json", tmp_path / "call.mp4"
    receiving = start_receiver("--model", str(tiny["tiny"]), "--signaling", signaling_url, "--room", "late",
                               "--stats-out", str(stats_path), "--record", str(record))
    model = load_model(tiny["tiny"])
    encoder, points, res = intra_encoder(model), model.cfg.num_keypoints, model.cfg.resolution
    async with hand_driven_sender(signaling_url, "late", encoder, res) as (call, accept):
        assert (accept.own_pictures, accept.max_pictures) == (0, 8)
        await send_frames(call, encoder, range(0, 3), 7, points)  # picture 7 is not there yet
        ack = await send_picture(call, 7, encode_picture(cv2.resize(clip[1][5], (res, res))))
        assert ack == PictureAck(7, (7,))
        await send_frames(call, encoder, range(3, 6), 7, points)
        call.control.send(Bye("test over", 5).encode())
        await asyncio.wait_for(call.inbox.next(Bye), 10)
    assert await asyncio.wait_for(receiving, 30) == 0
    stats = json.loads(stats_path.read_text())
    assert stats["frames_received"] == 6 and stats["frames_without_picture"] == 3
    assert 1 <= stats["frames_rendered"] <= 3 and stats["frames_rendered_from_own"] == 0
    assert stats["pictures"]["held"] == 1 and stats["pictures"]["first_held_s"] > 0.3
    assert stats["recording"]["first_seq"] >= 3 and len(read_frames(record)) == stats["recording"]["frames"]


async def test_bad_pictures_are_refused_and_counted_and_the_call_goes_on(tmp_path, signaling_url, clip, tiny):
    stats_path = tmp_path / "stats.json"
    receiving = start_receiver("--model", str(tiny["tiny"]), "--signaling", signaling_url, "--room", "badpic",
                               "--stats-out", str(stats_path), "--max-pictures", "1")
    model = load_model(tiny["tiny"])
    encoder, points, res = intra_encoder(model), model.cfg.num_keypoints, model.cfg.resolution
    good = encode_picture(cv2.resize(clip[1][0], (res, res)))
    async with hand_driven_sender(signaling_url, "badpic", encoder, res) as (call, accept):
        assert accept.max_pictures == 1
        answers = [await send_picture(call, 1, b"not a picture at all" * 5),
                   await send_picture(call, 2, encode_picture(cv2.resize(clip[1][0], (32, 32))))]
        call.control.send(Picture(3, 2500, None).encode())  # then a chunk out of order
        call.control.send(PictureChunk(3, 1, b"x" * 1000).encode())
        answers.append(await asyncio.wait_for(call.inbox.next(PictureAck, PictureRefused), 10))
        answers += [await send_picture(call, 4, good), await send_picture(call, 5, good),  # one too many
                    await send_picture(call, 6, good, replaces=4)]
        await send_frames(call, encoder, range(0, 2), 6, points)
        await send_frames(call, encoder, range(2, 4), 4, points)  # 4 was replaced: not held any more
        call.control.send(Bye("test over", 3).encode())
        await asyncio.wait_for(call.inbox.next(Bye), 10)
    assert await asyncio.wait_for(receiving, 30) == 0
    assert [type(a).__name__ for a in answers] == ["PictureRefused"] * 3 + ["PictureAck", "PictureRefused",
                                                                              "PictureAck"]
    reasons = [a.reason for a in answers if isinstance(a, PictureRefused)]
    assert "does not decode" in reasons[0] and "32x32, not 64x64" in reasons[1]
    assert "expected chunk 0" in reasons[2] and "holds at most 1" in reasons[3]
    assert answers[-1] == PictureAck(6, (6,))
    stats = json.loads(stats_path.read_text())
    assert stats["pictures"]["refused"] == 4 and stats["pictures"]["held"] == 2
    assert stats["frames_received"] == 4 and stats["frames_without_picture"] == 2 and stats["frames_rendered"] >= 1


async def test_the_budget_holds_over_a_call(tmp_path, signaling_url, clip, tiny):
    """Four pictures to send and keypoints at 10 fps within 3 kbps: everything the sender sent fits the budget
    over the call, and the pictures are paced rather than sent at once."""
    folder = tmp_path / "mine"
    folder.mkdir()
    for i in (0, 12, 24, 36):
        cv2.imwrite(str(folder / f"{i}.png"), cv2.cvtColor(clip[1][i], cv2.COLOR_RGB2BGR))
    stats_path = tmp_path / "stats.json"
    start = time.monotonic()
    rc = await in_process_call(
        ["--model", str(tiny["tiny"]), "--signaling", signaling_url, "--room", "budget",
         "--stats-out", str(stats_path)],
        ["--source", str(clip[0]), "--model", str(tiny["tiny"]), "--signaling", signaling_url, "--room", "budget",
         "--refs", str(folder), "--max-kbps", "3", "--refresh-db", "0"])
    elapsed = time.monotonic() - start
    assert rc == (0, 0)
    stats = json.loads(stats_path.read_text())
    sender = stats["sender"]
    total = sender["payload_bytes"] + sender["picture_message_bytes"]
    assert sender["pictures"] == 4 and sender["picture_bytes"] > 3000 / 8 * 2  # more than 2 s of budget
    assert total <= 3000 / 8 * elapsed + 64, (total, elapsed, sender)
    assert 1 <= stats["pictures"]["held"] < 4 and stats["pictures"]["first_held_s"] > 0.5
    assert stats["frames_rendered"] > 0 and stats["frames_without_picture"] == 0


async def test_own_pictures_alone_or_none_at_all(tmp_path, signaling_url, clip, refs, tiny):
    """A sender that sends no pictures works with a receiver that has its own (every frame names them), and is
    refused, with the reason, by one that has none."""
    stats_path = tmp_path / "stats.json"
    sender = ["--source", str(clip[0]), "--model", str(tiny["tiny"]), "--signaling", signaling_url,
              "--ref-count", "0"]
    rc = await in_process_call(["--model", str(tiny["tiny"]), "--signaling", signaling_url, "--room", "own",
                                "--refs", str(refs), "--stats-out", str(stats_path)], [*sender, "--room", "own"])
    assert rc == (0, 0)
    stats = json.loads(stats_path.read_text())
    assert stats["pictures"]["held"] == stats["sender"]["pictures"] == 0
    assert stats["frames_rendered"] == stats["frames_rendered_from_own"] > 0
    receiving = start_receiver("--model", str(tiny["tiny"]), "--signaling", signaling_url, "--room", "none",
                               "--idle-timeout", "3")
    assert await asyncio.wait_for(sender_cli.run(sender_cli.parse_args([*sender, "--room", "none"])), 60) == 1
    assert await asyncio.wait_for(receiving, 30) == 1


def turned_clip(path, frames: int, turn_at: int) -> np.ndarray:
    """A still generated face that turns its head by 25 degrees at ``turn_at`` and holds it."""
    face = talking_face(frames=1, size=256, seed=3)[0]
    turned = cv2.warpAffine(face, cv2.getRotationMatrix2D((128, 100), 25, 1.0), (256, 256),
                            borderMode=cv2.BORDER_REFLECT)
    clip = np.stack([face if i < turn_at else turned for i in range(frames)])
    write_video(path, clip, FPS)
    return clip


@pytest.mark.skipif("tps" not in available_models(), reason="needs the shipped model tps")
async def test_a_lasting_head_turn_is_refreshed_and_the_frames_after_it_improve(tmp_path):
    """The real sender and receiver through a call file (no network, no budget): a face that turns and stays
    turned gets a new picture half a second later, and the frames after it are rebuilt far better than from the
    first picture."""
    video, frames, turn = tmp_path / "turn.mp4", 18, 5
    turned_clip(video, frames, turn)
    refs = tmp_path / "first"
    refs.mkdir()
    cv2.imwrite(str(refs / "first.png"), cv2.cvtColor(read_frames(video, max_frames=1)[0], cv2.COLOR_RGB2BGR))
    truth = sender_crops(video, None, 256)
    psnr = {}
    for refresh_db in ("6.4", "0"):
        call, record, stats_path = tmp_path / f"{refresh_db}.kpc", tmp_path / f"{refresh_db}.mp4", tmp_path / "s.json"
        assert sender_cli.main(["--source", str(video), "--output", str(call), "--refs", str(refs),
                                "--refresh-db", refresh_db, "--threads", "1"]) == 0
        assert await receiver_cli.run(receiver_cli.parse_args(
            ["--input", str(call), "--record", str(record), "--stats-out", str(stats_path), "--threads", "1"])) == 0
        stats = json.loads(stats_path.read_text())
        assert stats["frames_rendered"] == frames and stats["recording"]["first_seq"] == 0
        psnr[refresh_db] = [cv2.PSNR(t, r) for t, r in zip(truth, read_frames(record))]
        assert stats["sender"]["refreshes"] == (1 if refresh_db == "6.4" else 0)
    after = slice(turn + 7, frames)  # the refresh comes half a second (5 frames) into the turn
    assert np.mean(psnr["6.4"][after]) > np.mean(psnr["0"][after]) + 3, psnr
    assert np.allclose(psnr["6.4"][:turn], psnr["0"][:turn], atol=0.05)  # the same pictures until the turn
