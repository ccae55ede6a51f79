"""Event-time clock with time compression for the simulator.

``SimClock(speed=60)`` runs 60 times faster than real time: one real second advances ``now()``
by a minute.  The simulated host stamps events with it and Storage/Analysis are given the same
clock, so a 30-minute scenario plays in 30 s and every duration the pipeline measures (windows,
time in state) is in *event* time, as if it had happened at normal speed.

The real-time source is injectable (``monotonic=``) so tests can drive the clock without
sleeping.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable


class SimClock:
    """``now()`` = ``start`` + (real seconds since creation) x ``speed``."""

    def __init__(
        self,
        speed: float = 1.0,
        start: float | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(speed, bool) or not isinstance(speed, (int, float)):
            raise ValueError(f"clock speed must be a number, got {speed!r}")
        if not math.isfinite(speed) or speed <= 0:
            raise ValueError(f"clock speed must be a positive finite number, got {speed!r}")
        if start is not None and not math.isfinite(start):
            raise ValueError(f"clock start must be a finite time in seconds, got {start!r}")
        self.speed = float(speed)
        self.start = time.time() if start is None else float(start)
        self._monotonic = monotonic
        self._origin = monotonic()

    def now(self) -> float:
        """Current simulated wall-clock time (seconds since the epoch)."""
        return self.start + (self._monotonic() - self._origin) * self.speed

    __call__ = now

    def real_delay(self, until: float) -> float:
        """Real seconds to wait until ``now()`` reaches ``until`` (0 if already there)."""
        return max(until - self.now(), 0.0) / self.speed

    async def sleep_until(self, until: float) -> None:
        """Sleep (really) until the simulated time reaches ``until``."""
        delay = self.real_delay(until)
        while delay > 0.0:
            await asyncio.sleep(delay)
            delay = self.real_delay(until)

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of simulated time."""
        await self.sleep_until(self.now() + seconds)

    def __repr__(self) -> str:
        return f"SimClock(speed={self.speed:g}, now={self.now():.3f})"
