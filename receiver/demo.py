"""``python -m receiver.demo``: a whole call on this machine with the shipped model; no camera, no GPU.

Starts the signaling server, a receiver and a sender as three processes on loopback. The sender streams a
generated talking-face clip (or ``--video FILE``) at ``--fps`` and sends its own reference pictures (good
frames of its first second, or ``--refs DIR``), refreshing them when they drift; the receiver, which has no
pictures of its own, rebuilds every frame from them, records ``OUT/call.mp4`` and writes ``OUT/stats.json``.
At the end it prints the call's numbers and the recording's PSNR against the frames the sender cropped (with the
boxes it wrote, ``OUT/crops.json``), next to the PSNR of the first recorded frame held unchanged.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from sender.capture import FileSource
from shared_model.media.crop import Crop, StreamCropper
from shared_model.media.video import read_frames, write_video
from shared_model.nets.model import DEFAULT_MODEL, load_model
from shared_model.training.synthetic import talking_face
from signaling.client import TOKEN_ENV
from signaling.tokens import new_token


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Site:
    """Where one process of a call runs: a command prefix that puts it there (``ip netns exec NS``), the
    address it listens on (the signaling server) or dials the signaling server at (the peers), and extra
    arguments (ICE servers)."""

    prefix: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Layout:
    """Where the three processes of a call run: all on loopback by default (see experiments/netns.py)."""

    signaling: Site = Site()
    receiver: Site = Site()
    sender: Site = Site()


def tool(*args: str, log: Path, token: str | None = None, prefix: Sequence[str] = ()) -> subprocess.Popen:
    """``python -m`` one of the tools (after ``prefix``), its output in ``log``; ``token``: the room token,
    passed in the environment (``$KPC_ROOM_TOKEN``) rather than on the command line."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **({TOKEN_ENV: token} if token else {})}
    return subprocess.Popen([*prefix, sys.executable, "-m", *args], stdout=log.open("w"), stderr=subprocess.STDOUT,
                            env=env)


