"""The signaling server on a free loopback port, with real websocket clients."""
from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from signaling import protocol
from signaling.client import SignalingClient, SignalingError
from signaling.server import SignalingServer, bound_port


@pytest.fixture
async def server_url():
    server = SignalingServer(max_rooms=2)
    async with server.serve("127.0.0.1", 0) as ws_server:
        yield f"ws://127.0.0.1:{bound_port(ws_server)}"


async def closed_with(ws) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as info:
        await asyncio.wait_for(ws.recv(), 5)
    return info.value.rcvd.code, info.value.rcvd.reason


async def test_pairs_and_relays(server_url):
    async with SignalingClient(server_url, "r1", "receiver") as receiver:
        assert not receiver.peer_present
        async with SignalingClient(server_url, "r1", "sender") as sender:
            assert sender.peer_present
            await sender.send("offer", sdp="v=0 offer")
            assert (await receiver.receive("offer", timeout=5))["sdp"] == "v=0 offer"
            assert receiver.peer_present  # the peer-joined note was taken in passing
            await receiver.send("answer", sdp="v=0 answer")
            assert (await sender.receive("answer", timeout=5))["sdp"] == "v=0 answer"
            await sender.send("bye")
            assert await asyncio.wait_for(receiver.wait_gone(), 5) == "bye"
        with pytest.raises(SignalingError, match="left"):
            await receiver.receive("offer", timeout=5)


async def test_second_sender_is_refused(server_url):
    async with SignalingClient(server_url, "r1", "sender"):
        with pytest.raises(SignalingError, match="already has a sender"):
            async with SignalingClient(server_url, "r1", "sender"):
                pass
        async with connect(server_url) as ws:
            await ws.send(json.dumps({"type": "join", "room": "r1", "role": "sender"}))
            assert await closed_with(ws) == (protocol.CLOSE_ROLE_TAKEN, "room 'r1' already has a sender")
        async with SignalingClient(server_url, "r1", "receiver") as receiver:  # the other role is still free
            assert receiver.peer_present


async def test_room_limit_and_bad_messages(server_url):
    async with SignalingClient(server_url, "a", "sender"), SignalingClient(server_url, "b", "sender"):
        with pytest.raises(SignalingError, match="too many rooms"):
            async with SignalingClient(server_url, "c", "sender"):
                pass
    for first in ("not json", json.dumps({"type": "join", "room": "bad room!", "role": "sender"}),
                  json.dumps({"type": "join", "room": "r", "role": "spy"}), json.dumps({"type": "offer"})):
        async with connect(server_url) as ws:
            await ws.send(first)
            assert (await closed_with(ws))[0] == protocol.CLOSE_BAD_MESSAGE
    async with connect(server_url) as ws:  # a receiver may not send an offer
        await ws.send(json.dumps({"type": "join", "room": "r", "role": "receiver"}))
        await ws.recv()
        await ws.send(json.dumps({"type": "offer", "sdp": ""}))
        code, reason = await closed_with(ws)
        assert code == protocol.CLOSE_BAD_MESSAGE and "may not send 'offer'" in reason
    async with connect(server_url, max_size=None) as ws:  # messages above max_size close the connection
        await ws.send(json.dumps({"type": "join", "room": "r", "role": "receiver"}))
        await ws.recv()
        await ws.send("x" * (protocol.MAX_MESSAGE_BYTES + 1))
        assert (await closed_with(ws))[0] == 1009


async def test_healthz(server_url):
    port = int(server_url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
    response = await asyncio.wait_for(reader.read(1000), 5)
    writer.close()
    assert response.startswith(b"HTTP/1.1 200") and b"ok rooms=0" in response


async def test_unreachable_server():
    with pytest.raises(SignalingError, match="cannot reach"):
        async with SignalingClient("ws://127.0.0.1:9", "r", "sender", open_timeout=2):
            pass
