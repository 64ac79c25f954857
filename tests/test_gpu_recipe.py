"""shared_model.gpu: frames packed within a byte budget, unpacked into a cache, a run that returns weights
(on the CPU here: nothing in the tests needs a GPU)."""
from __future__ import annotations

import json

import numpy as np

from shared_model.gpu import main
from shared_model.nets.model import TPSModel, load_model, save_model
from shared_model.training.data import FrameCache, prepare


def test_pack_then_run_returns_trained_weights(tmp_path, face_video, small_config, monkeypatch):
    monkeypatch.chdir(tmp_path)
    prepare(face_video, tmp_path / "cache", resolution=64, holdout_percent=0.0)
    save_model(TPSModel(small_config), tmp_path / "start.pt", "tiny")
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"steps": 100, "batch": 2, "val_pairs": 2, "val_every": 1, "save_every": 1}))
    assert main(["pack", "--data", "cache", "--init", "start.pt", "--recipe", str(recipe), "--budget-mb", "0.05"]) == 0
    packed = json.loads((tmp_path / ".gpu" / "index.json").read_text())
    assert 2 <= packed["clips"][0]["length"] < 60  # the budget thinned the clip
    assert main(["run", "--out", "back", "--device", "cpu", "--steps", "2"]) == 0
    original, unpacked = FrameCache.load(tmp_path / "cache"), FrameCache.load(tmp_path / "cache" / "gpu")
    first = unpacked.clip_frames(unpacked.clips[0])[0].astype(float)
    assert np.abs(first - original.frames[0]).mean() < 3.0  # JPEG at quality 92
    model = load_model(tmp_path / "back" / "model.pt")
    assert model.meta["steps"] == 2 and model.meta["init"].endswith("init.pt")


def test_bench_writes_every_backend_and_precision(tmp_path, small_config, monkeypatch):
    """The GPU speed script, tried on the CPU: torch at each precision, onnxruntime, one JSON."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    save_model(TPSModel(small_config), tmp_path / "tiny.pt", "tiny")
    assert main(["bench", "--out", str(tmp_path / "out"), "--model", str(tmp_path / "tiny.pt"), "--device", "cpu",
                 "--no-compile", "--repeats", "3"]) == 0
    result = json.loads((tmp_path / "out" / "bench.json").read_text())
    runs = {(c["backend"], c["precision"]) for c in result["calls"]}
    assert runs == {("torch", "fp32"), ("torch", "fp16"), ("torch", "bf16"), ("onnx", "fp32")}
    assert result["onnx_measured"] is True and all(c["receiver_ms"] > 0 for c in result["calls"])
