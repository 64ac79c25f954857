"""When the sender sends the current frame as a new reference picture (a refresh).

The receiver rebuilds each frame from the picture the frame names, and the further the face has moved from that
picture the worse the result. The sender estimates what the picture costs against a fresh one from the keypoint
distance d (strength-weighted mean, px at the model's resolution) between the frame and the picture, both of
which it has for free: ``loss = LOSS_AT_ZERO_DB + DB_PER_LOG_PX * ln(1 + d)`` dB, fitted on clips the model
trained on (``python -m experiments calibrate``, docs/call.md). A refresh is due when the estimate has stayed at
or above the target for ``hold_s`` seconds (a glance away does not pay for a picture, a lasting turn does) and
no other picture is in transfer; the budget then decides how fast its chunks go.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

#: The calibration (8 training clips, 676 frame / picture pairs, pictures at the default AV1 crf 50, tps
#: 8637786482 at 256 px): rmse 2.2 dB, correlation 0.78 (Spearman 0.80 between distance and loss).
LOSS_AT_ZERO_DB = 0.98
DB_PER_LOG_PX = 3.33


def estimated_loss_db(distance_px: float) -> float:
    """The PSNR a picture at keypoint distance ``distance_px`` costs against a fresh one (calibrated)."""
    return LOSS_AT_ZERO_DB + DB_PER_LOG_PX * math.log1p(distance_px)


@dataclass(frozen=True)
class RefreshRule:
    """``loss_db``: the estimated loss that makes a refresh due (6.4 dB: 4.1 px); ``hold_s``: for how long."""

    loss_db: float = 6.4
    hold_s: float = 0.5


class RefreshPolicy:
    """Per frame: is a refresh due? Fed the keypoint distance to the picture the frame names."""

    def __init__(self, rule: RefreshRule) -> None:
        self.rule = rule
        self._above_since: float | None = None

    def due(self, distance_px: float, now_s: float) -> bool:
        if estimated_loss_db(distance_px) < self.rule.loss_db:
            self._above_since = None
            return False
        if self._above_since is None:
            self._above_since = now_s
        return now_s - self._above_since >= self.rule.hold_s

    def restart(self) -> None:
        """A picture was just queued: the next one needs a full ``hold_s`` again."""
        self._above_since = None
