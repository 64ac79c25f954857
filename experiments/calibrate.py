"""How much a stale reference picture costs, against the keypoint distance the sender can measure for free
(``python -m experiments calibrate``): the calibration of the refresh rule's estimate.

On each clip (its fixed face crop, as ``rd``), two pictures are coded as the sender codes them (frame 0 and the
middle frame, AV1 at the default quality). For every ``every``-th frame the keypoints (quantized as on the wire)
are rendered from each picture, and from the frame's own picture (what a refresh at that moment would give).
The loss of a stale picture is the PSNR from the frame's own picture minus the PSNR from the stale one; it is
fitted against the strength-weighted keypoint distance d to that picture (px at the model's resolution) as
``loss = a + b * ln(1 + d)`` (least squares): even a picture of nearly the same pose loses a few dB against the
frame's own (mouth, eyes, light differ), and the loss grows more slowly the further the face has moved. The
correlation of fit and loss, and Spearman's rank correlation of distance and loss, say how well it orders them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from shared_model.evaluate import load_clip
from shared_model.media.picture_codec import decode_picture, encode_picture
from shared_model.media.references import keypoint_gap
from shared_model.nets.model import load_model
from shared_model.runtime.inference import KeypointExtractor, Renderer
from shared_model.wire.keycoding import CodingSettings, dequantize, quantize


def clip_pairs(model: Any, video: Path, every: int, max_frames: int) -> list[dict[str, float]]:
    """(distance px, loss dB) for every scored frame and each of the clip's two pictures."""
    frames = load_clip(video, model.cfg.resolution)[:max_frames]
    extract, renderer = KeypointExtractor(model), Renderer(model, [])
    settings = CodingSettings.from_px(0.5, model.cfg.core)

    def picture(i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        image = decode_picture(encode_picture(frames[i]), model.cfg.resolution)
        return (image, *extract(image))

    stale = {i: picture(i) for i in (0, len(frames) // 2)}
    for i, (image, _, _) in stale.items():
        renderer.add_picture(i + 1, image)
    pairs = []
    for i in tqdm(range(every, len(frames), every), desc=video.name, leave=False, disable=None):
        if i in stale:
            continue
        kp, st = dequantize(quantize(*extract(frames[i]), settings), settings)
        own, _, _ = picture(i)
        renderer.add_picture(255, own)
        fresh = cv2.PSNR(frames[i], renderer.render(kp, st, 255)[0])
        for j, (_, kp_j, st_j) in stale.items():
            loss = fresh - cv2.PSNR(frames[i], renderer.render(kp, st, j + 1)[0])
            distance_px = keypoint_gap(kp_j, st_j, kp, st) * model.cfg.resolution / 2
            pairs.append({"frame": i, "picture": j, "distance_px": distance_px,
                          "loss_db": float(loss), "fresh_psnr": float(fresh)})
    return pairs


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def calibrate(videos: list[Path], model_name: str, out: Path, every: int = 5, max_frames: int = 250) -> dict:
    """Pairs from every clip, the fit and the correlations; written to ``OUT/calibration.json``."""
    model = load_model(model_name)
    clips = {str(v): clip_pairs(model, v, every, max_frames) for v in videos}
    pairs = [p for ps in clips.values() for p in ps]
    d = np.array([p["distance_px"] for p in pairs])
    loss = np.array([p["loss_db"] for p in pairs])
    x = np.stack([np.ones_like(d), np.log1p(d)], axis=1)
    (a, b), *_ = np.linalg.lstsq(x, loss, rcond=None)
    fit = x @ np.array([a, b])
    bins = [(lo, hi) for lo, hi in ((0, 1), (1, 2), (2, 4), (4, 8), (8, float("inf")))]
    table = [{"distance_px": [lo, hi], "pairs": int(((d >= lo) & (d < hi)).sum()),
              "mean_loss_db": float(loss[(d >= lo) & (d < hi)].mean()) if ((d >= lo) & (d < hi)).any() else None}
             for lo, hi in bins]
    result = {"model": model.model_id, "model_version": model.version, "resolution": model.cfg.resolution,
              "pairs": len(pairs), "loss_at_zero_db": float(a), "db_per_log_px": float(b),
              "rmse_db": float(np.sqrt(((fit - loss) ** 2).mean())),
              "fit_correlation": float(np.corrcoef(fit, loss)[0, 1]),
              "spearman": spearman(d, loss), "by_distance": table,
              "clips": clips}
    out.mkdir(parents=True, exist_ok=True)
    (out / "calibration.json").write_text(json.dumps(result, indent=1))
    return result
