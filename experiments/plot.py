"""Rate-distortion plots: MS-SSIM and PSNR against the rate at 25 fps (log scale), per clip and over a set."""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

COLOURS = {"keypoints": "tab:red", "refresh": "darkred", "x264": "tab:blue", "vp8": "tab:green", "vp9": "tab:purple"}
TARGET_KBPS = 4.0
RATE_TICKS = (0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256)


def _panel(ax: Any, points: list[dict[str, Any]], metric: str, label: str) -> None:
    """Baselines at every frame (solid) and at the lowest frame rate measured (dashed); the keypoint codec."""
    slowest = max(p["every"] for p in points)
    for codec, every in itertools.product(("x264", "vp8", "vp9"), sorted({1, slowest})):
        curve = sorted((p for p in points if p["codec"] == codec and p["every"] == every), key=lambda p: p["kbps"])
        if curve:
            ax.plot([p["kbps"] for p in curve], [p[metric] for p in curve], "o-" if every == 1 else "o--",
                    ms=3 if every == 1 else 2, color=COLOURS[codec], alpha=1.0 if every == 1 else 0.6,
                    label=codec if every == 1 else f"{codec}, 1 in {every}")
    full = sorted((p for p in points if p["codec"] == "keypoints" and p["every"] == 1), key=lambda p: p["kbps"])
    ax.plot([p["kbps"] for p in full], [p[metric] for p in full], "s-", color=COLOURS["keypoints"],
            label="keypoints (step px)")
    for p in full:
        ax.annotate(f"{p['step_px']:g}", (p["kbps"], p[metric]), textcoords="offset points", xytext=(4, -10),
                    fontsize=7, color=COLOURS["keypoints"])
    for p in (p for p in points if p["codec"] == "keypoints" and p["every"] > 1):
        ax.plot(p["kbps"], p[metric], "^", color=COLOURS["keypoints"])
        ax.annotate(f"1 in {p['every']}", (p["kbps"], p[metric]), textcoords="offset points", xytext=(-10, 6),
                    fontsize=7, color=COLOURS["keypoints"])
    refresh = sorted((p for p in points if p["codec"] == "refresh"), key=lambda p: p["kbps"])
    if refresh:
        ax.plot([p["kbps"] for p in refresh], [p[metric] for p in refresh], "D-", color=COLOURS["refresh"], ms=4,
                label="keypoints + refreshed pictures (budget)")
        for p in refresh:
            ax.annotate(f"{p['budget_kbps']:g}", (p["kbps"], p[metric]), textcoords="offset points", xytext=(4, 4),
                        fontsize=7, color=COLOURS["refresh"])
    ax.axvline(TARGET_KBPS, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(RATE_TICKS))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("kbps at 25 fps (steady: first frame / first picture apart; refreshes in)")
    ax.set_ylabel(label)
    ax.grid(True, which="both", alpha=0.3)


def plot_points(points: list[dict[str, Any]], title: str, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    _panel(axes[0], points, "ms_ssim", "MS-SSIM")
    _panel(axes[1], points, "psnr", "PSNR (dB, RGB)")
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_clip(results: dict[str, Any], path: Path) -> None:
    plot_points(results["points"], f"{results['clip']} ({results['frames']} frames at {results['fps']:g} fps, "
                f"{results['resolution']} px, model {results['model']})", path)
