"""``python -m experiments``: the keypoint codec against H.264 / VP8 / VP9, and calls under loss.

    python -m experiments rd --video FILE [--refs DIR] [--model tps|iw|PATH] --out DIR
    python -m experiments rd-set --videos DIR [--held-out [CACHE]] [--model NAME] --out DIR
    python -m experiments call --video FILE [--refs DIR] --loss 0,0.05,0.2 [--jitter-ms 0,40] --out DIR
    python -m experiments calibrate --videos DIR --clips A,B,... [--model NAME] --out DIR
    python -m experiments pictures --videos DIR --clips A,B,... [--model NAME] --out DIR
    python -m experiments fuzz [--count 1000000] [--seed 0] [--targets frame,control,...] --out FILE.json
    python -m experiments realnet [--video FILE] [--rates 16,32] [--no-turn] --out DIR        (root)
    python -m experiments soak [--video FILE] [--minutes 30] [--interval 30] --out DIR

``rd`` writes DIR/results.json and DIR/rd.png; ``rd-set`` runs ``rd`` for every clip of the folder (or only the
held-out clips: those a data cache's index.json marks held out, or without CACHE those the model's weights
list) into DIR/clips/, then writes DIR/summary.md, DIR/results.json and DIR/rd.png. Finished points are kept
and reused: a rerun resumes. ``calibrate`` measures what a stale reference picture costs against the keypoint
distance (the refresh rule's estimate) and writes DIR/calibration.json; ``pictures`` compares image codecs and
qualities for the reference pictures and writes DIR/pictures.json. ``fuzz`` drives the peers' message
handlers with random, mutated and absurd inputs and exits 1 if any exception escaped, any input hung or any
accepted frame was invalid (experiments/fuzz.py). ``realnet`` runs calls over a shaped link and through a TURN
relay in network namespaces (experiments/realnet.py); ``soak`` runs one long call and samples memory, descriptors,
threads, frames and latency (experiments/soak.py). See docs/experiments.md.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from shared_model.media.video import write_video
from shared_model.nets.model import DEFAULT_MODEL, load_model
from shared_model.runtime.backend import Backend
from shared_model.training.synthetic import talking_face
from shared_model.wire.messages import ModelIdentity

from .calibrate import calibrate
from .call import CallSetting, first_frame_refs, run_calls
from .fuzz import SHARES, fuzz
from .pictures import markdown as pictures_markdown
from .pictures import measure as measure_pictures
from .plot import plot_points
from .rd import Options, run_clip, set_threads
from .realnet import run_realnet
from .soak import run_soak
from .summary import (
    average_points,
    clip_row,
    markdown_table,
    mean_row,
    motion_markdown,
    motion_rows,
    no_refresh_point,
    refresh_markdown,
    refresh_point,
    refresh_rows,
    settings_markdown,
    worst_frames,
)

VIDEO_SUFFIXES = {".mp4", ".mpg", ".mpeg", ".avi", ".mov", ".mkv", ".webm"}


def floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x)


def ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x)


def _rd_options(ap: argparse.ArgumentParser) -> None:
    d = Options()
    ap.add_argument("--model", default=DEFAULT_MODEL, help="shipped model name or weights file")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for the networks and the codecs")
    ap.add_argument("--steps", type=floats, default=d.steps_px, help="keypoint steps in px (default 0.25,0.5,1,2)")
    ap.add_argument("--every", type=ints, default=d.every, help="lower frame rates: keep every n-th frame, for the "
                    "keypoint codec at the default step and for the baselines, their bitrates divided by n "
                    "(default 2,4; empty: none)")
    ap.add_argument("--default-step", type=float, default=d.default_px, help="the step the summary compares (px)")
    ap.add_argument("--anchor-every", type=int, default=d.anchor_every)
    ap.add_argument("--ack-delay-ms", type=float, default=d.ack_delay_ms,
                    help="when the sender learns that a frame arrived (round trip + ack interval)")
    ap.add_argument("--codecs", type=lambda t: tuple(t.split(",")) if t else (), default=d.codecs)
    ap.add_argument("--bitrates", type=floats, default=d.bitrates_kbps, help="baseline targets, kbps at 25 fps")
    ap.add_argument("--max-frames", type=int, help="only the first N frames of each clip (quick runs)")
    ap.add_argument("--refresh-kbps", type=floats, default=d.refresh_kbps,
                    help="budgets (every byte, kbps at 25 fps) of the codec refreshing its picture (default 4,8,16)")
    ap.add_argument("--refresh-db", type=float, default=d.refresh_db, help="the refresh rule's target (dB)")
    ap.add_argument("--refresh-every", type=int, default=d.refresh_every,
                    help="the refresh points keep every n-th frame (default 1; n > 1 needs n in --every)")
    ap.add_argument("--picture-crf", type=int, default=d.picture_crf, help="AV1 quality of the pictures (0-63)")


def _options(args: argparse.Namespace) -> Options:
    return Options(args.steps, args.every, args.default_step, args.anchor_every, args.ack_delay_ms, args.codecs,
                   args.bitrates, args.max_frames, args.threads, args.refresh_kbps, args.refresh_every, args.refresh_db,
                   args.picture_crf)


def held_out_clips(videos: Path, cache: str | None, model: str) -> list[Path]:
    if cache:
        index = json.loads((Path(cache) / "index.json").read_text())
        names = [c["name"] for c in index["clips"] if c.get("held_out")]
    else:
        names = load_model(model).meta.get("held_out_clips") or []
    if not names:
        raise SystemExit(f"no held-out clips listed by {cache or model}")
    return [videos / n for n in names]


def rd_set(args: argparse.Namespace) -> int:
    videos = Path(args.videos)
    if args.held_out is not None:
        clips = held_out_clips(videos, args.held_out or None, args.model)
    else:
        clips = sorted(p for p in videos.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    if not clips:
        raise SystemExit(f"no videos in {videos}")
    out, opts = Path(args.out), _options(args)
    all_results = []
    for video in clips:
        name = str(video.relative_to(videos)).replace("/", "_")
        all_results.append(run_clip(video, None, args.model, out / "clips" / name, opts))
        all_results[-1]["clip"] = str(video.relative_to(videos))
    tables = {}
    for metric, every in [("ms_ssim", 1), ("psnr", 1)] + [("ms_ssim", n) for n in opts.every]:
        rows = [clip_row(r, metric, every) for r in all_results]
        tables[metric if every == 1 else f"{metric}_every{every}"] = rows + [mean_row(rows)]
    slower = "".join(f"### Equal MS-SSIM, one frame in {n} sent by every codec\n\n"
                     f"{markdown_table(tables[f'ms_ssim_every{n}'], 'MS-SSIM')}\n" for n in opts.every)
    # Every bit counted on both sides: the pictures (the first and the refreshes) and the baselines' keyframe.
    settings = [("no refresh", no_refresh_point)] + [
        (f"refresh within {b:g} kbps", lambda r, b=b: refresh_point(r, b)) for b in opts.refresh_kbps]
    all_bits = ""
    for name, point in settings:
        rows = [clip_row(r, "ms_ssim", point(r)["every"], point(r), "kbps_amortised") for r in all_results]
        tables[f"all_bits_{name}"] = rows + [mean_row(rows)]
        all_bits += (f"### Equal MS-SSIM, every bit counted: {name}\n\n"
                     f"{markdown_table(tables[f'all_bits_{name}'], 'MS-SSIM', 'amortised')}\n")
    refresh = ""
    if opts.refresh_kbps:
        rows = refresh_rows(all_results, opts.refresh_kbps)
        tables["refresh"] = rows
        refresh = (f"### Refreshing the picture within a budget (rule: {opts.refresh_db:g} dB, AV1 crf "
                   f"{opts.picture_crf})\n\nkbps: every byte after the first picture (what the budget governs); "
                   f"in brackets every byte.\n\n{refresh_markdown(rows)}\n")
    motion = motion_markdown(motion_rows(all_results), worst_frames(all_results))
    summary = (f"Keypoint codec at {opts.default_px:g} px (anchor every {opts.anchor_every}, acks "
               f"{opts.ack_delay_ms:g} ms late) against the bitrate each baseline needs for the same quality.\n\n"
               f"### Keypoint codec settings (means over the clips)\n\n{settings_markdown(all_results)}\n"
               f"### Equal MS-SSIM\n\n{markdown_table(tables['ms_ssim'], 'MS-SSIM')}\n"
               f"### Equal PSNR\n\n{markdown_table(tables['psnr'], 'PSNR')}\n{slower}{refresh}{all_bits}"
               f"### Quality against head motion\n\n{motion}")
    (out / "summary.md").write_text(summary)
    (out / "results.json").write_text(json.dumps({"options": opts.__dict__, "rows": tables,
                                                  "clips": [r["clip"] for r in all_results]}, indent=1))
    plot_points(average_points(all_results), f"mean over {len(all_results)} clips", out / "rd.png")
    print(summary)
    return 0


def call(args: argparse.Namespace) -> int:
    settings = [CallSetting(loss, jitter, args.delay_ms) for jitter in args.jitter_ms for loss in args.loss]
    sender_args = ["--kp-step", str(args.kp_step), "--anchor-every", str(args.anchor_every)]
    results = run_calls(Path(args.video), Path(args.refs) if args.refs else None, Path(args.out), args.model,
                        args.fps or None, args.threads, settings, args.seed, sender_args)
    print((Path(args.out) / "summary.md").read_text())
    return 0 if all(r["frames_rendered"] > 0 for r in results) else 1


def calibration(args: argparse.Namespace) -> int:
    result = calibrate([Path(args.videos) / c for c in args.clips], args.model, Path(args.out), args.every,
                       args.max_frames)
    print(f"{result['pairs']} pairs: loss = {result['loss_at_zero_db']:.2f} + {result['db_per_log_px']:.2f} "
          f"ln(1 + d) dB, rmse {result['rmse_db']:.2f} dB, correlation {result['fit_correlation']:.2f}, "
          f"Spearman {result['spearman']:.2f}")
    print("| keypoint distance px | pairs | mean PSNR loss of the stale picture dB |\n|---|---|---|")
    for row in result["by_distance"]:
        lo, hi = row["distance_px"]
        loss = "–" if row["mean_loss_db"] is None else f"{row['mean_loss_db']:.2f}"
        print(f"| {lo:g}–{hi:g} | {row['pairs']} | {loss} |")
    return 0


def fuzz_command(args: argparse.Namespace) -> int:
    """``fuzz``: the report to --out; 1 when anything escaped, hung or was accepted invalid."""
    unknown = set(args.targets) - set(SHARES)
    if unknown:
        raise SystemExit(f"unknown fuzz targets {sorted(unknown)}; known: {', '.join(SHARES)}")
    backend = Backend(args.model, "torch", "cpu", threads=args.threads)
    renderer = backend.renderer([talking_face(frames=1, size=backend.model.cfg.resolution, seed=0)[0]])
    started = time.monotonic()

    def progress(target: str, done: int) -> None:
        logging.info("fuzz %s: %d inputs (%.0f s)", target, done, time.monotonic() - started)

    report = fuzz(args.count, renderer, ModelIdentity.of(backend.model), backend.model.cfg.resolution, args.seed,
                  args.targets, args.hang_ms / 1000, progress)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(json.dumps({"totals": report["totals"], **{name: {k: r[k] for k in ("inputs", "escaped", "hangs",
                                                                               "invalid", "accepted_forged", "seconds")}
                                                       for name, r in report["targets"].items()}}, indent=1))
    t = report["totals"]
    return 1 if t["escaped"] or t["hangs"] or t["invalid"] else 0


def clip_or_generated(args: argparse.Namespace, out: Path) -> Path:
    """``--video``, or a generated talking face (10 s at 25 fps) written to OUT/clip.mp4."""
    if args.video:
        return Path(args.video)
    out.mkdir(parents=True, exist_ok=True)
    write_video(out / "clip.mp4", talking_face(frames=250, size=256, seed=7), 25.0)
    return out / "clip.mp4"


def soak_command(args: argparse.Namespace) -> int:
    """``soak``: samples to OUT/soak.json; 1 unless the call ended with bye and no window stalled."""
    out = Path(args.out)
    video = clip_or_generated(args, out)
    refs = Path(args.refs) if args.refs else first_frame_refs(video, out / "refs")
    report = run_soak(video, refs, out, args.model, args.fps, args.threads, args.minutes, args.interval)
    print(json.dumps({k: report[k] for k in ("final", "growth_after_warmup", "stalled_windows", "end_seconds",
                                             "sender_exit", "receiver_exit")},
                     indent=1))
    ok = report["final"]["end_reason"] == "bye" and report["stalled_windows"] == 0
    return 0 if ok and report["sender_exit"] == report["receiver_exit"] == 0 else 1


def realnet_command(args: argparse.Namespace) -> int:
    """``realnet``: the calls' table to OUT/summary.md (and printed); 1 when a call did not end with bye."""
    out = Path(args.out)
    video = clip_or_generated(args, out)
    results = run_realnet(video, Path(args.refs) if args.refs else None, out, args.model, args.fps or None,
                          args.threads, args.rates, not args.no_turn)
    print((out / "summary.md").read_text())
    calls = results["shaped"] + ([results["turn"]] if "turn" in results else [])
    return 0 if all(c["end_reason"] == "bye" for c in calls) else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    rd = sub.add_parser("rd", help="rate-distortion of one clip")
    rd.add_argument("--video", required=True)
    rd.add_argument("--refs", help="reference images (default: the clip's first frame)")
    _rd_options(rd)
    rds = sub.add_parser("rd-set", help="rate-distortion over a folder of clips, with the summary table")
    rds.add_argument("--videos", required=True)
    rds.add_argument("--held-out", nargs="?", const="", metavar="CACHE",
                     help="only the held-out clips: those CACHE/index.json marks, or (no CACHE) the model's list")
    _rd_options(rds)
    c = sub.add_parser("call", help="real calls on loopback under injected loss and jitter")
    c.add_argument("--video", required=True)
    c.add_argument("--refs", help="reference images (default: the clip's first frame)")
    c.add_argument("--loss", type=floats, default=(0.0, 0.05, 0.2), help="loss rates (default 0,0.05,0.2)")
    c.add_argument("--jitter-ms", type=floats, default=(0.0,), help="jitter values, ms (default 0)")
    c.add_argument("--delay-ms", type=float, default=0.0, help="added one-way delay, ms")
    c.add_argument("--fps", type=float, default=10.0, help="frames sent per second (0: all; default 10, what a "
                   "2-core CPU renders)")
    c.add_argument("--kp-step", type=float, default=Options().default_px)
    c.add_argument("--anchor-every", type=int, default=Options().anchor_every)
    c.add_argument("--model", default=DEFAULT_MODEL)
    c.add_argument("--seed", type=int, default=1, help="impairment random seed")
    c.add_argument("--threads", type=int, default=1)
    c.add_argument("--out", required=True)
    k = sub.add_parser("calibrate", help="what a stale reference picture costs against the keypoint distance")
    k.add_argument("--every", type=int, default=5, help="score every n-th frame (default %(default)s)")
    k.add_argument("--max-frames", type=int, default=250)
    pic = sub.add_parser("pictures", help="image codecs and qualities for the reference pictures")
    for p in (k, pic):
        p.add_argument("--videos", required=True, help="folder the clips are in")
        p.add_argument("--clips", required=True, type=lambda t: [c for c in t.split(",") if c],
                       help="comma-separated clips under --videos (not held out: these choices are the codec's)")
        p.add_argument("--model", default=DEFAULT_MODEL)
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--out", required=True)
    f = sub.add_parser("fuzz", help="random, mutated and absurd inputs through the peers' message handlers")
    f.add_argument("--count", type=int, default=1_000_000, help="inputs in all (default %(default)s)")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--targets", type=lambda t: tuple(t.split(",")), default=tuple(SHARES),
                   help=f"which handlers (default all: {','.join(SHARES)})")
    f.add_argument("--hang-ms", type=float, default=10_000.0,
                   help="an input taking longer counts as a hang (default %(default)s: a busy CPU stalls for seconds)")
    f.add_argument("--model", default=DEFAULT_MODEL, help="the receiver's model (only its identity is exercised)")
    f.add_argument("--threads", type=int, default=1)
    f.add_argument("--out", required=True, help="report (JSON)")
    n = sub.add_parser("realnet", help="calls over a 2G-like shaped link and through a TURN relay (root)")
    n.add_argument("--video", help="clip to stream (default: a generated talking face, 10 s at 25 fps)")
    n.add_argument("--refs", help="reference images (default: the clip's first frame)")
    n.add_argument("--rates", type=floats, default=(16.0, 32.0), help="link rates, kbit/s (default 16,32)")
    n.add_argument("--no-turn", action="store_true", help="skip the call through the TURN relay")
    n.add_argument("--fps", type=float, default=10.0, help="frames sent per second (default %(default)s)")
    n.add_argument("--model", default=DEFAULT_MODEL)
    n.add_argument("--threads", type=int, default=1)
    n.add_argument("--out", required=True)
    soak = sub.add_parser("soak", help="one long call on loopback, sampled every interval")
    soak.add_argument("--video", help="clip, played again and again (default: a generated talking face, 10 s)")
    soak.add_argument("--refs", help="reference images (default: the clip's first frame)")
    soak.add_argument("--minutes", type=float, default=30.0)
    soak.add_argument("--interval", type=float, default=30.0, help="seconds between samples (default %(default)s)")
    soak.add_argument("--fps", type=float, default=10.0)
    soak.add_argument("--model", default=DEFAULT_MODEL)
    soak.add_argument("--threads", type=int, default=1)
    soak.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    set_threads(args.threads)
    if args.command == "soak":
        return soak_command(args)
    if args.command == "fuzz":
        return fuzz_command(args)
    if args.command == "realnet":
        return realnet_command(args)
    if args.command == "rd":
        results = run_clip(args.video, args.refs, args.model, args.out, _options(args))
        print(json.dumps({k: v for k, v in results.items() if k not in ("points", "motion_px")}, indent=1))
        return 0
    if args.command == "calibrate":
        return calibration(args)
    if args.command == "pictures":
        print(pictures_markdown(measure_pictures([Path(args.videos) / c for c in args.clips], args.model,
                                                 Path(args.out))))
        return 0
    return rd_set(args) if args.command == "rd-set" else call(args)


if __name__ == "__main__":
    raise SystemExit(main())
