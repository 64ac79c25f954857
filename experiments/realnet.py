"""Calls over real (emulated) networks: a 2G-like shaped link, and peers that meet only through a TURN relay
(``python -m experiments realnet``, root only: see experiments/netns.py).

Each call is the three processes of ``receiver.demo``, placed in network namespaces; the recording is scored
slot by slot against the frames the sender cropped (``experiments.call.scored``). Beside each shaped call,
x264 codes the same crops at the rate that fits the link (``LINK_SHARE`` of it, the rest left for packet
headers and the return path) and is scored the same way: what an ordinary video call could send there.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from receiver.demo import run_call, sender_crops
from shared_model.media.metrics import frame_scores
from shared_model.nets.model import load_model

from . import netns
from .baselines import encode_decode
from .call import first_frame_refs, scored

#: Share of a shaped link's rate given to x264's bitstream (the rest: RTP/UDP/IP headers, feedback).
LINK_SHARE = 0.8


def h264_at(video: Path, fps: float | None, model: str, kbps: float) -> dict[str, Any]:
    """x264 on the crops the sender sends, at ``kbps``: achieved rate and quality."""
    truth = np.stack(sender_crops(video, fps, load_model(model).cfg.resolution))
    rate = fps or 25.0
    encoded = encode_decode(truth, rate, "x264", round(kbps * 1000))
    scores = frame_scores(truth, encoded.frames)
    return {"target_kbps": kbps, "achieved_kbps": float(8 * encoded.sizes.sum() / len(truth) * rate / 1000),
            **{k: float(v.mean()) for k, v in scores.items()}}


def shaped_call(video: Path, refs: Path, out: Path, model: str, fps: float | None,
                threads: int, rate_kbit: float) -> dict[str, Any]:
    """A call over a link shaped to ``rate_kbit`` both ways, beside x264 at the rate that fits it."""
    folder = out / f"shaped-{rate_kbit:g}kbit"
    folder.mkdir(parents=True, exist_ok=True)
    with netns.shaped_link(rate_kbit) as link:
        stats = run_call(video, refs, folder, model, fps, threads, layout=link.layout)
        queues = link.counts()
    result = {"link_kbit": rate_kbit, **scored(video, fps, model, folder, stats),
              "link": queues, "h264": h264_at(video, fps, model, LINK_SHARE * rate_kbit)}
    (folder / "result.json").write_text(json.dumps(result, indent=1))
    return result


def relayed_call(video: Path, refs: Path, out: Path, model: str, fps: float | None,
                 threads: int) -> dict[str, Any]:
    """A call between peers that can reach only a TURN relay."""
    folder = out / "turn"
    folder.mkdir(parents=True, exist_ok=True)
    with netns.relayed(folder) as relay:
        stats = run_call(video, refs, folder, model, fps, threads, layout=relay.layout)
    result = {"ice_pair": stats["ice_pair"], **scored(video, fps, model, folder, stats)}
    (folder / "result.json").write_text(json.dumps(result, indent=1))
    return result


def run_realnet(video: Path, refs: Path | None, out: Path, model: str, fps: float | None, threads: int,
                rates_kbit: tuple[float, ...], turn: bool) -> dict[str, Any]:
    """The shaped calls and the relayed call; writes ``OUT/results.json`` and ``OUT/summary.md``."""
    if reason := netns.unavailable():
        raise RuntimeError(f"cannot make network namespaces here: {reason}")
    out.mkdir(parents=True, exist_ok=True)
    refs = refs or first_frame_refs(video, out / "refs")
    results: dict[str, Any] = {"video": str(video), "model": model, "fps": fps,
                               "shaped": [shaped_call(video, refs, out, model, fps, threads, r)
                                          for r in rates_kbit]}
    if turn:
        results["turn"] = relayed_call(video, refs, out, model, fps, threads)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "summary.md").write_text(markdown(results))
    return results


def markdown(results: dict[str, Any]) -> str:
    head = ("link", "frames sent / received / rendered", "payload kbps", "wire kbps in / out",
            "latency median / p95 ms", "queue drops", "PSNR / MS-SSIM",
            "x264 at the rate that fits: kbps, PSNR / MS-SSIM")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rows = [(f"{r['link_kbit']:g} kbit/s shaped", r) for r in results["shaped"]]
    if "turn" in results:
        pair = results["turn"]["ice_pair"] or {}
        rows.append((f"TURN relay ({pair.get('local')} / {pair.get('remote')})", results["turn"]))
    for name, r in rows:
        wire = r["wire_kbps"] or {}
        drops = sum(q["dropped"] for q in r["link"].values()) if "link" in r else "–"
        h264 = (f"{r['h264']['achieved_kbps']:.1f}, {r['h264']['psnr']:.2f} / {r['h264']['ms_ssim']:.3f}"
                if "h264" in r else "–")
        lines.append("| " + " | ".join([
            name, f"{r['sender']['sent']} / {r['frames_received']} / {r['frames_rendered']}",
            f"{r['payload_kbps']:.2f}", f"{wire.get('received', 0):.1f} / {wire.get('sent', 0):.1f}",
            f"{r['latency_ms']['median']:.0f} / {r['latency_ms']['p95']:.0f}", str(drops),
            f"{r['psnr']:.2f} / {r['ms_ssim']:.3f}", h264]) + " |")
    return "\n".join(lines) + "\n"
