"""Room tokens: the secret both peers of a call hold, without which nobody enters their room.

Two ways to run the server (docs/call.md, threat model):

* without a key (default), **the first joiner sets the room's token**: the server keeps its SHA-256 and
  admits a second peer only with the same token, so a stranger who knows the room name cannot join, replace a
  peer or read the SDP. Share the token with the other peer as you share the room name.
* with ``--key-file``, **the operator issues tokens**: a room's token is ``HMAC-SHA256(key, room)`` (22
  URL-safe characters), so only holders of an issued token can open a room at all, and strangers cannot take
  room slots.

``python -m signaling.tokens`` prints a fresh random token; ``--key-file K --room NAME`` the token the server
with key K expects for that room.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import secrets
from pathlib import Path

#: A key file must hold at least this many bytes.
MIN_KEY_BYTES = 16


def new_token() -> str:
    """A fresh random room token (128 bits, 22 URL-safe characters)."""
    return secrets.token_urlsafe(16)


def room_token(key: bytes, room: str) -> str:
    """The token an operator with ``key`` issues for ``room``."""
    digest = hmac.new(key, b"keypoint-codec room\0" + room.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


def read_key(path: str | Path) -> bytes:
    """The server key from a file (ValueError when it is too short to be a secret)."""
    key = Path(path).read_bytes().strip()
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"{path}: a key file holds at least {MIN_KEY_BYTES} bytes of secret, got {len(key)}")
    return key


class RoomLock:
    """Decides who may enter a room: the holder of the room's token (set by the first joiner, or issued)."""

    def __init__(self, key: bytes | None = None) -> None:
        self.key = key

    def lock(self, room: str, token: str | None) -> bytes | None:
        """What a new room keeps to check later joiners, or None when ``token`` may not open ``room``. Without
        a key, a joiner without a token (the browser page, which sends none yet) opens an *open* room, which
        only joiners without a token may enter."""
        if self.key is not None and not (token and hmac.compare_digest(token, room_token(self.key, room))):
            return None
        return _digest(token)

    @staticmethod
    def admits(kept: bytes, token: str | None) -> bool:
        """Whether ``token`` opens a room that kept ``kept``."""
        return hmac.compare_digest(kept, _digest(token))


def _digest(token: str | None) -> bytes:
    return hashlib.sha256(token.encode()).digest() if token is not None else b"open room"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m signaling.tokens", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--key-file", help="the server's key: print the token it issues for --room")
    ap.add_argument("--room", help="room name (with --key-file)")
    args = ap.parse_args(argv)
    if args.key_file:
        if not args.room:
            ap.error("--key-file needs --room")
        print(room_token(read_key(args.key_file), args.room))
    else:
        print(new_token())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
