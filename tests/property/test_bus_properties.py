"""Hypothesis: delivery order and drop accounting for arbitrary publish sequences."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from bus import Bus, Delivery, Envelope, Priority
from bus.messages import RawEvent
from bus.metrics import N_BUCKETS, LatencyHistogram, bucket_floor_us, bucket_of

prios = st.lists(st.sampled_from(list(Priority)), min_size=1, max_size=300)


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


@settings(max_examples=60, deadline=None)
@given(prios)
def test_one_burst_is_delivered_by_priority_then_fifo(plan: list[Priority]) -> None:
    async def main() -> list[int]:
        bus = Bus()
        got: list[Envelope] = []
        bus.subscribe(got.append, maxsize=len(plan))
        for i, p in enumerate(plan):
            bus.publish(RawEvent("h", "s", i, "key", 0.0), source="x", priority=p)
        await bus.join()
        return [e.payload.seq for e in got]  # type: ignore[attr-defined]

    assert _run(main()) == sorted(range(len(plan)), key=lambda i: (-plan[i], i))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 40), st.booleans()), min_size=1, max_size=20),
    st.integers(1, 30),
)
def test_best_effort_accounts_for_every_message(
    bursts: list[tuple[int, bool]], maxsize: int
) -> None:
    """published == delivered + dropped, depth never exceeds maxsize, newest always survive."""

    async def main() -> None:
        bus = Bus()
        got: list[int] = []
        sub = bus.subscribe(lambda e: got.append(e.payload.seq), maxsize=maxsize)  # type: ignore[attr-defined]
        seq = 0
        for count, drain in bursts:
            last = []
            for _ in range(count):
                bus.publish(RawEvent("h", "s", seq, "key", 0.0), source="x")
                last.append(seq)
                seq += 1
                assert sub.depth <= maxsize
            if drain:
                await bus.join()
                assert set(last[-maxsize:]) <= set(got)
        await bus.join()
        assert sub.delivered + sub.dropped == seq
        assert len(got) == sub.delivered
        assert got == sorted(got)
        assert sub.high_water <= maxsize

    _run(main())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcde"), st.integers(0, 1000)), max_size=100))
def test_latest_only_delivers_exactly_the_last_value_per_key(
    updates: list[tuple[str, int]],
) -> None:
    async def main() -> dict[str, int]:
        bus = Bus()
        got: dict[str, int] = {}
        count = 0

        def handler(env: Envelope) -> None:
            nonlocal count
            count += 1
            assert isinstance(env.payload, RawEvent)
            got[env.payload.kind] = env.payload.seq

        bus.subscribe(
            handler,
            mode=Delivery.LATEST_ONLY,
            key=lambda e: e.payload.kind,  # type: ignore[attr-defined]
        )
        for kind, value in updates:
            bus.publish(RawEvent("h", "s", value, kind, 0.0), source="x")
        await bus.join()
        assert count == len(got)
        return got

    want: dict[str, int] = {}
    for kind, value in updates:
        want[kind] = value
    assert _run(main()) == want


@given(st.integers(0, 10**8))
def test_histogram_bucket_floor_is_within_resolution(us: int) -> None:
    index = bucket_of(us)
    assert 0 <= index < N_BUCKETS
    floor = bucket_floor_us(index)
    assert floor <= us or index == N_BUCKETS - 1
    if us < 1024:
        assert floor == us  # exact microseconds below ~1 ms
    elif index < N_BUCKETS - 1:
        assert us - floor <= us / 32  # ~3 % above


def test_histogram_percentiles() -> None:
    hist = LatencyHistogram()
    for us in range(1, 101):
        hist.record_us(us)
    assert hist.total == 100
    assert hist.percentile(50) == 50
    assert hist.percentile(99) == 99
    assert hist.max_us == 100
