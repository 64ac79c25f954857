"""Reading video files with PyAV, with clear errors for files that cannot be read."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import av
import numpy as np


class VideoError(RuntimeError):
    """A video file is missing, unreadable or holds no video frames."""


@contextmanager
def open_video_stream(path: str | Path) -> Iterator[tuple[av.container.InputContainer, av.video.stream.VideoStream]]:
    """The file's container and first video stream; a missing, unreadable or video-less file is a ``VideoError``."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"video file not found: {path}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path} has no video stream")
            yield container, container.streams.video[0]
    except av.FFmpegError as exc:
        raise VideoError(f"cannot read video {path}: {exc}") from exc


def video_fps(path: str | Path) -> float:
    """Frame rate the file declares (25 when it declares none)."""
    with open_video_stream(path) as (_, stream):
        rate = stream.average_rate
    return float(rate) if rate else 25.0


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Yield the frames of a video file as RGB uint8 arrays (H, W, 3)."""
    with open_video_stream(path) as (container, stream):
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="rgb24")


def read_frames(path: str | Path, max_frames: int | None = None, step: int = 1) -> np.ndarray:
    """All frames (or the first ``max_frames``; every ``step``-th one) of a video as an array (T, H, W, 3)."""
    frames = []
    for i, frame in enumerate(iter_frames(path)):
        if i % step:
            continue
        frames.append(frame)
        if max_frames is not None and len(frames) >= max_frames:
            break
    if not frames:
        raise VideoError(f"{path} holds no decodable video frames")
    return np.stack(frames)


def write_video(path: str | Path, frames: np.ndarray | list[np.ndarray], fps: float) -> None:
    """Write RGB uint8 frames to an H.264 mp4 (near-lossless, for inspection)."""
    from fractions import Fraction

    frames = list(frames)
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = w + w % 2, h + h % 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12", "preset": "veryfast"}
        for img in frames:
            if img.shape[0] % 2 or img.shape[1] % 2:
                img = np.pad(img, ((0, img.shape[0] % 2), (0, img.shape[1] % 2), (0, 0)), mode="edge")
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
