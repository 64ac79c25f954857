"""Implicit warping: the attention over reference sets, its training, the shipped weights and a live call."""
import json
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from experiments.rd import Clip, ClipRun, Options
from receiver.demo import run_call
from shared_model.benchmark import benchmark
from shared_model.media.crop import clip_crop
from shared_model.media.video import write_video
from shared_model.nets.config import ModelConfig
from shared_model.nets.model import IWModel, TPSModel, WeightsError, load_model, save_model, weights_version
from shared_model.runtime.backend import Backend
from shared_model.runtime.inference import Renderer
from shared_model.train import TrainOptions, init_model, param_groups, train
from shared_model.training.data import prepare
from shared_model.training.synthetic import talking_face


@pytest.fixture(scope="module")
def iw_config(small_config) -> ModelConfig:
    return replace(small_config, generator="iw", iw_unet_channels=(16, 32), iw_dim=32, iw_map_channels=8,
                   iw_extra_kv=4)


def reference_set(model: IWModel, refs: int, seed: int = 0, batch: int = 1):
    torch.manual_seed(seed)
    images = torch.rand(batch, refs, 3, model.cfg.resolution, model.cfg.resolution)
    kp, st = model.detector(images.flatten(0, 1))
    return model.generator.prepare(images, kp.view(batch, refs, -1, 2), st.view(batch, refs, -1))


def driving_keypoints(model: IWModel):
    return model.detector(torch.rand(2, 3, model.cfg.resolution, model.cfg.resolution))


@torch.no_grad()
def test_attention_rows_sum_to_one(iw_config):
    model = IWModel(iw_config).eval()
    kp, st = driving_keypoints(model)
    attn = model.generator(reference_set(model, 3, batch=2), kp, st)["attention"]
    s = model.generator.size
    assert attn.shape == (2, 3 + iw_config.iw_extra_kv, s, s)
    assert attn.min() >= 0
    torch.testing.assert_close(attn.sum(1), torch.ones(2, s, s))


