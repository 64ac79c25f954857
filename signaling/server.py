"""The signaling server: pairs one sender and one receiver per room and relays offer / answer / bye.

Who may enter a room is decided by its token (``tokens.RoomLock``); how much one client may do, by
``limits.Limits``. Every message is checked against its schema before anything is done with it.
"""
from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from http import HTTPStatus

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from . import protocol
from .limits import ClientTable, Limits, TokenBucket
from .protocol import ProtocolError
from .tokens import RoomLock

log = logging.getLogger(__name__)

#: A ``process_request`` hook answering plain HTTP requests (``signaling.static.WebApp``), or None to pass.
HttpHook = Callable[[ServerConnection, Request], Response | None]

#: A client that does not answer the server's close within this many seconds is cut off (one that floods the
#: server leaves its close reply behind hundreds of unread messages).
CLOSE_TIMEOUT_S = 1.0


@dataclass
class Room:
    kept: bytes  # what the room's token hashes to (tokens.RoomLock)
    peers: dict[str, ServerConnection] = field(default_factory=dict)
    alone_since: float = field(default_factory=time.monotonic)


class SignalingServer:
    """Room bookkeeping and the websocket handler (one argument, current ``websockets.asyncio`` API).

    Args:
        limits: rates, caps and timeouts (``limits.Limits``; per client address).
        key: the operator's key: rooms then open only with the tokens it issues (``tokens.room_token``).
            None (default): the first joiner of a room sets its token.
        web: the hook serving the browser receiver's files (``signaling.static.WebApp``), or None.
    """

    def __init__(self, limits: Limits | None = None, *, key: bytes | None = None,
                 web: HttpHook | None = None) -> None:
        self.limits = limits or Limits()
        self.web = web
        self.lock = RoomLock(key)
        self.rooms: dict[str, Room] = {}
        self.clients = ClientTable(self.limits)

    def health(self, connection: ServerConnection, request: Request) -> Response | None:
        """``process_request`` hook: answer ``GET /healthz`` over plain HTTP, let everything else upgrade."""
        if request.path == "/healthz":
            return connection.respond(HTTPStatus.OK, f"ok rooms={len(self.rooms)}\n")
        return None

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """The health check, then the web app's files (when there is a web hook)."""
        response = self.health(connection, request)
        if response is None and self.web is not None:
            response = self.web(connection, request)
        return response

    async def handler(self, ws: ServerConnection) -> None:
        address = str(ws.remote_address[0])
        if refusal := self.clients.connect(address):
            log.warning("refused a connection from %s: %s", address, refusal)
            await ws.close(protocol.CLOSE_RATE_LIMITED, refusal)
            return
        try:
            await self._join(ws, address)
        finally:
            self.clients.disconnect(address)

    async def _join(self, ws: ServerConnection, address: str) -> None:
        try:
            raw = await asyncio.wait_for(ws.recv(), self.limits.join_timeout_s)
            room_name, role, token = protocol.parse_join(raw)
        except TimeoutError:
            await ws.close(protocol.CLOSE_TIMEOUT, "no join message in time")
            return
        except ConnectionClosed:
            return
        except ProtocolError as exc:
            await ws.close(protocol.CLOSE_BAD_MESSAGE, str(exc)[:120])
            return
        room, refusal = self._enter(room_name, role, token, address)
        if room is None:
            log.warning("refused %s from %s for room %r: %s", role, address, room_name, refusal[1])
            await ws.close(refusal[0], refusal[1][:120])
            return
        room.peers[role] = ws
        held = self.clients.rooms(address)
        held.add(room_name)
        log.info("%s joined room %r", role, room_name)
        try:
            other = self._other(room, role)
            await ws.send(protocol.dumps("joined", room=room_name, role=role, peer=other is not None))
            if other is not None:
                await self._send_quietly(other, protocol.dumps("peer-joined", role=role))
            await self._relay(ws, room, role)
        except ConnectionClosed:
            pass
        finally:
            del room.peers[role]
            held.discard(room_name)
            room.alone_since = time.monotonic()
            log.info("%s left room %r", role, room_name)
            other = self._other(room, role)
            if other is None:
                del self.rooms[room_name]
            else:
                await self._send_quietly(other, protocol.dumps("peer-left", role=role))

    def _enter(self, name: str, role: str, token: str | None, address: str) -> tuple[Room | None, tuple[int, str]]:
        """The room this joiner may take ``role`` in, or None and the close code and reason."""
        room = self.rooms.get(name)
        if room is not None and not self.lock.admits(room.kept, token):
            return None, (protocol.CLOSE_FORBIDDEN, f"wrong token for room {name!r}")
        if len(self.clients.rooms(address)) >= self.limits.rooms_per_client:
            return None, (protocol.CLOSE_TOO_MANY_ROOMS,
                          f"too many rooms for one client (limit {self.limits.rooms_per_client})")
        if room is None:
            if len(self.rooms) >= self.limits.max_rooms:
                return None, (protocol.CLOSE_TOO_MANY_ROOMS, f"too many rooms (limit {self.limits.max_rooms})")
            kept = self.lock.lock(name, token)
            if kept is None:
                return None, (protocol.CLOSE_FORBIDDEN, f"token not issued for room {name!r}")
            room = self.rooms[name] = Room(kept)
        if role in room.peers:
            return None, (protocol.CLOSE_ROLE_TAKEN, f"room {name!r} already has a {role}")
        return room, (0, "")

    async def _relay(self, ws: ServerConnection, room: Room, role: str) -> None:
        """Relay checked messages to the other peer; close a peer that breaks the protocol, sends too fast, or
        waits alone longer than ``lonely_timeout_s``."""
        bucket = TokenBucket(self.limits.message_burst, self.limits.message_rate)
        allowed = protocol.RELAYED[role]
        while True:
            wait = self.limits.lonely_timeout_s
            if self._other(room, role) is None:
                wait = room.alone_since + self.limits.lonely_timeout_s - time.monotonic()
            try:
                raw = await asyncio.wait_for(ws.recv(), max(wait, 0.0))
            except TimeoutError:
                if self._other(room, role) is None:
                    await ws.close(protocol.CLOSE_TIMEOUT, f"no peer joined within {self.limits.lonely_timeout_s:g} s")
                    return
                continue
            try:
                if not bucket.take():
                    await ws.close(protocol.CLOSE_RATE_LIMITED, "too many messages")
                    return
                msg = protocol.parse(raw)
                if msg["type"] not in allowed:
                    raise ProtocolError(f"a {role} may not send {msg['type']!r}")
            except ProtocolError as exc:
                log.warning("closing %s: %s", role, exc)
                await ws.close(protocol.CLOSE_BAD_MESSAGE, str(exc)[:120])
                return
            other = self._other(room, role)
            if other is None:
                await ws.send(protocol.dumps("error", reason=f"no peer in the room for {msg['type']!r}"))
            else:
                await self._send_quietly(other, protocol.relayed(msg))

    @staticmethod
    def _other(room: Room, role: str) -> ServerConnection | None:
        return next((ws for r, ws in room.peers.items() if r != role), None)

    @staticmethod
    async def _send_quietly(ws: ServerConnection, text: str) -> None:
        try:
            await ws.send(text)
        except ConnectionClosed:
            pass  # that peer is leaving; its own handler cleans up

    def serve(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> AbstractAsyncContextManager[Server]:
        """The websockets server context (``async with server.serve(host, port) as ws_server``); ``tls`` for
        wss:// on the server itself."""
        return serve(self.handler, host, port, process_request=self.process_request,
                     max_size=protocol.MAX_MESSAGE_BYTES,
                     ssl=tls, close_timeout=CLOSE_TIMEOUT_S)


def tls_context(certfile: str, keyfile: str | None = None) -> ssl.SSLContext:
    """A server TLS context from a certificate chain (PEM) and its private key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    return context


def bound_port(server: Server) -> int:
    """The TCP port a server listens on (useful with port 0)."""
    return server.sockets[0].getsockname()[1]
