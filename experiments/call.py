"""Real calls on loopback under injected loss and jitter (``python -m experiments call``).

Each setting is a whole three-process call as ``receiver.demo`` runs it (signaling server, receiver, sender;
real aiortc, real websockets), with the sender's ``--impair-loss / --impair-jitter-ms / --impair-delay-ms``
dropping and delaying its outgoing datagrams. The recording is scored slot by slot against the frames the
sender cropped. Each setting's result is kept in ``OUT/loss…-jitter…/result.json``: a rerun skips it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from receiver.demo import recording_vs_sent, run_call
from shared_model.media.metrics import frame_scores
from shared_model.media.video import read_frames
from shared_model.nets.model import load_model


@dataclass(frozen=True)
class CallSetting:
    loss: float
    jitter_ms: float
    delay_ms: float

    @property
    def name(self) -> str:
        return f"loss{self.loss:g}-jitter{self.jitter_ms:g}-delay{self.delay_ms:g}"


def first_frame_refs(video: Path, folder: Path) -> Path:
    """A reference folder holding the clip's first frame (the sender sends it as its picture)."""
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "ref_00.png"), cv2.cvtColor(read_frames(video, max_frames=1)[0], cv2.COLOR_RGB2BGR))
    return folder


def _summary(stats: dict[str, Any]) -> dict[str, Any]:
    keys = ("end_reason", "frames_expected", "frames_received", "frames_lost", "frames_spoiled", "frames_stale",
            "frames_rendered", "frames_skipped", "bytes_per_message", "payload_kbps", "render_fps")
    return {**{k: stats[k] for k in keys}, "wire_kbps": stats["wire_kbps"],
            "latency_ms": {k: stats["latency_ms"][k] for k in ("median", "p95")}, "sender": stats["sender"]}


def run_setting(video: Path, refs: Path, out: Path, model: str, fps: float | None,
                threads: int, setting: CallSetting, seed: int, sender_args: list[str]) -> dict[str, Any]:
    result_path = out / setting.name / "result.json"
    if result_path.is_file():
        return json.loads(result_path.read_text())
    folder = result_path.parent
    folder.mkdir(parents=True, exist_ok=True)
    impair = ["--impair-loss", str(setting.loss), "--impair-jitter-ms", str(setting.jitter_ms),
              "--impair-delay-ms", str(setting.delay_ms), "--impair-seed", str(seed)]
    stats = run_call(video, refs, folder, model, fps, threads, impair + sender_args)
    result = {"loss": setting.loss, "jitter_ms": setting.jitter_ms, "delay_ms": setting.delay_ms,
              **scored(video, fps, model, folder, stats)}
    result_path.write_text(json.dumps(result, indent=1))
    return result


def scored(video: Path, fps: float | None, model: str, folder: Path, stats: dict[str, Any]) -> dict[str, Any]:
    """A finished call's numbers (``stats``) and its recording (``folder/call.mp4``) scored against the frames
    the sender cropped: mean PSNR, SSIM, MS-SSIM."""
    resolution = load_model(model).cfg.resolution
    truth, recorded = recording_vs_sent(video, fps, resolution, folder, stats)
    n = min(len(truth), len(recorded))
    scores = frame_scores(np.stack(truth[:n]), recorded[:n])
    return {**_summary(stats), **{k: float(v.mean()) for k, v in scores.items()}}


def run_calls(video: Path, refs: Path | None, out: Path, model: str, fps: float | None, threads: int,
              settings: list[CallSetting], seed: int, sender_args: list[str]) -> list[dict[str, Any]]:
    """Every setting in turn; writes ``OUT/results.json`` and ``OUT/summary.md``."""
    out.mkdir(parents=True, exist_ok=True)
    refs = refs or first_frame_refs(video, out / "refs")
    results = [run_setting(video, refs, out, model, fps, threads, s, seed, sender_args)
               for s in tqdm(settings, desc="calls", disable=None)]
    (out / "results.json").write_text(json.dumps({"video": str(video), "model": model, "fps": fps,
                                                  "sender_args": sender_args, "calls": results}, indent=1))
    (out / "summary.md").write_text(markdown(results))
    return results


def markdown(results: list[dict[str, Any]]) -> str:
    head = ("loss", "jitter ms", "frames sent / received / spoiled / rendered", "bytes per message", "payload kbps",
            "wire kbps in / out", "latency median / p95 ms", "PSNR", "SSIM", "MS-SSIM")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        wire = r["wire_kbps"] or {}
        lines.append("| " + " | ".join([
            f"{100 * r['loss']:g} %", f"{r['jitter_ms']:g}",
            f"{r['sender']['sent']} / {r['frames_received']} / {r['frames_spoiled']} / {r['frames_rendered']}",
            f"{r['bytes_per_message']:.1f}", f"{r['payload_kbps']:.2f}",
            f"{wire.get('received', 0):.1f} / {wire.get('sent', 0):.1f}",
            f"{r['latency_ms']['median']:.0f} / {r['latency_ms']['p95']:.0f}",
            f"{r['psnr']:.2f}", f"{r['ssim']:.3f}", f"{r['ms_ssim']:.4f}"]) + " |")
    return "\n".join(lines) + "\n"
