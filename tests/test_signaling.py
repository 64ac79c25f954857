"""The signaling server on a free loopback port, with real websocket clients (some of them hostile)."""
from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import time

import pytest
from aiortc import RTCPeerConnection
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from shared_model.call.rtc import create_channels
from signaling import protocol
from signaling.client import SignalingClient, SignalingError
from signaling.limits import Limits
from signaling.server import SignalingServer, bound_port, tls_context
from signaling.tokens import new_token, room_token

TOKEN = new_token()
#: A second loopback address: the "other client" of the per-client limits (all of 127/8 is loopback on Linux).
STRANGER = ("127.0.0.2", 0)


@pytest.fixture
async def server_url():
    async with SignalingServer(Limits(max_rooms=2)).serve("127.0.0.1", 0) as ws_server:
        yield f"ws://127.0.0.1:{bound_port(ws_server)}"


async def closed_with(ws) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as info:
        while True:  # messages before the close are skipped
            await asyncio.wait_for(ws.recv(), 5)
    return info.value.rcvd.code, info.value.rcvd.reason


def join(room: str, role: str, token: str = TOKEN) -> str:
    return json.dumps({"type": "join", "room": room, "role": role, "token": token})


async def test_pairs_and_relays(server_url):
    async with SignalingClient(server_url, "r1", "receiver", TOKEN) as receiver:
        assert not receiver.peer_present
        async with SignalingClient(server_url, "r1", "sender", TOKEN) as sender:
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
    async with SignalingClient(server_url, "r1", "sender", TOKEN):
        with pytest.raises(SignalingError, match="already has a sender"):
            async with SignalingClient(server_url, "r1", "sender", TOKEN):
                pass
        async with connect(server_url) as ws:
            await ws.send(join("r1", "sender"))
            assert await closed_with(ws) == (protocol.CLOSE_ROLE_TAKEN, "room 'r1' already has a sender")
        async with SignalingClient(server_url, "r1", "receiver", TOKEN) as receiver:  # the other role is still free
            assert receiver.peer_present


async def test_a_stranger_who_knows_the_room_name_cannot_join(server_url):
    """Why: with the room name as the only credential, a stranger who joined first got every frame."""
    stranger = new_token()
    async with SignalingClient(server_url, "call", "receiver", stranger):  # the stranger comes first
        with pytest.raises(SignalingError, match="wrong token"):  # the real sender is turned away, not paired
            async with SignalingClient(server_url, "call", "sender", TOKEN):
                pass
    async with SignalingClient(server_url, "call", "receiver", TOKEN) as receiver:
        for role in ("sender", "receiver"):  # nor can the stranger take the free role or replace the receiver
            with pytest.raises(SignalingError, match="wrong token"):
                async with SignalingClient(server_url, "call", role, stranger):
                    pass
        async with SignalingClient(server_url, "call", "sender", TOKEN) as sender:
            await sender.send("offer", sdp="v=0 secret")
            assert (await receiver.receive("offer", timeout=5))["sdp"] == "v=0 secret"
    async with connect(server_url) as open_room:  # a joiner without a token opens an open room (browser page)
        await open_room.send(json.dumps({"type": "join", "room": "open", "role": "receiver"}))
        assert json.loads(await open_room.recv())["type"] == "joined"
        with pytest.raises(SignalingError, match="wrong token"):  # which a peer holding a token never joins
            async with SignalingClient(server_url, "open", "sender", TOKEN):
                pass


async def test_operator_key_issues_the_only_tokens_that_open_rooms():
    key = b"k" * 32
    async with SignalingServer(key=key).serve("127.0.0.1", 0) as ws_server:
        url = f"ws://127.0.0.1:{bound_port(ws_server)}"
        for room, token in (("a", new_token()), ("b", room_token(key, "a"))):
            with pytest.raises(SignalingError, match="not issued"):
                async with SignalingClient(url, room, "sender", token):
                    pass
        async with SignalingClient(url, "a", "receiver", room_token(key, "a")):
            async with SignalingClient(url, "a", "sender", room_token(key, "a")) as sender:
                assert sender.peer_present


