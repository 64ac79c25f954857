"""The sender's first reference pictures when it has none given (``--refs``): good frames of its first second.

A candidate is a frame's face crop, exactly the picture the keypoints are computed from (the receiver gets
that picture). Each is checked on three things:

* **frontal**: OpenCV's frontal-face cascade finds the face again in the crop, its centre within 10 % of the
  crop's side from the middle;
* **eyes open**: the eye cascade (which finds open eyes, not closed ones) finds an eye in each half of the upper
  part of that face;
* **sharp**: the variance of its Laplacian.

When ``window_s`` seconds of candidates are in (the first frame with a face starts the window), the candidates
passing the most of the first two checks are kept, and of those the sharper half (at least as many as pictures
are wanted, topped up from the next best when there are too few); the sharpest of these is the first picture,
and each next one is the candidate whose keypoints are farthest from those already chosen (so two pictures cover
two poses or mouth shapes when the first second has them).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from shared_model.media.crop import detect_face
from shared_model.media.references import keypoint_gap

#: Seconds of candidates the first pictures are chosen from.
WINDOW_S = 1.0
_eyes: cv2.CascadeClassifier | None = None


def _eye_detector() -> cv2.CascadeClassifier:
    global _eyes
    if _eyes is None:
        _eyes = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_eye.xml")
        if _eyes.empty():
            raise RuntimeError("cannot load OpenCV's eye detector")
    return _eyes


def sharpness(image: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def checks_passed(crop: np.ndarray) -> int:
    """How many of "frontal" and "eyes open" a face crop passes (0, 1 or 2)."""
    face = detect_face(crop)
    if face is None:
        return 0
    cx, cy, side = face
    frontal = abs(cx / crop.shape[1] - 0.5) <= 0.1
    x0, y0 = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
    grey = cv2.equalizeHist(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY))
    upper = grey[y0 : int(cy + 0.05 * side), x0 : int(cx + side / 2)]
    eyes = _eye_detector().detectMultiScale(upper, 1.1, 5, minSize=(max(8, int(side / 8)),) * 2)
    centres = [x + w / 2 for x, _, w, _ in eyes]
    open_eyes = any(c < side / 2 for c in centres) and any(c >= side / 2 for c in centres)
    return int(frontal) + int(open_eyes)


@dataclass(frozen=True)
class Candidate:
    picture: np.ndarray  # the face crop, uint8 RGB at the model's resolution
    kp: np.ndarray  # its keypoints (P, 2) and strengths (P,)
    strength: np.ndarray
    passed: int
    sharpness: float


def choose(candidates: list[Candidate], count: int) -> list[Candidate]:
    """The ``count`` pictures the rule above picks (fewer if there are fewer candidates)."""
    ranked = sorted(candidates, key=lambda c: (-c.passed, -c.sharpness))
    top = sum(c.passed == ranked[0].passed for c in ranked)
    kept = ranked[:max(count, (top + 1) // 2)]
    chosen = [kept[0]]
    while len(chosen) < min(count, len(kept)):
        rest = [c for c in kept if not any(c is o for o in chosen)]
        far = [min(keypoint_gap(c.kp, c.strength, o.kp, o.strength) for o in chosen) for c in rest]
        chosen.append(rest[int(np.argmax(far))])
    return chosen


class StartPictures:
    """Collects candidates over the first ``window_s`` seconds with a face, then hands out the chosen ones."""

    def __init__(self, count: int, window_s: float = WINDOW_S) -> None:
        self.count, self.window_s = count, window_s
        self.candidates: list[Candidate] = []
        self._start: float | None = None
        self.done = count == 0

    def offer(self, crop: np.ndarray, kp: np.ndarray, strength: np.ndarray, now_s: float) -> list[Candidate]:
        """Take a frame's crop; returns the chosen pictures once, when the window closes, else []."""
        if self.done:
            return []
        if self._start is None:
            self._start = now_s
        self.candidates.append(Candidate(crop, kp, strength, checks_passed(crop), sharpness(crop)))
        if now_s - self._start < self.window_s:
            return []
        self.done = True
        chosen, self.candidates = choose(self.candidates, self.count), []
        return chosen
