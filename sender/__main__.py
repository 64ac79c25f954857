"""``python -m sender``: stream face keypoints from a camera or a video file to a receiver.

    python -m sender --source 0|FILE --signaling ws://HOST:8765 --room NAME [--model NAME|PATH] [--fps N]
    python -m sender --source FILE --output CALL.kpc        (the same messages to a file, no network)

The sender brings its own face: it sends reference pictures over the call (``--refs DIR``, or by default good
frames of its first second), and a new one when the picture the receiver holds no longer shows what the camera
sees, all within ``--max-kbps``.

Exit status: 0 when the call ended normally (the source ended, either end hung up, or interrupted), 1 when it
was refused or the connection was lost, 2 for bad arguments, source, references or model.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
from pathlib import Path

from shared_model.call.aio import Interrupted, stop_on_signals
from shared_model.call.rtc import Impairment, add_ice_arguments, configuration_from_args
from shared_model.errors import CodecError
from shared_model.logs import setup_logging
from shared_model.media.picture_codec import BEST_CRF, DEFAULT_CRF
from shared_model.media.references import load_reference_images
from shared_model.media.video import VideoError
from shared_model.nets.model import pick_device
from shared_model.runtime.backend import Backend, add_model_arguments
from shared_model.wire.control import MAX_FPS, MAX_PICTURES, MIN_FPS
from shared_model.wire.keycoding import CodingSettings
from shared_model.wire.messages import ModelIdentity
from shared_model.wire.pictures import PictureOutbox
from signaling.client import SignalingError, add_signaling_arguments, check_signaling_arguments

from .call import CallOptions, run_call
from .capture import open_source
from .good_frames import StartPictures
from .pictures import SenderPictures
from .pipeline import FramePipeline
from .refresh import RefreshPolicy, RefreshRule
from .to_file import write_call_file

#: The default budget, every payload byte: on the held-out clips it buys most of what refresh gives, and calm
#: calls spend only their keypoints' 3-5 kbps (docs/call.md, docs/experiments.md).
DEFAULT_MAX_KBPS = 16.0
#: A first picture may take this many seconds of the budget: at 16 kbps 2 KB, AV1 crf 35-40 at 256 px, 0.4-0.6 dB
#: above crf 50 for every frame rebuilt from it, for about a second more before the second picture (docs/call.md).
FIRST_PICTURE_S = 1.0

log = logging.getLogger("sender")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m sender", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", required=True, help="camera index (0, 1, ...) or video file")
    ap.add_argument("--loop", action="store_true", help="play a video file again and again (long test calls)")
    add_signaling_arguments(ap, "--output", "write the messages to FILE instead of calling")
    ap.add_argument("--fps", type=float, help="send at most N frames a second (default: the source's rate)")
    g = ap.add_argument_group("keypoint coding (agreed with the receiver in the hello)")
    g.add_argument("--kp-step", type=float, default=0.5, metavar="PX",
                   help="keypoint quantization step in pixels of the detector's input (default %(default)s)")
    g.add_argument("--st-step", type=float, default=1 / 16, help="strength quantization step (default 1/16)")
    g.add_argument("--anchor-every", type=int, default=CodingSettings.anchor_every, metavar="G",
                   help="every G-th frame refers only to an acknowledged frame: a lost message spoils at most "
                        "G-1 later frames (default %(default)s; 1: none, at some bits)")
    g = ap.add_argument_group("reference pictures (sent over the call, within the budget)")
    g.add_argument("--refs", metavar="DIR", help=f"send these pictures of the speaker at call start (face-cropped "
                   f"as the receiver crops its own; at most {MAX_PICTURES})")
    g.add_argument("--ref-count", type=int, default=2, metavar="N",
                   help="without --refs: send N good frames of the first second (default %(default)s; 0: none, "
                        "the receiver must have --refs)")
    g.add_argument("--max-kbps", type=float, default=DEFAULT_MAX_KBPS,
                   help="budget for everything sent, keypoints and pictures, payload kbps (default %(default)s)")
    g.add_argument("--refresh-db", type=float, default=RefreshRule.loss_db, metavar="DB",
                   help="send the current frame as a new picture when the picture in use is estimated to cost "
                        "this much PSNR against a fresh one for %g s (default %%(default)s; 0: never)"
                        % RefreshRule.hold_s)
    g.add_argument("--picture-crf", type=int, default=DEFAULT_CRF,
                   help="AV1 quality of refreshes (and of first pictures the budget does not pay better for), "
                        "0-63, lower is better (default %(default)s)")
    g.add_argument("--first-picture-s", type=float, default=FIRST_PICTURE_S, metavar="S",
                   help="the first pictures may each take S seconds of the budget: coded at the best crf from "
                        f"{BEST_CRF} to --picture-crf whose bytes fit (default %(default)s; 0: at --picture-crf)")
    add_model_arguments(ap)
    add_ice_arguments(ap)
    g = ap.add_argument_group("emulated network trouble on outgoing datagrams (testing)")
    g.add_argument("--impair-loss", type=float, default=0.0, metavar="P", help="drop probability, 0..1")
    g.add_argument("--impair-delay-ms", type=float, default=0.0, metavar="D")
    g.add_argument("--impair-jitter-ms", type=float, default=0.0, metavar="J")
    g.add_argument("--impair-seed", type=int, help="random seed of the impairment")
    ap.add_argument("--stats-interval", type=float, default=2.0, help="seconds between stats messages")
    ap.add_argument("--crops-out", metavar="FILE.json", help="at the end, write the face crop (x, y, side in the "
                                                             "frame) of every frame cropped, by sequence number")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    check_signaling_arguments(ap, args)
    if args.fps is not None and not MIN_FPS <= args.fps <= MAX_FPS:
        ap.error(f"--fps must be in [{MIN_FPS:g}, {MAX_FPS:g}]")
    return args


async def run(args: argparse.Namespace) -> int:
    """The sender's async entry point (a call through the signaling server)."""
    try:
        if not args.max_kbps > 0:
            raise ValueError("--max-kbps must be positive")
        opts = CallOptions(args.signaling, args.room, args.token, configuration_from_args(args),
                           Impairment(args.impair_loss, args.impair_delay_ms / 1000, args.impair_jitter_ms / 1000,
                                      args.impair_seed), args.stats_interval, args.max_kbps)
        source = open_source(args.source, args.fps, loop=args.loop)
        pipeline = _pipeline(args, source.fps)
    except (CodecError, ValueError, VideoError, FileNotFoundError, RuntimeError) as exc:
        log.error("%s", exc)
        return 2
    stop = asyncio.Event()
    if args.crops_out:
        pipeline.crop_log = {}
    with stop_on_signals(stop):
        try:
            return await run_call(source, pipeline, opts, stop)
        except Interrupted:
            log.info("interrupted before the call started")
            return 0
        except (SignalingError, RuntimeError, VideoError) as exc:
            log.error("%s", exc)
            return 1
        finally:
            if pipeline.crop_log is not None:
                try:
                    Path(args.crops_out).write_text(json.dumps(pipeline.crop_log))
                except OSError as exc:
                    log.error("cannot write --crops-out: %s", exc)


