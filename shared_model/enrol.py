"""Enrol a speaker: reference pictures and a personal generator from a video of them, in one command.

    python -m shared_model.enrol --video me.mp4 --out me/ [--model tps] [--steps 400] [--minutes 18]

Writes ``me/ref_*.png`` (the rule of ``media.reference_frames``: sharp frames in which the face is found, as
different from each other as possible), ``me/generator.pt`` (the generic model's generator fine-tuned on the
video; the keypoint detector stays the shipped one, so the sender runs the generic model unchanged and only
this folder ever has to reach the receiver) and ``me/enrol.json`` (what was done, validation PSNR before and
after). ``--video`` also takes several files or a folder; the pictures come from the first file.
The receiver picks ``generator.pt`` up from its ``--refs`` folder.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

from .media.reference_frames import prepare_refs
from .media.references import GENERATOR_FILE
from .media.video import VideoError
from .nets.model import DEFAULT_MODEL, load_model
from .train import TrainOptions, train
from .training.data import find_videos, prepare

log = logging.getLogger(__name__)

def enrol(videos: list[str | Path], out: str | Path, model: str = DEFAULT_MODEL, steps: int = 400,
          minutes: float | None = 18.0, count: int = 4, batch: int = 8, lr: float = 2e-4,
          threads: int | None = None) -> dict:
    """Write the reference pictures and the personal generator to ``out``; returns what ``enrol.json`` holds."""
    started = time.time()
    base = load_model(model)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = [f for v in videos for f in find_videos(v)]
    if not files:
        raise VideoError(f"no video files in {', '.join(map(str, videos))}")
    refs = prepare_refs(files[0], out, count, base.cfg.resolution)
    log.info("wrote %d reference pictures to %s", len(refs), out)
    with tempfile.TemporaryDirectory(prefix="enrol-") as tmp:
        cache, run = Path(tmp) / "cache", Path(tmp) / "run"
        source = files[0] if len(files) == 1 else Path(tmp) / "videos"
        if len(files) > 1:
            source.mkdir()
            for i, f in enumerate(files):
                (source / f"{i:04d}{f.suffix}").symlink_to(Path(f).resolve())
        prepare(source, cache, base.cfg.resolution, holdout_percent=0.0)
        opts = TrainOptions(data=[str(cache)], out=str(run), model_id=f"{base.model_id}-personal",
                            init=model, steps=steps, batch=batch, lr=lr, dropout_until=0.0, crop_jitter=0.1,
                            val_every=max(1, steps // 4), val_pairs=16, save_every=max(1, steps // 4),
                            time_limit_min=minutes, freeze_detector=True, threads=threads)
        summary = train(opts)
        shutil.copy(run / "model.pt", out / GENERATOR_FILE)
    personal = load_model(out / GENERATOR_FILE)
    if personal.detector_version != base.detector_version:
        raise RuntimeError("the enrolled generator's detector differs from the shipped one")
    history = summary["history"]
    result = {"model": base.model_id, "model_version": base.version, "detector_version": base.detector_version,
              "generator_version": personal.version, "videos": [str(f) for f in files],
              "references": [p.name for p in refs], "steps": summary["steps"],
              "train_minutes": round(summary["elapsed_s"] / 60, 1), "minutes": round((time.time() - started) / 60, 1),
              "val_psnr_before": history[0]["val_psnr"], "val_psnr_after": history[-1]["val_psnr"],
              "val_frozen_psnr": history[0]["val_baseline_psnr"]}
    (out / "enrol.json").write_text(json.dumps(result, indent=1))
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m shared_model.enrol", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", nargs="+", required=True, help="video file(s) or a folder of the speaker")
    ap.add_argument("--out", required=True, help="enrolment folder to write (give it to the receiver as --refs)")
    ap.add_argument("--model", default=DEFAULT_MODEL, help="the generic model to start from (the sender's)")
    ap.add_argument("--steps", type=int, default=400, help="fine-tuning steps (default %(default)s)")
    ap.add_argument("--minutes", type=float, default=18.0,
                    help="stop fine-tuning after this long (default %(default)s)")
    ap.add_argument("--count", type=int, default=4, help="reference pictures (default %(default)s)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        result = enrol(args.video, args.out, args.model, args.steps, args.minutes, args.count, args.batch,
                       threads=args.threads)
    except (VideoError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 2
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
