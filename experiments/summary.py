"""Over a set of clips: the bitrate each ordinary codec needs for the keypoint codec's quality, and the table.

On each baseline's curve (achieved steady kbps against quality, made monotone by a running maximum), the rate
for a quality is interpolated linearly in log-rate between the two points that bracket it. A baseline whose
lowest rate already beats that quality gives an upper bound ("<= lowest"), one that never reaches it a lower
bound ("> highest"); the saving factor (baseline kbps / keypoint kbps) carries the same bound.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

BASELINES = ("x264", "vp8", "vp9")


@dataclass(frozen=True)
class Needed:
    """The rate a baseline needs for a quality: exact, or bounded ("<=" or ">")."""

    kbps: float
    bound: str = ""  # "", "<=" or ">"

    def text(self) -> str:
        return f"{self.bound}{self.kbps:.1f}"


def needed_rate(points: list[dict[str, Any]], metric: str, target: float) -> Needed:
    curve = sorted(points, key=lambda p: p["kbps"])
    rates = np.array([p["kbps"] for p in curve])
    quality = np.maximum.accumulate([p[metric] for p in curve])
    if quality[0] >= target:
        return Needed(float(rates[0]), "<=")
    if quality[-1] < target:
        return Needed(float(rates[-1]), ">")
    i = int(np.argmax(quality >= target))
    q0, q1, r0, r1 = quality[i - 1], quality[i], math.log(rates[i - 1]), math.log(rates[i])
    t = (target - q0) / (q1 - q0) if q1 > q0 else 1.0
    return Needed(float(math.exp(r0 + t * (r1 - r0))))


def default_point(results: dict[str, Any], every: int = 1) -> dict[str, Any]:
    """The keypoint codec at the default step, sending every ``every``-th frame."""
    return next(p for p in results["points"] if p["codec"] == "keypoints" and p["every"] == every
                and p["step_px"] == results["default_step_px"])


def refresh_point(results: dict[str, Any], budget: float) -> dict[str, Any]:
    """The codec refreshing its picture within ``budget`` kbps (at the frame rate the run measured)."""
    return next(p for p in results["points"] if p["codec"] == "refresh" and p["budget_kbps"] == budget)


def no_refresh_point(results: dict[str, Any]) -> dict[str, Any]:
    """The codec without refresh at the refresh points' frame rate (the default step)."""
    every = next((p["every"] for p in results["points"] if p["codec"] == "refresh"), 1)
    return default_point(results, every)


def clip_row(results: dict[str, Any], metric: str, every: int = 1, ours: dict[str, Any] | None = None,
             rate: str = "kbps") -> dict[str, Any]:
    """The keypoint codec (``ours``, default: at the default step sending every ``every``-th frame) against each
    baseline's curve sending every ``every``-th frame, on the ``rate`` of both (``kbps_amortised``: every bit)."""
    ours = ours or default_point(results, every)
    row = {"clip": results["clip"], "fps": results["fps"], "frames": results["frames"], "kbps": ours["kbps"],
           "kbps_amortised": ours["kbps_amortised"], "bits_per_message": ours["bits_per_message"],
           "psnr": ours["psnr"], "ssim": ours["ssim"], "ms_ssim": ours["ms_ssim"], "needed": {}}
    for codec in BASELINES:
        curve = [{**p, "kbps": p[rate]} for p in results["points"] if p["codec"] == codec and p["every"] == every]
        if curve:
            need = needed_rate(curve, metric, ours[metric])
            row["needed"][codec] = {"kbps": need.kbps, "bound": need.bound, "factor": need.kbps / ours[rate]}
    return row


