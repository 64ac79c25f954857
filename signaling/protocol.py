"""The signaling protocol: JSON messages over one websocket per peer, and the close codes of a refusal.

A peer opens with ``{"type": "join", "room": NAME, "role": "sender"|"receiver"}`` and is answered
``{"type": "joined", "room", "role", "peer": bool}``; the other peer of the room then gets
``{"type": "peer-joined", "role"}`` (and ``{"type": "peer-left", "role"}`` when it goes). The sender is the
offerer: ``offer`` (sender) and ``answer`` (receiver) carry a full SDP (non-trickle ICE: aiortc puts every
candidate in the description), ``bye`` (either) ends the call. These three are relayed verbatim.
"""
from __future__ import annotations

import json
import re
from typing import Any

ROLES = ("sender", "receiver")
#: Which message types each role may send after joining (relayed to the other peer).
RELAYED = {"sender": frozenset({"offer", "bye"}), "receiver": frozenset({"answer", "bye"})}
#: Largest websocket message either side accepts: SDP with every candidate is a few KB.
MAX_MESSAGE_BYTES = 64 * 1024
ROOM_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")

#: Close codes (application range 4000-4999) sent with a reason text.
CLOSE_BAD_MESSAGE = 4400
CLOSE_ROLE_TAKEN = 4409
CLOSE_TOO_MANY_ROOMS = 4429
CLOSE_JOIN_TIMEOUT = 4408


class ProtocolError(ValueError):
    """A signaling message that breaks the protocol."""


def parse(raw: str | bytes) -> dict[str, Any]:
    """A JSON object with a string ``type``, or ProtocolError."""
    if not isinstance(raw, str):
        raise ProtocolError("signaling messages are JSON text, got a binary message")
    try:
        msg = json.loads(raw)
    except ValueError as exc:
        raise ProtocolError(f"not JSON: {exc}") from exc
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise ProtocolError("a signaling message is a JSON object with a string 'type'")
    return msg


def parse_join(raw: str | bytes) -> tuple[str, str]:
    """(room, role) of a join message."""
    msg = parse(raw)
    if msg["type"] != "join":
        raise ProtocolError(f"expected a join message first, got {msg['type']!r}")
    room, role = msg.get("room"), msg.get("role")
    if not isinstance(room, str) or not ROOM_PATTERN.fullmatch(room):
        raise ProtocolError("room must be 1-64 characters of A-Z a-z 0-9 _ . -")
    if role not in ROLES:
        raise ProtocolError(f"role must be one of {ROLES}")
    return room, role


def dumps(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **fields})
