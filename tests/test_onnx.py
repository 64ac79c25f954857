"""ONNX export: onnxruntime agrees with torch on all three parts, and the ORT wrappers match the torch ones."""
from __future__ import annotations

import asyncio
import json
import logging

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from receiver import __main__ as receiver_cli
from sender import __main__ as sender_cli
from shared_model.media.video import write_video
from shared_model.nets.config import ModelConfig
from shared_model.nets.model import TPSModel, available_models, load_model, save_model
from shared_model.runtime.graphs import PARTS, example_inputs, export_model, io_names, part_modules
from shared_model.runtime.inference import KeypointExtractor, Renderer
from shared_model.runtime.onnx_backend import (
    CPU,
    OnnxKeypointExtractor,
    OnnxModel,
    OnnxModelError,
    OnnxRenderer,
    providers_for,
)
from shared_model.training.synthetic import talking_face

TINY = ModelConfig(resolution=64, kp_channels=(16, 32, 32), motion_channels=(32, 64), gen_channels=(16, 32, 64))


@pytest.fixture(scope="module", params=["tiny", "tps"])
def exported(request, tmp_path_factory) -> tuple[TPSModel, object]:
    """A model and the folder of its export: a small untrained one, and the shipped ``tps`` when present."""
    folder = tmp_path_factory.mktemp(f"onnx_{request.param}")
    if request.param == "tps":
        if "tps" not in available_models():
            pytest.skip("the shipped model tps is not present")
        model = load_model("tps")
    else:
        torch.manual_seed(0)
        path = folder / "tiny.pt"
        save_model(TPSModel(TINY), path, "tiny")
        model = load_model(path)
    torch.set_num_threads(1)
    return model, export_model(model, folder / "graphs")


def test_single_files_static_shapes_opset(exported):
    model, folder = exported
    assert sorted(p.name for p in folder.iterdir()) == ["detector.onnx", "encoder.onnx", "generator.int8.onnx",
                                                       "generator.onnx", "meta.json"]
    for part in PARTS:
        graph = onnx.load(str(folder / f"{part}.onnx"))
        onnx.checker.check_model(graph)
        assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= 17
        for value in graph.graph.input:
            dims = value.type.tensor_type.shape.dim
            assert dims[0].dim_value == 1 and all(d.dim_value > 0 for d in dims), (part, value.name)
    assert json.loads((folder / "meta.json").read_text())["model_version"] == model.version


@pytest.mark.parametrize("part", PARTS)
def test_onnxruntime_agrees_with_torch(exported, part):
    model, folder = exported
    inputs, names = example_inputs(model), io_names(model)
    session = ort.InferenceSession(str(folder / f"{part}.onnx"), providers=[CPU])
    got = session.run(None, {n: t.numpy() for n, t in zip(names[part][0], inputs[part])})
    with torch.inference_mode():
        want = part_modules(model)[part](*inputs[part])
    want = want if isinstance(want, tuple) else (want,)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w.numpy(), atol=1e-3, rtol=0)


def test_wrappers_match_torch_on_real_frames(exported, caplog):
    model, folder = exported
    res = model.cfg.resolution
    frames = talking_face(frames=4, size=res, seed=2)
    with caplog.at_level(logging.WARNING):
        onnx_model = OnnxModel(folder, model, "auto")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert "onnxruntime runs on the CPU" in caplog.text
        assert all(s.get_providers()[0] == CPU for s in onnx_model.sessions.values())
    kp_t, st_t = KeypointExtractor(model)(frames[1])
    kp_o, st_o = OnnxKeypointExtractor(onnx_model)(frames[1])
    np.testing.assert_allclose(kp_o, kp_t, atol=1e-3)
    np.testing.assert_allclose(st_o, st_t, atol=1e-3)
    refs = [frames[0], frames[3]]
    torch_renderer, onnx_renderer = Renderer(model, refs), OnnxRenderer(onnx_model, refs)
    for frame in frames:
        kp, st = KeypointExtractor(model)(frame)
        (img_t, ref_t), (img_o, ref_o) = torch_renderer.render(kp, st), onnx_renderer.render(kp, st)
        assert ref_t == ref_o
        assert np.abs(img_t.astype(int) - img_o.astype(int)).max() <= 1


def test_int8_generator_renders_close_to_the_float_one(exported):
    """The quantized generator (convolutions in int8) draws nearly the same frame as the float32 graph."""
    model, folder = exported
    res = model.cfg.resolution
    frames = talking_face(frames=6, size=max(res, 256), seed=7)
    frames = np.stack([cv2.resize(f, (res, res), interpolation=cv2.INTER_AREA) for f in frames])
    refs = [frames[0]]
    fp32 = OnnxRenderer(OnnxModel(folder, model, "cpu"), refs)
    int8 = OnnxRenderer(OnnxModel(folder, model, "cpu", precision="int8"), refs)
    assert int8.onnx.sessions["generator"] is not fp32.onnx.sessions["generator"]
    for frame in frames[1:]:
        kp, st = KeypointExtractor(model)(frame)
        a, b = fp32.render(kp, st)[0].astype(float), int8.render(kp, st)[0].astype(float)
        assert 10 * np.log10(255**2 / max(np.mean((a - b) ** 2), 1e-6)) > 35


def test_folder_of_other_weights_is_refused(exported):
    model, folder = exported
    torch.manual_seed(5)
    other = TPSModel(model.cfg, {"id": "other", "version": "0123456789"})
    with pytest.raises(OnnxModelError, match="export it again"):
        OnnxModel(folder, other, "cpu")
    with pytest.raises(OnnxModelError, match="lacks"):
        OnnxModel(folder.parent, model, "cpu")


def test_cuda_without_cuda_provider_is_an_error():
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    with pytest.raises(RuntimeError, match="no CUDA provider"):
        providers_for("cuda")
    assert providers_for("cpu") == [CPU]


def test_backend_flag_runs_both_tools_on_onnxruntime(exported, tmp_path):
    """sender --output and receiver --input with --backend onnx give what the torch backend gives."""
    model, folder = exported
    if model.model_id != "tiny":
        pytest.skip("one model is enough for the flag wiring")
    frames = talking_face(frames=8, size=256, seed=4)
    clip, refs = tmp_path / "clip.mp4", tmp_path / "refs"
    write_video(clip, frames, 10.0)
    refs.mkdir()
    cv2.imwrite(str(refs / "ref.png"), cv2.cvtColor(frames[0], cv2.COLOR_RGB2BGR))
    weights = str(folder.parent / "tiny.pt")
    stats = {}
    for backend in ("torch", "onnx"):
        flags = ["--model", weights, "--backend", backend, "--onnx-dir", str(folder), "--threads", "1"]
        call = tmp_path / f"{backend}.kpc"
        assert sender_cli.main(["--source", str(clip), "--output", str(call), "--ref-count", "0", *flags]) == 0
        out = tmp_path / f"{backend}.json"
        args = receiver_cli.parse_args(["--refs", str(refs), "--input", str(call), "--stats-out", str(out), *flags])
        assert asyncio.run(receiver_cli.run(args)) == 0
        stats[backend] = json.loads(out.read_text())
    assert stats["onnx"]["frames_rendered"] == stats["torch"]["frames_rendered"] == 8
