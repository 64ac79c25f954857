"""The peers' side of signaling: join a room, exchange offer / answer, hear when the other peer leaves."""
from __future__ import annotations

import argparse
import asyncio
from typing import Any, Self

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from . import protocol
from .protocol import ProtocolError


def add_signaling_arguments(parser: argparse.ArgumentParser, offline_flag: str, offline_help: str) -> None:
    """``--signaling URL [--room NAME]``, or ``offline_flag FILE`` instead: one of the two is required."""
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--signaling", metavar="URL", help="signaling server, e.g. ws://127.0.0.1:8765")
    where.add_argument(offline_flag, metavar="FILE", help=offline_help)
    parser.add_argument("--room", default="default", help="signaling room (default %(default)s)")


class SignalingError(RuntimeError):
    """Signaling failed: server unreachable, join refused, or the peer left before the call was set up."""


class SignalingClient:
    """One peer's websocket to the signaling server (``async with SignalingClient(url, room, role) as sig``)."""

    def __init__(self, url: str, room: str, role: str, open_timeout: float = 10.0) -> None:
        self.url, self.room, self.role, self.open_timeout = url, room, role, open_timeout
        self.peer_present = False
        self._ws: ClientConnection | None = None

    async def __aenter__(self) -> Self:
        try:
            self._ws = await connect(self.url, open_timeout=self.open_timeout, max_size=protocol.MAX_MESSAGE_BYTES)
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            raise SignalingError(f"cannot reach the signaling server {self.url}: {exc}") from exc
        await self.send("join", room=self.room, role=self.role)
        joined = await self.receive("joined")
        self.peer_present = bool(joined.get("peer"))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ws is not None:
            await self._ws.close()

    async def send(self, kind: str, **fields: Any) -> None:
        try:
            await self._ws.send(protocol.dumps(kind, **fields))
        except ConnectionClosed as exc:
            raise SignalingError(f"signaling connection closed: {self._why(exc)}") from exc

    async def receive(self, *kinds: str, timeout: float | None = None) -> dict[str, Any]:
        """The next message of one of ``kinds`` (``peer-joined`` notes are taken in passing); ``peer-left``,
        ``bye`` or anything else ends the wait with a SignalingError."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    msg = protocol.parse(await self._ws.recv())
                    if msg["type"] in kinds:
                        return msg
                    if msg["type"] == "peer-joined":
                        self.peer_present = True
                        continue
                    if msg["type"] in ("peer-left", "bye"):
                        raise SignalingError(f"the {msg.get('role', 'other peer')} left before the call was set up")
                    raise SignalingError(f"expected {' or '.join(kinds)} from the signaling server, got "
                                         f"{msg['type']!r} {msg.get('reason', '')}")
        except TimeoutError as exc:
            raise SignalingError(f"no {' or '.join(kinds)} from the signaling server within {timeout} s") from exc
        except ConnectionClosed as exc:
            raise SignalingError(f"signaling connection closed: {self._why(exc)}") from exc
        except ProtocolError as exc:
            raise SignalingError(f"bad message from the signaling server: {exc}") from exc

    async def wait_for_peer(self) -> None:
        if not self.peer_present:
            await self.receive("peer-joined")

    async def wait_gone(self) -> str:
        """Wait until the other peer leaves the room or says bye (or the server goes); returns which."""
        try:
            async for raw in self._ws:
                kind = protocol.parse(raw)["type"]
                if kind in ("peer-left", "bye"):
                    return kind
        except (ConnectionClosed, ProtocolError):
            pass
        return "signaling-closed"

    @staticmethod
    def _why(exc: ConnectionClosed) -> str:
        rcvd = exc.rcvd
        return f"code {rcvd.code}: {rcvd.reason}" if rcvd is not None else "no close frame"
