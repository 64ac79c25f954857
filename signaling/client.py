"""The peers' side of signaling: join a room, exchange offer / answer, hear when the other peer leaves.

Once the peer connection is up the call no longer needs signaling: losing the server is logged and the call
goes on (``wait_gone``). Messages from the server are checked against their schemas (``protocol.parse``), and
a description the peer sent that aiortc cannot apply is a SignalingError, never another exception.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
from typing import Any, Self

from aiortc import RTCPeerConnection, RTCSessionDescription
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from shared_model.call.aio import unless_stopped

from . import protocol
from .protocol import ProtocolError

log = logging.getLogger(__name__)

#: Environment variable the room token is read from when ``--token`` is not given (argv is visible to all).
TOKEN_ENV = "KPC_ROOM_TOKEN"


def add_signaling_arguments(parser: argparse.ArgumentParser, offline_flag: str, offline_help: str) -> None:
    """``--signaling URL --room NAME --token SECRET``, or ``offline_flag FILE`` instead: one of the two."""
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--signaling", metavar="URL", help="signaling server, e.g. ws://127.0.0.1:8765 (or wss://)")
    where.add_argument(offline_flag, metavar="FILE", help=offline_help)
    parser.add_argument("--room", help="signaling room (with --signaling; no default: pick one per call)")
    parser.add_argument("--token", help=f"the room's secret token, shared with the other peer (default: ${TOKEN_ENV}; "
                                        "make one with python -m signaling.tokens)")


def check_signaling_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """With ``--signaling``, a room and a token are required (exits through ``parser.error``)."""
    if args.signaling is None:
        return
    args.token = args.token or os.environ.get(TOKEN_ENV)
    if not args.room:
        parser.error("--signaling needs --room NAME")
    if not (args.token and protocol.TOKEN_PATTERN.fullmatch(args.token)):
        parser.error(f"--signaling needs the room's token (--token or ${TOKEN_ENV}): 16-128 characters of "
                     "A-Z a-z 0-9 _ -, e.g. from python -m signaling.tokens")


class SignalingError(RuntimeError):
    """Signaling failed: server unreachable, join refused, the peer left before the call was set up, or its
    description is unusable."""


async def apply_description(pc: RTCPeerConnection, kind: str, sdp: str) -> None:
    """The peer's ``offer`` or ``answer`` applied to ``pc`` (an offer answered: ``pc.localDescription``);
    SignalingError when aiortc cannot use it."""
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
        if kind == "offer":
            await pc.setLocalDescription(await pc.createAnswer())
    except Exception as exc:  # aiortc's SDP parsing raises assorted builtins (AssertionError, KeyError, ...)
        raise SignalingError(f"the peer's {kind} is not a usable session description: "
                             f"{type(exc).__name__}: {str(exc)[:120]}") from exc


class SignalingClient:
    """One peer's websocket to the signaling server (``async with SignalingClient(url, room, role) as sig``).

    ``token`` is the room's secret (``$KPC_ROOM_TOKEN`` when None). Setting ``stop`` while connecting and
    joining raises ``Interrupted``.
    """

    def __init__(self, url: str, room: str, role: str, token: str | None = None, open_timeout: float = 10.0,
                 stop: asyncio.Event | None = None) -> None:
        self.url, self.room, self.role, self.open_timeout = url, room, role, open_timeout
        self.stop = stop or asyncio.Event()
        self.token = token or os.environ.get(TOKEN_ENV, "")
        self.peer_present = False
        self._ws: ClientConnection | None = None
        self._gone: asyncio.Task[str] | None = None

    async def __aenter__(self) -> Self:
        try:
            await unless_stopped(self._join(), self.stop)
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def _join(self) -> None:
        try:
            self._ws = await connect(self.url, open_timeout=self.open_timeout, max_size=protocol.MAX_MESSAGE_BYTES)
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            raise SignalingError(f"cannot reach the signaling server {self.url}: {exc}") from exc
        await self.send("join", room=self.room, role=self.role, token=self.token)
        joined = await self.receive("joined", timeout=self.open_timeout)
        self.peer_present = joined["peer"]

    async def __aexit__(self, *exc: object) -> None:
        if self._gone is not None:
            self._gone.cancel()
        if self._ws is not None:
            await self._ws.close()

    @property
    def _connected(self) -> ClientConnection:
        if self._ws is None:
            raise SignalingError("not connected to the signaling server")
        return self._ws

    async def send(self, kind: str, **fields: Any) -> None:
        try:
            await self._connected.send(protocol.dumps(kind, **fields))
        except ConnectionClosed as exc:
            raise SignalingError(f"signaling connection closed: {self._why(exc)}") from exc

    async def receive(self, *kinds: str, timeout: float | None = None) -> dict[str, Any]:
        """The next message of one of ``kinds`` (``peer-joined`` notes are taken in passing); ``peer-left``,
        ``bye``, a message that breaks the protocol or anything else ends the wait with a SignalingError."""
        try:
            async with asyncio.timeout(timeout):
                while (msg := self.expect(await self._connected.recv(), kinds)) is None:
                    pass
                return msg
        except TimeoutError as exc:
            raise SignalingError(f"no {' or '.join(kinds)} from the signaling server within {timeout} s") from exc
        except ConnectionClosed as exc:
            raise SignalingError(f"signaling connection closed: {self._why(exc)}") from exc
        except ProtocolError as exc:
            raise SignalingError(f"bad message from the signaling server: {exc}") from exc

    def expect(self, raw: str | bytes, kinds: tuple[str, ...]) -> dict[str, Any] | None:
        """One message from the server while waiting for one of ``kinds``: the message, None for a note taken
        in passing (``peer-joined``), or a ProtocolError / SignalingError that ends the wait (I/O-free)."""
        msg = protocol.parse(raw)
        if msg["type"] in kinds:
            return msg
        if msg["type"] == "peer-joined":
            self.peer_present = True
            return None
        if msg["type"] in ("peer-left", "bye"):
            raise SignalingError(f"the {msg.get('role', 'other peer')} left before the call was set up")
        raise SignalingError(f"expected {' or '.join(kinds)} from the signaling server, got "
                             f"{msg['type']!r} {msg.get('reason', '')}")

    async def take_description(self, pc: RTCPeerConnection, kind: str, timeout: float | None = None) -> None:
        """Wait for the peer's ``offer`` or ``answer`` and apply it to ``pc`` (``apply_description``);
        SignalingError when it does not come, or is not a description aiortc can use."""
        await apply_description(pc, kind, (await self.receive(kind, timeout=timeout))["sdp"])

    async def wait_for_peer(self) -> None:
        if not self.peer_present:
            await self.receive("peer-joined")

    async def wait_gone(self) -> str:
        """Wait until the other peer leaves the room or says bye; returns which. If the signaling connection is
        lost first, that is logged and this never returns: a connected call goes on without signaling. One
        reader serves every waiter: cancelling a wait leaves the others (and the websocket) undisturbed."""
        if self._gone is None:
            self._gone = asyncio.ensure_future(self._read_until_gone())
        return await asyncio.shield(self._gone)

    async def _read_until_gone(self) -> str:
        try:
            async for raw in self._connected:
                try:
                    kind = protocol.parse(raw)["type"]
                except ProtocolError as exc:
                    log.warning("dropped a message from the signaling server: %s", exc)
                    continue
                if kind in ("peer-left", "bye"):
                    return kind
            reason = "closed"
        except ConnectionClosed as exc:
            reason = self._why(exc)
        log.warning("lost the signaling server (%s): the call goes on peer to peer", reason)
        never: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        return await never

    @staticmethod
    def _why(exc: ConnectionClosed) -> str:
        rcvd = exc.rcvd
        return f"code {rcvd.code}: {rcvd.reason}" if rcvd is not None else "no close frame"
