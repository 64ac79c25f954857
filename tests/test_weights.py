"""Weights prove themselves at load: the stored version must match the content; bad files are clear errors."""
from __future__ import annotations

import asyncio
import os

import pytest
import torch

from receiver import __main__ as receiver_cli
from shared_model.nets.model import WeightsError, available_models, load_model, resolve_model_path


def test_every_shipped_model_matches_its_version():
    for name in available_models():
        model = load_model(name)
        assert len(model.version) == 10 and model.version != "0", name


def test_flipped_bytes_are_caught_by_the_version(tmp_path, tiny_weights):
    """Why: a weights file with 4 KiB flipped still reported its stored version, and was used."""
    data = bytearray(tiny_weights.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 4096] = bytes(b ^ 0xFF for b in data[middle:middle + 4096])
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="damaged: it states version"):
        load_model(damaged)


@pytest.mark.parametrize("content", [b"", os.urandom(100_000), b"PK\x03\x04" + os.urandom(5000),
                                     {"state": {}}, {"config": {}, "state": {}}, {"config": {"resolution": "x"},
                                                                                 "state": {}},
                                     {"config": {}, "state": {"w": "not a tensor"}}, [1, 2, 3]],
                         ids=["empty", "random", "random-zip", "no-config", "empty-config", "bad-config",
                              "not-tensors", "a-list"])
def test_bad_files_are_clear_errors(tmp_path, content):
    path = tmp_path / "bad.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(WeightsError, match="bad.pt"):
        load_model(path)


def test_weights_of_another_shape_are_a_clear_error(tmp_path, tiny_weights):
    blob = torch.load(tiny_weights, weights_only=True)
    blob["config"]["kp_channels"] = tuple(2 * c for c in blob["config"]["kp_channels"])
    path = tmp_path / "reshaped.pt"
    torch.save(blob, path)
    with pytest.raises(WeightsError, match="do not fit their config"):
        load_model(path)


def test_receiver_with_damaged_weights_exits_2_with_the_reason(tmp_path, tiny_weights, face_refs, caplog):
    """Why: the receiver recorded all-black frames from damaged weights and exited 0."""
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(tiny_weights.read_bytes()[:-2048] + os.urandom(2048))
    args = receiver_cli.parse_args(["--refs", str(face_refs), "--model", str(damaged), "--input", "x.kpc"])
    assert asyncio.run(receiver_cli.run(args)) == 2
    assert str(damaged) in caplog.text and "Traceback" not in caplog.text


def test_shipped_names_still_resolve():
    assert resolve_model_path("tps").name == "tps.pt"