@torch.no_grad()
def test_output_does_not_depend_on_reference_order(iw_config):
    model = IWModel(iw_config).eval()
    torch.manual_seed(5)
    images = torch.rand(1, 3, 3, 64, 64)
    kp, st = model.detector(images[0])
    drv_kp, drv_st = model.detector(torch.rand(1, 3, 64, 64))
    outputs = []
    for order in ([0, 1, 2], [2, 0, 1]):
        refs = model.generator.prepare(images[:, order], kp[order][None], st[order][None])
        outputs.append(model.generator(refs, drv_kp, drv_st)["prediction"])
    torch.testing.assert_close(outputs[0], outputs[1], atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_extra_key_values_are_selectable(iw_config):
    """With every reference token hidden, the extra pairs take all the attention and the output no longer
    depends on the references; with them visible, the extras still get some weight."""
    model = IWModel(iw_config).eval()
    kp, st = model.detector(torch.rand(1, 3, 64, 64))
    a, b = reference_set(model, 2, seed=1), reference_set(model, 2, seed=2)
    s = model.generator.size
    hidden = torch.zeros(1, a.count, s, s, dtype=torch.bool)
    out_a = model.generator(a, kp, st, ref_mask=hidden)
    out_b = model.generator(b, kp, st, ref_mask=hidden)
    extra = out_a["attention"][:, a.count:]
    torch.testing.assert_close(extra.sum(1), torch.ones_like(extra.sum(1)))
    torch.testing.assert_close(out_a["prediction"], out_b["prediction"])
    visible = model.generator(a, kp, st)
    assert not torch.allclose(visible["prediction"], out_a["prediction"])
    assert visible["attention"][:, a.count:].sum() > 0


@torch.no_grad()
def test_output_shape_does_not_depend_on_the_reference_count(iw_config):
    model = IWModel(iw_config).eval()
    kp, st = model.detector(torch.rand(1, 3, 64, 64))
    shapes = {tuple(model.generator(reference_set(model, r), kp, st)["prediction"].shape) for r in (1, 2, 5)}
    assert shapes == {(1, 3, 64, 64)}


def test_training_hides_references_from_some_locations(iw_config):
    model = IWModel(replace(iw_config, iw_kv_dropout=0.5)).train()
    refs = reference_set(model, 2, batch=2)
    kp, st = driving_keypoints(model)
    attn = model.generator(refs, kp, st)["attention"]
    hidden = (attn[:, :refs.count] == 0).float().mean().item()
    assert 0.35 < hidden < 0.65  # about half of the (reference, location) entries hidden


def test_short_iw_training_lowers_the_loss(tmp_path, face_video, iw_config):
    cache = tmp_path / "cache"
    prepare(face_video, cache, resolution=64, holdout_percent=0.0)
    torch.manual_seed(0)
    opts = TrainOptions(data=[str(cache)], model="iw", out=str(tmp_path / "run"), steps=50, batch=4, lr=1e-3,
                        val_every=50, val_pairs=8, save_every=50, device="cpu", max_refs=3)
    history = train(opts, iw_config)["history"]
    assert history[-1]["val_psnr"] > history[0]["val_psnr"] + 2.0, history
    model = load_model(tmp_path / "run" / "model.pt")
    assert model.kind == "iw" and model.cfg == iw_config


def test_iw_starts_from_tps_weights(tmp_path, small_config):
    tps = TPSModel(small_config)
    save_model(tps, tmp_path / "tps.pt", "tiny")
    iw = init_model(str(tmp_path / "tps.pt"), "iw", 64)
    assert iw.kind == "iw"
    close = {"atol": 1e-3, "rtol": 1e-3}  # the saved weights are fp16
    torch.testing.assert_close(iw.detector.state_dict(), tps.detector.state_dict(), **close)
    torch.testing.assert_close(iw.generator.decoder.state_dict(), tps.generator.decoder.state_dict(), **close)
    torch.testing.assert_close(iw.generator.dense_motion.state_dict(), tps.generator.dense_motion.state_dict(),
                               **close)
    with pytest.raises(ValueError, match="px"):
        init_model(str(tmp_path / "tps.pt"), "iw", 32)
    assert init_model(str(tmp_path / "tps.pt"), "iw", 128).cfg.resolution == 128  # grown, as tps grows


@torch.no_grad()
def test_iw_from_tps_starts_as_tps_with_one_reference(tmp_path, small_config):
    """Before any training the attention has one reference to choose and its learned entries nearly unused:
    the output is TPS's (the prior the issue asks training to start from)."""
    torch.manual_seed(0)
    tps = TPSModel(small_config)
    save_model(tps, tmp_path / "tps.pt", "tiny")
    tps = load_model(tmp_path / "tps.pt")
    iw = init_model(str(tmp_path / "tps.pt"), "iw", 64).eval()
    source, driving = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    gap = (iw.reconstruct(source, driving) - tps.reconstruct(source, driving)).abs().max().item()
    assert gap < 0.05, gap


def test_renderer_thins_a_large_reference_set(iw_config, caplog):
    model = IWModel(replace(iw_config, iw_max_refs=3)).eval()
    images = [np.full((64, 64, 3), 20 * i, np.uint8) for i in range(7)]
    renderer = Renderer(model, images)
    assert renderer.reference_set.count == 3
    assert "at most 3" in caplog.text
    frame, ref = renderer.render(np.zeros((iw_config.num_keypoints, 2), np.float32),
                                 np.ones(iw_config.num_keypoints, np.float32))
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8 and 0 <= ref < 7


def test_shipped_iw_gets_better_with_more_references(face_frames):
    """The trained weights, on the generated face: four references spread over the clip beat one, on the
    same rebuilt frames (none of them a reference)."""
    model = load_model("iw")
    assert model.kind == "iw" and model.meta["steps"] > 0
    res = model.cfg.resolution
    crop = clip_crop(face_frames)
    frames = np.stack([crop.apply(f, res) for f in face_frames])
    truth = frames[[i for i in range(len(frames)) if i % 5]]
    with torch.no_grad():
        kps = [model.detector(torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255) for f in truth]

    def mean_psnr(refs: list[int]) -> float:
        renderer = Renderer(model, [frames[i] for i in refs])
        return float(np.mean([cv2.PSNR(f, renderer.render(k[0].numpy(), s[0].numpy())[0])
                              for f, (k, s) in zip(truth, kps)]))

    one, four = mean_psnr([0]), mean_psnr([0, 15, 30, 45])
    assert four > one + 0.5, (one, four)


def test_live_call_with_iw(tmp_path, face_frames):
    """Three real processes (signaling, sender, receiver) on loopback with ``--model iw``: the sender sends three
    pictures, the receiver attends over those it holds."""
    video = tmp_path / "clip.mp4"
    write_video(video, face_frames[:50], 12.5)  # 4 s: the first 256 px picture takes about 1 s within 16 kbps
    refs = tmp_path / "refs"
    refs.mkdir()
    for i in (0, 10, 20):
        cv2.imwrite(str(refs / f"ref_{i:02d}.png"), cv2.cvtColor(face_frames[i], cv2.COLOR_RGB2BGR))
    out = tmp_path / "call"
    out.mkdir()
    stats = run_call(video, refs, out, "iw", fps=4.0, threads=1)
    assert stats["frames_received"] == stats["sender"]["sent"] >= 6 and stats["pictures"]["held"] >= 1, stats
    assert stats["frames_rendered"] >= stats["frames_received"] - 2 and stats["frames_without_picture"] == 0, stats
    assert "iw" in (out / "receiver.log").read_text()
    assert json.loads((out / "stats.json").read_text())["frames_rendered"] == stats["frames_rendered"]


def test_benchmark_counts_the_cost_of_each_added_reference(tmp_path, iw_config):
    path = tmp_path / "iw.pt"
    save_model(IWModel(iw_config), path, "tiny-iw")
    result = benchmark(str(path), torch.device("cpu"), repeats=1)
    rows = result["parts"]
    per_frame = [row["gflops"] for name, row in rows.items() if name.startswith("receiver per frame")]
    assert len(per_frame) == 4 and all(row["ms"] > 0 for row in rows.values())
    assert per_frame == sorted(per_frame) and per_frame[-1] > per_frame[0]  # 1, 2, 4, 8 references
    assert result["held_mb_per_reference"] > 0


def test_onnx_backend_refuses_iw_clearly(tmp_path, iw_config):
    path = tmp_path / "iw.pt"
    save_model(IWModel(iw_config), path, "tiny-iw")
    with pytest.raises(ValueError, match="--backend torch"):
        Backend(str(path), backend="onnx")


@torch.no_grad()
def test_reference_prior_favours_the_reference_nearest_in_keypoints(iw_config):
    """Two identical pictures, one carrying the frame's own keypoints, the other keypoints moved away: the
    near one takes most of the attention."""
    model = IWModel(iw_config).eval()
    torch.manual_seed(3)
    image = torch.rand(1, 1, 3, 64, 64).expand(1, 2, -1, -1, -1)
    kp = torch.rand(1, iw_config.num_keypoints, 2) * 1.2 - 0.6
    strength = torch.ones(1, iw_config.num_keypoints)
    refs = model.generator.prepare(image, torch.stack([kp, kp + 0.3], 1), strength[:, None].expand(1, 2, -1))
    attn = model.generator(refs, kp, strength)["attention"]
    near, far = attn[:, 0].mean(), attn[:, 1].mean()
    assert near > 0.9 and far < 0.1, (near, far)


@torch.no_grad()
def test_each_sample_of_a_batch_is_rendered_from_its_own_set(iw_config):
    """A batch renders each sample as it would alone (the reference prior once mixed up the samples' sets)."""
    model = IWModel(iw_config).eval()
    torch.manual_seed(7)
    images = torch.rand(2, 3, 3, 64, 64)
    base = torch.rand(3, iw_config.num_keypoints, 2) * 1.2 - 0.6
    kp = torch.stack([base, base.flip(0)])  # sample 1's references have sample 0's keypoints in reverse order
    st = torch.ones(2, 3, iw_config.num_keypoints)
    kp_d, st_d = kp[[0, 1], [0, 2]] + 0.02, st[:, 0]  # sample 0 near its first reference, sample 1 near its third
    batch = model.generator(model.generator.prepare(images, kp, st), kp_d, st_d)
    for i in range(2):
        alone = model.generator(model.generator.prepare(images[i:i + 1], kp[i:i + 1], st[i:i + 1]),
                                kp_d[i:i + 1], st_d[i:i + 1])
        torch.testing.assert_close(batch["attention"][i:i + 1], alone["attention"], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(batch["prediction"][i:i + 1], alone["prediction"], atol=1e-5, rtol=1e-4)


def test_lr_new_gives_the_tensors_init_lacks_their_own_rate(tmp_path, small_config):
    save_model(TPSModel(small_config), tmp_path / "tps.pt", "tiny")
    model = init_model(str(tmp_path / "tps.pt"), "iw", 64)
    groups = param_groups(model, TrainOptions(init=str(tmp_path / "tps.pt"), lr=1e-4, lr_new=1e-3))
    fresh = {id(p) for p in groups[1]["params"]}
    names = {n for n, p in model.named_parameters() if id(p) in fresh}
    assert groups[1]["lr_scale"] == pytest.approx(10.0)
    assert any(n.startswith("generator.key_net") for n in names) and "generator.reference_prior" in names
    assert not any(n.startswith(("detector", "generator.decoder", "generator.dense_motion", "generator.encoder"))
                   for n in names)
    assert len(param_groups(model, TrainOptions(init=str(tmp_path / "tps.pt")))) == 1


@torch.no_grad()
def test_reference_prior_chooses_harder_when_the_nearest_reference_is_almost_the_frame(iw_config):
    """The same keypoint gap between two references weighs more when the nearer one nearly is the frame (a
    near-duplicate must win outright) than when both are far from it."""
    generator = IWModel(iw_config).generator
    p = iw_config.num_keypoints
    kp, st = torch.zeros(1, p, 2), torch.ones(1, p)
    refs = torch.tensor([0.004, 0.012, 0.104, 0.112])[None, :, None, None] * torch.tensor([1.0, 0.0])
    prior = generator.prior(refs.expand(1, 4, p, 2), st[:, None].expand(1, 4, p), kp, st)
    near_pair = generator.prior(refs[:, :2].expand(1, 2, p, 2), st[:, None].expand(1, 2, p), kp, st)
    far_pair = generator.prior(refs[:, 2:].expand(1, 2, p, 2), st[:, None].expand(1, 2, p), kp, st)
    assert prior[0, 0] == 0 and (prior[0, 1:].diff() > 0).all()
    assert near_pair[0, 1] > far_pair[0, 1] + 1.0, (near_pair, far_pair)


@torch.no_grad()
def test_refresh_experiment_renders_iw_frames_from_the_pictures_held_then(tmp_path, iw_config):
    """A picture that arrives later does not reach an earlier frame: the experiment once held every picture of
    the simulated call before rendering any frame, which for iw leaked later pictures into earlier frames."""
    torch.manual_seed(0)
    save_model(IWModel(iw_config), tmp_path / "iw.pt", "tiny-iw")
    frames = talking_face(frames=6, size=64, seed=5)
    clip = Clip("t.mp4", frames, 25.0, [frames[0]], ["A"], slice(1, None), ref_bytes=1000)
    run = ClipRun(clip, str(tmp_path / "iw.pt"), tmp_path, Options())
    kp, st = run.keypoints()
    run._hold("B", frames[5])
    run._render(4, "A", 1.0, kp[4], st[4], ("B",))  # a later frame, with B held by then
    early = run._render(1, "A", 1.0, kp[1], st[1])
    alone, both = Renderer(load_model(str(tmp_path / "iw.pt")), []), Renderer(load_model(str(tmp_path / "iw.pt")), [])
    alone.add_picture(1, frames[0])
    both.add_picture(1, frames[0])
    both.add_picture(2, frames[5])
    assert np.array_equal(early, alone.render(kp[1], st[1], 1)[0])
    assert not np.array_equal(early, both.render(kp[1], st[1], 1)[0])  # B would have changed it


def test_training_starts_from_weights_that_lack_a_tensor_added_since(tmp_path, iw_config):
    """Stage 2 of the shipped iw began from weights made before the prior's ratio term existed."""
    save_model(IWModel(iw_config), tmp_path / "iw.pt", "tiny-iw")
    blob = torch.load(tmp_path / "iw.pt", weights_only=True)
    del blob["state"]["generator.reference_ratio"]
    blob["meta"]["version"] = weights_version(blob["state"])
    torch.save(blob, tmp_path / "old.pt")
    with pytest.raises(WeightsError, match="reference_ratio"):
        load_model(tmp_path / "old.pt")
    model = init_model(str(tmp_path / "old.pt"), "iw", 64)
    groups = param_groups(model, TrainOptions(init=str(tmp_path / "old.pt"), lr=1e-4, lr_new=1e-2))
    fresh = {id(p) for p in groups[1]["params"]}
    assert [n for n, p in model.named_parameters() if id(p) in fresh] == ["generator.reference_ratio"]