def wait_listening(log: Path, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Until the signaling server logs that it listens (works wherever it runs, namespaces included)."""
    deadline = time.monotonic() + timeout
    while "signaling on" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the signaling server did not start: see {log}")
        time.sleep(0.1)


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the signaling server stopped at start")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the signaling server never answered /healthz")


def sender_crops(video: Path, fps: float | None, resolution: int,
                 crops: dict[int, tuple[int, int, int]] | None = None) -> list[np.ndarray]:
    """The frames the sender sent, cropped as it cropped them: with the boxes it wrote (``sender --crops-out``:
    a slot it did not crop takes the box before it), else cropped again here (the same subsampling and stream
    crop, which differ from the live call's when the sender dropped frames it had no time for)."""
    frames = [c.frame for c in FileSource(video, fps, realtime=False).frames(threading.Event())]
    if crops is None:
        cropper = StreamCropper(resolution)
        return [cropper(f) for f in frames]
    out, box = [], None
    for seq, frame in enumerate(frames):
        box = crops.get(seq, box)
        out.append(None if box is None else Crop(*box).apply(frame, resolution))
    return out


def recording_vs_sent(video: Path, fps: float | None, resolution: int, out: Path, stats: dict
                      ) -> tuple[list[np.ndarray], np.ndarray]:
    """The frames the sender cropped (with the boxes it wrote to ``out/crops.json``, when there) and the
    recording ``out/call.mp4``, slot by slot from the first recorded slot (the frames before it waited for the
    first picture)."""
    first = stats["recording"]["first_seq"]
    crops = out / "crops.json"
    boxes = {int(seq): tuple(box) for seq, box in json.loads(crops.read_text()).items()} if crops.is_file() else None
    return sender_crops(video, fps, resolution, boxes)[first:], read_frames(out / "call.mp4")


def run_call(video: Path, refs: Path | None, out: Path, model: str, fps: float | None, threads: int | None,
             sender_args: Sequence[str] = (), layout: Layout = Layout()) -> dict:
    """Three processes (on loopback, or as ``layout`` places them); returns the receiver's stats. ``threads``:
    the receiver's ``--threads`` (None: its default, render workers side by side); the sender runs its networks on
    one thread, its default on a CPU (a crop and the detector: a few ms a frame). The sender sends ``refs`` as its
    pictures (None: it picks them). ``sender_args`` go to the sender as they are (impairment, coding). A call
    whose last bye was lost (the receiver then ends with "sender left") still counts: its ``end_reason`` says
    so."""
    port = free_port()
    common = ["--model", model, "--room", "demo"]
    token = new_token()
    signaling = tool("signaling", "--host", layout.signaling.host, "--port", str(port), log=out / "signaling.log",
                     prefix=layout.signaling.prefix)
    try:
        wait_listening(out / "signaling.log", signaling)
        receiver = tool("receiver", "--signaling", f"ws://{layout.receiver.host}:{port}",
                        "--record", str(out / "call.mp4"), "--stats-out", str(out / "stats.json"), *common,
                        *(["--threads", str(threads)] if threads else []),
                        *layout.receiver.args, log=out / "receiver.log", token=token, prefix=layout.receiver.prefix)
        fps_args = ["--fps", str(fps)] if fps else []
        refs_args = ["--refs", str(refs)] if refs else []
        sender = tool("sender", "--source", str(video), "--signaling", f"ws://{layout.sender.host}:{port}",
                      *fps_args, *refs_args, *common, "--crops-out", str(out / "crops.json"),
                      *sender_args, *layout.sender.args,
                      log=out / "sender.log", token=token, prefix=layout.sender.prefix)
        if sender.wait() != 0 or receiver.wait(timeout=120) not in (0, 1) or not (out / "stats.json").is_file():
            raise RuntimeError(f"the call failed: see {out}/sender.log and {out}/receiver.log")
    finally:
        signaling.send_signal(signal.SIGTERM)
        signaling.wait(timeout=15)
    return json.loads((out / "stats.json").read_text())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m receiver.demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", help="clip to stream (default: a generated talking face, 10 s at 25 fps)")
    ap.add_argument("--refs", help="the sender's reference pictures (default: it picks them from its first second)")
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--fps", type=float, default=25.0, help="frames sent per second (default %(default)s, a call's "
                    "rate: a 2-core CPU running both ends renders 17-24 of them; 0 sends every frame)")
    ap.add_argument("--threads", type=int, help="the receiver's CPU threads per render (default: its own choice, "
                                                "two frames side by side on a 2-core CPU)")
    ap.add_argument("--out", default="out/demo", help="folder for the clip, recording, stats and logs")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    video = Path(args.video) if args.video else out / "clip.mp4"
    if not args.video:
        write_video(video, talking_face(frames=250, size=256, seed=7), 25.0)
    print(f"calling on loopback: {video} -> {out / 'call.mp4'}", flush=True)
    fps = args.fps or None
    try:
        stats = run_call(video, Path(args.refs) if args.refs else None, out, args.model, fps, args.threads)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    res = load_model(args.model).cfg.resolution
    truth, recorded = recording_vs_sent(video, fps, res, out, stats)
    frozen = truth[0]
    psnr_call = float(np.mean([cv2.PSNR(t, r) for t, r in zip(truth, recorded)]))
    psnr_frozen = float(np.mean([cv2.PSNR(t, frozen) for t in truth]))
    print(f"frames received {stats['frames_received']} / rendered {stats['frames_rendered']} / "
          f"lost {stats['frames_lost']}")
    print(f"payload {stats['payload_kbps']:.1f} kbps, wire {stats['wire_kbps']['received']:.1f} kbps in, "
          f"latency median {stats['latency_ms']['median']:.0f} ms (p95 {stats['latency_ms']['p95']:.0f}), "
          f"render {stats['render_fps']:.1f} fps")
    print(f"pictures: {stats['pictures']['held']} held, {stats['sender']['refreshes']} refreshes, "
          f"{stats['pictures']['bytes']} bytes; first one held after {stats['pictures']['first_held_s']:.1f} s")
    print(f"recording PSNR {psnr_call:.2f} dB vs the sender's crops (first recorded frame held unchanged: "
          f"{psnr_frozen:.2f} dB)")
    (out / "demo.json").write_text(json.dumps({"psnr": psnr_call, "baseline_psnr": psnr_frozen, "stats": stats},
                                              indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
