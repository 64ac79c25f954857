"""What the receiver measures during a call, and the ``--stats-out`` JSON.

Latency is capture (the sender's wall clock, in the message) to render done (the receiver's wall clock): it
is exact when both run on one host; across machines it includes their clock offset (NTP keeps it to a few
ms on a LAN, more over the internet). Rates are taken over the streaming window, from the first payload message
(a picture message or a frame message) to the last frame message received: payload counts frame messages and
every picture message (announcements and chunks, msgpack framing included), wire counts every DTLS datagram at
the ICE transport (SCTP data and SACKs with DTLS framing; not UDP/IP headers, 28 bytes a datagram on IPv4, nor
ICE's own STUN consent checks, which aioice sends outside this path).
When a call file is replayed (``--input``) there is no latency and no wire, and the payload rate is taken on
the sender's capture clock (the pictures before the first frame counted in it).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shared_model.call.rtc import DatagramTap, TapCounts, kbps, wire_rates
from shared_model.wire.messages import FrameMessage


def summary(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "median": None, "p95": None, "mean": None}
    a = np.asarray(values)
    return {"count": len(a), "median": float(np.median(a)), "p95": float(np.percentile(a, 95)), "mean": float(a.mean())}


@dataclass
class CallStats:
    live: bool = True  # False when replaying a call file: no latency, rates on the capture clock
    tap: DatagramTap | None = None
    received: int = 0
    rendered: int = 0
    rendered_own: int = 0  # of them, from this end's own pictures (frames naming picture 0)
    malformed: int = 0
    refused: int = 0
    implausible: int = 0  # well-formed, but no genuine sender could have sent it by then (receiver.bounds)
    stale: int = 0  # arrived after a newer frame: dropped
    spoiled: int = 0  # predicted from a frame that was lost: undecodable
    skipped: int = 0  # replaced by a newer frame before its turn to render
    late: int = 0  # rendered, but after a newer frame was shown (several render workers): not shown
    without_picture: int = 0  # decoded, but naming a picture this end does not hold (none yet): not shown
    payload_bytes: int = 0
    picture_bytes: int = 0  # picture messages received
    pictures_held: int = 0  # pictures acknowledged (each held at some point)
    pictures_refused: int = 0  # pictures this end could not use (bad bytes, wrong size, too many, out of order)
    first_picture_s: float | None = None  # from the accepted hello to the first picture held
    first_seq: int | None = None
    last_seq: int | None = None
    sender_last_seq: int | None = None  # from the sender's bye
    sender: dict[str, Any] | None = None  # the sender's last stats message
    ice_pair: dict[str, str] | None = None  # the candidate pair the call runs on (types: host, srflx, relay)
    latency_ms: list[float] = field(default_factory=list)
    arrival_ms: list[float] = field(default_factory=list)
    render_ms: list[float] = field(default_factory=list)
    render_times: list[float] = field(default_factory=list)
    _window_start: int = 0  # rendered frames before the current window (``window``)
    # (seconds, payload bytes so far, tap counts) at the first and the latest frame message
    _first_arrival: tuple[float, int, TapCounts | None] | None = None
    _last_arrival: tuple[float, int, TapCounts | None] | None = None
    _accepted_at: float | None = None

    def accepted(self) -> None:
        self._accepted_at = time.monotonic()

    def picture_received(self, size: int) -> None:
        """A picture message arrived (well-formed; it counts whether or not the picture is then used)."""
        self.payload_bytes += size
        self.picture_bytes += size
        if self.live and self._first_arrival is None:
            self._first_arrival = (time.monotonic(), 0, self.tap.counts() if self.tap else None)

    def picture_held(self) -> None:
        self.pictures_held += 1
        if self.first_picture_s is None and self._accepted_at is not None:
            self.first_picture_s = time.monotonic() - self._accepted_at

    def frame_received(self, seq: int, size: int, capture_ns: int | None = None) -> None:
        """A valid frame message arrived (counted whether or not it is decoded and rendered); its capture time
        is known only when it was decoded."""
        self.received += 1
        self.payload_bytes += size
        self.first_seq = seq if self.first_seq is None else min(self.first_seq, seq)
        self.last_seq = seq if self.last_seq is None else max(self.last_seq, seq)
        if self.live:
            if capture_ns is not None:
                self.arrival_ms.append((time.time_ns() - capture_ns) / 1e6)
            mark = (time.monotonic(), self.payload_bytes, self.tap.counts() if self.tap else None)
        elif capture_ns is not None:
            mark = (capture_ns / 1e9, self.payload_bytes, None)
        else:
            return
        if self._first_arrival is None:
            # Live, the window opens on the first payload message; the pictures of a file count from its start.
            self._first_arrival = mark if self.live else (mark[0], self.payload_bytes - self.picture_bytes, None)
        self._last_arrival = mark

    def frame_rendered(self, frame: FrameMessage, render_s: float) -> None:
        self.rendered += 1
        self.rendered_own += frame.picture == 0
        if self.live:
            self.latency_ms.append((time.time_ns() - frame.capture_ns) / 1e6)
        self.render_ms.append(1000 * render_s)
        self.render_times.append(time.monotonic())

    @property
    def expected(self) -> int:
        """Frame slots the sender numbered, from 0 to its last (as its bye says, else the newest seen)."""
        last = max(s for s in (self.last_seq, self.sender_last_seq, -1) if s is not None)
        return last + 1

    def window(self) -> dict[str, Any]:
        """Frames rendered and their latency since the previous window (periodic stats of a long call)."""
        end = len(self.latency_ms)
        out = {"frames_rendered": end - self._window_start,
               "latency_ms": summary(self.latency_ms[self._window_start:end])}
        self._window_start = end
        return out

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "frames_expected": self.expected, "frames_received": self.received, "frames_rendered": self.rendered,
            "frames_rendered_from_own": self.rendered_own,
            "frames_lost": self.expected - self.received, "frames_stale": self.stale,
            "frames_spoiled": self.spoiled, "frames_skipped": self.skipped,
            "frames_rendered_late": self.late,
            "frames_without_picture": self.without_picture, "malformed": self.malformed, "refused": self.refused,
            "implausible": self.implausible,
            "pictures": {"held": self.pictures_held, "refused": self.pictures_refused, "bytes": self.picture_bytes,
                         "first_held_s": self.first_picture_s},
            "first_seq": self.first_seq, "last_seq": self.last_seq,
            "bytes_per_message": (self.payload_bytes - self.picture_bytes) / self.received if self.received else None,
            "latency_ms": summary(self.latency_ms), "arrival_latency_ms": summary(self.arrival_ms),
            "render_ms": summary(self.render_ms), "sender": self.sender, "ice_pair": self.ice_pair,
        }
        span = self.render_times[-1] - self.render_times[0] if len(self.render_times) > 1 else 0.0
        out["render_fps"] = (len(self.render_times) - 1) / span if span > 0 else None
        out["payload_kbps"] = out["wire_kbps"] = out["wire"] = None
        if self._first_arrival and self._last_arrival:
            (t0, b0, tap0), (t1, b1, tap1) = self._first_arrival, self._last_arrival
            out["payload_kbps"] = kbps(b1 - b0, t1 - t0)
            if tap0 and tap1:
                out["wire"] = wire_rates(tap0, tap1)
                out["wire_kbps"] = {"received": out["wire"]["received_kbps"], "sent": out["wire"]["sent_kbps"]}
        return out
