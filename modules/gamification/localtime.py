"""The Pi's local wall time for quiet hours, "today" and streaks (docs/COMPANION.md §5).

Everything here is a pure function of an epoch second and a time zone: ``tz=None`` means the
system's local zone (``/etc/localtime``, DST-aware through the C library), a ``ZoneInfo`` an
explicit one.  Quiet hours are compared on the local wall clock, so a DST change moves their end
with the clock (08:00 stays 08:00), and an interval that spans midnight works.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from modules.gamification.config import parse_hhmm


def zone(name: str) -> dt.tzinfo | None:
    """The time zone called ``name`` ("" = the system's local zone, returned as None)."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as 'Europe/Berlin' or leave it "
            "empty for the system's zone"
        ) from None


def local(now: float, tz: dt.tzinfo | None) -> dt.datetime:
    return dt.datetime.fromtimestamp(now, tz)


def local_date(now: float, tz: dt.tzinfo | None) -> dt.date:
    return local(now, tz).date()


class QuietHours:
    """``[start, end)`` in local wall time; start > end spans midnight; start == end: never."""

    def __init__(self, start: str, end: str, tz: dt.tzinfo | None) -> None:
        self.start = parse_hhmm(start, "quiet_start")
        self.end = parse_hhmm(end, "quiet_end")
        self.tz = tz

    def contains(self, now: float) -> bool:
        t = local(now, self.tz)
        m = t.hour * 60 + t.minute
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= m < self.end
        return m >= self.start or m < self.end

    def next_change(self, now: float) -> float | None:
        """The first epoch second after ``now`` at which :meth:`contains` may change."""
        if self.start == self.end:
            return None
        today = local_date(now, self.tz)
        best: float | None = None
        for days in (-1, 0, 1, 2):
            day = today + dt.timedelta(days=days)
            for minutes in (self.start, self.end):
                wall = dt.datetime.combine(day, dt.time(minutes // 60, minutes % 60), self.tz)
                ts = wall.timestamp()
                if ts > now and (best is None or ts < best):
                    best = ts
        return best
