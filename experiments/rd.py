"""Rate-distortion of one clip: the keypoint codec at several settings and the ordinary codecs at several
bitrates, on the same face-cropped frames (``shared_model.evaluate.load_clip``: the clip's one fixed crop at
the model's resolution).

Every point is cached as ``OUT/points/NAME.json`` with a fingerprint of clip, model and options (the
baselines' leaves the model out, so a new model reuses them), and a run that stops resumes where it was.
Rates are quoted at 25 frames a second (bits per source frame x 25 / 1000),
steady (first message or keyframe left out) and amortised over the clip (first message or keyframe, and for
the keypoint codec the reference images as JPEG, included). Quality is averaged over the scored frames: every
frame but the first when the first frame is the reference, as in ``shared_model.evaluate``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from tqdm import tqdm

from sender.refresh import RefreshRule
from shared_model.evaluate import load_clip
from shared_model.media.metrics import frame_scores
from shared_model.media.picture_codec import DEFAULT_CRF, decode_picture, encode_picture
from shared_model.media.references import load_reference_images
from shared_model.media.video import video_fps
from shared_model.nets.model import load_model
from shared_model.runtime.inference import KeypointExtractor, Renderer
from shared_model.wire.keycoding import CodingSettings
from shared_model.wire.pictures import picture_messages

from .baselines import encode_decode
from .keystream import REFERENCE_FPS, code_stream, held_frames
from .refresh import Simulated, picture_key, simulate

log = logging.getLogger(__name__)

METRICS = ("psnr", "ssim", "ms_ssim")
#: Bumped when the refresh simulation changes, so that its cached points are made again.
REFRESH_SIMULATION = 3
ANCHOR_PERIODS = (1, 2, 4, 8, 64)


@dataclass(frozen=True)
class Options:
    """What to measure (the defaults are the documented run)."""

    steps_px: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)
    every: tuple[int, ...] = (2, 4)  # lower frame rates: keypoints at the default step, and the baselines
    default_px: float = 0.5
    anchor_every: int = CodingSettings.anchor_every
    ack_delay_ms: float = 150.0
    codecs: tuple[str, ...] = ("x264", "vp8", "vp9")
    bitrates_kbps: tuple[float, ...] = (5, 8, 12, 20, 32, 50, 80, 125, 200)
    max_frames: int | None = None
    threads: int = 1
    refresh_kbps: tuple[float, ...] = (4.0, 8.0, 16.0)  # budgets (all bits, kbps at 25 fps) of the refresh points
    refresh_every: int = 1  # the refresh points keep every n-th frame (what --fps does in a call)
    refresh_db: float = RefreshRule.loss_db
    picture_crf: int = DEFAULT_CRF

    def keypoint_settings(self) -> list[tuple[float, int]]:
        """(step in px, keep every n-th frame) of every keypoint-codec point."""
        return [(px, 1) for px in self.steps_px] + [(self.default_px, n) for n in self.every]


@dataclass
class Clip:
    """A face-cropped clip and the references the receiver holds, as the call sends them (AV1 pictures)."""

    name: str
    frames: np.ndarray  # (T, R, R, 3) uint8
    fps: float
    references: list[np.ndarray]  # decoded, as the receiver holds them
    keys: list[str]  # each reference's key (a hash of its coded bytes)
    scored: slice  # the frames quality is averaged over
    ref_bytes: int  # the references' picture messages (announcements and chunks)
    fingerprint: str = field(default="")


def load(video: str | Path, refs: str | Path | None, resolution: int, max_frames: int | None,
         crf: int = DEFAULT_CRF) -> Clip:
    frames = load_clip(video, resolution)[:max_frames]
    raw = [img for _, img in load_reference_images(refs, resolution)] if refs else [frames[0]]
    coded = [encode_picture(r, crf) for r in raw]
    ref_bytes = sum(len(m) for i, data in enumerate(coded) for m in picture_messages(i + 1, data))
    keys = [picture_key(data) for data in coded]
    digest = hashlib.sha1(frames.tobytes() + "".join(keys).encode()).hexdigest()[:12]
    return Clip(Path(video).name, frames, video_fps(video), [decode_picture(d, resolution) for d in coded], keys,
                slice(0 if refs else 1, None), ref_bytes, digest)


def kbps(bytes_per_source_frame: float) -> float:
    """Rate at 25 frames a second."""
    return 8.0 * bytes_per_source_frame * REFERENCE_FPS / 1000.0


def _quality(clip: Clip, shown: np.ndarray) -> dict[str, Any]:
    scores = frame_scores(clip.frames[clip.scored], shown[clip.scored])
    means = {k: float(v.mean()) for k, v in scores.items()}
    return {**means, "per_frame": {k: v.round(4).tolist() for k, v in scores.items()}}


class ClipRun:
    """The points of one clip, computed or read back from the cache."""

    def __init__(self, clip: Clip, model_name: str, out: Path, opts: Options) -> None:
        self.clip, self.out, self.opts = clip, out, opts
        self.model = load_model(model_name)
        # Baseline points depend on the clip and the encoders only, so they survive a change of model.
        self.baseline_fingerprint = f"{clip.fingerprint}-threads{opts.threads}"
        self.fingerprint = (f"{clip.fingerprint}-{self.model.model_id}-{self.model.version}-"
                            f"{opts.ack_delay_ms}-{opts.anchor_every}")
        (out / "points").mkdir(parents=True, exist_ok=True)
        self.refresh_fingerprint = f"{self.fingerprint}-{opts.refresh_db}-{opts.picture_crf}-{REFRESH_SIMULATION}"
        self._renderer: Renderer | None = None
        self._keypoints: tuple[np.ndarray, np.ndarray] | None = None
        self._pictures = Renderer(self.model, [])
        self._picture_ids: dict[str, int] = {}
        self._images: dict[str, np.ndarray] = {}  # every decoded picture by key; the renderer holds some
        # (frame, pictures held, picture named, step px): as every run needs it
        self._rendered: dict[tuple[int, tuple[str, ...], str, float], np.ndarray] = {}
        for key, image in zip(clip.keys, clip.references):
            self._hold(key, image)

    def cached(self, name: str, compute: Callable[[], dict[str, Any]],
               fingerprint: str | None = None) -> dict[str, Any]:
        """The point ``name`` from the cache if it was made with the same fingerprint, else computed and kept."""
        fingerprint = fingerprint or self.fingerprint
        path = self.out / "points" / f"{name}.json"
        if path.is_file():
            point = json.loads(path.read_text())
            if point.get("fingerprint") == fingerprint:
                return point
        start = time.monotonic()
        point = {"name": name, "fingerprint": fingerprint, **compute()}
        path.write_text(json.dumps(point))
        log.info("%s: %s done in %.0f s", self.clip.name, name, time.monotonic() - start)
        return point

    def keypoints(self) -> tuple[np.ndarray, np.ndarray]:
        """The sender's keypoints and strengths of every frame, unquantized."""
        if self._keypoints is None:
            extract = KeypointExtractor(self.model)
            pairs = [extract(f) for f in tqdm(self.clip.frames, desc="keypoints", leave=False, disable=None)]
            self._keypoints = np.stack([k for k, _ in pairs]), np.stack([s for _, s in pairs])
        return self._keypoints

    def renderer(self) -> Renderer:
        if self._renderer is None:
            self._renderer = Renderer(self.model, self.clip.references)
        return self._renderer

    def settings(self, px: float, anchor_every: int | None = None) -> CodingSettings:
        return CodingSettings.from_px(px, self.model.cfg.core,
                                      anchor_every=anchor_every or self.opts.anchor_every)

    def _hold(self, key: str, image: np.ndarray) -> None:
        if key not in self._picture_ids:
            self._picture_ids[key] = len(self._picture_ids) + 1
            self._images[key] = image

    def _render(self, frame: int, key: str, px: float, kp: np.ndarray, st: np.ndarray,
                held: tuple[str, ...] = ()) -> np.ndarray:
        """Frame ``frame`` (a source index) rebuilt from the picture ``key``, with ``held`` the other pictures
        the receiver holds at that moment (``iw`` attends over all of them; ``tps`` uses the one named). The
        decoded keypoints depend only on the frame and the step, so a rendering is reused by every point that
        needs it."""
        pictures = tuple(sorted({key, *held})) if self.model.kind == "iw" else (key,)
        if (frame, pictures, key, px) not in self._rendered:
            for k in set(self._picture_ids) - set(pictures):
                self._pictures.remove_picture(self._picture_ids[k])
            for k in pictures:
                if self._picture_ids[k] not in self._pictures.pictures:
                    self._pictures.add_picture(self._picture_ids[k], self._images[k])
            self._rendered[frame, pictures, key, px] = self._pictures.render(kp, st, self._picture_ids[key])[0]
        return self._rendered[frame, pictures, key, px]

    def keypoint_point(self, px: float, every: int) -> dict[str, Any]:
        kp, st = self.keypoints()
        coded = code_stream(kp, st, self.settings(px), self.clip.fps, every, self.opts.ack_delay_ms)
        frames = tqdm(zip(coded.kept, coded.keypoints, coded.strengths), total=len(coded.kept),
                      desc=f"render {px} px 1/{every}", leave=False, disable=None)
        if len(self.clip.references) == 1:
            rendered = np.stack([self._render(i, self.clip.keys[0], px, k, s) for i, k, s in frames])
        else:  # the receiver picks among its own references per frame
            rendered = np.stack([self.renderer().render(k, s)[0] for _, k, s in frames])
        shown = held_frames(rendered, coded.kept, len(self.clip.frames))
        frames = len(self.clip.frames)
        steady = coded.bits_per_kept_frame(skip_first=True) / 8 / every
        first = int(coded.sizes[0]) + self.clip.ref_bytes
        return {"codec": "keypoints", "step_px": px, "every": every, "anchor_every": self.opts.anchor_every,
                "bits_per_message": coded.bits_per_kept_frame(skip_first=True),
                "first_bytes": int(coded.sizes[0]), "ref_bytes": self.clip.ref_bytes, "intra": coded.intra,
                "kbps": kbps(steady), "kbps_amortised": kbps((steady * (frames - 1) + first) / frames),
                **_quality(self.clip, shown)}

    def _render_named(self, sim: Simulated, kept: np.ndarray) -> np.ndarray:
        """Every kept frame rebuilt from the picture it names (with the pictures held then, for ``iw``), held on
        screen until the next."""
        for key, image in sim.images.items():
            self._hold(key, image)
        px = self.opts.default_px
        rendered = np.stack([self._render(i, key, px, kp, st, held) for i, kp, st, key, held
                             in zip(kept, sim.keypoints, sim.strengths, sim.named, sim.held)])
        return held_frames(rendered, kept, len(self.clip.frames))

    def refresh_point(self, budget_kbps: float) -> dict[str, Any]:
        """The codec refreshing its picture within the budget (kbps at 25 fps), starting from the clip's first
        frame. The steady rate is every byte after the first picture (which the budget governs), the amortised
        one every byte, the first picture's included."""
        kp, st = self.keypoints()
        every = self.opts.refresh_every
        sim = simulate(self.clip.frames, kp, st, self.clip.fps, self.settings(self.opts.default_px),
                       KeypointExtractor(self.model), budget_kbps, RefreshRule(self.opts.refresh_db),
                       self.opts.ack_delay_ms, self.opts.picture_crf, every)
        frames = len(self.clip.frames)
        keypoint_bytes = float(np.sum(sim.frame_bytes))
        steady = kbps((keypoint_bytes + sim.picture_bytes) / frames)
        return {"codec": "refresh", "budget_kbps": budget_kbps, "every": every, "step_px": self.opts.default_px,
                "kbps": steady, "kbps_amortised": steady + kbps(sim.first_picture_bytes / frames),
                "kbps_keypoints": kbps(keypoint_bytes / frames), "bits_per_message": 8 * keypoint_bytes / frames,
                "picture_bytes": sim.picture_bytes,
                "first_picture_bytes": sim.first_picture_bytes,
                "pictures": sim.events, "refreshes": len(sim.events) - 1,
                **_quality(self.clip, self._render_named(sim, np.arange(0, frames, every)))}

    def baseline_point(self, codec: str, target_kbps: float, every: int = 1) -> dict[str, Any]:
        """The codec at ``target_kbps`` (at 25 fps) fed every ``every``-th frame at ``fps / every``, each decoded
        frame held on screen until the next, as the keypoint codec's frames are at the same setting."""
        kept = np.arange(0, len(self.clip.frames), every)
        bit_rate = round(target_kbps * 1000 * self.clip.fps / REFERENCE_FPS)  # the same bits per source frame
        enc = encode_decode(self.clip.frames[kept], self.clip.fps / every, codec, bit_rate, self.opts.threads)
        frames, first = len(self.clip.frames), int(enc.sizes[0])
        steady = float(enc.sizes[1:].mean()) / every if len(kept) > 1 else 0.0
        return {"codec": codec, "target_kbps": target_kbps, "every": every, "first_bytes": first,
                "kbps": kbps(steady), "kbps_amortised": kbps((steady * (frames - 1) + first) / frames),
                **_quality(self.clip, held_frames(enc.frames, kept, frames))}

    def anchor_bits(self) -> dict[str, float]:
        """Bits per message at the default step for several anchor periods (the quality does not change)."""
        kp, st = self.keypoints()
        return {str(g): code_stream(kp, st, self.settings(self.opts.default_px, g), self.clip.fps, 1,
                                    self.opts.ack_delay_ms).bits_per_kept_frame(skip_first=True)
                for g in ANCHOR_PERIODS}

    def motion_px(self) -> list[float]:
        """Per frame: mean keypoint distance (px) to the nearest reference's keypoints (how far the head moved)."""
        kp, _ = self.keypoints()
        ref_kp = np.stack([r.kp.cpu().numpy() for r in self.renderer().own])
        dist = np.linalg.norm(kp[:, None] - ref_kp[None], axis=-1).mean(-1).min(1)
        return (dist * self.model.cfg.core / 2)[self.clip.scored].round(3).tolist()


