"""Reference images of the speaker: loading, cropping, and choosing the one that suits a frame best."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from ..errors import ReferenceImageError
from .crop import NoFaceError, crop_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
#: A personal generator inside a reference folder (written by ``shared_model.enrol``; the receiver renders with it).
GENERATOR_FILE = "generator.pt"


def enrolled_generator(folder: str | Path) -> Path | None:
    """The personal generator in a reference folder, if it holds one."""
    path = Path(folder) / GENERATOR_FILE
    return path if path.is_file() else None


def load_reference_images(folder: str | Path, resolution: int) -> list[tuple[str, np.ndarray]]:
    """Every image in ``folder``, face-cropped to ``resolution``: [(file name, RGB uint8)].

    A missing or empty folder, an unreadable file or a picture without a face is an error naming it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ReferenceImageError(f"reference folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ReferenceImageError(f"no reference images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    refs = []
    for path in files:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ReferenceImageError(f"cannot read reference image {path}")
        try:
            refs.append((path.name, crop_image(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), resolution)))
        except NoFaceError as exc:
            raise ReferenceImageError(f"no face found in reference image {path}") from exc
    return refs


def keypoint_distance(kp_refs: torch.Tensor, str_refs: torch.Tensor, kp: torch.Tensor,
                      strength: torch.Tensor) -> torch.Tensor:
    """Strength-weighted mean distance between each reference's keypoints (..., R, P, 2) and a frame's
    (..., P, 2): (..., R)."""
    w = str_refs * strength.unsqueeze(-2)
    d = (kp_refs - kp.unsqueeze(-3)).norm(dim=-1)
    return (d * w).sum(-1) / w.sum(-1).clamp(min=1e-6)


def keypoint_gap(kp_a: np.ndarray, st_a: np.ndarray, kp_b: np.ndarray, st_b: np.ndarray) -> float:
    """Strength-weighted mean distance between two frames' keypoints (P, 2) (numpy), in crop units ([-1, 1])."""
    d = keypoint_distance(torch.from_numpy(np.asarray(kp_a, np.float32))[None],
                          torch.from_numpy(np.asarray(st_a, np.float32))[None],
                          torch.from_numpy(np.asarray(kp_b, np.float32)),
                          torch.from_numpy(np.asarray(st_b, np.float32)))
    return float(d[0])


class ReferencePicker:
    """Per frame, the reference whose keypoints are closest to the frame's, with hysteresis against flicker.

    The current reference is kept unless another one is closer by more than ``margin`` (relative).
    ``distances`` holds the last frame's distance to every reference.
    """

    def __init__(self, kp_refs: torch.Tensor, str_refs: torch.Tensor, margin: float = 0.15) -> None:
        self.kp_refs, self.str_refs, self.margin = kp_refs, str_refs, margin
        self.current: int | None = None
        self.distances = torch.zeros(len(kp_refs))

    def __call__(self, kp: torch.Tensor, strength: torch.Tensor) -> int:
        device = self.kp_refs.device
        d = self.distances = keypoint_distance(self.kp_refs, self.str_refs, kp.to(device), strength.to(device))
        best = int(d.argmin())
        if self.current is None or d[best] < (1.0 - self.margin) * d[self.current]:
            self.current = best
        return self.current
