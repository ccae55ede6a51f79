"""Event time on the Pi: follow the host's clock, advance on the Pi's own monotonic clock.

Analysis windows are cut on *event* time, the host's wall clock that stamps every event (``ts``).
The Pi's wall clock cannot stand in for it: a Pi without a real-time clock may boot with a stale
time and no NTP, and even a few tens of seconds of skew leave every window empty (the state
drifts to IDLE) or late.  :class:`HostTimeFollower` estimates the host's clock as the Pi's
``time.monotonic()`` plus an offset: the median of ``ts - monotonic()`` over the last committed
batches.  The median ignores a lone bogus timestamp and old events resent after a reconnect;
delivery delay makes event time trail the host by about that delay, which the windows' grace
absorbs.  Jitter never moves it backwards; a real step back (the first host seen, or its clock
set back) is followed and Storage starts its window grid again.  Until a host has sent anything,
the Pi's wall clock is used.

:class:`ObservingSink` wraps the storage sink so every batch feeds the follower as it is
committed (the composition root wires it for ``skelly run``; the simulator uses its SimClock).
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Callable, Sequence

from bus.messages import RawEvent
from modules.data_capture import EventSink

BACKSTEP_S = 1.0
"""Backward moves smaller than this are held (jitter); larger ones are real clock steps (the
first host seen, or its clock set back) and are followed; Storage re-grids its windows."""


class HostTimeFollower:
    def __init__(
        self,
        *,
        fallback: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        keep: int = 31,
    ) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self._fallback = fallback
        self._monotonic = monotonic
        self._offsets: deque[float] = deque(maxlen=keep)
        self._offset: float | None = None
        self._last = float("-inf")

    @property
    def following(self) -> bool:
        """True once a host timestamp has been seen."""
        return self._offset is not None

    def observe(self, ts: float) -> None:
        """A batch with newest host timestamp ``ts`` was just committed."""
        self._offsets.append(ts - self._monotonic())
        self._offset = statistics.median(self._offsets)

    def now(self) -> float:
        t = self._fallback() if self._offset is None else self._monotonic() + self._offset
        if self._last - BACKSTEP_S < t < self._last:
            return self._last  # delivery jitter moved the median back a little: hold
        self._last = t
        return t


class ObservingSink:
    """An :class:`~modules.data_capture.EventSink` that tells ``observe`` the newest ``ts`` of
    every batch *before* committing it: Storage places committed events in its window buffer
    on the clock's time line, so that line must already be the host's (observing after the
    commit left the first batch from a host behind the Pi out of every window)."""

    def __init__(self, sink: EventSink, observe: Callable[[float], None]) -> None:
        self.sink = sink
        self.observe = observe

    async def commit(self, events: Sequence[RawEvent]) -> int:
        if events:
            self.observe(max(e.ts for e in events))
        return await self.sink.commit(events)

    async def resume_point(self, host_id: str, session_id: str) -> int:
        return await self.sink.resume_point(host_id, session_id)
