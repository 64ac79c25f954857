"""Training data: face-cropped frames of a folder of videos, cached at the model resolution.

``python -m shared_model.training.data --videos DIR --out CACHE --resolution 256`` decodes every video under DIR,
crops the face once per clip, and writes ``CACHE/frames.npy`` (all frames, uint8) and ``CACHE/index.json``
(clips, frame ranges, crops, the person in each clip, and the train / held-out split, made by person).

``--people FILE`` (JSON) says which clips show the same person and which people are held out::

    {"groups": {"trump": ["fomm-demo-old/04.mp4", "styletalk/trump_*"], ...}, "held_out": ["d8", ...]}

A clip that no group names is a person of its own, called by its path without the suffix. Without
``held_out`` in the file, about ``--holdout-percent`` % of the people are held out by a hash of their name.
"""
from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..media.crop import NoFaceError, clip_crop

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".mpg", ".mpeg", ".avi", ".mov", ".mkv", ".webm"}


def find_videos(root: str | Path) -> list[Path]:
    root = Path(root)
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)


def is_held_out(name: str, percent: float) -> bool:
    """Deterministic split by name: about ``percent`` % of names are held out."""
    digest = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16)
    return digest % 10000 < percent * 100


@dataclass
class People:
    """Who is in which clip (glob patterns per person), and which people are held out of training."""

    groups: dict[str, list[str]] = field(default_factory=dict)
    held_out: list[str] | None = None
    holdout_percent: float = 10.0

    @classmethod
    def load(cls, path: str | Path | None, holdout_percent: float = 10.0) -> People:
        if path is None:
            return cls(holdout_percent=holdout_percent)
        data = json.loads(Path(path).read_text())
        return cls(data.get("groups", {}), data.get("held_out"), holdout_percent)

    def person(self, clip: str) -> str:
        for name, patterns in self.groups.items():
            if any(fnmatch.fnmatchcase(clip, p) for p in patterns):
                return name
        return str(Path(clip).with_suffix(""))

    def is_held_out(self, person: str) -> bool:
        if self.held_out is not None:
            return person in self.held_out
        return is_held_out(person, self.holdout_percent)


def prepare(videos: str | Path, out: str | Path, resolution: int, holdout_percent: float = 10.0,
            max_frames: int | None = None, frame_step: int = 1, people: People | None = None) -> dict:
    """Crop and cache every clip under ``videos`` (every ``frame_step``-th frame); returns the index written
    to ``out/index.json``. The split is by person (``people``; by default every clip is its own person)."""
    from ..media.video import VideoError, read_frames, video_fps  # PyAV only here: training reads the cache alone

    root = Path(videos)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    people = people or People(holdout_percent=holdout_percent)
    paths = find_videos(root)
    if not paths:
        raise VideoError(f"no video files under {root}")
    clips, start = [], 0
    with (out / "frames.u8").open("wb") as raw:
        for path in tqdm(paths, desc="clips", dynamic_ncols=True, disable=None):
            name = str(path.relative_to(root)) if root.is_dir() else path.name
            try:
                frames = read_frames(path, max_frames, frame_step)
                crop = clip_crop(frames)
            except (VideoError, NoFaceError) as exc:
                log.warning("skipping %s: %s", name, exc)
                continue
            for f in frames:
                raw.write(np.ascontiguousarray(crop.apply(f, resolution)).tobytes())
            person = people.person(name)
            clips.append({"name": name, "person": person, "start": start, "length": len(frames),
                          "fps": video_fps(path) / frame_step, "crop": crop.as_list(),
                          "held_out": people.is_held_out(person)})
            start += len(frames)
            del frames
    if not clips:
        raise VideoError(f"no usable clips under {root}")
    # frames.npy: a .npy header, then the raw bytes (never all frames in memory at once).
    with (out / "frames.npy").open("wb") as npy, (out / "frames.u8").open("rb") as raw:
        shape = (start, resolution, resolution, 3)
        np.lib.format.write_array_header_1_0(npy, {"descr": "|u1", "fortran_order": False, "shape": shape})
        shutil.copyfileobj(raw, npy, 16 << 20)
    (out / "frames.u8").unlink()
    index = {"resolution": resolution, "source": str(root), "frame_step": frame_step, "clips": clips}
    (out / "index.json").write_text(json.dumps(index, indent=1))
    held = sum(c["held_out"] for c in clips)
    persons = {c["person"] for c in clips}
    held_persons = {c["person"] for c in clips if c["held_out"]}
    log.info("cached %d frames of %d clips of %d people (%d clips of %d people held out) in %s", start, len(clips),
             len(persons), held, len(held_persons), out)
    return index


@dataclass
class FrameCache:
    """The cached frames and their clips."""

    frames: np.ndarray  # (T, R, R, 3) uint8, memory-mapped
    clips: list[dict]

    @classmethod
    def load(cls, path: str | Path) -> FrameCache:
        path = Path(path)
        index = json.loads((path / "index.json").read_text())
        return cls(np.load(path / "frames.npy", mmap_mode="r"), index["clips"])

    def split(self, held_out: bool) -> list[dict]:
        return [c for c in self.clips if c["held_out"] == held_out and c["length"] >= 2]

    def clip_frames(self, clip: dict) -> np.ndarray:
        return np.asarray(self.frames[clip["start"] : clip["start"] + clip["length"]])


