"""The ordinary codecs on the same face-cropped frames, through PyAV (the FFmpeg libraries in its wheel).

Real-time settings as a video call would use them, constant bitrate, one keyframe at the start and none after
(as aiortc's VP8 does), no B-frames and no lookahead, 4:2:0 chroma:

* ``x264``: libx264, preset medium, ``tune=zerolatency``, VBV ``maxrate = bufsize =`` the target (a 1 s buffer),
  ``nal-hrd=cbr``;
* ``vp8``: libvpx, ``deadline=realtime``, ``cpu-used=4``, CBR (``minrate = maxrate =`` target, 1 s buffer),
  ``lag-in-frames=0``, no frame dropping;
* ``vp9``: libvpx-vp9, the same with ``cpu-used=6`` and ``row-mt``.

The *achieved* rate is what counts: packet bytes, with the first (key)frame's packet reported apart.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

CODECS = {"x264": ("libx264", "h264"), "vp8": ("libvpx", "vp8"), "vp9": ("libvpx-vp9", "vp9")}


@dataclass(frozen=True)
class Encoded:
    frames: np.ndarray  # decoded uint8 RGB (T, H, W, 3)
    sizes: np.ndarray  # bytes of each frame's packet, in frame order


def _options(codec: str, bit_rate: int) -> dict[str, str]:
    rate = str(bit_rate)
    if codec == "x264":
        return {"preset": "medium", "tune": "zerolatency", "maxrate": rate, "bufsize": rate,
                "x264-params": "nal-hrd=cbr:scenecut=0"}
    common = {"deadline": "realtime", "lag-in-frames": "0", "minrate": rate, "maxrate": rate, "bufsize": rate,
              "drop-threshold": "0", "undershoot-pct": "100", "overshoot-pct": "15"}
    return {**common, "cpu-used": "4"} if codec == "vp8" else {**common, "cpu-used": "6", "row-mt": "1"}


def encode_decode(frames: np.ndarray, fps: float, codec: str, bit_rate: int, threads: int = 1) -> Encoded:
    """Encode uint8 RGB frames (T, H, W, 3) at ``bit_rate`` bits per second and decode them again."""
    encoder_name, decoder_name = CODECS[codec]
    rate = Fraction(fps).limit_denominator(1001)
    enc = av.CodecContext.create(encoder_name, "w")
    enc.width, enc.height = frames.shape[2], frames.shape[1]
    enc.pix_fmt = "yuv420p"
    enc.time_base, enc.framerate = 1 / rate, rate
    enc.bit_rate, enc.gop_size, enc.max_b_frames = bit_rate, 100_000, 0
    enc.thread_count = threads
    enc.options = _options(codec, bit_rate)
    packets = []
    for i, image in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        packets += enc.encode(frame)
    packets += enc.encode(None)
    dec = av.CodecContext.create(decoder_name, "r")
    dec.thread_count = threads
    decoded = [f.to_ndarray(format="rgb24") for p in packets for f in dec.decode(p)]
    decoded += [f.to_ndarray(format="rgb24") for f in dec.decode(None)]
    if len(decoded) != len(frames):
        raise RuntimeError(f"{codec}: {len(frames)} frames in, {len(decoded)} out")
    sizes = np.zeros(len(frames), np.int64)
    for p in packets:
        sizes[p.pts] += p.size
    return Encoded(np.stack(decoded), sizes)
