"""The signaling protocol: JSON messages over one websocket per peer, their schemas, and the close codes.

A peer opens with ``{"type": "join", "room": NAME, "role": "sender"|"receiver", "token": SECRET}`` and is
answered ``{"type": "joined", "room", "role", "peer": bool}``; the other peer of the room then gets
``{"type": "peer-joined", "role"}`` (and ``{"type": "peer-left", "role"}`` when it goes). The sender is the
offerer: ``offer`` (sender) and ``answer`` (receiver) carry a full SDP (non-trickle ICE: aiortc puts every
candidate in the description), ``bye`` (either) ends the call. The server relays these three, re-written from
their checked fields.

Every message is checked against its schema (``SCHEMAS``: the fields, their types, their longest text) where
it arrives, on the server and on the peers; anything else is a ``ProtocolError``, never another exception.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

ROLES = ("sender", "receiver")
#: Which message types each role may send after joining (relayed to the other peer).
RELAYED = {"sender": frozenset({"offer", "bye"}), "receiver": frozenset({"answer", "bye"})}
#: Largest websocket message either side accepts: SDP with every candidate is a few KB.
MAX_MESSAGE_BYTES = 64 * 1024
ROOM_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: A room token: at least 16 URL-safe characters (``python -m signaling.tokens`` makes 22: 128 bits).
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,128}")
MAX_REASON_CHARS = 200

#: Close codes (application range 4000-4999) sent with a reason text.
CLOSE_BAD_MESSAGE = 4400
CLOSE_FORBIDDEN = 4403
CLOSE_TIMEOUT = 4408
CLOSE_ROLE_TAKEN = 4409
CLOSE_RATE_LIMITED = 4420
CLOSE_TOO_MANY_ROOMS = 4429


class ProtocolError(ValueError):
    """A signaling message that breaks the protocol."""


@dataclass(frozen=True)
class Field:
    """One field of a message: its type, the longest text it may hold, and whether it must be there."""

    kind: type
    max_chars: int = 0
    required: bool = True


_ROLE = Field(str, 8)
_SDP = Field(str, MAX_MESSAGE_BYTES)
_REASON = Field(str, MAX_REASON_CHARS)

#: Every message type and its fields (besides ``type``); a message with other fields is refused.
SCHEMAS: dict[str, dict[str, Field]] = {
    "join": {"room": Field(str, 64), "role": _ROLE, "token": Field(str, 128, required=False)},
    "joined": {"room": Field(str, 64), "role": _ROLE, "peer": Field(bool)},
    "peer-joined": {"role": _ROLE},
    "peer-left": {"role": _ROLE},
    "offer": {"sdp": _SDP},
    "answer": {"sdp": _SDP},
    "bye": {"reason": Field(str, MAX_REASON_CHARS, required=False)},
    "error": {"reason": _REASON},
}


def parse(raw: str | bytes, kinds: frozenset[str] | None = None) -> dict[str, Any]:
    """A message that fits its schema (and, with ``kinds``, is one of them), or ProtocolError."""
    if not isinstance(raw, str):
        raise ProtocolError("signaling messages are JSON text, got a binary message")
    try:
        msg = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested thousands deep
        raise ProtocolError(f"not JSON: {str(exc)[:80]}") from exc
    kind = msg.get("type") if isinstance(msg, dict) else None
    if not isinstance(kind, str) or kind not in SCHEMAS:
        raise ProtocolError("a signaling message is a JSON object with a known string 'type'")
    if kinds is not None and kind not in kinds:
        raise ProtocolError(f"expected {' or '.join(sorted(kinds))}, got {kind!r}")
    _check_fields(kind, msg)
    return msg


def _check_fields(kind: str, msg: dict[str, Any]) -> None:
    schema = SCHEMAS[kind]
    if extra := set(msg) - set(schema) - {"type"}:
        raise ProtocolError(f"{kind}: unknown fields {sorted(extra)[:4]}")
    for name, spec in schema.items():
        if name not in msg:
            if spec.required:
                raise ProtocolError(f"{kind}: missing {name!r}")
            continue
        value = msg[name]
        if type(value) is not spec.kind:
            raise ProtocolError(f"{kind}: {name!r} must be {spec.kind.__name__}, got {type(value).__name__}")
        if isinstance(value, str) and len(value) > spec.max_chars:
            raise ProtocolError(f"{kind}: {name!r} longer than {spec.max_chars} characters")
    if "role" in msg and msg["role"] not in ROLES:
        raise ProtocolError(f"role must be one of {ROLES}")
    if "sdp" in msg and not msg["sdp"].startswith("v=0"):
        raise ProtocolError(f"{kind}: an SDP starts with 'v=0'")


def parse_join(raw: str | bytes) -> tuple[str, str, str | None]:
    """(room, role, token) of a join message; the token is None for a joiner without one (the browser page)."""
    msg = parse(raw)
    if msg["type"] != "join":
        raise ProtocolError(f"expected a join message first, got {msg['type']!r}")
    if not ROOM_PATTERN.fullmatch(msg["room"]):
        raise ProtocolError("room must be 1-64 characters of A-Z a-z 0-9 _ . -")
    if "token" in msg and not TOKEN_PATTERN.fullmatch(msg["token"]):
        raise ProtocolError("token must be 16-128 characters of A-Z a-z 0-9 _ - (python -m signaling.tokens)")
    return msg["room"], msg["role"], msg.get("token")


def relayed(msg: dict[str, Any]) -> str:
    """A checked message re-written for the other peer: only its schema's fields travel on."""
    return dumps(msg["type"], **{k: v for k, v in msg.items() if k in SCHEMAS[msg["type"]]})


def dumps(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **fields})