async def test_room_limit_and_bad_messages(server_url):
    async with SignalingClient(server_url, "a", "sender", TOKEN), SignalingClient(server_url, "b", "sender", TOKEN):
        with pytest.raises(SignalingError, match="too many rooms"):
            async with SignalingClient(server_url, "c", "sender", TOKEN):
                pass
    for first in ("not json", "[" * 5000 + "]" * 5000, join("bad room!", "sender"), join("r", "spy"),
                  join("r", "sender", "short"), json.dumps({"type": ["join"], "room": "r"}),
                  json.dumps({"type": "join", "room": "r", "role": "sender", "token": TOKEN, "x": 1}),
                  json.dumps({"type": "offer"})):
        async with connect(server_url) as ws:
            await ws.send(first)
            assert (await closed_with(ws))[0] == protocol.CLOSE_BAD_MESSAGE, first[:40]
    async with connect(server_url) as ws:  # a receiver may not send an offer
        await ws.send(join("r", "receiver"))
        await ws.recv()
        await ws.send(json.dumps({"type": "offer", "sdp": "v=0"}))
        code, reason = await closed_with(ws)
        assert code == protocol.CLOSE_BAD_MESSAGE and "may not send 'offer'" in reason
    async with connect(server_url, max_size=None) as ws:  # messages above max_size close the connection
        await ws.send(join("r", "receiver"))
        await ws.recv()
        await ws.send("x" * (protocol.MAX_MESSAGE_BYTES + 1))
        assert (await closed_with(ws))[0] == 1009


@pytest.mark.parametrize("offer", [{"type": "offer"}, {"type": "offer", "sdp": None}, {"type": "offer", "sdp": 7},
                                   {"type": "offer", "sdp": "garbage"}, {"type": "offer", "sdp": "v=0", "evil": 1}],
                         ids=["missing", "null", "number", "not-sdp", "extra-field"])
async def test_bad_offers_are_not_relayed(server_url, offer):
    """Why: an offer with a missing or garbage sdp, relayed, crashed the waiting receiver."""
    async with SignalingClient(server_url, "r", "receiver", TOKEN) as receiver:
        async with connect(server_url) as sender:
            await sender.send(join("r", "sender"))
            await sender.recv()
            await sender.send(json.dumps(offer))
            assert (await closed_with(sender))[0] == protocol.CLOSE_BAD_MESSAGE
        with pytest.raises(SignalingError, match="left before"):
            await receiver.receive("offer", timeout=5)


async def test_idle_joins_cannot_lock_out_new_rooms():
    """Why: 100 idle joins filled the room limit and locked every new call out; joined peers never timed out."""
    limits = Limits(max_rooms=10, rooms_per_client=4, lonely_timeout_s=1.0)
    server = SignalingServer(limits)
    async with server.serve("127.0.0.1", 0) as ws_server:
        url = f"ws://127.0.0.1:{bound_port(ws_server)}"
        idle, codes = [], []
        for i in range(100):
            ws = await connect(url, local_addr=STRANGER)
            try:
                await ws.send(join(f"idle{i}", "receiver", new_token()))
                json.loads(await asyncio.wait_for(ws.recv(), 5))
                idle.append(ws)
            except ConnectionClosed as exc:
                codes.append(exc.rcvd.code)
            assert len(server.clients.rooms(STRANGER[0])) <= 4  # (a slow run may see the first ones time out)
        assert len(idle) >= 4 and set(codes) <= {protocol.CLOSE_TOO_MANY_ROOMS, protocol.CLOSE_RATE_LIMITED}
        async with SignalingClient(url, "mine", "receiver", TOKEN):  # another client still gets a room
            async with SignalingClient(url, "mine", "sender", TOKEN) as sender:
                assert sender.peer_present
        t0 = time.monotonic()
        for ws in idle:  # and the idle joins are sent away
            assert (await closed_with(ws))[0] == protocol.CLOSE_TIMEOUT
        assert time.monotonic() - t0 < 3


async def test_a_peer_left_alone_times_out_but_a_paired_one_does_not():
    async with SignalingServer(Limits(lonely_timeout_s=0.5)).serve("127.0.0.1", 0) as ws_server:
        url = f"ws://127.0.0.1:{bound_port(ws_server)}"
        async with connect(url) as receiver:
            await receiver.send(join("r", "receiver"))
            await receiver.recv()
            async with SignalingClient(url, "r", "sender", TOKEN):
                assert json.loads(await receiver.recv())["type"] == "peer-joined"
                with pytest.raises(TimeoutError):  # paired: kept past the lonely timeout
                    await asyncio.wait_for(receiver.recv(), 1.2)
            assert json.loads(await receiver.recv())["type"] == "peer-left"
            t0 = time.monotonic()
            code, reason = await closed_with(receiver)
            assert code == protocol.CLOSE_TIMEOUT and "no peer" in reason and time.monotonic() - t0 < 1.5


