"""Calls over real (emulated) networks in network namespaces: a 16 kbit/s shaped link, and peers that meet
only through a coturn relay. Root and iproute2 needed (coturn for the relay); skipped with the reason elsewhere."""
from __future__ import annotations

import shutil

import pytest

from experiments import netns
from experiments.realnet import relayed_call, shaped_call

UNAVAILABLE = netns.unavailable()
pytestmark = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"no network namespaces: {UNAVAILABLE}")


def test_call_holds_on_a_16_kbit_link(tmp_path, face_video, face_refs, tiny_weights):
    result = shaped_call(face_video, face_refs, tmp_path, str(tiny_weights), 10.0, 1, 16.0)
    assert result["end_reason"] == "bye"
    assert result["frames_received"] >= 0.9 * result["sender"]["sent"] >= 0.5 * result["frames_expected"]
    assert result["payload_kbps"] < result["wire_kbps"]["received"] <= 16.0
    assert result["latency_ms"]["median"] > 0
    link = result["link"]["sender_to_receiver"]
    assert link["sent_packets"] >= result["frames_received"]  # the frames did cross the shaped link
    assert 0 < result["h264"]["achieved_kbps"] <= 16.0 and result["h264"]["psnr"] > 0


@pytest.mark.skipif(shutil.which("turnserver") is None, reason="coturn's turnserver is not installed")
def test_call_goes_through_a_turn_relay_when_peers_cannot_meet(tmp_path, face_video, face_refs, tiny_weights):
    """netns.relayed checks that the peers cannot reach each other; the call must then be relayed."""
    result = relayed_call(face_video, face_refs, tmp_path, str(tiny_weights), 10.0, 1)
    assert result["end_reason"] == "bye"
    assert "relay" in (result["ice_pair"]["local"], result["ice_pair"]["remote"]), result["ice_pair"]
    assert result["frames_received"] >= 0.9 * result["sender"]["sent"] >= 0.5 * result["frames_expected"]