def _pipeline(args: argparse.Namespace, fps: float) -> FramePipeline:
    if args.threads is None and pick_device(args.device).type == "cpu":
        args.threads = 1  # crop + detector take ~7 ms a frame on one core: the others stay free (a receiver too)
    backend = Backend.from_args(args)
    model = backend.model
    settings = CodingSettings.from_px(args.kp_step, model.cfg.core, args.st_step, args.anchor_every)
    log.info("model %s version %s (%s, %s); coding %s", model.model_id, model.version, backend.kind, backend.device,
             settings.as_dict())
    if args.ref_count < 0 or not 0 <= args.picture_crf <= 63 or not args.first_picture_s >= 0:
        raise ValueError("--ref-count and --first-picture-s must be at least 0 and --picture-crf in [0, 63]")
    extractor, res = backend.extractor(), model.cfg.resolution
    given = load_reference_images(args.refs, res)[:MAX_PICTURES] if args.refs else []
    start = StartPictures(args.ref_count) if args.ref_count and not given else None
    refresh = RefreshPolicy(RefreshRule(args.refresh_db)) if args.refresh_db > 0 else None
    start_bytes = int(args.first_picture_s * args.max_kbps * 1000 / 8)
    pictures = SenderPictures(extractor, res, PictureOutbox(), start, refresh, args.picture_crf, start_bytes)
    for name, image in given:
        log.info("picture %d: %s", pictures.send(image, first=True), name)
    return FramePipeline(extractor, ModelIdentity.of(model), res, fps, settings, pictures)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging("sender", args.verbose)
    if args.output:
        try:
            source = open_source(args.source, args.fps, realtime=False)
            write_call_file(source, _pipeline(args, source.fps), args.output)
        except (CodecError, ValueError, VideoError, FileNotFoundError, OSError) as exc:
            log.error("%s", exc)
            return 2
        return 0
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