def mean_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Arithmetic means of rates and quality; geometric mean of the saving factors (bounded if any clip is)."""
    mean = {k: float(np.mean([r[k] for r in rows])) for k in
            ("kbps", "kbps_amortised", "bits_per_message", "psnr", "ssim", "ms_ssim")}
    mean["needed"] = {}
    for codec in rows[0]["needed"]:
        entries = [r["needed"][codec] for r in rows]
        bounds = {e["bound"] for e in entries} - {""}
        factor = float(np.exp(np.mean([np.log(e["factor"]) for e in entries])))
        mean["needed"][codec] = {"kbps": float(np.mean([e["kbps"] for e in entries])),
                                 "bound": bounds.pop() if len(bounds) == 1 else ("~" if bounds else ""),
                                 "factor": factor}
    return {"clip": f"**mean of {len(rows)} clips**", "fps": None, "frames": sum(r["frames"] for r in rows), **mean}


def markdown_table(rows: list[dict[str, Any]], metric: str, rate: str = "") -> str:
    """``rate``: "amortised" when the factors compare every bit."""
    codecs = list(rows[0]["needed"])
    steady = "kbps @25 fps, pictures after the first in (keypoint bits/frame)" if rate else \
        "keypoints kbps @25 fps (bits/frame)"
    head = ["clip", "fps", "frames", steady, "amortised kbps", "PSNR", "SSIM",
            "MS-SSIM"] + [f"{c} {rate + ' ' if rate else ''}kbps for same {metric} (×)" for c in codecs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["clip"], "" if r["fps"] is None else f"{r['fps']:g}", str(r["frames"]),
                 f"{r['kbps']:.2f} ({r['bits_per_message']:.0f})", f"{r['kbps_amortised']:.2f}", f"{r['psnr']:.2f}",
                 f"{r['ssim']:.3f}", f"{r['ms_ssim']:.4f}"]
        for c in codecs:
            n = r["needed"][c]
            cells.append(f"{n['bound']}{n['kbps']:.1f} ({n['bound']}{n['factor']:.1f}×)")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def average_points(all_results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each point (same codec and setting) averaged over the clips, for the set's plot."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for results in all_results:
        for p in results["points"]:
            groups.setdefault(p["name"], []).append(p)
    out = []
    for points in groups.values():
        if len(points) == len(all_results):
            avg = {k: points[0][k] for k in ("name", "codec", "step_px", "every", "target_kbps", "budget_kbps")
                   if k in points[0]}
            avg.update({k: float(np.mean([p[k] for p in points])) for k in ("kbps", "psnr", "ssim", "ms_ssim")})
            out.append(avg)
    return out


MOTION_BINS = (0.0, 1.0, 2.0, 4.0, 8.0, float("inf"))


def _equal_quality_point(results: dict[str, Any], codec: str, metric: str) -> dict[str, Any] | None:
    """The baseline's lowest-rate point at least as good as the keypoint codec on the clip's mean ``metric``."""
    target = default_point(results)[metric]
    good = [p for p in results["points"] if p["codec"] == codec and p["every"] == 1 and p[metric] >= target]
    return min(good, key=lambda p: p["kbps"]) if good else None


def motion_rows(all_results: list[dict[str, Any]], codec: str = "vp9") -> list[dict[str, Any]]:
    """Quality against head motion (mean keypoint distance to the reference, px): the keypoint codec, and the
    baseline at the point where it is as good as the codec on the clip's mean MS-SSIM, on the same frames."""
    rows = []
    for lo, hi in itertools.pairwise(MOTION_BINS):
        ours, theirs = [], []
        for results in all_results:
            motion = np.array(results["motion_px"])
            pick = (motion >= lo) & (motion < hi)
            ours.append(np.array(default_point(results)["per_frame"]["ms_ssim"])[pick])
            base = _equal_quality_point(results, codec, "ms_ssim")
            if base is not None:
                theirs.append(np.array(base["per_frame"]["ms_ssim"])[pick])
        ours_all = np.concatenate(ours)
        theirs_all = np.concatenate(theirs) if theirs else np.array([])
        if len(ours_all):
            rows.append({"motion_px": (lo, hi), "frames": len(ours_all), "ms_ssim": float(ours_all.mean()),
                         "baseline": codec, "baseline_ms_ssim": float(theirs_all.mean()) if len(theirs_all) else None})
    return rows


def worst_frames(all_results: list[dict[str, Any]], count: int = 8) -> list[dict[str, Any]]:
    """The keypoint codec's worst frames by MS-SSIM over the set (frame numbers count from 0)."""
    frames = []
    for results in all_results:
        ours = default_point(results)["per_frame"]
        offset = results["frames"] - results["frames_scored"]
        for i, (m, p) in enumerate(zip(ours["ms_ssim"], ours["psnr"])):
            frames.append({"clip": results["clip"], "frame": i + offset, "ms_ssim": m, "psnr": p,
                           "motion_px": results["motion_px"][i]})
    return sorted(frames, key=lambda f: f["ms_ssim"])[:count]


def motion_markdown(rows: list[dict[str, Any]], worst: list[dict[str, Any]]) -> str:
    lines = [("| head motion (px from the reference) | frames | keypoints MS-SSIM | "
             f"{rows[0]['baseline']} MS-SSIM at equal clip mean |"), "|---|---|---|---|"]
    for r in rows:
        lo, hi = r["motion_px"]
        span = f"≥ {lo:g}" if hi == float("inf") else f"{lo:g}–{hi:g}"
        base = "–" if r["baseline_ms_ssim"] is None else f"{r['baseline_ms_ssim']:.4f}"
        lines.append(f"| {span} | {r['frames']} | {r['ms_ssim']:.4f} | {base} |")
    lines += ["", "| worst frames | frame | motion px | MS-SSIM | PSNR |", "|---|---|---|---|---|"]
    lines += [f"| {f['clip']} | {f['frame']} | {f['motion_px']:.1f} | {f['ms_ssim']:.4f} | {f['psnr']:.2f} |"
              for f in worst]
    return "\n".join(lines) + "\n"


