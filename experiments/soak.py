"""A long call and what it costs over time (``python -m experiments soak``).

The three processes of ``receiver.demo`` on loopback, the sender playing a clip again and again (``--loop``),
the receiver rewriting its stats every interval (``--stats-interval``). Once the sender streams, every
``interval`` seconds each
process's resident memory, open descriptors and threads are read from /proc, with the frames the receiver
rendered in the interval and their latency; the samples go to ``OUT/soak.json`` as they come. After
``minutes`` the sender is sent SIGTERM (it says bye) and the verdict compares the first sample after the
warm-up with the last one.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from receiver.demo import free_port, tool, wait_listening
from signaling.tokens import new_token

#: How long the three processes may take to start and connect (a busy CPU needs tens of seconds).
STARTUP_S = 180.0
#: How long each peer may take to end once the sender is told to stop.
EXIT_S = 30.0
#: Samples before this many seconds are warm-up (caches, first allocations): growth is measured after it.
WARMUP_S = 60.0


def proc_sample(pid: int) -> dict[str, int]:
    """Resident memory (KiB), open descriptors and threads of a live process (Linux /proc)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {"rss_kib": int(fields["VmRSS"].split()[0]), "threads": int(fields["Threads"]),
            "fds": len(list(Path(f"/proc/{pid}/fd").iterdir()))}


def growth(samples: list[dict[str, Any]], warmup_s: float) -> dict[str, dict[str, int]]:
    """Per process: how much memory, descriptors and threads grew from the first sample after the warm-up
    (or the first) to the last."""
    settled = [s for s in samples if s["t"] >= warmup_s] or samples
    first, last = settled[0], samples[-1]
    return {name: {k: last["processes"][name][k] - first["processes"][name][k] for k in first["processes"][name]}
            for name in first["processes"]}


def _wait_streaming(log: Path, procs: dict[str, subprocess.Popen], timeout: float = STARTUP_S) -> None:
    """Until the sender streams (the call was accepted)."""
    deadline = time.monotonic() + timeout
    while "call accepted" not in log.read_text(errors="replace"):
        if any(p.poll() is not None for p in procs.values()) or time.monotonic() > deadline:
            raise RuntimeError(f"the call did not start: see {log.parent}/*.log")
        time.sleep(0.5)


def _exit_code(proc: subprocess.Popen, timeout: float) -> int | str:
    """The exit status, or "hung" (its threads' stacks then go to its log through faulthandler, SIGABRT)."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        proc.wait(timeout=15)
        return "hung"


def run_soak(video: Path, refs: Path, out: Path, model: str, fps: float, threads: int, minutes: float,
             interval: float) -> dict[str, Any]:
    """Run the call, sample it, write ``OUT/soak.json``; returns the report."""
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PYTHONFAULTHANDLER", "1")  # the tools' stacks on SIGABRT, for a process that hangs
    port, token = free_port(), new_token()
    url, stats_path = f"ws://127.0.0.1:{port}", out / "stats.json"
    common = ["--model", model, "--threads", str(threads), "--room", "soak", "--signaling", url]
    signaling = tool("signaling", "--port", str(port), log=out / "signaling.log")
    procs = {"signaling": signaling}
    report: dict[str, Any] = {"video": str(video), "model": model, "fps": fps, "minutes": minutes,
                              "interval_s": interval, "samples": []}
    try:
        wait_listening(out / "signaling.log", signaling)
        procs["receiver"] = tool("receiver", "--record", str(out / "call.mp4"), "--stats-out", str(stats_path),
                                 "--stats-interval", str(interval), *common, log=out / "receiver.log", token=token)
        procs["sender"] = tool("sender", "--source", str(video), "--loop", "--fps", str(fps), "--refs", str(refs),
                               *common, log=out / "sender.log", token=token)
        _wait_streaming(out / "sender.log", procs)
        start = time.monotonic()
        while (t := time.monotonic() - start) < 60 * minutes:
            time.sleep(min(interval, 60 * minutes - t))
            if any(p.poll() is not None for p in procs.values()):
                raise RuntimeError(f"a process of the call stopped early: see {out}/*.log")
            stats = json.loads(stats_path.read_text()) if stats_path.is_file() else {}
            report["samples"].append({
                "t": round(time.monotonic() - start, 1),
                "processes": {name: proc_sample(p.pid) for name, p in procs.items()},
                "frames_received": stats.get("frames_received"), "frames_rendered": stats.get("frames_rendered"),
                "window": stats.get("window")})
            (out / "soak.json").write_text(json.dumps(report, indent=1))
        procs["sender"].send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        report["sender_exit"] = _exit_code(procs["sender"], EXIT_S)
        report["receiver_exit"] = _exit_code(procs["receiver"], EXIT_S)
        report["end_seconds"] = round(time.monotonic() - t0, 2)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=15)
    final = json.loads(stats_path.read_text())
    windows = [s["window"] for s in report["samples"] if s["window"]]
    report["final"] = {k: final[k] for k in ("end_reason", "frames_expected", "frames_received",
                                             "frames_rendered", "latency_ms", "render_fps")}
    report["growth_after_warmup"] = growth(report["samples"], min(WARMUP_S, 60 * minutes / 3))
    report["stalled_windows"] = sum(1 for w in windows[1:] if w["frames_rendered"] == 0)
    (out / "soak.json").write_text(json.dumps(report, indent=1))
    return report
