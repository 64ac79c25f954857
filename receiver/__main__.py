"""``python -m receiver``: rebuild the sender's face from its keypoints, show it and/or record it.

    python -m receiver --signaling ws://HOST:8765 --room NAME [--record call.mp4] [--display] [--refs ./me]
    python -m receiver --input CALL.kpc --record call.mp4       (a file written by sender --output)

The sender sends its reference pictures during the call; rendering starts once the first has arrived.
``--refs`` adds pictures of the receiver's own, used for the frames that name none of the sender's (before
its first picture is acknowledged, or all the call when the sender sends none). A folder written by
``python -m shared_model.enrol`` also holds a personal generator (``generator.pt``), which the receiver then
renders with unless ``--model`` says otherwise: the sender keeps the shipped model, whose keypoint detector the
personal generator shares (the hello checks it).

Exit status: 0 when the call ended with the sender's bye (or the input file was played to its end) or was
interrupted, 1 when it was refused or the sender vanished, 2 for bad arguments, references or model.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from pathlib import Path

import torch

from shared_model.call.aio import Interrupted, stop_on_signals
from shared_model.call.rtc import add_ice_arguments, configuration_from_args
from shared_model.errors import CodecError
from shared_model.logs import setup_logging
from shared_model.media.references import GENERATOR_FILE, enrolled_generator, load_reference_images
from shared_model.nets.model import DEFAULT_MODEL, pick_device
from shared_model.runtime.backend import Backend, add_model_arguments
from shared_model.wire.control import MAX_PICTURES
from shared_model.wire.messages import ModelIdentity
from signaling.client import SignalingError, add_signaling_arguments, check_signaling_arguments

from .call import CallOptions, receive_call, replay_file
from .display import Display, DisplayUnavailable
from .session import MAX_WORKERS, Expectation, Session

log = logging.getLogger("receiver")

CLEAN_ENDS = ("bye", "end of file", "interrupted")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m receiver", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--refs", help="folder of reference images of the sender's face of this end's own, for frames "
                                   "that name none of the sender's pictures (tps uses the one nearest each frame; "
                                   "iw attends over all, at most 8)")
    ap.add_argument("--workers", type=int, help="frames rendered side by side (default: 2 on a CPU with at least two "
                                                "cores, each then on one --threads; 1 on a GPU)")
    ap.add_argument("--max-pictures", type=int, default=MAX_PICTURES,
                    help="hold at most this many of the sender's pictures (1-%(default)s)")
    add_signaling_arguments(ap, "--input", "play a file written by sender --output instead")
    ap.add_argument("--record", metavar="OUT.mp4", help="record the rebuilt frames on the sender's clock")
    ap.add_argument("--display", action="store_true", help="show the rebuilt frames in a window")
    ap.add_argument("--stats-out", metavar="FILE.json", help="write the call's measurements here")
    ap.add_argument("--stats-interval", type=float, default=0.0, metavar="S",
                    help="also rewrite --stats-out every S seconds during a call, with a 'window' of the frames "
                         "rendered since the last time (long calls; default: only at the end)")
    ap.add_argument("--idle-timeout", type=float, default=10.0,
                    help="end the call after this many seconds without a message (default %(default)s)")
    add_model_arguments(ap, None, f"(default: the personal generator in --refs, if it holds {GENERATOR_FILE} "
                                  f"from shared_model.enrol, else {DEFAULT_MODEL})")
    add_ice_arguments(ap)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    check_signaling_arguments(ap, args)
    if args.model is None:
        personal = enrolled_generator(args.refs) if args.refs else None
        args.model = str(personal) if personal else DEFAULT_MODEL
    if args.workers is not None and not 1 <= args.workers <= MAX_WORKERS:
        ap.error(f"--workers must be in [1, {MAX_WORKERS}]")
    return args


def render_threads(args: argparse.Namespace, device: torch.device) -> tuple[int, int | None]:
    """Render workers and CPU threads each: on a CPU, frames side by side on one thread each (two
    single-threaded renders give about twice the frames of one render on two threads here, docs/model.md);
    ``--threads`` without ``--workers`` keeps one worker."""
    cores = os.cpu_count() or 1
    if device.type != "cpu":
        return args.workers or 1, args.threads
    workers = args.workers or (1 if args.threads else min(2, cores))
    return workers, args.threads or max(1, cores // workers)


def build_session(args: argparse.Namespace) -> Session:
    """Model, references (precomputed once) and outputs; ValueError / RuntimeError with a clear message."""
    workers, args.threads = render_threads(args, pick_device(args.device))
    backend = Backend.from_args(args)
    model = backend.model
    if not 1 <= args.max_pictures <= MAX_PICTURES:
        raise ValueError(f"--max-pictures must be in [1, {MAX_PICTURES}]")
    refs = load_reference_images(args.refs, model.cfg.resolution) if args.refs else []
    log.info("model %s version %s (%s; %s, %s, %s, %d render worker%s on %s thread%s), keypoint detector %s; "
             "%d references of its own%s", model.model_id, model.version, args.model, backend.kind, backend.device,
             backend.precision, workers, "s" * (workers > 1), args.threads or "default", "s" * (args.threads != 1),
             model.detector_version, len(refs), "".join(f", {name}" for name, _ in refs))
    renderer = backend.renderer([image for _, image in refs])
    display = Display() if args.display else None
    return Session(renderer, Expectation(ModelIdentity.of(model), model.cfg.resolution), args.record, display,
                   live=args.input is None, max_pictures=args.max_pictures, render_workers=workers)


async def run(args: argparse.Namespace) -> int:
    """The receiver's async entry point."""
    try:
        session = build_session(args)
        rtc = configuration_from_args(args) if args.signaling else None
    except (CodecError, DisplayUnavailable, FileNotFoundError, ValueError, RuntimeError) as exc:
        log.error("%s", exc)
        return 2
    stop = asyncio.Event()
    writer = None
    if args.stats_out and args.stats_interval > 0:
        writer = asyncio.ensure_future(_write_every(args.stats_interval, args.stats_out, session))
    with stop_on_signals(stop):
        try:
            if args.input:
                reason = await replay_file(session, args.input)
            else:
                reason = await receive_call(session, CallOptions(args.signaling, args.room, args.token, rtc,
                                                                     args.idle_timeout),
                                            stop)
        except Interrupted:
            reason = "interrupted"
        except (SignalingError, RuntimeError, CodecError, OSError) as exc:
            log.error("%s", exc)
            reason = f"error: {exc}"
        if writer is not None:
            writer.cancel()
        await session.finish(stop)
    if session.refusal is not None:
        reason = f"refused: {session.refusal}"
    log.info("call ended: %s", reason)
    report = {"end_reason": reason, **session.report()}
    log.info("received %d, rendered %d, lost %d frames; latency median %s ms; %s kbps payload, wire %s",
             report["frames_received"], report["frames_rendered"], report["frames_lost"],
             report["latency_ms"]["median"], report["payload_kbps"], report["wire_kbps"])
    if args.stats_out:
        write_json(args.stats_out, report)
    return 0 if reason in CLEAN_ENDS else 1


def write_json(path: str, report: dict) -> None:
    """Replace ``path`` at once (a reader never sees half a file)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(json.dumps(report, indent=1))
    tmp.replace(target)


async def _write_every(interval: float, path: str, session: Session) -> None:
    """The stats so far (``end_reason`` null: still running) every ``interval`` seconds."""
    while True:
        await asyncio.sleep(interval)
        write_json(path, {"end_reason": None, **session.report(), "window": session.stats.window()})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging("receiver", args.verbose)
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