def clip_weights(clips: list[dict]) -> np.ndarray:
    """How often each clip is sampled: a person in proportion to the square root of their frames (so the
    people with minutes of video do not drown the many with seconds), shared among their clips by length."""
    lengths = np.array([c["length"] for c in clips], dtype=float)
    persons = [c.get("person", c["name"]) for c in clips]
    totals: dict[str, float] = {}
    for p, n in zip(persons, lengths):
        totals[p] = totals.get(p, 0.0) + n
    w = np.array([n / totals[p] * np.sqrt(totals[p]) for p, n in zip(persons, lengths)])
    return w / w.sum()


class PairSampler:
    """Random (source, driving) pairs from the same clip, with identical augmentation on both frames.

    ``crop_jitter`` > 0 also re-frames each sample: both frames are cut from a random square covering
    ``1 - crop_jitter`` to all of the cached crop (the same cut for the sample's sources and driving frame, so
    the motion between them is unchanged), and resized back; this varies the face's size and position that
    33 training clips otherwise fix, against over-fitting.
    """

    def __init__(self, cache: FrameCache, clips: list[dict], augment: bool = True, seed: int = 0,
                 crop_jitter: float = 0.0) -> None:
        if not clips:
            raise ValueError("no clips to sample from")
        if not 0.0 <= crop_jitter < 0.5:
            raise ValueError("crop_jitter must be in [0, 0.5)")
        self.cache = cache
        self.clips = clips
        self.augment = augment
        self.crop_jitter = crop_jitter
        self.rng = np.random.default_rng(seed)
        self.weights = clip_weights(clips)

    def sample(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Two float tensors (B, 3, R, R) in [0, 1]: sources and drivings."""
        sources, driving = self.sample_sets(batch, 1)
        return sources[:, 0], driving

    def sample_sets(self, batch: int, refs: int, window: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Sets of ``refs`` sources (B, refs, 3, R, R) and a driving frame (B, 3, R, R), all from one clip
        and all different frames (implicit warping trains on reference sets). With ``window`` the sources come
        from ``window`` consecutive cached frames and the driving frame from elsewhere in the clip, as when a
        receiver holds pictures taken in one stretch of the call (its first second, a refresh)."""
        src, drv = [], []
        for ci in self.rng.choice(len(self.clips), size=batch, p=self.weights):
            clip = self.clips[ci]
            n = clip["length"]
            if 0 < window < n - 1:
                start = int(self.rng.integers(0, n - window + 1))
                inside = start + self.rng.choice(window, size=min(refs, window), replace=False)
                outside = np.setdiff1d(np.arange(n), np.arange(start, start + window))
                picks = np.concatenate([[self.rng.choice(outside)], inside])
            else:
                picks = self.rng.choice(n, size=min(refs + 1, n), replace=False)
            src.append(np.stack([self.cache.frames[clip["start"] + i] for i in np.resize(picks[1:], refs)]))
            drv.append(self.cache.frames[clip["start"] + picks[0]])
        s = torch.from_numpy(np.stack(src)).permute(0, 1, 4, 2, 3).float() / 255.0
        d = torch.from_numpy(np.stack(drv)).permute(0, 3, 1, 2).float() / 255.0
        if self.augment:
            s, d = self._augment(s, d)
        return s, d

    def _augment(self, s: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The same flip and colour change on a sample's sources (B, R, 3, H, W) and driving frame."""
        b = s.shape[0]
        flip = torch.from_numpy(self.rng.random(b) < 0.5)
        s[flip], d[flip] = s[flip].flip(-1), d[flip].flip(-1)
        gain = torch.from_numpy(self.rng.uniform(0.8, 1.2, (b, 3, 1, 1))).float()
        bias = torch.from_numpy(self.rng.uniform(-0.08, 0.08, (b, 1, 1, 1))).float()
        s, d = (s * gain[:, None] + bias[:, None]).clamp(0, 1), (d * gain + bias).clamp(0, 1)
        if self.crop_jitter > 0:
            s, d = self._reframe(s, d)
        return s, d

    def _reframe(self, s: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One random square cut per sample, applied to its sources and driving frame alike."""
        b, r = s.shape[:2]
        scale = self.rng.uniform(1.0 - self.crop_jitter, 1.0, b)
        shift = self.rng.uniform(-1.0, 1.0, (b, 2)) * (1.0 - scale)[:, None]
        theta = torch.zeros(b, 2, 3)
        theta[:, 0, 0] = theta[:, 1, 1] = torch.from_numpy(scale).float()
        theta[:, :, 2] = torch.from_numpy(shift).float()
        frames = torch.cat([s, d[:, None]], 1).flatten(0, 1)
        grid = F.affine_grid(theta.repeat_interleave(r + 1, 0), list(frames.shape), align_corners=False)
        out = F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=False)
        out = out.unflatten(0, (b, r + 1))
        return out[:, :r].contiguous(), out[:, r].contiguous()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m shared_model.training.data", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", required=True, help="a video file or a folder searched recursively")
    ap.add_argument("--out", required=True, help="cache folder to write")
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--holdout-percent", type=float, default=10.0,
                    help="share of people held out (by name hash) when --people lists none")
    ap.add_argument("--people", help="JSON file: which clips show the same person, which people are held out")
    ap.add_argument("--max-frames", type=int, default=None, help="read at most this many frames per clip")
    ap.add_argument("--frame-step", type=int, default=1, help="keep every n-th frame (neighbours are near-duplicates)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    prepare(args.videos, args.out, args.resolution, args.holdout_percent, args.max_frames, args.frame_step,
            People.load(args.people, args.holdout_percent))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