async def test_message_and_connection_rates_are_limited(server_url):
    """Why: 10,000 offers were relayed in 0.7 s."""
    async with SignalingClient(server_url, "r", "receiver", TOKEN) as receiver:
        async with connect(server_url) as sender:
            await sender.send(join("r", "sender"))
            await sender.recv()
            for _ in range(1000):
                await sender.send(json.dumps({"type": "offer", "sdp": "v=0"}))
            assert (await closed_with(sender))[0] == protocol.CLOSE_RATE_LIMITED
        relayed = 0
        with pytest.raises(SignalingError, match="left before"):
            while await receiver.receive("offer", timeout=5):
                relayed += 1
        assert 1 <= relayed <= Limits().message_burst
    codes = []
    for _ in range(Limits().connect_burst + 5):
        try:
            async with connect(server_url, local_addr=STRANGER) as ws:
                await ws.send(join("r", "receiver", "x"))  # refused: bad token, so nothing is held
                codes.append((await closed_with(ws))[0])
        except ConnectionClosed as exc:
            codes.append(exc.rcvd.code)
    assert codes.count(protocol.CLOSE_RATE_LIMITED) >= 4


async def test_client_turns_hostile_server_messages_into_signaling_errors():
    """Whatever a server sends, a peer waiting for it gets a SignalingError, never another exception."""
    replies = ["[" * 10000 + "]" * 10000, '{"type": ["offer"]}', '{"type": "offer"}', '{"type": "offer", "sdp": 1}',
               '{"type": "offer", "sdp": "v=0 garbage"}', '{"type": "joined"}', b"\x00binary", "1e999999", "{}"]

    async def hostile(ws):
        await ws.recv()  # the join
        await ws.send(json.dumps({"type": "joined", "room": "r", "role": "receiver", "peer": True}))
        await ws.send(replies[int(ws.request.path.strip("/"))])
        await ws.wait_closed()

    async with serve(hostile, "127.0.0.1", 0) as ws_server:
        for i in range(len(replies)):
            url = f"ws://127.0.0.1:{bound_port(ws_server)}/{i}"
            async with SignalingClient(url, "r", "receiver", TOKEN) as sig:
                pc = RTCPeerConnection()
                create_channels(pc)
                with pytest.raises(SignalingError):
                    await sig.take_description(pc, "offer", timeout=5)
                await pc.close()


def self_signed(tmp_path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return str(certfile), str(keyfile)


async def test_tls_on_the_server_itself(tmp_path, monkeypatch):
    certfile, keyfile = self_signed(tmp_path)
    async with SignalingServer().serve("127.0.0.1", 0, tls_context(certfile, keyfile)) as ws_server:
        port = bound_port(ws_server)
        with pytest.raises(SignalingError, match="cannot reach"):  # an untrusted certificate is refused
            async with SignalingClient(f"wss://127.0.0.1:{port}", "r", "sender", TOKEN, open_timeout=5):
                pass
        monkeypatch.setenv("SSL_CERT_FILE", certfile)  # how a peer trusts a private CA (docs/call.md)
        async with SignalingClient(f"wss://127.0.0.1:{port}", "r", "receiver", TOKEN):
            async with SignalingClient(f"wss://127.0.0.1:{port}", "r", "sender", TOKEN) as sender:
                assert sender.peer_present
        with pytest.raises(SignalingError, match="cannot reach"):  # plain ws:// gets no answer it understands
            async with SignalingClient(f"ws://127.0.0.1:{port}", "r", "sender", TOKEN, open_timeout=5):
                pass


async def test_healthz(server_url):
    port = int(server_url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
    response = await asyncio.wait_for(reader.read(1000), 5)
    writer.close()
    assert response.startswith(b"HTTP/1.1 200") and b"ok rooms=0" in response


async def test_unreachable_server():
    with pytest.raises(SignalingError, match="cannot reach"):
        async with SignalingClient("ws://127.0.0.1:9", "r", "sender", TOKEN, open_timeout=2):
            pass
