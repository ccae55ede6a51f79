"""The sync drain delivers a burst as one chunk taken out of its lane (bus/router.py, ``_run``).

While a chunk is out of its lane every observable thing must stay as if each message left the lane
just before its handler ran: the depth a handler reads, which message a full queue drops, the
high-water mark, an unsubscribe from inside a handler, a handler that raises a BaseException, the
per-turn slice, and the ids of a one-type ``publish_many`` batch.  Each test on uvloop and on the
stock loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from bus import Bus, Envelope, Priority
from bus.messages import RawEvent, UserInput
from bus.router import SLICE

Run = Callable[[Coroutine[Any, Any, Any]], Any]


def ev(seq: int) -> RawEvent:
    return RawEvent("host", "s1", seq, "key", float(seq), (("correction", False),))


def seq_of(env: Envelope) -> int:
    assert isinstance(env.payload, RawEvent)
    return env.payload.seq


def test_depth_read_inside_a_handler_is_exact_during_a_burst(run: Run) -> None:
    async def main() -> None:
        bus = Bus()
        seen: list[tuple[int, int, int]] = []

        def handler(env: Envelope) -> None:
            seen.append((sub.depth, bus.pending(), bus.snapshot().subscribers[0].depth))

        sub = bus.subscribe(handler, types=RawEvent, maxsize=100)
        bus.publish_many([ev(i) for i in range(10)], source="x")
        assert sub.depth == 10
        await bus.join()
        assert seen == [(d, d, d) for d in range(9, -1, -1)]
        assert sub.depth == 0 and sub.delivered == 10

    run(main())


def test_full_queue_drops_the_oldest_message_even_while_its_burst_is_being_delivered(
    run: Run,
) -> None:
    async def main() -> None:
        bus = Bus()
        got: list[int] = []

        def handler(env: Envelope) -> None:
            got.append(seq_of(env))
            if seq_of(env) == 0:  # 1 still queued behind it; the queue holds 2
                bus.publish(ev(100), source="x")  # fits
                bus.publish(ev(101), source="x")  # full: the oldest queued (1) goes

        sub = bus.subscribe(handler, types=RawEvent, maxsize=2)
        bus.publish_many([ev(0), ev(1)], source="x")
        await bus.join()
        assert got == [0, 100, 101]
        assert sub.dropped == 1 and sub.delivered == 3
        assert bus.snapshot().types["RawEvent"].dropped == 1

    run(main())


def test_lower_priority_full_queue_drop_still_takes_the_lowest_lane_first(run: Run) -> None:
    async def main() -> None:
        bus = Bus()
        got: list[int] = []

        def handler(env: Envelope) -> None:
            got.append(seq_of(env))
            if seq_of(env) == 0:  # queued: 1 (NORMAL, in the burst), 50 (LOW); the queue holds 3
                bus.publish(ev(100), source="x")  # fits
                bus.publish(ev(101), source="x")  # full: the LOW one goes, not 1

        sub = bus.subscribe(handler, types=RawEvent, maxsize=3)
        bus.publish(ev(50), source="x", priority=Priority.LOW)
        bus.publish_many([ev(0), ev(1)], source="x")
        await bus.join()
        assert got == [0, 1, 100, 101]
        assert sub.dropped == 1

    run(main())


def test_high_water_counts_only_what_is_queued_while_a_burst_is_delivered(run: Run) -> None:
    async def main() -> None:
        bus = Bus()

        def handler(env: Envelope) -> None:
            if seq_of(env) == 2:  # the last of the burst: nothing else is queued now
                bus.publish(ev(100), source="x")

        sub = bus.subscribe(handler, types=RawEvent, maxsize=100)
        bus.publish_many([ev(0), ev(1), ev(2)], source="x")
        await bus.join()
        assert sub.high_water == 3 and sub.delivered == 4

    run(main())


def test_unsubscribe_inside_a_handler_stops_the_rest_of_the_burst(run: Run) -> None:
    async def main() -> None:
        bus = Bus()
        got: list[int] = []

        def handler(env: Envelope) -> None:
            got.append(seq_of(env))
            if seq_of(env) == 1:
                unsubscribe()

        unsubscribe = sub = bus.subscribe(handler, types=RawEvent, maxsize=100)
        bus.publish_many([ev(i) for i in range(5)], source="x")
        await bus.join()
        assert got == [0, 1]
        assert sub.delivered == 2 and sub.depth == 0 and bus.pending() == 0
        assert bus.snapshot().types["RawEvent"].delivered == 2

    run(main())


def test_a_higher_priority_from_a_handler_overtakes_the_rest_of_a_burst(run: Run) -> None:
    async def main() -> None:
        bus = Bus()
        got: list[int] = []

        def handler(env: Envelope) -> None:
            got.append(seq_of(env))
            if seq_of(env) == 1:
                bus.publish(ev(100), source="x", priority=Priority.HIGH)
                bus.publish(ev(101), source="x")  # behind the burst's rest, same priority

        sub = bus.subscribe(handler, types=RawEvent, maxsize=100)
        bus.publish_many([ev(i) for i in range(5)], source="x")
        await bus.join()
        assert got == [0, 1, 100, 2, 3, 4, 101]
        assert sub.delivered == 7 and sub.depth == 0

    run(main())


class Stop(BaseException):
    """Not an Exception: the bus does not catch it, the loop's exception handler sees it."""


