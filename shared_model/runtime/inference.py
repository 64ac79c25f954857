"""Per-frame inference for a call: the sender's keypoint extractor and the receiver's renderer."""
from __future__ import annotations

import contextlib
import logging
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..media.references import ReferencePicker
from ..nets.model import CodecModel

log = logging.getLogger(__name__)


def to_tensor(images: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """uint8 RGB (H, W, 3) or (B, H, W, 3) to float (B, 3, H, W) in [0, 1]."""
    if images.ndim == 3:
        images = images[None]
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float() / 255.0


def to_image(tensor: torch.Tensor) -> np.ndarray:
    """float (1, 3, H, W) in [0, 1] to uint8 RGB (H, W, 3)."""
    return (tensor[0].float().clamp(0, 1).permute(1, 2, 0) * 255.0).round().byte().cpu().numpy()


#: torch dtypes of the reduced precisions the torch backend runs under autocast.
AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def precision_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast to ``precision`` (fp32: none)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AUTOCAST[precision])


class KeypointExtractor:
    """Sender side: a face-cropped frame at model resolution to keypoints (P, 2) and strengths (P,)."""

    def __init__(self, model: CodecModel, device: torch.device | str = "cpu", precision: str = "fp32") -> None:
        self.model, self.device, self.precision = model, torch.device(device), precision

    @torch.inference_mode()
    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with precision_context(self.device, self.precision):
            kp, strength = self.model.detector(to_tensor(frame, self.device))
        return kp[0].float().cpu().numpy(), strength[0].float().cpu().numpy()


def spread_subset(count: int, limit: int) -> list[int]:
    """``limit`` indices spread evenly over ``count`` items (all of them when there are few enough)."""
    if count <= limit:
        return list(range(count))
    return sorted({int(round(i)) for i in np.linspace(0, count - 1, limit)})


@dataclass(frozen=True)
class Prepared:
    """A reference ready to render from: its keypoints (P, 2) and strengths (P,) as float tensors, and what the
    generator reuses for every frame (the picture, its encoder features)."""

    kp: torch.Tensor
    strength: torch.Tensor
    data: Any


class ReferenceRenderer(ABC):
    """The receiver's references and the rebuilding of a frame from one of them.

    Two kinds of reference: the receiver's own pictures (``receiver --refs``, given at construction), of which
    the one whose keypoints suit the frame best is picked per frame (with hysteresis against flicker), and the
    pictures the sender sends during the call (``add_picture`` / ``remove_picture``), which each frame names.
    Every picture is prepared once (keypoints, and what the generator reuses). Frames may be rendered in several
    threads at once (the receiver's render workers): the networks only read their weights, a picture is held or
    dropped by one dict operation, and the own-picture choice (which remembers the last one) takes a lock.
    """

    def __init__(self, references: list[np.ndarray], resolution: int) -> None:
        self.resolution = resolution
        self.own = [self._prepare(self._checked(r)) for r in references]
        self.pictures: dict[int, Prepared] = {}
        self._picking = threading.Lock()
        self.picker = None
        if self.own:
            self.picker = ReferencePicker(torch.stack([p.kp for p in self.own]),
                                          torch.stack([p.strength for p in self.own]))

    def _checked(self, image: np.ndarray) -> np.ndarray:
        if image.shape != (self.resolution, self.resolution, 3) or image.dtype != np.uint8:
            raise ValueError(f"reference images must be {self.resolution}x{self.resolution} RGB uint8, got "
                             f"{image.shape} {image.dtype}")
        return image

    @abstractmethod
    def _prepare(self, image: np.ndarray) -> Prepared: ...

    @abstractmethod
    def _generate(self, ref: Prepared, kp: np.ndarray, strength: np.ndarray) -> np.ndarray: ...

    def add_picture(self, picture: int, image: np.ndarray) -> None:
        """Hold the sender's picture ``picture`` (an id > 0), ready to render from."""
        self.pictures[picture] = self._prepare(self._checked(image))

    def remove_picture(self, picture: int) -> None:
        self.pictures.pop(picture, None)

    def render(self, kp: np.ndarray, strength: np.ndarray, picture: int = 0) -> tuple[np.ndarray, int]:
        """The frame rebuilt from the sender's picture ``picture`` (KeyError if not held), or for ``picture`` 0
        from the own reference nearest in keypoints; returns it (uint8 RGB) and the picture id or own index."""
        if picture:
            return self._generate(self.pictures[picture], kp, strength), picture
        if self.picker is None:
            raise ValueError("no reference pictures of its own: a frame must name one of the sender's")
        with self._picking:
            i = self.picker(torch.as_tensor(kp, dtype=torch.float32), torch.as_tensor(strength, dtype=torch.float32))
        return self._generate(self.own[i], kp, strength), i


