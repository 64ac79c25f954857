"""The sender's bitrate budget (``--max-kbps``): one token bucket for every payload byte it sends.

The bucket starts empty, fills at the budget rate and holds at most ``burst_s`` seconds of it (and never less
than one picture chunk). A keypoint
message is sent whenever the bucket is not empty (it may take the bucket below zero by that one message), a
picture chunk only when the bucket also keeps ``RESERVE_S`` seconds' worth for the keypoint messages after it.
(No reserve is kept while no keypoint message can be sent yet: the first picture goes as soon as it fits.)
So by any time t since the start at most ``rate * t`` bytes plus one keypoint message have been sent: the
budget holds over the whole call, not only on average. Payload bytes are counted (what the codec controls);
the transport adds about 65 bytes a message on top (docs/wire-format.md).
"""
from __future__ import annotations

from .control import CHUNK_BYTES

#: Bytes the bucket keeps back for keypoint messages when a picture chunk goes, in seconds of budget.
RESERVE_S = 0.25


class Budget:
    """Tokens in bytes at ``kbps`` kilobits a second; the caller passes the time (seconds, any origin)."""

    def __init__(self, kbps: float, now: float, burst_s: float = 2.0) -> None:
        if not kbps > 0:
            raise ValueError(f"the budget must be positive, got {kbps} kbps")
        self.rate = kbps * 1000 / 8  # bytes a second
        # At least one full picture chunk (with its message header) and the reserve must fit.
        self.capacity = max(burst_s * self.rate, CHUNK_BYTES + 64 + RESERVE_S * self.rate)
        self.tokens = 0.0
        self._time = now

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + self.rate * max(0.0, now - self._time))
        self._time = max(self._time, now)

    def allows_frame(self, now: float) -> bool:
        self.refill(now)
        return self.tokens > 0

    def allows_chunk(self, size: int, now: float, reserve: bool = True) -> bool:
        self.refill(now)
        return self.tokens >= size + (RESERVE_S * self.rate if reserve else 0.0)

    def spend(self, size: int) -> None:
        self.tokens -= size
