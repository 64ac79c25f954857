"""The call recording file (``sender --output``, ``receiver --input``): the messages of a call, in order.

Each record is one byte of kind (``C`` control, ``F`` frame: a wire-format message of either kind), a 4-byte
big-endian length, then the payload. The first record is the sender's hello, the last its bye.
"""
from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Self

from ..errors import WireError
from .control import MAX_CONTROL_BYTES
from .messages import MAX_FRAME_BYTES

CONTROL, FRAME = b"C", b"F"
_HEADER = struct.Struct(">cI")
_LIMITS = {CONTROL: MAX_CONTROL_BYTES, FRAME: MAX_FRAME_BYTES}


class RecordWriter:
    """Append control and frame records to a file."""

    def __init__(self, path: str | Path) -> None:
        self._file: BinaryIO = open(path, "wb")

    def control(self, data: bytes) -> None:
        self._write(CONTROL, data)

    def frame(self, data: bytes) -> None:
        self._write(FRAME, data)

    def _write(self, kind: bytes, payload: bytes) -> None:
        self._file.write(_HEADER.pack(kind, len(payload)) + payload)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_records(path: str | Path) -> Iterator[tuple[bytes, bytes]]:
    """Yield (kind, payload). A damaged file is a WireError; the payloads are checked by their decoders."""
    with open(path, "rb") as f:
        while header := f.read(_HEADER.size):
            if len(header) < _HEADER.size:
                raise WireError(f"{path}: truncated record header")
            kind, length = _HEADER.unpack(header)
            if kind not in _LIMITS or length > _LIMITS[kind]:
                raise WireError(f"{path}: bad record (kind {kind!r}, {length} bytes)")
            payload = f.read(length)
            if len(payload) < length:
                raise WireError(f"{path}: truncated record")
            yield kind, payload
