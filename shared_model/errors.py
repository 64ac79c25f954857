"""The codec's errors: one root, so that callers can tell the codec's refusals from bugs.

::

    CodecError                        anything this codec raises on purpose about its input
    ├── WireError (ValueError)        a message that does not follow the wire format: dropped, counted malformed
    │   └── WireRefused               another wire version, or a frame before an accepted hello: refused, counted
    ├── CodingError (ValueError)      coded keypoints that do not decode to a valid frame
    ├── MissingReference              a predicted frame whose reference frame this end does not hold (spoiled)
    ├── PictureError (ValueError)     a reference picture sent over the call that cannot be used: refused, counted
    └── ReferenceImageError (ValueError)  a reference folder or image file that cannot be used (names the file)

The builtin in brackets stays a base, so code that expects it keeps working.
"""
from __future__ import annotations

import reprlib
from typing import Any

_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother, _SHOWN.maxlist, _SHOWN.maxdict = 2, 40, 40, 4, 4


def shown(value: Any) -> str:
    """A short repr of a value from the network for an error message: bounded in length and nesting (a plain repr of
    a list nested thousands deep raises RecursionError)."""
    return _SHOWN.repr(value)


class CodecError(Exception):
    """Root of the codec's errors about its input (messages, coded data, pictures, files)."""


class WireError(CodecError, ValueError):
    """Raised when a message does not follow the wire format (dropped and counted as malformed)."""


class WireRefused(WireError):
    """Raised for a message of another wire version, or a frame before an accepted hello (refused and counted)."""


class CodingError(CodecError, ValueError):
    """Raised when coded keypoint data does not decode to a valid frame."""


class MissingReference(CodecError):
    """Raised for a valid frame predicted from a frame this end does not hold (it was lost): dropped, spoiled."""


class PictureError(CodecError, ValueError):
    """Raised when a reference picture sent over the call cannot be used (bad bytes, wrong size, too many)."""


class ReferenceImageError(CodecError, ValueError):
    """Raised when a reference folder or image file cannot be used; the message names the file."""
