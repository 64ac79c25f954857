"""Reference pictures on the wire: one AV1 intra frame each (PyAV: SVT-AV1 encodes, dav1d decodes).

Why AV1 and not WebP, AVIF or JPEG: on face crops at 256 px it takes the fewest bytes for the same PSNR
(34 dB: 1.3 KB, against 1.6 KB as AVIF, 1.9 KB as WebP and 3.8 KB as JPEG; ``python -m experiments pictures``,
docs/wire-format.md). AVIF is the same AV1 bitstream inside a HEIF container whose ~275 bytes of boxes say what
the hello already fixes (size, 8-bit 4:2:0), so the raw stream (OBUs, as the encoder writes them) is sent.

Decoding is strict: the decoder refuses a picture larger than the agreed size before it allocates anything for
it (``max_pixels``), and anything but one ``resolution`` x ``resolution`` frame is a ``PictureError``.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction

import av
import numpy as np

from ..errors import PictureError

#: The codec name both ends agree on in the hello.
PICTURE_CODEC = "av1"
#: SVT-AV1 constant rate factor (0-63, lower is better): about 33 dB and 1 KB on 256 px face crops; the
#: generator rebuilds frames from it within 0.25 dB of crf 35 at 43 % of the bytes (docs/wire-format.md).
DEFAULT_CRF = 50
#: The best crf a first picture may take when the budget allows (``encode_within``): it is sent once and most
#: of a calm call is rebuilt from it; below 35 the rebuilt frames gain little for many more bytes (docs/call.md).
BEST_CRF = 35
#: SVT-AV1 speed preset: 6 is within 5 % of the bytes of the slow presets, at about 20 ms a picture.
PRESET = 6

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints a banner per encoder on stderr otherwise


def encode_picture(image: np.ndarray, crf: int = DEFAULT_CRF) -> bytes:
    """An RGB uint8 picture (S, S, 3) as one AV1 intra frame (4:2:0, 8 bit)."""
    if not 0 <= crf <= 63:
        raise ValueError(f"crf must be in [0, 63], got {crf}")
    height, width = image.shape[:2]
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24").reformat(format="yuv420p")
    with _scheduling_kept():
        enc = av.CodecContext.create("libsvtav1", "w")
        enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
        enc.time_base = Fraction(1, 25)
        enc.options = {"crf": str(crf), "preset": str(PRESET)}
        return b"".join(bytes(p) for p in [*enc.encode(frame), *enc.encode(None)])


def encode_within(image: np.ndarray, max_bytes: int, worst_crf: int = DEFAULT_CRF) -> bytes:
    """The picture at the best crf of BEST_CRF, BEST_CRF + 5, ... whose bytes fit ``max_bytes``, else at
    ``worst_crf`` whatever its size (at most four encodes of about 20 ms)."""
    for crf in range(min(BEST_CRF, worst_crf), worst_crf, 5):
        data = encode_picture(image, crf)
        if len(data) <= max_bytes:
            return data
    return encode_picture(image, worst_crf)


@contextmanager
def _scheduling_kept() -> Iterator[None]:
    """Undo what SVT-AV1 does to the calling thread when it runs as root: it switches it to real-time scheduling
    (SCHED_FIFO, priority 99), which every process started from it then inherits. A sender (or a test run) as root
    became a real-time process, and a headless Chromium started after it spun two real-time renderer threads that
    starved everything else on a 2-core machine."""
    if not hasattr(os, "sched_getscheduler"):  # not Linux
        yield
        return
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        yield
    finally:
        if (os.sched_getscheduler(0), os.sched_getparam(0)) != (policy, param):
            os.sched_setscheduler(0, policy, param)


def decode_picture(data: bytes, resolution: int) -> np.ndarray:
    """The RGB uint8 picture (resolution, resolution, 3); PictureError for anything else.

    The decoder and its frames live and die in ``_decode_av1``, on the caller's thread, with one dav1d thread; no
    reference to them leaves with an error (a PictureError raised in the receiver's render thread is freed on the
    event loop's: a dav1d context freed there, mid-error, deadlocked in dav1d_flush under the fuzzer).
    """
    problem = None
    try:
        images = _decode_av1(data, resolution)
    except (av.FFmpegError, ValueError) as exc:
        problem = str(exc)
    if problem is not None:
        raise PictureError(f"picture does not decode as AV1: {problem}")
    if len(images) != 1:
        raise PictureError(f"picture holds {len(images)} frames, not 1")
    height, width = images[0].shape[:2]
    if (width, height) != (resolution, resolution):
        raise PictureError(f"picture is {width}x{height}, not {resolution}x{resolution}")
    return images[0]


def _decode_av1(data: bytes, resolution: int) -> list[np.ndarray]:
    """Every frame of ``data`` as RGB (at most ``resolution``² pixels each, dav1d refuses larger ones)."""
    dec = av.CodecContext.create("libdav1d", "r")
    dec.thread_count = 1
    dec.options = {"max_pixels": str(resolution * resolution)}
    return [f.to_ndarray(format="rgb24") for f in [*dec.decode(av.Packet(data)), *dec.decode(None)]]
