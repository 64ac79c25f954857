"""shared_model.benchmark: sender and receiver speed per backend, precision and thread count, written as JSON."""
from __future__ import annotations

import json

from shared_model.benchmark import main
from shared_model.nets.model import TPSModel, save_model


def test_benchmark_measures_each_backend_and_writes_json(tmp_path, small_config, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # where --backend onnx exports to
    save_model(TPSModel(small_config), tmp_path / "tiny.pt", "tiny")
    out = tmp_path / "bench.json"
    assert main(["--model", str(tmp_path / "tiny.pt"), "--threads", "1", "--backends", "torch,onnx",
                 "--precisions", "fp32,bf16", "--repeats", "3", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    calls = {(c["backend"], c["precision"], c["threads"]): c for c in result["calls"]}
    assert set(calls) == {("torch", "fp32", 1), ("torch", "bf16", 1), ("onnx", "fp32", 1)}
    for c in calls.values():
        assert c["resolution"] == 64 and c["receiver_ms"] > 0 and c["sender_detector_ms"] > 0
        assert abs(c["receiver_fps"] - 1000 / c["receiver_ms"]) < 0.1
        assert c["sender_ms"] >= c["sender_detector_ms"]
        assert c["receiver_fps_2_workers"] > 0  # on a CPU at one thread: two frames rendered side by side
    assert result["parts"]["receiver total per frame (cached references)"]["gflops"] > 0
