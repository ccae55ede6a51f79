"""The envelope every message travels in, and the priority scale.

An :class:`Envelope` is a ``NamedTuple``: immutable, typed, and cheap to build (the bus makes one
per publish on its hot path).  ``t_ns`` is the monotonic publish time used for latency; the wall
time is derived from it with an offset fixed at import, so publishing reads one clock, not two.
"""

from __future__ import annotations

import time
from enum import IntEnum
from typing import NamedTuple

from bus.messages import Message


class Priority(IntEnum):
    """Low < Normal < High < Critical.  Higher values overtake lower ones in a subscriber queue."""

    LOW = 0
    NORMAL = 1
    HIGH = 2
    CRITICAL = 3


_WALL_OFFSET_NS = time.time_ns() - time.perf_counter_ns()


class Envelope(NamedTuple):
    id: int
    source: str
    type: type[Message]
    priority: Priority
    correlation_id: int | None
    t_ns: int
    """Monotonic publish time (``time.perf_counter_ns``)."""
    payload: Message

    @property
    def wall_time(self) -> float:
        """Wall-clock publish time in seconds since the epoch."""
        return (self.t_ns + _WALL_OFFSET_NS) / 1e9
