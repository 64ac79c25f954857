"""WebRTC plumbing: ICE server flags, and the datagram tap on two real aiortc peers in one process."""
from __future__ import annotations

import asyncio

import pytest
from aiortc import RTCPeerConnection

from shared_model.call.rtc import DatagramTap, Impairment, create_channels, ice_configuration, wait_open


def test_ice_servers():
    assert ice_configuration().iceServers == []  # never aiortc's default Google STUN
    config = ice_configuration("stun:stun.example.org:3478", "turn:turn.example.org:3478?transport=tcp", "u", "p")
    assert [s.urls for s in config.iceServers] == ["stun:stun.example.org:3478",
                                                   "turn:turn.example.org:3478?transport=tcp"]
    for args, match in [(("http://x",), "stun: URL"), ((None, "turn:x:3478"), "needs --turn-user"),
                        (("stun:",), "bad ICE server URL"), ((None, "turns:x:1?transport=udp", "u", "p"), "tcp only")]:
        with pytest.raises(ValueError, match=match):
            ice_configuration(*args)


async def test_tap_counts_both_ways_and_drops_with_impairment():
    a, b = RTCPeerConnection(ice_configuration()), RTCPeerConnection(ice_configuration())
    try:
        kp_a, ctl_a = create_channels(a)
        kp_b, _ = create_channels(b)
        got: list[bytes] = []
        kp_b.on("message", got.append)
        await a.setLocalDescription(await a.createOffer())
        tap_a = DatagramTap(a)
        await b.setRemoteDescription(a.localDescription)
        await b.setLocalDescription(await b.createAnswer())
        tap_b = DatagramTap(b)
        await a.setRemoteDescription(b.localDescription)
        await wait_open(ctl_a, 10)
        assert kp_a.readyState == "open"
        await asyncio.sleep(0.2)  # let the handshake's last datagrams land
        start_a, start_b = tap_a.counts(), tap_b.counts()
        for _ in range(20):
            kp_a.send(b"k" * 250)
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        assert len(got) == 20
        sent = tap_a.counts().sent_bytes - start_a.sent_bytes
        assert sent == tap_b.counts().received_bytes - start_b.received_bytes  # nothing lost on loopback
        assert sent >= 20 * 250 and tap_b.counts().sent_packets > start_b.sent_packets  # SACKs go back
        tap_a.impair(Impairment(loss=0.5, seed=0))
        for _ in range(40):
            kp_a.send(b"k" * 250)
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        assert tap_a.dropped_packets > 5 and 20 + 10 < len(got) < 20 + 40
    finally:
        await a.close()
        await b.close()
