"""Latency histogram with microsecond resolution and the bus metrics snapshot types.

The histogram is log-linear (like HdrHistogram with two significant bits): exact 1 µs buckets
below 1024 µs, then 32 sub-buckets per power of two up to ~67 s.  Recording is one branch and one
list increment, cheap enough for every delivered message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

LINEAR_US = 1024
SUB_BUCKETS = 32
_MAX_POW = 26  # 2**26 µs ≈ 67 s
N_BUCKETS = LINEAR_US + (_MAX_POW - 10) * SUB_BUCKETS + 1


def bucket_of(us: int) -> int:
    if us < LINEAR_US:
        return us if us > 0 else 0
    exp = us.bit_length() - 1  # >= 10
    if exp >= _MAX_POW:
        return N_BUCKETS - 1
    sub = (us >> (exp - 5)) & (SUB_BUCKETS - 1)
    return LINEAR_US + (exp - 10) * SUB_BUCKETS + sub


def bucket_floor_us(index: int) -> int:
    """Lowest microsecond value that falls into bucket ``index``."""
    if index < LINEAR_US:
        return index
    if index >= N_BUCKETS - 1:
        return 1 << _MAX_POW
    rel = index - LINEAR_US
    exp = 10 + rel // SUB_BUCKETS
    sub = rel % SUB_BUCKETS
    return (1 << exp) + (sub << (exp - 5))


class LatencyHistogram:
    """Counts of latencies in microseconds.

    The bus's hot path increments ``counts[bucket]`` directly; everything else is derived.
    """

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: list[int] = [0] * N_BUCKETS

    def record_us(self, us: int) -> None:
        self.counts[bucket_of(us)] += 1

    def reset(self) -> None:
        self.counts[:] = [0] * N_BUCKETS

    @property
    def total(self) -> int:
        return sum(self.counts)

    @property
    def max_us(self) -> int:
        for index in range(N_BUCKETS - 1, -1, -1):
            if self.counts[index]:
                return bucket_floor_us(index)
        return 0

    def percentile(self, p: float) -> int:
        """The bucket floor (µs) at or below which ``p`` percent of recorded values fall."""
        total = self.total
        if total == 0:
            return 0
        rank = max(1, math.ceil(p / 100.0 * total))
        seen = 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                return bucket_floor_us(index)
        return self.max_us

    def summary(self) -> dict[str, int]:
        return {
            "count": self.total,
            "p50_us": self.percentile(50),
            "p90_us": self.percentile(90),
            "p99_us": self.percentile(99),
            "p999_us": self.percentile(99.9),
            "max_us": self.max_us,
        }


@dataclass(frozen=True, slots=True)
class SubscriberStats:
    name: str
    module: str
    mode: str
    depth: int
    high_water: int
    maxsize: int
    delivered: int
    dropped: int
    coalesced: int
    dead_lettered: int
    errors: int
    hangs: int


@dataclass(frozen=True, slots=True)
class TypeStats:
    published: int
    delivered: int
    dropped: int


@dataclass(frozen=True, slots=True)
class BusSnapshot:
    types: dict[str, TypeStats]
    subscribers: list[SubscriberStats]
    latency: dict[str, dict[str, int]]
    dead_letters: int
    errors_reported: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "types": {
                name: {"published": t.published, "delivered": t.delivered, "dropped": t.dropped}
                for name, t in self.types.items()
            },
            "subscribers": [
                {
                    "name": s.name,
                    "module": s.module,
                    "mode": s.mode,
                    "depth": s.depth,
                    "high_water": s.high_water,
                    "maxsize": s.maxsize,
                    "delivered": s.delivered,
                    "dropped": s.dropped,
                    "coalesced": s.coalesced,
                    "dead_lettered": s.dead_lettered,
                    "errors": s.errors,
                    "hangs": s.hangs,
                }
                for s in self.subscribers
            ],
            "latency": self.latency,
            "dead_letters": self.dead_letters,
            "errors_reported": self.errors_reported,
        }
