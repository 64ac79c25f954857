"""The sender's reference pictures: coded once, known exactly as the receiver will know them, one named per frame.

Each picture is coded (``shared_model.media.picture_codec``), decoded again and its keypoints detected on that
decoded copy, which is what the receiver will hold. A frame names the acknowledged picture nearest to it in
keypoints (with the receiver's hysteresis against flicker), or 0 (the receiver's own pictures) while none is
acknowledged and the receiver has some; with neither, the frame is not sent. The refresh rule (``refresh.py``)
watches the distance to the named picture; the first pictures come from ``--refs`` or the good-frame rule
(``good_frames.py``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from shared_model.media.picture_codec import DEFAULT_CRF, decode_picture, encode_picture, encode_within
from shared_model.media.references import ReferencePicker
from shared_model.runtime.backend import Extractor
from shared_model.wire.pictures import PictureOutbox

from .good_frames import StartPictures
from .refresh import RefreshPolicy


@dataclass
class PictureCounts:
    pictures: int = 0  # pictures queued for sending
    picture_bytes: int = 0  # their coded size
    refreshes: int = 0  # of them, sent because the picture had drifted


class SenderPictures:
    """Thread use: ``send`` and ``choose`` in the frame worker; the outbox is shared with the event loop.

    Refreshes are coded at ``crf``; the first pictures (given or picked) at the best crf whose bytes fit
    ``start_bytes`` (0: at ``crf`` too), since they are sent once and a calm call is rebuilt from them throughout.
    """

    def __init__(self, extractor: Extractor, resolution: int, outbox: PictureOutbox, start: StartPictures | None,
                 refresh: RefreshPolicy | None, crf: int = DEFAULT_CRF, start_bytes: int = 0) -> None:
        self.extractor, self.resolution, self.outbox = extractor, resolution, outbox
        self.start, self.refresh, self.crf, self.start_bytes = start, refresh, crf, start_bytes
        self.own_pictures = False  # the receiver has pictures of its own (its accept says so)
        self.keypoints: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.counts = PictureCounts()
        self._ids: tuple[int, ...] = ()
        self._picker: ReferencePicker | None = None

    @property
    def sends_pictures(self) -> bool:
        """It has pictures queued or sent, or will pick some from the first frames."""
        return self.start is not None or self.counts.pictures > 0

    def send(self, picture: np.ndarray, first: bool = False) -> int:
        """Code a face crop (uint8 RGB at the model's resolution) and queue it; returns its id. ``first``: one of
        the call's first pictures."""
        if first and self.start_bytes:
            data = encode_within(picture, self.start_bytes, self.crf)
        else:
            data = encode_picture(picture, self.crf)
        kp, strength = self.extractor(decode_picture(data, self.resolution))
        picture_id = self.outbox.add(data)
        self.keypoints[picture_id] = (kp, strength)
        self.counts.pictures += 1
        self.counts.picture_bytes += len(data)
        return picture_id

    def _nearest(self, held: frozenset[int], kp: np.ndarray, strength: np.ndarray) -> tuple[int, float]:
        """The held picture nearest in keypoints (with hysteresis) and its distance in px."""
        ids = tuple(sorted(held))
        if ids != self._ids:
            current = self._ids[self._picker.current] if self._picker and self._picker.current is not None else None
            self._picker = ReferencePicker(torch.from_numpy(np.stack([self.keypoints[i][0] for i in ids])),
                                           torch.from_numpy(np.stack([self.keypoints[i][1] for i in ids])))
            self._picker.current = ids.index(current) if current in ids else None
            self._ids = ids
        assert self._picker is not None
        i = self._picker(torch.from_numpy(np.asarray(kp, np.float32)),
                         torch.from_numpy(np.asarray(strength, np.float32)))
        return ids[i], float(self._picker.distances[i]) * self.resolution / 2

    def choose(self, seq: int, crop: np.ndarray, kp: np.ndarray, strength: np.ndarray, now_s: float) -> int | None:
        """The picture frame ``seq`` names (0: the receiver's own), or None when it cannot be rendered yet;
        starts the first pictures and refreshes when they are due."""
        if self.start is not None:
            for candidate in self.start.offer(crop, kp, strength, now_s):
                self.send(candidate.picture, first=True)
        held = self.outbox.usable()
        if not held:
            return 0 if self.own_pictures else None
        picture, distance_px = self._nearest(held, kp, strength)
        if self.refresh is not None and not self.outbox.busy and self.refresh.due(distance_px, now_s):
            self.send(crop)
            self.refresh.restart()
            self.counts.refreshes += 1
        self.outbox.named(picture, seq)
        return picture

    def as_dict(self) -> dict[str, int]:
        return asdict(self.counts)