def run_clip(video: str | Path, refs: str | Path | None, model_name: str, out: str | Path, opts: Options) -> dict:
    """All points of one clip; writes ``OUT/results.json`` and ``OUT/rd.png``."""
    from .plot import plot_clip

    out = Path(out)
    model = load_model(model_name)
    clip = load(video, refs, model.cfg.resolution, opts.max_frames, opts.picture_crf)
    run = ClipRun(clip, model_name, out, opts)
    jobs: list[tuple[str, Callable[[], dict[str, Any]], str]] = [
        (f"keypoints-{px}px-every{n}", lambda px=px, n=n: run.keypoint_point(px, n), run.fingerprint)
        for px, n in opts.keypoint_settings()]
    suffix = f"-every{opts.refresh_every}" if opts.refresh_every > 1 else ""
    jobs += [(f"refresh-{b:g}k{suffix}", lambda b=b: run.refresh_point(b), run.refresh_fingerprint)
             for b in opts.refresh_kbps]
    jobs += [(f"{codec}-{rate}k", lambda c=codec, r=rate: run.baseline_point(c, r), run.baseline_fingerprint)
             for codec in opts.codecs for rate in opts.bitrates_kbps]
    # At the lower frame rates the baselines' ladder is divided by n: the same bits per coded frame.
    jobs += [(f"{codec}-{rate / n:g}k-every{n}", lambda c=codec, r=rate / n, n=n: run.baseline_point(c, r, n),
              run.baseline_fingerprint) for n in opts.every for codec in opts.codecs for rate in opts.bitrates_kbps]
    # Baseline points cached before they had a frame-rate axis were all at every frame.
    points = [{"every": 1, **run.cached(*job)} for job in tqdm(jobs, desc=clip.name, disable=None)]
    extra = run.cached("analysis", lambda: {"anchor_bits": run.anchor_bits(), "motion_px": run.motion_px()})
    results = {"video": str(video), "clip": clip.name, "fps": clip.fps, "frames": len(clip.frames),
               "frames_scored": len(clip.frames[clip.scored]), "resolution": model.cfg.resolution,
               "model": model.model_id, "model_version": model.version, "num_keypoints": model.cfg.num_keypoints,
               "keypoint_count_fixed": True, "references": len(clip.references), "ref_bytes": clip.ref_bytes,
               "rate_fps": REFERENCE_FPS, "ack_delay_ms": opts.ack_delay_ms, "anchor_every": opts.anchor_every,
               "default_step_px": opts.default_px, "anchor_bits": extra["anchor_bits"],
               "motion_px": extra["motion_px"], "points": [{k: v for k, v in p.items() if k != "fingerprint"}
                                                           for p in points]}
    (out / "results.json").write_text(json.dumps(results, indent=1))
    plot_clip(results, out / "rd.png")
    return results


def set_threads(threads: int) -> None:
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
