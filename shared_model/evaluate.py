"""Evaluate a model by rebuilding a clip from its keypoints.

    python -m shared_model.evaluate --video FILE [--refs DIR] [--model NAME|PATH] [--out FILE.json] [--video-out FILE.mp4]
    python -m shared_model.evaluate --videos DIR --held-out [--model NAME|PATH] [--out FILE.json]
    ... [--ref-frames N[,N...] [--ref-seconds S]]

The clip is face-cropped once (the same crop as the training data); the reference is its first frame unless
``--refs`` gives reference images; every frame is rebuilt from that frame's keypoints. PSNR / SSIM / L1 are
computed on the uint8 RGB frames a receiver would show, averaged over the frames other than the reference
frame itself (``frames`` counts them); ``baseline_*`` is the reference shown unchanged.
With ``--ref-frames N`` the references are N frames spread over the clip's first S seconds (default 1) and
only the frames after those seconds are rebuilt and scored, so sets of 1, 2, 4, 8 references are compared on
the same frames (``tps`` picks the reference nearest in keypoints per frame; ``iw`` attends over all of them).
A list (``--ref-frames 1,2,4,8``) runs each set size in turn and prints a markdown table of the results.
With ``--videos DIR --held-out`` every clip the model held out of training (listed in its weights) is
evaluated and the means over clips are reported.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .media.crop import clip_crop
from .runtime.inference import KeypointExtractor, Renderer, spread_subset, to_tensor
from .media.metrics import psnr, ssim
from .nets.model import DEFAULT_MODEL, CodecModel, load_model, pick_device
from .media.references import load_reference_images
from .media.video import read_frames, video_fps, write_video

log = logging.getLogger(__name__)


def frame_metrics(truth: np.ndarray, shown: np.ndarray) -> dict[str, float]:
    a, b = to_tensor(truth, "cpu"), to_tensor(shown, "cpu")
    return {"psnr": psnr(a, b).item(), "ssim": ssim(a, b).item(), "l1": (a - b).abs().mean().item()}


def evaluate_frames(model: CodecModel, frames: np.ndarray, references: list[np.ndarray], device: torch.device,
                    progress: bool = True, skip_first: bool = False) -> tuple[dict, list[np.ndarray]]:
    """Rebuild face-cropped frames (T, R, R, 3); returns the summary and the rebuilt frames.

    ``skip_first`` leaves frame 0 out of the means: when it is the reference itself, its frozen-reference
    PSNR is infinite and would swamp the averages.
    """
    extractor = KeypointExtractor(model, device)
    renderer = Renderer(model, references, device)
    rows, outputs, t_kp, t_gen = [], [], 0.0, 0.0
    for frame in tqdm(frames, desc="frames", disable=None if progress else True, leave=False):
        t0 = time.perf_counter()
        kp, strength = extractor(frame)
        t1 = time.perf_counter()
        rebuilt, ref = renderer.render(kp, strength)
        t2 = time.perf_counter()
        t_kp, t_gen = t_kp + t1 - t0, t_gen + t2 - t1
        m = frame_metrics(frame, rebuilt)
        base = frame_metrics(frame, references[ref])
        rows.append({**m, "baseline_psnr": base["psnr"], "baseline_ssim": base["ssim"], "reference": ref})
        outputs.append(rebuilt)
    scored = rows[1:] if skip_first else rows
    mean = lambda k: float(np.mean([r[k] for r in scored]))
    summary = {"frames": len(scored), "frames_rebuilt": len(rows), "resolution": model.cfg.resolution, "model": model.model_id,
               "model_version": model.version, "references": len(references),
               "psnr": mean("psnr"), "ssim": mean("ssim"), "l1": mean("l1"),
               "baseline_psnr": mean("baseline_psnr"), "baseline_ssim": mean("baseline_ssim"),
               "ms_keypoints": 1000 * t_kp / len(rows), "ms_render": 1000 * t_gen / len(rows),
               "device": str(device), "per_frame": rows}
    return summary, outputs


def load_clip(path: str | Path, resolution: int) -> np.ndarray:
    """Decode a clip and apply its one fixed face crop at ``resolution``."""
    raw = read_frames(path)
    crop = clip_crop(raw)
    return np.stack([crop.apply(f, resolution) for f in raw])


def reference_frames(frames: np.ndarray, fps: float, count: int, seconds: float) -> tuple[list[int], int]:
    """Indices of ``count`` frames spread over the first ``seconds``, and the first frame to rebuild after them."""
    window = min(max(count, round(seconds * fps)), len(frames) - 1)
    if window < count:
        raise ValueError(f"clip of {len(frames)} frames is too short for {count} reference frames")
    return spread_subset(window, count), window


def evaluate_video(model: CodecModel, video: str | Path, refs: str | Path | None, device: torch.device,
                   video_out: str | Path | None = None, ref_frames: int | None = None,
                   ref_seconds: float = 1.0) -> dict:
    frames = load_clip(video, model.cfg.resolution)
    extra: dict = {}
    if refs:
        references, skip_first = [img for _, img in load_reference_images(refs, model.cfg.resolution)], False
    elif ref_frames:
        picked, first = reference_frames(frames, video_fps(video), ref_frames, ref_seconds)
        references, frames, skip_first = [frames[i] for i in picked], frames[first:], False
        extra = {"reference_frames": picked, "first_rebuilt_frame": first}
    else:
        references, skip_first = [frames[0]], True
    summary, outputs = evaluate_frames(model, frames, references, device, skip_first=skip_first)
    summary.update(video=str(video), **extra)
    if video_out:
        write_video(video_out, [np.concatenate([t, o], axis=1) for t, o in zip(frames, outputs)], video_fps(video))
    return summary


def evaluate_held_out(model: CodecModel, root: str | Path, device: torch.device, ref_frames: int | None = None,
                      ref_seconds: float = 1.0) -> dict:
    """Every held-out clip the model's weights list, found under ``root``; means over clips."""
    names = model.meta.get("held_out_clips")
    if not names:
        raise ValueError(f"model {model.model_id} lists no held-out clips")
    clips = []
    for name in tqdm(names, desc="clips", disable=None):
        path = Path(root) / name
        s = evaluate_video(model, path, None, device, ref_frames=ref_frames, ref_seconds=ref_seconds)
        s.pop("per_frame")
        clips.append({"clip": name, **s})
        log.info("%s: PSNR %.2f dB (frozen reference %.2f), SSIM %.3f", name, s["psnr"], s["baseline_psnr"], s["ssim"])
    mean = lambda k: float(np.mean([c[k] for c in clips]))
    return {"model": model.model_id, "model_version": model.version, "resolution": model.cfg.resolution,
            "clips": len(clips), "frames": int(sum(c["frames"] for c in clips)), "references": clips[0]["references"],
            "psnr": mean("psnr"), "ssim": mean("ssim"), "l1": mean("l1"),
            "baseline_psnr": mean("baseline_psnr"), "baseline_ssim": mean("baseline_ssim"),
            "ms_keypoints": mean("ms_keypoints"), "ms_render": mean("ms_render"), "per_clip": clips}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m shared_model.evaluate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--video", help="one clip to rebuild")
    src.add_argument("--videos", help="folder holding the clips named in the model's held-out list (with --held-out)")
    ap.add_argument("--held-out", action="store_true", help="with --videos: evaluate the model's held-out clips")
    ap.add_argument("--refs", help="folder of reference images (default: the clip's first frame)")
    ap.add_argument("--ref-frames", type=lambda v: [int(n) for n in v.split(",")], metavar="N[,N...]",
                    help="use N frames from the clip's first seconds as the references (a list: one run per N)")
    ap.add_argument("--ref-seconds", type=float, default=1.0, help="with --ref-frames: the seconds they come from")
    ap.add_argument("--model", default=DEFAULT_MODEL, help="shipped model name or weights file")
    ap.add_argument("--out", help="JSON file to write")
    ap.add_argument("--video-out", help="mp4 with ground truth and reconstruction side by side")
    ap.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.videos and not args.held_out:
        ap.error("--videos needs --held-out")
    if args.refs and args.ref_frames:
        ap.error("--refs and --ref-frames are two ways to give references: choose one")
    if args.video_out and args.ref_frames and len(args.ref_frames) > 1:
        ap.error("--video-out takes one --ref-frames count")
    device = pick_device(args.device)
    model = load_model(args.model, device)
    runs = []
    for count in args.ref_frames or [None]:
        if args.video:
            runs.append(evaluate_video(model, args.video, args.refs, device, args.video_out, count, args.ref_seconds))
        else:
            runs.append(evaluate_held_out(model, args.videos, device, count, args.ref_seconds))
    summary = runs[0] if len(runs) == 1 else {"model": model.model_id, "by_references": runs}
    for run in runs:
        print(json.dumps({k: v for k, v in run.items() if k not in ("per_frame", "per_clip")}, indent=1))
    if len(runs) > 1:
        print(f"| references | {model.model_id} PSNR | SSIM | frozen reference PSNR | ms per frame |\n|---|---|---|---|---|")
        for run in runs:
            print(f"| {run['references']} | {run['psnr']:.2f} | {run['ssim']:.3f} | {run['baseline_psnr']:.2f} | "
                  f"{run['ms_keypoints'] + run['ms_render']:.0f} |")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
