"""The one face-crop step used for training data, reference images and the live sender.

A square around the face found by OpenCV's bundled Haar cascade, enlarged by a fixed margin, shifted and
shrunk (never padded) to stay inside the frame, then resized to the model resolution.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

log = logging.getLogger(__name__)

#: Crop side as a multiple of the detected face box side.
MARGIN = 1.9
#: The crop centre sits this fraction of the face box side above the box centre (keeps the hair in).
LIFT = 0.1


class NoFaceError(ValueError):
    """No face was found where one was required."""


@dataclass(frozen=True)
class Crop:
    """A square crop in pixel coordinates of the original frame."""

    x: int
    y: int
    size: int

    def apply(self, frame: np.ndarray, resolution: int) -> np.ndarray:
        """Cut this crop out of an RGB frame and resize it to ``resolution`` square."""
        patch = frame[self.y : self.y + self.size, self.x : self.x + self.size]
        interp = cv2.INTER_AREA if self.size >= resolution else cv2.INTER_CUBIC
        return cv2.resize(patch, (resolution, resolution), interpolation=interp)

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.size]


_cascade: cv2.CascadeClassifier | None = None


def _detector() -> cv2.CascadeClassifier:
    global _cascade
    if _cascade is None:
        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        _cascade = cv2.CascadeClassifier(path)
        if _cascade.empty():
            raise RuntimeError(f"cannot load the face detector {path}")
    return _cascade


def detect_face(frame: np.ndarray) -> tuple[float, float, float] | None:
    """Centre x, centre y and side of the largest face in an RGB frame, or None."""
    h, w = frame.shape[:2]
    return _largest_face(frame, max(24, min(h, w) // 8))


def _largest_face(frame: np.ndarray, min_side: int, max_side: int | None = None) -> tuple[float, float, float] | None:
    """Centre x, centre y and side of the largest face of a side in [min_side, max_side] in an RGB image."""
    gray = cv2.equalizeHist(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))
    faces = _detector().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_side,) * 2,
                                         maxSize=(max_side or 0,) * 2)
    if len(faces) == 0:
        return None
    x, y, fw, fh = max(faces, key=lambda f: f[2] * f[3])
    return x + fw / 2.0, y + fh / 2.0, float(max(fw, fh))


#: Tracking: a face already found is looked for again in a window this many face sides wide around it, scaled
#: so that the face is about ``TRACK_FACE_PX`` pixels: a few scales of a small image instead of the whole frame.
TRACK_WINDOW = 2.5
TRACK_FACE_PX = 64


def detect_face_near(frame: np.ndarray, face: tuple[float, float, float]) -> tuple[float, float, float] | None:
    """``detect_face`` in a window around ``face`` (centre x, centre y, side), or None when it is not there.

    The window is scaled so the face is about ``TRACK_FACE_PX`` pixels, and only faces from half to twice that
    size are looked for: far cheaper than searching the whole frame at every scale.
    """
    cx, cy, side = face
    h, w = frame.shape[:2]
    half = TRACK_WINDOW * side / 2.0
    x0, y0 = int(max(cx - half, 0)), int(max(cy - half, 0))
    x1, y1 = int(min(cx + half, w)), int(min(cy + half, h))
    if x1 - x0 < side or y1 - y0 < side:
        return None
    scale = min(1.0, TRACK_FACE_PX / side)
    window = frame[y0:y1, x0:x1]
    if scale < 1.0:
        window = cv2.resize(window, (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))),
                            interpolation=cv2.INTER_AREA)
    size = side * scale
    found = _largest_face(window, int(size / 2), int(size * 2) + 1)
    if found is None:
        return None
    x, y, found_side = found
    return x0 + x / scale, y0 + y / scale, found_side / scale


def crop_from_face(face: tuple[float, float, float], frame_shape: tuple[int, ...]) -> Crop:
    """The square crop for a detected face, kept inside the frame."""
    cx, cy, side = face
    h, w = frame_shape[:2]
    size = int(round(min(side * MARGIN, h, w)))
    cy = cy - LIFT * side
    x = int(round(min(max(cx - size / 2.0, 0), w - size)))
    y = int(round(min(max(cy - size / 2.0, 0), h - size)))
    return Crop(x, y, size)


def clip_crop(frames: np.ndarray | list[np.ndarray], samples: int = 9) -> Crop:
    """One fixed crop for a whole clip: the median face over evenly spaced frames."""
    n = len(frames)
    idx = np.unique(np.linspace(0, n - 1, min(samples, n)).round().astype(int))
    faces = [f for f in (detect_face(frames[i]) for i in idx) if f is not None]
    if not faces:
        raise NoFaceError(f"no face found in {len(idx)} sampled frames")
    return crop_from_face(tuple(np.median(np.array(faces), axis=0)), frames[0].shape)


def crop_image(image: np.ndarray, resolution: int) -> np.ndarray:
    """Crop a single still image (a reference picture) around its face."""
    face = detect_face(image)
    if face is None:
        raise NoFaceError("no face found in the image")
    return crop_from_face(face, image.shape).apply(image, resolution)


class StreamCropper:
    """Crop for a live stream: chosen on the first face, smoothed, and moved only on a large drift.

    Detection runs every ``every`` frames, first near the face it follows (``detect_face_near``), on the whole
    frame when the face is not there. The crop is re-centred when the face centre drifts more than
    ``drift`` of the crop side or its size changes more than ``drift``; the move is eased over a few frames
    (exponential smoothing) so the picture never jumps.
    """

    def __init__(self, resolution: int, every: int = 5, drift: float = 0.15, ease: float = 0.3) -> None:
        self.resolution = resolution
        self.every = every
        self.drift = drift
        self.ease = ease
        self._target: np.ndarray | None = None  # cx, cy, side of the face the crop follows
        self._current: np.ndarray | None = None
        self._count = 0
        self.frames_without_face = 0

    @property
    def crop(self) -> Crop | None:
        return None if self._current is None else self._crop_for(self._current)

    def _crop_for(self, face: np.ndarray) -> Crop:
        return crop_from_face(tuple(face), self._shape)

    def __call__(self, frame: np.ndarray) -> np.ndarray | None:
        """The cropped frame at model resolution, or None while no face has been seen yet."""
        self._shape = frame.shape
        if self._current is None or self._count % self.every == 0:
            face = None if self._target is None else detect_face_near(frame, tuple(self._target))
            if face is None:
                face = detect_face(frame)
            if face is None:
                self.frames_without_face += 1
                if self._current is None:
                    if self.frames_without_face == 1 or self.frames_without_face % 100 == 0:
                        log.warning("no face in frame (%d so far); frame skipped", self.frames_without_face)
                    return None
            else:
                face = np.array(face)
                if self._target is None:
                    self._target = self._current = face
                else:
                    moved = np.abs(face[:2] - self._target[:2]).max() > self.drift * self._target[2]
                    grown = abs(face[2] / self._target[2] - 1.0) > self.drift
                    if moved or grown:
                        log.info("face moved; re-centring the crop")
                        self._target = face
        self._count += 1
        self._current = self._current + self.ease * (self._target - self._current)
        return self._crop_for(self._current).apply(frame, self.resolution)
