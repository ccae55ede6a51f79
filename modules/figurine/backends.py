"""The output port: what a back end offers the module, and the rate cap each device uses.

A back end applies a :class:`~modules.figurine.look.Look` with ``apply(look, now)``: it writes
only what differs from what it last wrote, each device no faster than its cap, and returns when it
wants to be called again (a held change, a tone to stop) or None.  ``close()`` releases it.
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

from modules.figurine.look import Look

T = TypeVar("T")


class Backend(Protocol):
    name: str

    def apply(self, look: Look, now: float) -> float | None: ...

    def close(self) -> None: ...


class RateCap(Generic[T]):
    """Newest-value-wins rate limiter for one device.

    ``offer(value, now)`` returns ``(write, retry_at)``: ``write`` is True when the caller must
    write ``value`` now (it is then recorded as written); a value equal to the last written one
    is never written again; a change sooner than ``1 / max_hz`` after the last write is held
    (``retry_at`` says when to offer the newest value again).  Nothing queues: only the value
    offered last matters.
    """

    def __init__(self, max_hz: float) -> None:
        self.min_interval = 1.0 / max_hz
        self.last: T | None = None
        self.written = False
        self.at = float("-inf")
        self.writes = 0

    def offer(self, value: T, now: float) -> tuple[bool, float | None]:
        if self.written and value == self.last:
            return False, None
        due = self.at + self.min_interval
        if now < due:
            return False, due
        self.last = value
        self.written = True
        self.at = now
        self.writes += 1
        return True, None


def earliest(*times: float | None) -> float | None:
    present = [t for t in times if t is not None]
    return min(present) if present else None
