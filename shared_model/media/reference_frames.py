"""Choosing reference pictures from a video of the speaker.

Frames are sampled every 0.2 s and cropped around the face as reference images are (``crop.crop_image``);
frames without a face, crops in which the face is not found again, and blurry crops (below-median sharpness)
are passed over. Then ``count`` crops as different from each other as possible are chosen (farthest-point
sampling on small grey thumbnails, starting from the most typical one) and written as PNGs.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .crop import NoFaceError, crop_image, detect_face
from .video import VideoError, iter_frames, video_fps


def candidate_frames(path: str | Path, max_frames: int = 300, every_s: float = 0.2) -> list[np.ndarray]:
    """Frames every ``every_s`` seconds (at most ``max_frames``), RGB."""
    step = max(1, round(video_fps(path) * every_s))
    frames = []
    for i, frame in enumerate(iter_frames(path)):
        if i % step == 0:
            frames.append(frame)
            if len(frames) >= max_frames:
                break
    if not frames:
        raise VideoError(f"{path} holds no decodable video frames")
    return frames


def sharpness(image: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def thumbnail(image: np.ndarray) -> np.ndarray:
    grey = cv2.resize(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), (24, 24), interpolation=cv2.INTER_AREA)
    v = grey.astype(np.float32).ravel()
    return (v - v.mean()) / (v.std() + 1e-6)


def pick_diverse(images: list[np.ndarray], count: int) -> list[int]:
    """Indices of ``count`` images: the most typical first, then each the farthest from those chosen."""
    feats = np.stack([thumbnail(im) for im in images])
    chosen = [int(np.linalg.norm(feats - feats.mean(0), axis=1).argmin())]
    dist = np.linalg.norm(feats - feats[chosen[0]], axis=1)
    while len(chosen) < min(count, len(images)):
        nxt = int(dist.argmax())
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(feats - feats[nxt], axis=1))
    return chosen


def prepare_refs(video: str | Path, out: str | Path, count: int = 4, size: int = 256) -> list[Path]:
    """Write ``count`` face-cropped PNGs of ``size`` px to ``out``; returns their paths."""
    crops = []
    for frame in candidate_frames(video):
        try:
            crop = crop_image(frame, size)
        except NoFaceError:
            continue
        if detect_face(crop) is not None:  # the receiver finds the face again when it loads the file
            crops.append(crop)
    if not crops:
        raise VideoError(f"no face found in {video}")
    sharp = np.array([sharpness(c) for c in crops])
    crops = [c for c, s in zip(crops, sharp) if s >= np.median(sharp)]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, i in enumerate(pick_diverse(crops, count)):
        path = out / f"ref_{n:02d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(crops[i], cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths
