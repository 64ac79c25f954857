"""The experiment suite: MS-SSIM, bitrate accounting, interpolation, and the CLI end to end on a tiny clip."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from experiments.__main__ import main as experiments_main
from experiments.baselines import encode_decode
from experiments.keystream import code_stream, held_frames
from experiments.rd import Clip, ClipRun, Options, kbps
from experiments.summary import needed_rate
from shared_model.media.metrics import frame_scores, ms_ssim, ms_ssim_scales
from shared_model.media.video import write_video
from shared_model.nets.model import TPSModel, save_model
from shared_model.training.synthetic import talking_face
from shared_model.wire.keycoding import CodingSettings


@pytest.fixture(scope="module")
def tiny_model(tiny) -> Path:
    return tiny["tiny"]


def test_ms_ssim_matches_the_reference_implementation():
    pytorch_msssim = pytest.importorskip("pytorch_msssim")
    torch.manual_seed(0)
    a = torch.rand(2, 3, 192, 192)
    b = (a + 0.1 * torch.randn_like(a)).clamp(0, 1)
    want = pytorch_msssim.ms_ssim(a, b, data_range=1.0, size_average=False, win_size=11)
    assert torch.allclose(ms_ssim(a, b), want, atol=1e-5)


def test_ms_ssim_at_128_px_uses_four_scales_and_orders_quality():
    assert (ms_ssim_scales(128), ms_ssim_scales(176), ms_ssim_scales(64)) == (4, 5, 3)
    frames = talking_face(frames=3, size=128, seed=2)
    rng = np.random.default_rng(0)
    noisy = [np.clip(frames + rng.normal(0, s, frames.shape), 0, 255).astype(np.uint8) for s in (4, 16)]
    same, slight, strong = frame_scores(frames, frames), frame_scores(frames, noisy[0]), frame_scores(frames, noisy[1])
    assert np.allclose(same["ms_ssim"], 1.0) and np.allclose(same["ssim"], 1.0)
    assert np.all(strong["ms_ssim"] < slight["ms_ssim"]) and np.all(slight["ms_ssim"] < 1)
    assert np.all(strong["psnr"] < slight["psnr"])


def test_keypoint_stream_accounting():
    rng = np.random.default_rng(0)
    kp = np.cumsum(rng.normal(0, 0.003, (30, 50, 2)), axis=0).astype(np.float32)
    st = np.full((30, 50), 0.9, np.float32)
    full = code_stream(kp, st, CodingSettings(), 25.0)
    half = code_stream(kp, st, CodingSettings(), 25.0, every=2)
    assert len(full.sizes) == 30 and full.kept.tolist() == list(range(30)) and full.intra == 1
    assert half.kept.tolist() == list(range(0, 30, 2))
    assert full.bits_per_kept_frame(skip_first=True) == 8 * full.sizes[1:].mean()
    assert full.bits_per_kept_frame(skip_first=False) == 8 * full.sizes.mean()
    assert kbps(20.0) == 20 * 8 * 25 / 1000  # bytes per source frame -> kbps at 25 fps
    shown = held_frames(np.arange(len(half.kept)), half.kept, 30)
    assert shown.tolist() == [i // 2 for i in range(30)]


def test_baseline_at_a_lower_frame_rate_holds_its_frames(tmp_path, tiny_model):
    frames = talking_face(frames=8, size=64, seed=5)
    clip = Clip("t.mp4", frames, 25.0, [frames[0]], ["first"], slice(1, None), ref_bytes=1000)
    point = ClipRun(clip, str(tiny_model), tmp_path, Options()).baseline_point("x264", 40.0, every=2)
    # The encoder sees frames 0, 2, 4, 6 at 12.5 fps, with the same bits per source frame as at 25 fps.
    enc = encode_decode(frames[::2], 12.5, "x264", 40_000)
    shown = held_frames(enc.frames, np.arange(0, 8, 2), 8)
    assert point["per_frame"]["psnr"] == pytest.approx(frame_scores(frames[1:], shown[1:])["psnr"].tolist(), abs=1e-4)
    assert point["every"] == 2 and point["kbps"] == pytest.approx(kbps(enc.sizes[1:].mean() / 2))


def test_needed_rate_interpolates_and_bounds():
    curve = [{"kbps": 10, "q": 0.80}, {"kbps": 40, "q": 0.90}, {"kbps": 160, "q": 0.95}]
    mid = needed_rate(curve, "q", 0.85)
    assert mid.bound == "" and mid.kbps == pytest.approx(20.0)  # halfway in log-rate between 10 and 40
    assert needed_rate(curve, "q", 0.7).text() == "<=10.0"
    assert needed_rate(curve, "q", 0.99).text() == ">160.0"


def _check_clip_results(folder: Path, frames: int) -> dict:
    results = json.loads((folder / "results.json").read_text())
    assert (folder / "rd.png").stat().st_size > 10_000
    assert results["frames"] == frames and results["resolution"] == 64 and results["keypoint_count_fixed"]
    names = {p["name"] for p in results["points"]}
    assert names == {"keypoints-1.0px-every1", "keypoints-1.0px-every2", "x264-30.0k", "vp8-30.0k",
                     "x264-15k-every2", "vp8-15k-every2", "refresh-16k"}
    for p in results["points"]:
        assert 0 < p["ms_ssim"] <= 1 and len(p["per_frame"]["psnr"]) == frames - 1  # the reference frame left out
        if p["codec"] == "refresh":  # the first picture counts in the amortised rate only
            assert p["kbps_amortised"] == pytest.approx(p["kbps"] + p["first_picture_bytes"] * 8 * 25 / 1000 / frames)
            assert p["first_picture_bytes"] == results["ref_bytes"] and p["kbps"] >= p["kbps_keypoints"]
        elif p["codec"] == "keypoints":
            first_kbps = (p["first_bytes"] + p["ref_bytes"]) * 8 * 25 / 1000
            assert p["kbps_amortised"] * frames == pytest.approx(p["kbps"] * (frames - 1) + first_kbps)
            assert p["kbps"] == pytest.approx(p["bits_per_message"] / p["every"] * 25 / 1000)
        else:
            assert p["kbps_amortised"] * frames == pytest.approx(p["kbps"] * (frames - 1) + p["first_bytes"] * 0.2)
    return results


def test_rd_cli_end_to_end_and_resume(tmp_path, tiny_model, small_config, monkeypatch):
    frames = talking_face(frames=8, size=160, seed=4)
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in ("a", "b"):
        write_video(clips / f"{name}.mp4", frames if name == "a" else frames[::-1], 25.0)
    quick = ["--model", str(tiny_model), "--max-frames", "6", "--steps", "1", "--default-step", "1", "--every", "2",
             "--bitrates", "30", "--codecs", "x264,vp8", "--refresh-kbps", "16"]
    assert experiments_main(["rd", "--video", str(clips / "a.mp4"), "--out", str(tmp_path / "one"), *quick]) == 0
    _check_clip_results(tmp_path / "one", 6)

    # A rerun reads every point back instead of computing it.
    def no_work(*args, **kwargs):
        raise AssertionError("a cached point was computed again")

    monkeypatch.setattr("experiments.rd.ClipRun.keypoint_point", no_work)
    monkeypatch.setattr("experiments.rd.ClipRun.baseline_point", no_work)
    monkeypatch.setattr("experiments.rd.ClipRun.refresh_point", no_work)
    assert experiments_main(["rd", "--video", str(clips / "a.mp4"), "--out", str(tmp_path / "one"), *quick]) == 0
    monkeypatch.undo()

    # Another model: its keypoint points are computed afresh, the baselines' are reused.
    torch.manual_seed(1)
    other = tmp_path / "other.pt"
    save_model(TPSModel(small_config), other, "tiny")
    before = json.loads((tmp_path / "one" / "results.json").read_text())
    monkeypatch.setattr("experiments.rd.ClipRun.baseline_point", no_work)
    assert experiments_main(["rd", "--video", str(clips / "a.mp4"), "--out", str(tmp_path / "one"),
                             *quick[2:], "--model", str(other)]) == 0
    monkeypatch.undo()
    after = json.loads((tmp_path / "one" / "results.json").read_text())
    assert after["model_version"] != before["model_version"]

    def kp_psnr(r: dict) -> list[float]:
        return [p["psnr"] for p in r["points"] if p["codec"] == "keypoints"]

    assert kp_psnr(after) != kp_psnr(before)

    out = tmp_path / "set"
    assert experiments_main(["rd-set", "--videos", str(clips), "--out", str(out), *quick]) == 0
    for name in ("a.mp4", "b.mp4"):
        _check_clip_results(out / "clips" / name, 6)
    summary = (out / "summary.md").read_text()
    assert "| a.mp4 |" in summary and "mean of 2 clips" in summary and "x264 kbps for same MS-SSIM" in summary
    assert "Quality against head motion" in summary and "worst frames" in summary
    assert "| 1 | all |" in summary and "| 1 | 1 in 2 |" in summary and "| anchor every (G) |" in summary
    assert "### Equal MS-SSIM, one frame in 2 sent by every codec" in summary
    assert "### Refreshing the picture within a budget" in summary and "Two hardest clips" in summary
    assert "### Equal MS-SSIM, every bit counted: refresh within 16 kbps" in summary
    assert (out / "rd.png").is_file()
    tables = json.loads((out / "results.json").read_text())["rows"]
    assert len(tables["ms_ssim"]) == 3 and set(tables["ms_ssim"][0]["needed"]) == {"x264", "vp8"}
    no_refresh = tables["all_bits_no refresh"][0]
    assert no_refresh["needed"]["x264"]["factor"] * no_refresh["kbps_amortised"] == pytest.approx(
        no_refresh["needed"]["x264"]["kbps"])  # every bit on both sides
    assert tables["refresh"][0]["budgets"]["16.0"]["kbps"] > 0
    assert tables["ms_ssim_every2"][0]["kbps"] < tables["ms_ssim"][0]["kbps"]


def test_held_out_clips_come_from_the_cache_index(tmp_path, tiny_model):
    from experiments.__main__ import held_out_clips

    (tmp_path / "index.json").write_text(json.dumps({"clips": [{"name": "x/a.mp4", "held_out": True},
                                                               {"name": "x/b.mp4", "held_out": False}]}))
    assert held_out_clips(Path("/videos"), str(tmp_path), str(tiny_model)) == [Path("/videos/x/a.mp4")]
    with pytest.raises(SystemExit, match="no held-out clips"):
        held_out_clips(Path("/videos"), None, str(tiny_model))


def test_call_experiment_under_loss(tmp_path, tiny_model):
    """One real three-process call at 25 % loss, scored against the sender's crops; a rerun reads it back."""
    video = tmp_path / "face.mp4"
    write_video(video, talking_face(frames=30, size=256, seed=3), 10.0)
    argv = ["call", "--video", str(video), "--loss", "0.25", "--model", str(tiny_model), "--fps", "0",
            "--out", str(tmp_path / "calls")]
    assert experiments_main(argv) == 0
    (call,) = json.loads((tmp_path / "calls" / "results.json").read_text())["calls"]
    assert call["loss"] == 0.25 and call["frames_expected"] == 30
    # Lost: the frames lost in the network, and those the sender held back until its picture was acknowledged.
    assert 0 < call["frames_lost"] < 25 and call["frames_rendered"] > 0
    assert call["frames_spoiled"] <= (CodingSettings().anchor_every - 1) * call["frames_lost"]
    assert 0 < call["ms_ssim"] <= 1 and call["payload_kbps"] > 0
    assert "| 25 % |" in (tmp_path / "calls" / "summary.md").read_text()
    assert experiments_main(argv) == 0  # cached: no second call