def settings_markdown(all_results: list[dict[str, Any]]) -> str:
    """The keypoint codec's settings, means over the clips: bits per message, rates, quality; then the bits
    per message for each anchor period at the default step (the quality does not depend on it)."""
    names = [p["name"] for p in all_results[0]["points"] if p["codec"] == "keypoints"]
    lines = ["| step px | frames sent | bits per message | kbps @25 fps | amortised kbps | PSNR | SSIM | MS-SSIM |",
             "|---|---|---|---|---|---|---|---|"]
    for name in names:
        pts = [next(p for p in r["points"] if p["name"] == name) for r in all_results]
        m = {k: float(np.mean([p[k] for p in pts])) for k in
             ("bits_per_message", "kbps", "kbps_amortised", "psnr", "ssim", "ms_ssim")}
        sent = "all" if pts[0]["every"] == 1 else f"1 in {pts[0]['every']}"
        lines.append(f"| {pts[0]['step_px']:g} | {sent} | {m['bits_per_message']:.0f} | {m['kbps']:.2f} | "
                     f"{m['kbps_amortised']:.2f} | {m['psnr']:.2f} | {m['ssim']:.3f} | {m['ms_ssim']:.4f} |")
    periods = list(all_results[0]["anchor_bits"])
    lines += ["", "| anchor every (G) | " + " | ".join(periods) + " |", "|---|" + "---|" * len(periods),
              "| spoiled frames per lost message, at most | " + " | ".join(str(int(g) - 1) for g in periods) + " |",
              "| bits per message | " + " | ".join(f"{np.mean([r['anchor_bits'][g] for r in all_results]):.0f}"
                                               for g in periods) + " |"]
    return "\n".join(lines) + "\n"


def refresh_rows(all_results: list[dict[str, Any]], budgets: tuple[float, ...]) -> list[dict[str, Any]]:
    """Per clip: the codec without refresh (the default point) and refreshing within each budget."""
    rows = []
    for results in all_results:
        none = no_refresh_point(results)
        row = {"clip": results["clip"], "frames": results["frames"], "psnr": none["psnr"], "ms_ssim": none["ms_ssim"],
               "kbps_amortised": none["kbps_amortised"], "budgets": {}}
        for b in budgets:
            p = refresh_point(results, b)
            row["budgets"][b] = {"kbps": p["kbps"], "kbps_amortised": p["kbps_amortised"],
                                 "refreshes": p["refreshes"], "psnr": p["psnr"], "ms_ssim": p["ms_ssim"],
                                 "gain_db": p["psnr"] - none["psnr"]}
        rows.append(row)
    return rows


def refresh_markdown(rows: list[dict[str, Any]], mattered_db: float = 1.0) -> str:
    """The refresh table, its mean row, the two hardest clips (lowest PSNR without refresh) and the clips where
    refresh mattered (gained at least ``mattered_db`` within some budget)."""
    budgets = list(rows[0]["budgets"])
    head = ["clip", "frames", "no refresh: kbps (all bits), PSNR"] + [
        f"{b:g} kbps: kbps (all bits), refreshes, PSNR (gain)" for b in budgets]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def cells(r: dict[str, Any]) -> list[str]:
        out = [f"{r['kbps_amortised']:.2f}, {r['psnr']:.2f}"]
        for b in budgets:
            x = r["budgets"][b]
            out.append(f"{x['kbps']:.2f} ({x['kbps_amortised']:.2f}), {x['refreshes']:.3g}, {x['psnr']:.2f} "
                       f"({x['gain_db']:+.2f})")
        return out

    for r in rows:
        lines.append("| " + " | ".join([r["clip"], str(r["frames"]), *cells(r)]) + " |")
    mean = {"kbps_amortised": np.mean([r["kbps_amortised"] for r in rows]), "psnr": np.mean([r["psnr"] for r in rows]),
            "budgets": {b: {k: float(np.mean([r["budgets"][b][k] for r in rows]))
                            for k in ("kbps", "kbps_amortised", "refreshes", "psnr", "gain_db")} for b in budgets}}
    lines.append("| " + " | ".join([f"**mean of {len(rows)} clips**", str(sum(r["frames"] for r in rows)),
                                    *cells(mean)]) + " |")
    hardest = sorted(rows, key=lambda r: r["psnr"])[:2]
    lines += ["", "Two hardest clips (lowest PSNR without refresh): " + "; ".join(
        f"{r['clip']} ({r['psnr']:.2f} dB; " + ", ".join(f"{r['budgets'][b]['gain_db']:+.2f} dB at {b:g} kbps"
                                                       for b in budgets) + ")" for r in hardest) + "."]
    mattered = [r["clip"] for r in rows if max(x["gain_db"] for x in r["budgets"].values()) >= mattered_db]
    lines.append(f"Refresh mattered (at least {mattered_db:g} dB within some budget) on {len(mattered)} of {len(rows)} "
                 f"clips: {', '.join(mattered) or 'none'}.")
    return "\n".join(lines) + "\n"
