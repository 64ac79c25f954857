"""Reference pictures sent over the call: the sender's outbox and the receiver's inbox (no I/O).

One picture at a time travels on the control channel: a ``Picture`` announcement, then its chunks of
``CHUNK_BYTES`` (each one SCTP DATA chunk, sent only when the sender's budget allows and the channels are idle,
so keypoint messages never wait behind a picture). Once the receiver has decoded and prepared it, it answers
``PictureAck`` listing every sender picture it holds; a picture it cannot use gets ``PictureRefused``. Frames
name a picture only after its ack, so no frame is ever rebuilt from a picture the receiver lacks.

The receiver holds at most ``max_pictures`` (its accept says how many). When that many are held the sender
names the one to drop in the announcement (``replaces``): the held picture it named least recently, which it
stops naming at once. An announcement that would exceed the bound, name an unknown picture or reuse a held id,
and chunks out of order or of the wrong size, are refused.
"""
from __future__ import annotations

import functools
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import PictureError
from .control import CHUNK_BYTES, MAX_PICTURE_BYTES, MAX_PICTURE_ID, MAX_PICTURES, Picture, PictureAck, PictureChunk

F = TypeVar("F", bound=Callable[..., Any])


def _locked(method: F) -> F:
    @functools.wraps(method)
    def wrapper(self: PictureOutbox, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return method(self, *args, **kwargs)
    return wrapper  # type: ignore[return-value]


def picture_messages(picture: int, data: bytes, replaces: int | None = None) -> list[bytes]:
    """The messages that carry one picture: its announcement, then its chunks."""
    announcement = Picture(picture, len(data), replaces)
    return [announcement.encode()] + [PictureChunk(picture, i, data[i * CHUNK_BYTES:(i + 1) * CHUNK_BYTES]).encode()
                                      for i in range(announcement.chunks)]


@dataclass
class _Outgoing:
    id: int
    data: bytes
    replaces: int | None = None
    messages: list[bytes] | None = None  # made when the picture is first due
    sent: int = 0


class PictureOutbox:
    """The sender's side: queues coded pictures, hands out their messages in order, tracks what is held.

    Thread-safe: the frame worker adds pictures and reads what is held, the event loop sends and takes acks.
    """

    def __init__(self, max_pictures: int = MAX_PICTURES) -> None:
        self.lock = threading.Lock()
        self.max_pictures = max_pictures
        self.held: set[int] = set()  # acknowledged by the receiver, and not being replaced
        self.last_named: dict[int, int] = {}  # picture -> the last frame seq that named it
        self._queue: deque[_Outgoing] = deque()
        self._current: _Outgoing | None = None
        self._next_id = 1
        self.sent_bytes = 0
        self.refused = 0

    @_locked
    def add(self, data: bytes) -> int:
        """Queue a coded picture; returns the id frames will name it by once it is acknowledged."""
        if not 0 < len(data) <= MAX_PICTURE_BYTES:
            raise ValueError(f"a picture must be 1 to {MAX_PICTURE_BYTES} bytes, got {len(data)}")
        taken = self.held | {p.id for p in self._queue} | ({self._current.id} if self._current else set())
        while self._next_id in taken:
            self._next_id = self._next_id % MAX_PICTURE_ID + 1
        picture = _Outgoing(self._next_id, data)
        self._next_id = self._next_id % MAX_PICTURE_ID + 1
        self._queue.append(picture)
        return picture.id

    @property
    def busy(self) -> bool:
        """A picture is queued, in transfer or awaiting its ack."""
        with self.lock:
            return self._current is not None or bool(self._queue)

    def usable(self) -> frozenset[int]:
        """The pictures frames may name now: acknowledged and not being replaced."""
        with self.lock:
            return frozenset(self.held)

    @_locked
    def pending(self) -> bytes | None:
        """The next message to send (an announcement or a chunk), or None; ``sent`` commits it."""
        if self._current is None:
            if not self._queue:
                return None
            self._current = self._queue.popleft()
        current = self._current
        if current.messages is None:
            if len(self.held) >= self.max_pictures:
                current.replaces = min(self.held, key=lambda p: self.last_named.get(p, -1))
            current.messages = picture_messages(current.id, current.data, current.replaces)
        return current.messages[current.sent] if current.sent < len(current.messages) else None

    @_locked
    def sent(self, message: bytes) -> None:
        """The message ``pending`` returned went out."""
        current = self._current
        assert current is not None
        self.sent_bytes += len(message)
        if current.sent == 0 and current.replaces is not None:
            self.held.discard(current.replaces)  # frames stop naming it now
        current.sent += 1

    @_locked
    def acknowledged(self, ack: PictureAck) -> None:
        """The receiver's ack: ``ack.id`` is ready, and ``ack.held`` is everything it holds."""
        self.held = set(ack.held)
        current = self._current
        if current is not None and current.id == ack.id:
            self._current = None
        elif current is not None and current.sent and current.replaces is not None:
            self.held.discard(current.replaces)

    @_locked
    def refused_picture(self, picture: int) -> None:
        """The receiver refused ``picture``: stop sending it; frames never name it."""
        self.refused += 1
        self.held.discard(picture)
        if self._current is not None and self._current.id == picture:
            self._current = None

    @_locked
    def named(self, picture: int, seq: int) -> None:
        if picture:
            self.last_named[picture] = seq


@dataclass
class _Incoming:
    announced: Picture
    data: bytearray = field(default_factory=bytearray)
    chunks: int = 0


class PictureInbox:
    """The receiver's side: assembles one picture at a time, and keeps the set of held ids bounded."""

    def __init__(self, max_pictures: int = MAX_PICTURES) -> None:
        self.max_pictures = max_pictures
        self.held: set[int] = set()
        self._incoming: _Incoming | None = None
        self._ready: Picture | None = None  # complete, being decoded and prepared
        self._refused: deque[int] = deque(maxlen=16)  # their late chunks are dropped quietly

    def announce(self, msg: Picture) -> None:
        """A picture will follow; PictureError when it must be refused."""
        if self._incoming is not None or self._ready is not None:
            raise PictureError(f"picture {msg.id} announced while another is in transfer (one at a time)")
        if msg.id in self.held:
            raise PictureError(f"picture {msg.id} is already held")
        if msg.replaces is not None and (msg.replaces not in self.held or msg.replaces == msg.id):
            raise PictureError(f"picture {msg.id} replaces picture {msg.replaces}, which is not held")
        if msg.replaces is None and len(self.held) >= self.max_pictures:
            raise PictureError(f"too many pictures: this receiver holds at most {self.max_pictures}")
        self._incoming = _Incoming(msg)

    def chunk(self, msg: PictureChunk) -> tuple[Picture, bytes] | None:
        """Add a chunk; the announcement and the whole picture once the last chunk is in. PictureError (and the
        transfer dropped) for a chunk out of order or of the wrong size; None for a late chunk of a refused one."""
        incoming = self._incoming
        if incoming is None or incoming.announced.id != msg.id:
            if msg.id in self._refused:
                return None
            raise PictureError(f"chunk of picture {msg.id}, which is not in transfer")
        announced = incoming.announced
        expected = min(CHUNK_BYTES, announced.size - incoming.chunks * CHUNK_BYTES)
        if msg.index != incoming.chunks or len(msg.data) != expected:
            self.drop(msg.id)
            raise PictureError(f"picture {msg.id}: chunk {msg.index} of {len(msg.data)} bytes, expected chunk "
                               f"{incoming.chunks} of {expected}")
        incoming.data += msg.data
        incoming.chunks += 1
        if incoming.chunks < announced.chunks:
            return None
        self._incoming, self._ready = None, announced
        return announced, bytes(incoming.data)

    def hold(self, picture: Picture) -> PictureAck:
        """The picture is ready to render from: hold it (dropping the one it replaces) and acknowledge it."""
        self._ready = None
        if picture.replaces is not None:
            self.held.discard(picture.replaces)
        self.held.add(picture.id)
        return PictureAck(picture.id, tuple(sorted(self.held)))

    def drop(self, picture: int) -> None:
        """Forget a transfer that failed (its later chunks are then dropped quietly)."""
        if self._incoming is not None and self._incoming.announced.id == picture:
            self._incoming = None
        if self._ready is not None and self._ready.id == picture:
            self._ready = None
        self._refused.append(picture)
