"""Pacing and backoff for the serial link (pure: time is passed in, randomness injected).

A UART in 8N1 framing carries ``baud / 10`` bytes per second (start bit, 8 data bits, stop bit).
:class:`TokenBucket` lets the link write no faster than that, so bytes never pile up in the
kernel's transmit buffer (4 KiB is 4 s of lag at 9600 baud) and the protocol core coalesces state
instead. :class:`Backoff` is the jittered, capped exponential delay between reconnect attempts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


def bytes_per_second(baud: int) -> float:
    """Payload bytes per second a UART carries at ``baud`` with 8N1 framing (10 bits a byte)."""
    if baud <= 0:
        raise ValueError(f"baud must be a positive number of bits per second, got {baud}")
    return baud / 10.0


class TokenBucket:
    """``rate`` bytes per second with at most ``burst`` bytes saved up."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError(f"rate and burst must be positive, got rate={rate} burst={burst}")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last = now

    def _refill(self, now: float) -> None:
        if now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now

    def available(self, now: float) -> int:
        """Whole bytes that may be written now."""
        self._refill(now)
        return int(self._tokens)

    def consume(self, n: int, now: float) -> None:
        self._refill(now)
        self._tokens -= n

    def delay_until(self, n: int, now: float) -> float:
        """Seconds until ``n`` bytes may be written (0 if already possible)."""
        self._refill(now)
        missing = min(n, self.burst) - self._tokens
        return max(0.0, missing / self.rate)


@dataclass
class Backoff:
    """Jittered capped exponential backoff: attempt n waits in [d/2, d], d = min(cap, base*2**n)."""

    base: float = 0.05
    cap: float = 1.0
    factor: float = 2.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.base <= self.cap:
            raise ValueError(f"backoff needs 0 < base <= cap, got base={self.base} cap={self.cap}")
        if self.factor < 1:
            raise ValueError(f"backoff factor must be >= 1, got {self.factor}")

    def next_delay(self) -> float:
        d = min(self.cap, self.base * self.factor ** min(self.attempt, 64))
        self.attempt += 1
        return d / 2 + self.rng.uniform(0, d / 2)

    def reset(self) -> None:
        self.attempt = 0
