"""Evaluate a model by rebuilding clips from their keypoints, at the model's output resolution.

    python -m shared_model.evaluate --video FILE [--refs DIR] [--model NAME|PATH] [--out FILE.json] [--video-out F.mp4]
    python -m shared_model.evaluate --videos DIR --held-out [--model NAME|PATH] [--compare tps128] [--grid FILE.png]
    ... [--ref-frames N[,N...] [--ref-seconds S]] [--frames-per-clip N]

The clip is face-cropped once (the same crop as the training data); the reference is its first frame unless
``--refs`` gives reference images; every frame is rebuilt from that frame's keypoints. PSNR / SSIM / MS-SSIM /
L1 are computed on the uint8 RGB frames a receiver would show, averaged over the frames other than the
reference frame itself (``frames`` counts them); ``baseline_*`` is the reference shown unchanged (frozen).
``--compare MODEL`` also rebuilds the same frames with another (lower-resolution) model, from the same crops
resized to its resolution, and scores its output upscaled (bicubic) to this model's resolution.
``--frames-per-clip N`` scores N frames spread over each clip (the reference frame always first).
With ``--ref-frames N`` the references are N frames spread over the clip's first S seconds (default 1) and
only the frames after those seconds are rebuilt and scored, so sets of 1, 2, 4, 8 references are compared on
the same frames (``tps`` picks the reference nearest in keypoints per frame; ``iw`` attends over all of them).
A list (``--ref-frames 1,2,4,8``) runs each set size in turn and prints a markdown table of the results.
With ``--videos DIR --held-out`` every clip the model held out of training (listed in its weights) is
evaluated; means are reported over clips and over held-out people (each person's clips averaged first), and
``--grid`` draws one row per person: truth, this model, each ``--compare`` model, frozen reference.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from .media.crop import clip_crop
from .media.metrics import frame_scores
from .media.references import load_reference_images
from .media.video import read_frames, video_fps, write_video
from .nets.model import CodecModel, load_model
from .runtime.backend import Backend, add_model_arguments
from .runtime.inference import KeypointExtractor, Renderer, spread_subset

log = logging.getLogger(__name__)

METRICS = ("psnr", "ssim", "ms_ssim", "l1")


def rebuild(model: CodecModel, frames: np.ndarray, references: list[np.ndarray], device: torch.device,
            progress: bool = True, runner: Backend | None = None) -> tuple[np.ndarray, list[int], float, float]:
    """Every frame rebuilt from its own keypoints (with torch, or with ``runner``'s backend and precision): the
    frames, the reference used for each, and the seconds spent on keypoints and on rendering."""
    extractor = runner.extractor() if runner else KeypointExtractor(model, device)
    renderer = runner.renderer(references) if runner else Renderer(model, references, device)
    outputs, used, t_kp, t_gen = [], [], 0.0, 0.0
    for frame in tqdm(frames, desc="frames", disable=None if progress else True, leave=False):
        t0 = time.perf_counter()
        kp, strength = extractor(frame)
        t1 = time.perf_counter()
        rebuilt, ref = renderer.render(kp, strength)
        t_kp, t_gen = t_kp + t1 - t0, t_gen + time.perf_counter() - t1
        outputs.append(rebuilt)
        used.append(ref)
    return np.stack(outputs), used, t_kp, t_gen


def scores(truth: np.ndarray, shown: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame PSNR, SSIM, MS-SSIM and L1 (on [0, 1]) of uint8 RGB stacks."""
    out = frame_scores(truth, shown)
    out["l1"] = np.abs(truth.astype(np.float32) - shown.astype(np.float32)).mean((1, 2, 3)) / 255.0
    return out


def resize_all(frames: np.ndarray, size: int) -> np.ndarray:
    """Square uint8 frames resized to ``size``: area filter down, bicubic up."""
    if frames.shape[1] == size:
        return frames
    interp = cv2.INTER_AREA if size < frames.shape[1] else cv2.INTER_CUBIC
    return np.stack([cv2.resize(f, (size, size), interpolation=interp) for f in frames])


def evaluate_frames(model: CodecModel, frames: np.ndarray, references: list[np.ndarray], device: torch.device,
                    progress: bool = True, skip_first: bool = False,
                    compare: dict[str, CodecModel] | None = None,
                    runner: Backend | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """Rebuild face-cropped frames (T, R, R, 3); returns the summary and the rebuilt frames (``ours``, and
    each compared model's upscaled output under its name).

    ``skip_first`` leaves frame 0 out of the means: when it is the reference itself, its frozen-reference
    PSNR is infinite and would swamp the averages. ``compare`` models rebuild the same frames at their own
    resolution; their output is upscaled to R and scored under ``compare``.
    """
    outputs, used, t_kp, t_gen = rebuild(model, frames, references, device, progress, runner)
    ours = scores(frames, outputs)
    frozen = scores(frames, np.stack([references[i] for i in used]))
    first = 1 if skip_first else 0
    mean = lambda values: float(np.mean(values[first:]))
    rows = [{**{k: float(ours[k][i]) for k in METRICS}, **{f"baseline_{k}": float(frozen[k][i]) for k in METRICS},
             "reference": used[i]} for i in range(len(frames))]
    summary = {"frames": len(frames) - first, "frames_rebuilt": len(frames), "resolution": model.cfg.resolution,
               "model": model.model_id, "model_version": model.version, "references": len(references),
               "backend": runner.kind if runner else "torch", "precision": runner.precision if runner else "fp32",
               **{k: mean(ours[k]) for k in METRICS}, **{f"baseline_{k}": mean(frozen[k]) for k in METRICS},
               "ms_keypoints": 1000 * t_kp / len(frames), "ms_render": 1000 * t_gen / len(frames),
               "device": str(device), "per_frame": rows}
    res = model.cfg.resolution
    summary["compare"], shown = {}, {"ours": outputs}
    for name, other in (compare or {}).items():
        size = other.cfg.resolution
        small, _, _, _ = rebuild(other, resize_all(frames, size), [resize_all(r[None], size)[0] for r in references],
                                 device, progress)
        shown[name] = resize_all(small, res)
        theirs = scores(frames, shown[name])
        summary["compare"][name] = {"resolution": size, "model_version": other.version,
                                    **{k: mean(theirs[k]) for k in METRICS}}
    return summary, shown


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
                   ref_seconds: float = 1.0, compare: dict[str, CodecModel] | None = None,
                   frames_per_clip: int | None = None,
                   runner: Backend | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """One clip: the summary, and the pictures (truth, ours, each compared model, frozen) at one frame, two
    thirds of the way through the scored frames."""
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
    if frames_per_clip and len(frames) > frames_per_clip:
        keep = spread_subset(len(frames), frames_per_clip)
        frames = frames[keep]
        extra["scored_frame_indices"] = keep
    summary, outputs = evaluate_frames(model, frames, references, device, skip_first=skip_first, compare=compare,
                                       runner=runner)
    summary.update(video=str(video), **extra)
    if video_out:
        write_video(video_out, [np.concatenate([t, o], axis=1) for t, o in zip(frames, outputs["ours"])],
                    video_fps(video))
    i = (2 * len(frames)) // 3
    shown = {"truth": frames[i], **{k: v[i] for k, v in outputs.items()},
             "frozen": references[summary["per_frame"][i]["reference"]]}
    return summary, shown


def mean_over(rows: list[dict], keys: tuple[str, ...]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in keys}


def evaluate_held_out(model: CodecModel, root: str | Path, device: torch.device, ref_frames: int | None = None,
                      ref_seconds: float = 1.0, compare: dict[str, CodecModel] | None = None,
                      frames_per_clip: int | None = None, grid: str | Path | None = None,
                      listed_by: CodecModel | None = None, runner: Backend | None = None) -> dict:
    """Every held-out clip the model's weights list (or ``listed_by``'s: a personal generator is scored on the
    clips its speaker's model held out), found under ``root``; means over clips and over people."""
    lister = listed_by or model
    names = lister.meta.get("held_out_clips")
    if not names:
        raise ValueError(f"model {lister.model_id} lists no held-out clips")
    people = lister.meta.get("held_out_people", {})
    keys = (*METRICS, *(f"baseline_{k}" for k in METRICS))
    clips, rows_by_person = [], {}
    for name in tqdm(names, desc="clips", disable=None):
        path = Path(root) / name
        s, shown = evaluate_video(model, path, None, device, ref_frames=ref_frames, ref_seconds=ref_seconds,
                                  compare=compare, frames_per_clip=frames_per_clip, runner=runner)
        s.pop("per_frame")
        person = people.get(name, name)
        clips.append({"clip": name, "person": person, **s})
        rows_by_person.setdefault(person, []).append((clips[-1], shown))
        log.info("%s: PSNR %.2f dB (frozen reference %.2f), SSIM %.3f, MS-SSIM %.3f%s", name, s["psnr"],
                 s["baseline_psnr"], s["ssim"], s["ms_ssim"],
                 "".join(f", {k} {v['psnr']:.2f} dB" for k, v in s["compare"].items()))
    persons = []
    for person, rows in rows_by_person.items():
        entry = {"person": person, "clips": len(rows), **mean_over([r for r, _ in rows], keys)}
        entry["compare"] = {k: mean_over([r["compare"][k] for r, _ in rows], METRICS) for k in (compare or {})}
        persons.append(entry)
    summary = {"model": model.model_id, "model_version": model.version, "resolution": model.cfg.resolution,
               "clips": len(clips), "people": len(persons), "frames": int(sum(c["frames"] for c in clips)),
               "references": clips[0]["references"], "frames_per_clip": frames_per_clip,
               **mean_over(clips, keys), "ms_keypoints": mean_over(clips, ("ms_keypoints",))["ms_keypoints"],
               "ms_render": mean_over(clips, ("ms_render",))["ms_render"],
               "by_person": {**mean_over(persons, keys),
                             "compare": {k: mean_over([p["compare"][k] for p in persons], METRICS)
                                         for k in (compare or {})}},
               "compare": {k: mean_over([c["compare"][k] for c in clips], METRICS) for k in (compare or {})},
               "per_person": persons, "per_clip": clips}
    if grid:
        save_grid([rows[0][1] for rows in rows_by_person.values()], list(rows_by_person), grid)
    return summary


def person_table(summary: dict) -> str:
    """Markdown: one row per held-out person, then the mean over people and over clips."""
    names = list(summary["compare"])
    head = ["person", "clips", "PSNR", "SSIM", "MS-SSIM", *(f"{n} PSNR" for n in names), "frozen PSNR",
            "frozen MS-SSIM"]

    def row(label: str, clips: int, r: dict, cmp: dict) -> list[str]:
        return [label, str(clips), f"{r['psnr']:.2f}", f"{r['ssim']:.3f}", f"{r['ms_ssim']:.3f}",
                *(f"{cmp[n]['psnr']:.2f}" for n in names), f"{r['baseline_psnr']:.2f}", f"{r['baseline_ms_ssim']:.3f}"]

    rows = [row(p["person"], p["clips"], p, p["compare"]) for p in summary["per_person"]]
    rows.append(row("**mean over people**", summary["clips"], summary["by_person"], summary["by_person"]["compare"]))
    rows.append(row("mean over clips", summary["clips"], summary, summary["compare"]))
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def save_grid(rows: list[dict[str, np.ndarray]], labels: list[str], path: str | Path) -> None:
    """One row per person (truth, models..., frozen), captioned, as a PNG."""
    header = list(rows[0])
    lines = []
    for label, row in zip(labels, rows):
        tiles = [row[k].copy() for k in header]
        cv2.putText(tiles[0], label[:28], (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1, cv2.LINE_AA)
        lines.append(np.concatenate(tiles, axis=1))
    top = np.zeros((20, lines[0].shape[1], 3), np.uint8)
    side = rows[0][header[0]].shape[1]
    for j, name in enumerate(header):
        cv2.putText(top, name, (j * side + 4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate([top, *lines]), cv2.COLOR_RGB2BGR))


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
    ap.add_argument("--out", help="JSON file to write")
    ap.add_argument("--video-out", help="mp4 with ground truth and reconstruction side by side")
    add_model_arguments(ap)
    ap.set_defaults(precision="fp32")  # the model's own figures; --precision auto scores what a receiver shows
    ap.add_argument("--compare", nargs="+", default=[], metavar="MODEL",
                    help="also rebuild with these (lower-resolution) models, upscaled bicubic to this model's size")
    ap.add_argument("--frames-per-clip", type=int, help="score this many frames spread over each clip")
    ap.add_argument("--grid", help="with --held-out: PNG of one row per held-out person")
    ap.add_argument("--clips-of", metavar="MODEL",
                    help="with --held-out: the clips this model held out (default: --model's)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.videos and not args.held_out:
        ap.error("--videos needs --held-out")
    if args.refs and args.ref_frames:
        ap.error("--refs and --ref-frames are two ways to give references: choose one")
    if args.video_out and args.ref_frames and len(args.ref_frames) > 1:
        ap.error("--video-out takes one --ref-frames count")
    if args.grid and not args.held_out:
        ap.error("--grid is drawn from the held-out people (--videos DIR --held-out)")
    runner = Backend.from_args(args)
    device, model = runner.device, runner.model
    runner = runner if (runner.kind, runner.precision) != ("torch", "fp32") else None
    compare = {name: load_model(name, device) for name in args.compare}
    runs = []
    for count in args.ref_frames or [None]:
        if args.video:
            runs.append(evaluate_video(model, args.video, args.refs, device, args.video_out, count, args.ref_seconds,
                                       compare, args.frames_per_clip, runner)[0])
        else:
            runs.append(evaluate_held_out(model, args.videos, device, count, args.ref_seconds, compare,
                                          args.frames_per_clip, args.grid,
                                          load_model(args.clips_of) if args.clips_of else None, runner))
    summary = runs[0] if len(runs) == 1 else {"model": model.model_id, "by_references": runs}
    for run in runs:
        print(json.dumps({k: v for k, v in run.items() if k not in ("per_frame", "per_clip", "per_person")},
                         indent=1))
    if args.held_out and len(runs) == 1:
        print(person_table(runs[0]))
    if len(runs) > 1:
        print(f"| references | {model.model_id} PSNR | SSIM | frozen reference PSNR | ms per frame |\n"
              "|---|---|---|---|---|")
        for run in runs:
            print(f"| {run['references']} | {run['psnr']:.2f} | {run['ssim']:.3f} | {run['baseline_psnr']:.2f} | "
                  f"{run['ms_keypoints'] + run['ms_render']:.0f} |")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
