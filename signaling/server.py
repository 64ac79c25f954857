"""The signaling server: pairs one sender and one receiver per room and relays offer / answer / bye."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from . import protocol
from .protocol import ProtocolError

log = logging.getLogger(__name__)

JOIN_TIMEOUT_S = 10.0
#: A ``process_request`` hook answering plain HTTP requests (``signaling.static.WebApp``), or None to pass.
HttpHook = Callable[[ServerConnection, Request], Response | None]


@dataclass
class Room:
    peers: dict[str, ServerConnection] = field(default_factory=dict)


class SignalingServer:
    """Room bookkeeping and the websocket handler (one argument, current ``websockets.asyncio`` API)."""

    def __init__(self, max_rooms: int = 100, web: HttpHook | None = None) -> None:
        self.max_rooms = max_rooms
        self.web = web
        self.rooms: dict[str, Room] = {}

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
        try:
            raw = await asyncio.wait_for(ws.recv(), JOIN_TIMEOUT_S)
        except TimeoutError:
            await ws.close(protocol.CLOSE_JOIN_TIMEOUT, "no join message in time")
            return
        except ConnectionClosed:
            return
        try:
            room_name, role = protocol.parse_join(raw)
        except ProtocolError as exc:
            await ws.close(protocol.CLOSE_BAD_MESSAGE, str(exc))
            return
        room = self.rooms.get(room_name)
        if room is None:
            if len(self.rooms) >= self.max_rooms:
                log.warning("refused %s for room %r: %d rooms open", role, room_name, len(self.rooms))
                await ws.close(protocol.CLOSE_TOO_MANY_ROOMS, f"too many rooms (limit {self.max_rooms})")
                return
            room = self.rooms[room_name] = Room()
        if role in room.peers:
            log.warning("refused a second %s for room %r", role, room_name)
            await ws.close(protocol.CLOSE_ROLE_TAKEN, f"room {room_name!r} already has a {role}")
            return
        room.peers[role] = ws
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
            log.info("%s left room %r", role, room_name)
            other = self._other(room, role)
            if other is None:
                del self.rooms[room_name]
            else:
                await self._send_quietly(other, protocol.dumps("peer-left", role=role))

    async def _relay(self, ws: ServerConnection, room: Room, role: str) -> None:
        async for raw in ws:
            try:
                msg = protocol.parse(raw)
                if msg["type"] not in protocol.RELAYED[role]:
                    raise ProtocolError(f"a {role} may not send {msg['type']!r}")
            except ProtocolError as exc:
                log.warning("closing %s: %s", role, exc)
                await ws.close(protocol.CLOSE_BAD_MESSAGE, str(exc)[:120])
                return
            other = self._other(room, role)
            if other is None:
                await ws.send(protocol.dumps("error", reason=f"no peer in the room for {msg['type']!r}"))
            else:
                await self._send_quietly(other, raw)

    @staticmethod
    def _other(room: Room, role: str) -> ServerConnection | None:
        return next((ws for r, ws in room.peers.items() if r != role), None)

    @staticmethod
    async def _send_quietly(ws: ServerConnection, text: str) -> None:
        try:
            await ws.send(text)
        except ConnectionClosed:
            pass  # that peer is leaving; its own handler cleans up

    def serve(self, host: str, port: int) -> serve:
        """The websockets server context (``async with server.serve(host, port) as ws_server``)."""
        return serve(self.handler, host, port, process_request=self.process_request,
                     max_size=protocol.MAX_MESSAGE_BYTES)


def bound_port(server: Server) -> int:
    """The TCP port a server listens on (useful with port 0)."""
    return server.sockets[0].getsockname()[1]
