"""What a genuine sender can have sent by now: bounds on the sequence numbers, capture times and ``last_seq``
the receiver accepts.

A sender numbers its frames from 0 at its first capture after the hello and captures at most ``fps`` frames a
second, so by the time ``t`` after the hello no genuine frame carries a sequence number much above
``t * fps``, and none arrives much ahead of the newest one: at most ``fps`` frames for every second since that
one arrived. Capture times advance with the receiver's clock in the same way. Every bound has ``SLACK_S`` of
delay and jitter and a ``RATE_MARGIN`` for a sender clock that runs fast. A frame or bye outside them is
dropped and counted (``implausible``), so one forged message can neither make the receiver drop every genuine
frame after it nor pad the recording for minutes. The first frame's capture time is not bounded: it is on the
sender's wall clock, which the receiver does not know; it anchors the call's timeline.

The receiver measures arrival when it handles a message, so a receiver that falls behind (a starved CPU: its
event loop handles a burst of queued messages at once) or a sender whose own pipeline stalls sees genuine frames
that break these bounds. ``RESYNC_FRAMES`` such frames in a row that agree with each other (sequence numbers and
capture times both advancing) move the bounds to them: a single forged message never does, a real stream always
recovers (found by a 30-minute soak on an overloaded CPU, where the call otherwise stalled for good).

Replaying a call file there is no clock: sequence numbers and capture times are taken as they come and only
``last_seq`` is bounded, by the newest frame.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from shared_model.wire.messages import MAX_DISTANCE, WireError

log = logging.getLogger(__name__)

#: Delay a genuine frame may add on top of the time between arrivals (seconds): network jitter, a sender whose
#: pipeline stalls, a busy receiver that handles its messages late. As long as the default idle timeout.
SLACK_S = 10.0
#: How much faster than its stated frame rate a sender's frames may come (its clock, rounding).
RATE_MARGIN = 1.5
#: Out-of-bounds frames in a row, each after the one before, that move the bounds to them.
RESYNC_FRAMES = 10


class Implausible(WireError):
    """A well-formed message that no genuine sender could have sent by now (dropped and counted)."""


class FrameBounds:
    """Bounds for one call, from its frame rate, the time since the hello and the newest accepted frame.

    ``clock`` gives seconds (``time.monotonic``); None when a call file is replayed.
    """

    def __init__(self, fps: float, clock: Callable[[], float] | None) -> None:
        self.fps, self.clock = fps, clock
        self._newest_seq = -1
        self._newest_ms: int | None = None
        self._newest_at = clock() if clock is not None else 0.0
        self._outside: tuple[int, int, int] | None = None  # the last out-of-bounds frame: seq, capture, run length
        self.resyncs = 0

    def _frames_since_newest(self) -> float:
        """How far past the newest frame a genuine sender's sequence numbers can be by now."""
        if self.clock is None:
            return SLACK_S * self.fps * RATE_MARGIN + MAX_DISTANCE
        return (self.clock() - self._newest_at + SLACK_S) * self.fps * RATE_MARGIN + MAX_DISTANCE

    def _problem(self, seq: int, capture_ms: int) -> str | None:
        if self.clock is None:
            return None
        if seq > self._newest_seq + self._frames_since_newest():
            return f"frame {seq} is too far ahead of frame {self._newest_seq} (at {self.fps:g} fps)"
        if self._newest_ms is not None:
            ahead_ms = 1000 * (self.clock() - self._newest_at + SLACK_S) * RATE_MARGIN
            if not -1000 * SLACK_S <= capture_ms - self._newest_ms <= ahead_ms:
                return (f"frame {seq} was captured {capture_ms - self._newest_ms} ms after frame {self._newest_seq}, "
                        "more than its arrival allows")
        return None

    def admit(self, seq: int, capture_ms: int) -> None:
        """Check a frame about to be decoded (``FrameDecoder.decode``'s ``admit``); Implausible if no genuine
        sender could have sent it by now, unless it ends a run of ``RESYNC_FRAMES`` such frames that agree with
        each other. An admitted frame becomes the newest when it is."""
        if (problem := self._problem(seq, capture_ms)) is not None:
            run = 1
            if self._outside is not None and seq > self._outside[0] and capture_ms >= self._outside[1]:
                run = self._outside[2] + 1
            self._outside = (seq, capture_ms, run)
            if run < RESYNC_FRAMES:
                raise Implausible(problem)
            self.resyncs += 1
            log.warning("following the sender's stream to frame %d: %d frames in a row agreed (%s)", seq, run,
                        problem)
        self._outside = None
        if seq > self._newest_seq:
            self._newest_seq, self._newest_ms = seq, capture_ms
            self._newest_at = self.clock() if self.clock is not None else 0.0

    def last_seq_problem(self, last_seq: int) -> str | None:
        """Why a bye's ``last_seq`` cannot be the sender's last frame, or None."""
        if last_seq < self._newest_seq or last_seq > self._newest_seq + self._frames_since_newest():
            return f"a bye's last_seq {last_seq} is implausible after frame {self._newest_seq} (at {self.fps:g} fps)"
        return None
