"""WebRTC plumbing both peers share: ICE servers, the two negotiated data channels, and a datagram tap.

The tap wraps the ICE transport's ``_send`` / ``_recv``, which aiortc 1.16 sets as instance attributes and
which carry every DTLS datagram (SCTP for the data channels) in and out; ICE's own STUN checks bypass them.
It is private API, hence the ``aiortc>=1.16,<1.17`` pin. The tap counts the bytes that really cross the
network, and on the sender it can emulate loss, delay and jitter on outgoing datagrams (tc netem is not
available on the development machines).
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiortc import RTCConfiguration, RTCDataChannel, RTCIceServer, RTCPeerConnection
from aiortc.rtcicetransport import parse_stun_turn_uri

log = logging.getLogger(__name__)

KEYPOINT_CHANNEL_ID = 0
CONTROL_CHANNEL_ID = 1
#: The TURN transports aiortc uses (it silently ignores a server with any other).
TURN_TRANSPORTS = {"turn": ("udp", "tcp"), "turns": ("tcp",)}


def add_ice_arguments(parser: argparse.ArgumentParser) -> None:
    """The STUN / TURN flags of the sender and the receiver (aiortc uses one server of each kind)."""
    g = parser.add_argument_group("ICE servers (default: none, enough on one machine or a LAN)")
    g.add_argument("--stun", metavar="URL", help="STUN server, e.g. stun:stun.l.google.com:19302")
    g.add_argument("--turn", metavar="URL", help="TURN relay: turn:HOST:3478 (UDP), turn:HOST:3478?transport=tcp, "
                                               "or turns:HOST:5349?transport=tcp (TLS)")
    g.add_argument("--turn-user", help="TURN user name")
    g.add_argument("--turn-password", help="TURN password")


def ice_configuration(stun: str | None = None, turn: str | None = None, turn_user: str | None = None,
                      turn_password: str | None = None) -> RTCConfiguration:
    """An explicit ICE server list: aiortc falls back to Google's STUN server when none is given."""
    servers = []
    if stun:
        if not stun.startswith(("stun:", "stuns:")):
            raise ValueError(f"--stun wants a stun: URL, got {stun!r}")
        servers.append(RTCIceServer(urls=stun))
    if turn:
        if not turn.startswith(("turn:", "turns:")):
            raise ValueError(f"--turn wants a turn: or turns: URL, got {turn!r}")
        if not (turn_user and turn_password):
            raise ValueError("--turn needs --turn-user and --turn-password")
        servers.append(RTCIceServer(urls=turn, username=turn_user, credential=turn_password))
    for url in (stun, turn):
        if not url:
            continue
        try:
            parsed = parse_stun_turn_uri(url)
        except ValueError as exc:
            raise ValueError(f"bad ICE server URL {url!r}: {exc}") from exc
        if parsed["scheme"].startswith("turn") and parsed["transport"] not in TURN_TRANSPORTS[parsed["scheme"]]:
            raise ValueError(f"{url!r}: aiortc takes turn: over udp or tcp, turns: over tcp only")
    return RTCConfiguration(iceServers=servers)


def configuration_from_args(args: argparse.Namespace) -> RTCConfiguration:
    return ice_configuration(args.stun, args.turn, args.turn_user, args.turn_password)


def create_channels(pc: RTCPeerConnection) -> tuple[RTCDataChannel, RTCDataChannel]:
    """The keypoint channel (unordered, no retransmission) and the reliable control channel, negotiated
    out of band with fixed ids so both ends create them identically (no DCEP round trip)."""
    keypoints = pc.createDataChannel("kp", negotiated=True, id=KEYPOINT_CHANNEL_ID, ordered=False, maxRetransmits=0)
    control = pc.createDataChannel("ctl", negotiated=True, id=CONTROL_CHANNEL_ID, ordered=True)
    return keypoints, control


