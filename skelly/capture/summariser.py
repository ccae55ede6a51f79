"""The pure core of the capture agent: input facts in, INGEST events (docs/INGEST.md §4) out.

No clock, no I/O, no threads: every method takes the time (host wall clock, seconds since the
epoch) from its caller, so tests drive it with a fake clock.  The callers (the listener
callbacks and the agent's tick) serialise access with a lock.

* ``key(ts, correction)`` -> a ``key`` event at once.  That is all a key ever is here.
* ``move(ts, x, y)`` / ``click(ts)`` / ``scroll(ts, dx, dy)`` accumulate into the current
  sample span; ``tick(now)`` closes the span once it is ``interval_s`` long and emits one
  ``mouse`` event (mean speed, clicks) and one ``scroll`` event (ticks) if there was any.
* ``focus(ts, category, app_id)`` -> a ``focus`` event when the application changed.
* Any key or pointer input after at least ``idle_threshold_s`` without input first emits an
  ``idle`` event for the gap (``ts`` = end of the gap).
* ``pause(until)`` / ``resume()``: while paused every input is dropped; resuming forgets the
  last input time (no idle span for the pause) and the last focus (the next one is sent again).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

MAX_SPEED = 100_000.0
MAX_CLICKS = 10_000
MAX_TICKS = 100_000
MAX_SPAN_MS = 3_600_000
MAX_IDLE_S = 86_400.0

Event = dict[str, Any]


@dataclass
class Summariser:
    interval_s: float = 1.0
    """Length of a mouse/scroll sample span."""
    idle_threshold_s: float = 30.0
    """A gap without input at least this long is reported as an ``idle`` span."""
    outbox: list[Event] = field(default_factory=list)
    paused_until: float | None = None
    """Wall-clock end of the current pause (``None``: capturing; ``math.inf``: until resumed)."""
    dropped: int = 0
    """Inputs dropped since the last pause began (shown by ``--status``; never what they were)."""
    resumes: int = 0
    """How many times a pause ended (by :meth:`resume` or by its time running out)."""
    _span_start: float | None = None
    _distance: float = 0.0
    _clicks: int = 0
    _ticks: int = 0
    _pos: tuple[float, float] | None = None
    _last_input: float | None = None
    _focus: tuple[str, str] | None = None

    # --- pause --------------------------------------------------------------------------------

    def paused(self, now: float) -> bool:
        if self.paused_until is None:
            return False
        if now < self.paused_until:
            return True
        self.resume()
        return False

    def _drop(self, ts: float) -> bool:
        """True (and counted in ``dropped``) if an input at ``ts`` falls in a pause."""
        if self.paused(ts):
            self.dropped += 1
            return True
        return False

    def pause(self, now: float, until: float) -> None:
        """Drop every input until ``until`` (wall clock); what the open span holds is sent."""
        self._close_span(now)
        self.paused_until = until
        self.dropped = 0
        self._span_start = None

    def resume(self) -> None:
        if self.paused_until is not None:
            self.resumes += 1
        self.paused_until = None
        self._last_input = None
        self._focus = None
        self._pos = None

    # --- input --------------------------------------------------------------------------------

    def _input(self, ts: float) -> None:
        last = self._last_input
        if last is not None and ts - last >= self.idle_threshold_s:
            self.outbox.append(
                {"kind": "idle", "ts": ts, "duration_s": round(min(ts - last, MAX_IDLE_S), 3)}
            )
        if last is None or ts > last:
            self._last_input = ts

    def _pointer(self, ts: float) -> None:
        self._input(ts)
        if self._span_start is None:
            self._span_start = ts

    def key(self, ts: float, correction: bool) -> None:
        if self._drop(ts):
            return
        self._input(ts)
        self.outbox.append({"kind": "key", "ts": ts, "correction": bool(correction)})

    def move(self, ts: float, x: float, y: float) -> None:
        if self._drop(ts):
            return
        self._pointer(ts)
        if self._pos is not None:
            self._distance += math.hypot(x - self._pos[0], y - self._pos[1])
        self._pos = (x, y)

    def click(self, ts: float) -> None:
        if self._drop(ts):
            return
        self._pointer(ts)
        self._clicks += 1

    def scroll(self, ts: float, dx: float, dy: float) -> None:
        """One scroll callback: a wheel notch is ``dy = ±1``; larger (smooth) deltas count as
        their size in notches, at least one."""
        if self._drop(ts):
            return
        self._pointer(ts)
        self._ticks += max(1, round(abs(dx) + abs(dy)))

    def focus(self, ts: float, category: str, app_id: str) -> None:
        if self.paused(ts):
            return
        if self._focus == (category, app_id):
            return
        self._focus = (category, app_id)
        self.outbox.append({"kind": "focus", "ts": ts, "category": category, "app_id": app_id})

    # --- time ---------------------------------------------------------------------------------

    def tick(self, now: float) -> list[Event]:
        """Close the sample span if it is ``interval_s`` old; return (and clear) the outbox."""
        self.paused(now)  # ends a pause whose time is up
        start = self._span_start
        if start is not None and now - start >= self.interval_s:
            self._close_span(now)
        out, self.outbox = self.outbox, []
        return out

    def _close_span(self, now: float) -> None:
        start = self._span_start
        if start is None:
            return
        span_s = max(now - start, 0.001)
        span_ms = min(max(1, round(span_s * 1000)), MAX_SPAN_MS)
        if self._distance > 0 or self._clicks:
            speed = min(self._distance / span_s, MAX_SPEED)
            self.outbox.append(
                {
                    "kind": "mouse",
                    "ts": now,
                    "speed": round(speed, 1),
                    "clicks": min(self._clicks, MAX_CLICKS),
                    "span_ms": span_ms,
                }
            )
        if self._ticks:
            self.outbox.append(
                {
                    "kind": "scroll",
                    "ts": now,
                    "ticks": min(self._ticks, MAX_TICKS),
                    "span_ms": span_ms,
                }
            )
        self._distance = 0.0
        self._clicks = 0
        self._ticks = 0
        self._span_start = None
