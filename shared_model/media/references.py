"""Reference images of the speaker: loading, cropping, and choosing the one that suits a frame best."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from .crop import NoFaceError, crop_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


class ReferenceError(ValueError):
    """A reference folder or image cannot be used; the message names the file."""


def load_reference_images(folder: str | Path, resolution: int) -> list[tuple[str, np.ndarray]]:
    """Every image in ``folder``, face-cropped to ``resolution``: [(file name, RGB uint8)].

    A missing or empty folder, an unreadable file or a picture without a face is an error naming it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ReferenceError(f"reference folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ReferenceError(f"no reference images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    refs = []
    for path in files:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ReferenceError(f"cannot read reference image {path}")
        try:
            refs.append((path.name, crop_image(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), resolution)))
        except NoFaceError as exc:
            raise ReferenceError(f"no face found in reference image {path}") from exc
    return refs


def keypoint_distance(kp_refs: torch.Tensor, str_refs: torch.Tensor, kp: torch.Tensor,
                      strength: torch.Tensor) -> torch.Tensor:
    """Strength-weighted mean distance between each reference's keypoints (..., R, P, 2) and a frame's
    (..., P, 2): (..., R)."""
    w = str_refs * strength.unsqueeze(-2)
    d = (kp_refs - kp.unsqueeze(-3)).norm(dim=-1)
    return (d * w).sum(-1) / w.sum(-1).clamp(min=1e-6)


class ReferencePicker:
    """Per frame, the reference whose keypoints are closest to the frame's, with hysteresis against flicker.

    The current reference is kept unless another one is closer by more than ``margin`` (relative).
    """

    def __init__(self, kp_refs: torch.Tensor, str_refs: torch.Tensor, margin: float = 0.15) -> None:
        self.kp_refs, self.str_refs, self.margin = kp_refs, str_refs, margin
        self.current: int | None = None

    def __call__(self, kp: torch.Tensor, strength: torch.Tensor) -> int:
        d = keypoint_distance(self.kp_refs, self.str_refs, kp, strength)
        best = int(d.argmin())
        if self.current is None or d[best] < (1.0 - self.margin) * d[self.current]:
            self.current = best
        return self.current
