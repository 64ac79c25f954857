"""Training data: face-cropped frames of a folder of videos, cached at the model resolution.

``python -m shared_model.data --videos DIR --out CACHE --resolution 128`` decodes every video under DIR,
crops the face once per clip, and writes ``CACHE/frames.npy`` (all frames, uint8) and ``CACHE/index.json``
(clips, frame ranges, crops, and the train / held-out split, made by clip).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .crop import NoFaceError, clip_crop
from .video import VideoError, read_frames, video_fps

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".mpg", ".mpeg", ".avi", ".mov", ".mkv", ".webm"}


def find_videos(root: str | Path) -> list[Path]:
    root = Path(root)
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)


def is_held_out(name: str, percent: float) -> bool:
    """Deterministic split by clip name: about ``percent`` % of clips are held out."""
    digest = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16)
    return digest % 10000 < percent * 100


def prepare(videos: str | Path, out: str | Path, resolution: int, holdout_percent: float = 10.0,
            max_frames: int | None = None) -> dict:
    """Crop and cache every clip under ``videos``; returns the index written to ``out/index.json``."""
    root = Path(videos)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = find_videos(root)
    if not paths:
        raise VideoError(f"no video files under {root}")
    clips, chunks, start = [], [], 0
    for path in tqdm(paths, desc="clips", dynamic_ncols=True, disable=None):
        name = str(path.relative_to(root)) if root.is_dir() else path.name
        try:
            frames = read_frames(path, max_frames)
            crop = clip_crop(frames)
        except (VideoError, NoFaceError) as exc:
            log.warning("skipping %s: %s", name, exc)
            continue
        chunks.append(np.stack([crop.apply(f, resolution) for f in frames]))
        clips.append({"name": name, "start": start, "length": len(frames), "fps": video_fps(path),
                      "crop": crop.as_list(), "held_out": is_held_out(name, holdout_percent)})
        start += len(frames)
    np.save(out / "frames.npy", np.concatenate(chunks))
    index = {"resolution": resolution, "source": str(root), "holdout_percent": holdout_percent, "clips": clips}
    (out / "index.json").write_text(json.dumps(index, indent=1))
    held = sum(c["held_out"] for c in clips)
    log.info("cached %d frames of %d clips (%d held out) in %s", start, len(clips), held, out)
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
        lengths = np.array([c["length"] for c in clips], dtype=float)
        self.weights = lengths / lengths.sum()

    def sample(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Two float tensors (B, 3, R, R) in [0, 1]: sources and drivings."""
        sources, driving = self.sample_sets(batch, 1)
        return sources[:, 0], driving

    def sample_sets(self, batch: int, refs: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Sets of ``refs`` sources (B, refs, 3, R, R) and a driving frame (B, 3, R, R), all from one clip
        and all different frames (implicit warping trains on reference sets)."""
        src, drv = [], []
        for ci in self.rng.choice(len(self.clips), size=batch, p=self.weights):
            clip = self.clips[ci]
            picks = self.rng.choice(clip["length"], size=min(refs + 1, clip["length"]), replace=False)
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
    ap = argparse.ArgumentParser(prog="python -m shared_model.data", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", required=True, help="a video file or a folder searched recursively")
    ap.add_argument("--out", required=True, help="cache folder to write")
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--holdout-percent", type=float, default=10.0, help="share of clips held out (by name hash)")
    ap.add_argument("--max-frames", type=int, default=None, help="read at most this many frames per clip")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    prepare(args.videos, args.out, args.resolution, args.holdout_percent, args.max_frames)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
