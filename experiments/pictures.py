"""Which image codec and quality for the reference pictures (``python -m experiments pictures``).

On face crops at the model's resolution (each clip's fixed crop, its first and middle frames): the bytes each
codec needs for a PSNR (32, 34, 36, 38 dB; JPEG, WebP and AVIF through OpenCV, AV1 as the sender sends it), each
codec's quality swept and the size interpolated in log-bytes; and, for the sender's AV1 at several CRFs, the
picture's bytes and PSNR and how well the generator rebuilds every 5th of the clip's first 80 frames from it.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from shared_model.evaluate import load_clip
from shared_model.media.picture_codec import decode_picture, encode_picture
from shared_model.nets.model import load_model
from shared_model.runtime.inference import KeypointExtractor, Renderer

TARGETS_DB = (32.0, 34.0, 36.0, 38.0)
CRFS = (35, 40, 45, 50, 55)


def _opencv(ext: str, flag: int, *extra: int) -> Callable[[np.ndarray, int], tuple[int, float]]:
    def code(image: np.ndarray, quality: int) -> tuple[int, float]:
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        _, buf = cv2.imencode(ext, bgr, [flag, quality, *extra])
        return len(buf), cv2.PSNR(bgr, cv2.imdecode(buf, cv2.IMREAD_COLOR))
    return code


def _av1(image: np.ndarray, crf: int) -> tuple[int, float]:
    data = encode_picture(image, crf)
    return len(data), cv2.PSNR(image, decode_picture(data, image.shape[0]))


#: name: (code(image, quality) -> (bytes, PSNR), the qualities swept)
CODECS: dict[str, tuple[Callable[[np.ndarray, int], tuple[int, float]], range]] = {
    "jpeg": (_opencv(".jpg", cv2.IMWRITE_JPEG_QUALITY), range(10, 96, 5)),
    "webp": (_opencv(".webp", cv2.IMWRITE_WEBP_QUALITY), range(5, 96, 5)),
    "avif": (_opencv(".avif", cv2.IMWRITE_AVIF_QUALITY, cv2.IMWRITE_AVIF_SPEED, 6), range(5, 96, 5)),
    "av1 (sent)": (_av1, range(20, 64, 3)),
}


def bytes_at(points: list[tuple[int, float]], target: float) -> float:
    """Bytes for ``target`` dB, interpolated in log-bytes on the (bytes, PSNR) points of one image."""
    psnr, size = zip(*sorted((p, b) for b, p in points))
    return float(np.exp(np.interp(target, psnr, np.log(size))))


def measure(videos: list[Path], model_name: str, out: Path) -> dict[str, Any]:
    model = load_model(model_name)
    res = model.cfg.resolution
    clips = {str(v): load_clip(v, res)[:80] for v in videos}
    images = [frames[i] for frames in clips.values() for i in (0, len(frames) // 2)]
    codecs = {}
    for name, (code, qualities) in CODECS.items():
        points = [[code(image, q) for q in qualities] for image in images]
        codecs[name] = {f"{t:g}": float(np.mean([bytes_at(p, t) for p in points])) for t in TARGETS_DB}
    extract, crfs = KeypointExtractor(model), []
    for crf in CRFS:
        row = {"crf": crf, "bytes": [], "picture_psnr": [], "rendered_psnr": []}
        for frames in clips.values():
            data = encode_picture(frames[0], crf)
            picture = decode_picture(data, res)
            renderer = Renderer(model, [picture])
            row["bytes"].append(len(data))
            row["picture_psnr"].append(cv2.PSNR(frames[0], picture))
            row["rendered_psnr"].append(float(np.mean([cv2.PSNR(f, renderer.render(*extract(f))[0])
                                                       for f in frames[5::5]])))
        crfs.append({k: v if k == "crf" else float(np.mean(v)) for k, v in row.items()})
    result = {"model": model.model_id, "model_version": model.version, "resolution": res, "images": len(images),
              "clips": list(clips), "bytes_at_psnr": codecs, "av1_crf": crfs}
    out.mkdir(parents=True, exist_ok=True)
    (out / "pictures.json").write_text(json.dumps(result, indent=1))
    return result


def markdown(result: dict[str, Any]) -> str:
    head = " | ".join(f"{t:g} dB" for t in TARGETS_DB)
    lines = [f"| codec | bytes at {head} |", "|---|" + "---|" * len(TARGETS_DB)]
    lines += [f"| {name} | " + " | ".join(f"{v:.0f}" for v in row.values()) + " |"
              for name, row in result["bytes_at_psnr"].items()]
    lines += ["", "| AV1 crf | bytes | picture PSNR | rebuilt frames' PSNR |", "|---|---|---|---|"]
    lines += [f"| {r['crf']} | {r['bytes']:.0f} | {r['picture_psnr']:.2f} | {r['rendered_psnr']:.2f} |"
              for r in result["av1_crf"]]
    return "\n".join(lines) + "\n"
