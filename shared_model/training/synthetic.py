"""A procedurally animated talking face (``skimage.data.astronaut()``) for tests and demos.

The head turns, nods and shifts smoothly, the mouth opens and closes, and the eyes blink, all by smooth
image warps of one photograph, so every frame is a plausible face that a face detector finds.
``python -m shared_model.training.synthetic --out clip.mp4`` writes such a clip.
"""
from __future__ import annotations

import argparse

import cv2
import numpy as np

# Landmarks of the astronaut photograph (512 x 512), in pixels.
_HEAD = (255.0, 150.0)
_MOUTH = (262.0, 215.0)
_EYES = ((222.0, 146.0), (291.0, 146.0))


def _bump(xx: np.ndarray, yy: np.ndarray, centre: tuple[float, float], sx: float, sy: float) -> np.ndarray:
    return np.exp(-(((xx - centre[0]) / sx) ** 2 + ((yy - centre[1]) / sy) ** 2))


def talking_face(frames: int = 100, size: int = 256, seed: int = 0, fps: float = 25.0) -> np.ndarray:
    """Frames (T, size, size, 3) uint8 RGB of the animated face."""
    from skimage.data import astronaut

    base = astronaut()[:400, 56:456]  # face and shoulders, 400 x 400
    base = cv2.resize(base, (size, size), interpolation=cv2.INTER_AREA)
    s = size / 400.0
    head = ((_HEAD[0] - 56) * s, _HEAD[1] * s)
    mouth = ((_MOUTH[0] - 56) * s, _MOUTH[1] * s)
    eyes = [((x - 56) * s, y * s) for x, y in _EYES]
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    head_mask = _bump(xx, yy, head, 95 * s, 120 * s)
    t = np.arange(frames) / fps
    def wave(amp: float, lo: float = 0.15, hi: float = 0.6) -> np.ndarray:
        f, ph = rng.uniform(lo, hi, 2), rng.uniform(0, 2 * np.pi, 2)
        return amp * 0.5 * (np.sin(2 * np.pi * f[0] * t + ph[0]) + np.sin(2 * np.pi * f[1] * t + ph[1]))
    angle, scale = wave(np.deg2rad(7)), 1 + wave(0.04)
    shift_x, shift_y = wave(10 * s), wave(6 * s)
    mouth_open = np.clip(np.sin(2 * np.pi * rng.uniform(1.5, 2.5) * t) * 0.5 + 0.5, 0, 1) ** 1.5
    blink_times = rng.uniform(0, t[-1] + 1e-6, max(1, frames // 40))
    blink = np.max([np.exp(-(((t - b) / 0.06) ** 2)) for b in blink_times], axis=0)
    out = np.empty((frames, size, size, 3), np.uint8)
    for i in range(frames):
        # Backward map: for each output pixel, where to read in the base image.
        c, sn = np.cos(angle[i]), np.sin(angle[i])
        dx, dy = (xx - head[0] - shift_x[i]) / scale[i], (yy - head[1] - shift_y[i]) / scale[i]
        rx, ry = c * dx + sn * dy + head[0], -sn * dx + c * dy + head[1]
        mx = head_mask * rx + (1 - head_mask) * xx
        my = head_mask * ry + (1 - head_mask) * yy
        # Mouth: pull the lower lip region down; eyes: squash vertically.
        m = _bump(mx, my, (mouth[0], mouth[1] + 6 * s), 30 * s, 16 * s) * mouth_open[i]
        my = my - 10 * s * m
        for e in eyes:
            k = _bump(mx, my, e, 16 * s, 9 * s) * blink[i]
            my = my + (my - e[1]) * 0.9 * k
        out[i] = cv2.remap(base, mx.astype(np.float32), my.astype(np.float32), cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT)
    return out


def main(argv: list[str] | None = None) -> int:
    from ..media.video import write_video

    ap = argparse.ArgumentParser(prog="python -m shared_model.training.synthetic", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="mp4 file to write")
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    write_video(args.out, talking_face(args.frames, args.size, args.seed, args.fps), args.fps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