class ConnectionWatch:
    """Sets ``ended`` when the peer connection fails or closes (the peer vanished or the call was hung up)."""

    def __init__(self, pc: RTCPeerConnection) -> None:
        self.pc = pc
        self.connected = asyncio.Event()
        self.ended = asyncio.Event()

        @pc.on("connectionstatechange")
        def _changed() -> None:
            log.info("connection %s", pc.connectionState)
            if pc.connectionState == "connected":
                self.connected.set()
            elif pc.connectionState in ("failed", "closed"):
                self.ended.set()

    async def wait_connected(self, timeout: float) -> None:
        """Until connected; RuntimeError when the connection fails or does not come up in time."""
        _, pending = await asyncio.wait([asyncio.ensure_future(self.connected.wait()),
                                         asyncio.ensure_future(self.ended.wait())],
                                        timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if not self.connected.is_set():
            raise RuntimeError(f"the peer connection did not come up within {timeout} s "
                               f"(state {self.pc.connectionState}); check ICE servers / firewalls")


@dataclass(frozen=True)
class Impairment:
    """Emulated network trouble on outgoing datagrams."""

    loss: float = 0.0
    delay_s: float = 0.0
    jitter_s: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.loss < 1.0 or self.delay_s < 0 or self.jitter_s < 0:
            raise ValueError("impairment: loss must be in [0, 1), delay and jitter >= 0")

    @property
    def active(self) -> bool:
        return self.loss > 0 or self.delay_s > 0 or self.jitter_s > 0


@dataclass(frozen=True)
class TapCounts:
    time: float
    sent_bytes: int
    sent_packets: int
    received_bytes: int
    received_packets: int


class DatagramTap:
    """Counts the datagrams a peer connection sends and receives, and optionally impairs those it sends.

    Install once the transports exist (after the local description is set); it sees every datagram from then
    on. Outgoing datagrams are counted before the impairment, as the sending host emits them.
    """

    def __init__(self, pc: RTCPeerConnection) -> None:
        if pc.sctp is None:
            raise RuntimeError("no data channel transport yet: create the channels and descriptions first")
        self._ice = pc.sctp.transport.transport  # RTCDtlsTransport -> RTCIceTransport (private API)
        if not (hasattr(self._ice, "_send") and hasattr(self._ice, "_recv")):
            raise RuntimeError("this aiortc has no RTCIceTransport._send/_recv: the datagram tap needs aiortc 1.16")
        self.sent_bytes = self.sent_packets = self.received_bytes = self.received_packets = 0
        self.dropped_packets = 0
        self._impairment = Impairment()
        self._rng = random.Random()
        self._pending: set[asyncio.Task] = set()
        send: Callable[[bytes], Awaitable[None]] = self._ice._send
        recv: Callable[[], Awaitable[bytes]] = self._ice._recv

        async def tapped_send(data: bytes) -> None:
            self.sent_bytes += len(data)
            self.sent_packets += 1
            await self._impaired_send(send, data)

        async def tapped_recv() -> bytes:
            data = await recv()
            self.received_bytes += len(data)
            self.received_packets += 1
            return data

        self._ice._send = tapped_send
        self._ice._recv = tapped_recv

    def impair(self, impairment: Impairment) -> None:
        """Apply ``impairment`` to every datagram sent from now on."""
        self._impairment = impairment
        self._rng = random.Random(impairment.seed)
        if impairment.active:
            log.warning("impairing outgoing datagrams: loss %.0f %%, delay %.0f ms, jitter %.0f ms",
                        100 * impairment.loss, 1000 * impairment.delay_s, 1000 * impairment.jitter_s)

    async def _impaired_send(self, send: Callable[[bytes], Awaitable[None]], data: bytes) -> None:
        imp = self._impairment
        if not imp.active:
            await send(data)
            return
        if self._rng.random() < imp.loss:
            self.dropped_packets += 1
            return
        delay = imp.delay_s + self._rng.uniform(-imp.jitter_s, imp.jitter_s)
        if delay <= 0:
            await send(data)
            return
        # Delivered later in its own task: jitter larger than the packet spacing reorders, as a network would.
        task = asyncio.get_running_loop().create_task(self._send_later(send, data, delay))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    @staticmethod
    async def _send_later(send: Callable[[bytes], Awaitable[None]], data: bytes, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            await send(data)
        except Exception as exc:  # the connection may have closed meanwhile
            log.debug("delayed datagram not sent: %s", exc)

    def counts(self) -> TapCounts:
        return TapCounts(time.monotonic(), self.sent_bytes, self.sent_packets,
                         self.received_bytes, self.received_packets)


def kbps(nbytes: int, seconds: float) -> float | None:
    return 8.0 * nbytes / seconds / 1000.0 if seconds > 0 else None


def wire_rates(start: TapCounts, end: TapCounts) -> dict[str, float | int | None]:
    """Wire kbps and packet counts each way between two snapshots of a tap."""
    dt = end.time - start.time
    return {"sent_kbps": kbps(end.sent_bytes - start.sent_bytes, dt),
            "received_kbps": kbps(end.received_bytes - start.received_bytes, dt),
            "sent_packets": end.sent_packets - start.sent_packets,
            "received_packets": end.received_packets - start.received_packets,
            "seconds": dt}


def selected_pair(pc: RTCPeerConnection) -> dict[str, str] | None:
    """The ICE candidate pair the call runs on: types (``host``, ``srflx``, ``relay``) and addresses of both
    ends, or None before one is chosen (aioice's ``_nominated``: private, hence the aiortc pin)."""
    if pc.sctp is None:
        return None
    pairs = getattr(pc.sctp.transport.transport._connection, "_nominated", {})
    pair = pairs.get(1)
    if pair is None:
        return None
    local, remote = pair.local_candidate, pair.remote_candidate
    return {"local": local.type, "remote": remote.type, "local_address": f"{local.host}:{local.port}",
            "remote_address": f"{remote.host}:{remote.port}"}


async def wait_open(channel: RTCDataChannel, timeout: float) -> None:
    """Until a data channel is open; RuntimeError after ``timeout`` seconds."""
    if channel.readyState == "open":
        return
    opened = asyncio.Event()
    channel.on("open", opened.set)
    try:
        await asyncio.wait_for(opened.wait(), timeout)
    except TimeoutError as exc:
        raise RuntimeError(f"data channel {channel.label!r} did not open within {timeout} s") from exc
