"""Frame sources for the sender: a video file played at its own pace (as a camera would) or a camera.

Both yield ``Captured`` frames numbered in capture order; ``--fps N`` keeps at most N frames a second.
Frame sequence numbers count the frames kept, so a receiver sees every later gap as a lost frame.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from shared_model.media.video import VideoError, iter_frames, video_fps

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Captured:
    seq: int
    capture_ns: int  # wall clock (time.time_ns) when the frame was taken
    frame: np.ndarray  # RGB uint8 (H, W, 3)


class FrameSource(Protocol):
    fps: float  # frames per second after subsampling

    def frames(self, stop: threading.Event) -> Iterator[Captured]: ...


class Subsampler:
    """Keeps a frame when its time reaches the next slot of a ``fps`` grid (all frames when fps is None)."""

    def __init__(self, fps: float | None) -> None:
        self.step = 1.0 / fps if fps else 0.0
        self.next_due = 0.0

    def keep(self, t: float) -> bool:
        if t + 1e-6 < self.next_due:
            return False
        self.next_due = max(self.next_due + self.step, t + self.step / 2) if self.step else t
        return True


def output_fps(native: float, wanted: float | None) -> float:
    if wanted is not None and wanted <= 0:
        raise ValueError("--fps must be positive")
    if wanted and wanted > native:
        log.warning("--fps %.1f is above the source's %.1f fps: sending every frame", wanted, native)
    return min(wanted, native) if wanted else native


class FileSource:
    """A video file. In real time (a call) each frame is released at its own time from the start, like a
    camera; otherwise (``--output``) frames come as fast as they decode, stamped with their media time. With
    ``loop`` the file plays again and again until stopped (long test calls)."""

    def __init__(self, path: str | Path, fps: float | None = None, realtime: bool = True, loop: bool = False) -> None:
        self.path = Path(path)
        self.native_fps = video_fps(self.path)  # VideoError for a missing or unreadable file
        self.fps = output_fps(self.native_fps, fps)
        self.subsampler = Subsampler(fps if fps and fps < self.native_fps else None)
        self.realtime, self.loop = realtime, loop

    def frames(self, stop: threading.Event) -> Iterator[Captured]:
        start_ns, start = time.time_ns(), time.monotonic()
        seq, index = 0, 0  # index: frames of the file played so far, over every pass
        while True:
            for frame in iter_frames(self.path):
                t = index / self.native_fps
                index += 1
                if not self.subsampler.keep(t):
                    continue
                if self.realtime:
                    if stop.wait(max(0.0, start + t - time.monotonic())):
                        return
                    capture_ns = time.time_ns()
                elif stop.is_set():
                    return
                else:
                    capture_ns = start_ns + round(t * 1e9)
                yield Captured(seq, capture_ns, frame)
                seq += 1
            if seq == 0:
                raise VideoError(f"{self.path} holds no decodable video frames")
            if not self.loop:
                return


class CameraSource:
    """An OpenCV camera (``--source 0``), read as fast as it delivers, subsampled to ``fps``."""

    def __init__(self, index: int, fps: float | None = None) -> None:
        self.capture = cv2.VideoCapture(index)
        if not self.capture.isOpened():
            raise VideoError(f"cannot open camera {index}")
        self.capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # no stale frames queued in the driver
        native = self.capture.get(cv2.CAP_PROP_FPS) or 30.0
        self.fps = output_fps(native, fps)
        # Always on the stated rate: a camera that delivers more than it reports would otherwise send frames
        # faster than its hello says, and the receiver drops frames no genuine sender can send.
        self.subsampler = Subsampler(self.fps)
        self.index = index

    def frames(self, stop: threading.Event) -> Iterator[Captured]:
        start, seq = time.monotonic(), 0
        try:
            while not stop.is_set():
                ok, bgr = self.capture.read()
                if not ok:
                    log.error("camera %d delivered no frame: stopping", self.index)
                    return
                if self.subsampler.keep(time.monotonic() - start):
                    yield Captured(seq, time.time_ns(), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                    seq += 1
        finally:
            self.capture.release()


def open_source(spec: str, fps: float | None, realtime: bool = True, loop: bool = False) -> FileSource | CameraSource:
    """``--source``: a camera index (digits) or a video file (``loop``: played again and again)."""
    return CameraSource(int(spec), fps) if spec.isdigit() else FileSource(spec, fps, realtime, loop)