def test_a_base_exception_in_a_handler_leaves_the_rest_queued_in_order(run: Run) -> None:
    async def main() -> None:
        bus = Bus()
        got: list[int] = []
        raised: list[BaseException] = []
        loop = asyncio.get_running_loop()

        def on_loop_error(_loop: asyncio.AbstractEventLoop, ctx: dict[str, Any]) -> None:
            raised.append(ctx["exception"])

        loop.set_exception_handler(on_loop_error)

        def handler(env: Envelope) -> None:
            got.append(seq_of(env))
            if seq_of(env) == 1 and len(got) == 2:
                raise Stop

        sub = bus.subscribe(handler, types=RawEvent, maxsize=100)
        bus.publish_many([ev(i) for i in range(5)], source="x")
        await bus.join()
        assert got == [0, 1, 2, 3, 4]
        assert len(raised) == 1 and isinstance(raised[0], Stop)
        assert sub.delivered == 5 and sub.depth == 0

    run(main())


def test_a_long_burst_is_delivered_in_order_at_most_a_slice_per_loop_turn(run: Run) -> None:
    async def main() -> None:
        bus = Bus()
        turns = 0
        per_turn: dict[int, int] = {}
        got: list[int] = []
        loop = asyncio.get_running_loop()
        stop = False

        def tick() -> None:
            nonlocal turns
            turns += 1
            if not stop:
                loop.call_soon(tick)

        def handler(env: Envelope) -> None:
            got.append(seq_of(env))
            per_turn[turns] = per_turn.get(turns, 0) + 1

        n = 3 * SLICE + 17
        sub = bus.subscribe(handler, types=RawEvent, maxsize=10 * SLICE)
        loop.call_soon(tick)
        bus.publish_many([ev(i) for i in range(n)], source="x")
        await bus.join()
        stop = True
        assert got == list(range(n))
        assert max(per_turn.values()) <= SLICE and len(per_turn) >= 4
        assert sub.delivered == n and sub.high_water == n

    run(main())


def test_one_type_publish_many_numbers_envelopes_like_publish(run: Run) -> None:
    async def main() -> None:
        bus = Bus()
        got: list[Envelope] = []
        bus.subscribe(got.append, maxsize=100)
        first = bus.publish(ev(0), source="a")
        assert bus.publish_many((ev(i) for i in range(1, 4)), source="b") == 3  # a generator
        assert bus.publish_many([], source="b") == 0
        last = bus.publish(UserInput("short", "gpio", 0.0), source="a", priority=Priority.HIGH)
        await bus.join()
        assert [e.id for e in sorted(got, key=lambda e: e.id)] == list(range(first.id, last.id + 1))
        burst = [e for e in got if e.source == "b"]
        assert [seq_of(e) for e in burst] == [1, 2, 3]
        assert len({e.t_ns for e in burst}) == 1 and burst[0].t_ns >= first.t_ns
        for e in burst:
            assert e.type is RawEvent and e.priority is Priority.NORMAL
            assert e.correlation_id is None and e.payload is not None

    run(main())