class Renderer(ReferenceRenderer):
    """Receiver side with torch.

    ``tps`` renders from one reference per frame (see ``ReferenceRenderer``); ``iw`` attends over a whole set at
    once: the own references (at most ``cfg.iw_max_refs``; a larger set is thinned evenly, with a warning), or
    every sender picture held.
    """

    def __init__(self, model: CodecModel, references: list[np.ndarray], device: torch.device | str = "cpu",
                 precision: str = "fp32") -> None:
        self.model, self.device, self.precision = model, torch.device(device), precision
        with torch.inference_mode():
            super().__init__(references, model.cfg.resolution)
            if model.kind == "iw" and self.own:
                keep = spread_subset(len(self.own), model.cfg.iw_max_refs)
                if len(keep) < len(self.own):
                    log.warning("%d references given, iw attends over at most %d: using %s", len(self.own),
                                len(keep), keep)
                self.reference_set = self._reference_set([self.own[i] for i in keep])
        self._picture_set: tuple[tuple[int, ...], Any] = ((), None)

    @torch.inference_mode()
    def _prepare(self, image: np.ndarray) -> Prepared:
        source = to_tensor(image, self.device)
        kp, strength = self.model.detector(source)
        feats = self.model.generator.encoder(source) if self.model.kind == "tps" else None
        return Prepared(kp[0], strength[0], (source, feats))

    def _reference_set(self, refs: list[Prepared]) -> Any:
        return self.model.generator.prepare(torch.cat([r.data[0] for r in refs])[None],
                                            torch.stack([r.kp for r in refs])[None],
                                            torch.stack([r.strength for r in refs])[None])

    @torch.inference_mode()
    def _generate(self, ref: Prepared, kp: np.ndarray, strength: np.ndarray) -> np.ndarray:
        kp_t, st_t = self._driving(kp, strength)
        source, feats = ref.data
        with precision_context(self.device, self.precision):
            out = self.model.generator(source, ref.kp[None], ref.strength[None], kp_t, st_t, source_feats=feats)
        return to_image(out["prediction"])

    def _driving(self, kp: np.ndarray, strength: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.as_tensor(kp, dtype=torch.float32, device=self.device)[None],
                torch.as_tensor(strength, dtype=torch.float32, device=self.device)[None])

    @torch.inference_mode()
    def render(self, kp: np.ndarray, strength: np.ndarray, picture: int = 0) -> tuple[np.ndarray, int]:
        if self.model.kind == "tps":
            return super().render(kp, strength, picture)
        if picture:
            if picture not in self.pictures:
                raise KeyError(picture)
            held = tuple(sorted(self.pictures))  # at most MAX_PICTURES (8), what iw attends over at most
            if self._picture_set[0] != held:
                self._picture_set = (held, self._reference_set([self.pictures[p] for p in held]))
            reference_set, shown = self._picture_set[1], picture
        elif self.picker is None:
            raise ValueError("no reference pictures of its own: a frame must name one of the sender's")
        else:
            reference_set = self.reference_set
            with self._picking:
                shown = self.picker(torch.as_tensor(kp, dtype=torch.float32),
                                    torch.as_tensor(strength, dtype=torch.float32))
        with precision_context(self.device, self.precision):
            out = self.model.generator(reference_set, *self._driving(kp, strength))
        return to_image(out["prediction"]), shown
