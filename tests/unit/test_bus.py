"""Delivery semantics of the bus, each test on uvloop and on the stock loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from bus import Bus, Delivery, Envelope, ModuleRegistry, ModuleStatus, Priority, SystemHealth
from bus.messages import Error, HealthCheck, RawEvent, StateChange, UserInput

Run = Callable[[Coroutine[Any, Any, Any]], Any]


def ev(seq: int) -> RawEvent:
    return RawEvent("host", "s1", seq, "key", float(seq), (("correction", False),))


def seqs(envs: list[Envelope]) -> list[int]:
    out = []
    for env in envs:
        assert isinstance(env.payload, RawEvent)
        out.append(env.payload.seq)
    return out


def test_envelope_carries_metadata(run: Run) -> None:
    async def main() -> None:
        bus = Bus()
        got: list[Envelope] = []
        bus.subscribe(got.append)
        env = bus.publish(ev(1), source="DataCapture", priority=Priority.HIGH, correlation_id=7)
        await bus.join()
        assert got == [env]
        assert env.type is RawEvent and env.source == "DataCapture"
        assert env.priority is Priority.HIGH and env.correlation_id == 7
        second = bus.publish(ev(2), source="DataCapture")
        assert second.id > env.id and second.t_ns >= env.t_ns
        assert abs(env.wall_time - __import__("time").time()) < 5
        with pytest.raises(AttributeError):
            env.payload.seq = 3  # type: ignore[misc]

    run(main())


def test_fifo_within_priority_and_priorities_overtake(run: Run) -> None:
    async def main() -> None:
        bus = Bus()
        got: list[Envelope] = []
        bus.subscribe(got.append, maxsize=100)
        plan = [Priority.LOW, Priority.NORMAL, Priority.LOW, Priority.CRITICAL, Priority.NORMAL]
        plan += [Priority.HIGH, Priority.LOW, Priority.HIGH, Priority.CRITICAL, Priority.NORMAL]
        for i, prio in enumerate(plan):
            bus.publish(ev(i), source="x", priority=prio)
        await bus.join()
        expected = sorted(range(len(plan)), key=lambda i: (-plan[i], i))
        assert seqs(got) == expected

    run(main())


def test_high_overtakes_a_queued_normal_backlog(run: Run) -> None:
    async def main() -> None:
        bus = Bus()
        got: list[Envelope] = []
        bus.subscribe(got.append, maxsize=10_000)
        for i in range(1000):
            bus.publish(ev(i), source="x")
        bus.publish(ev(99_999), source="x", priority=Priority.HIGH)
        await bus.join()
        assert seqs(got)[0] == 99_999
        assert seqs(got)[1:] == list(range(1000))

    run(main())


def test_handler_publishing_higher_priority_preempts_its_own_lane(run: Run) -> None:
    async def main() -> None:
        bus = Bus()
        got: list[int] = []

        def handler(env: Envelope) -> None:
            assert isinstance(env.payload, RawEvent)
            got.append(env.payload.seq)
            if env.payload.seq == 0:
                bus.publish(ev(500), source="x", priority=Priority.CRITICAL)

        bus.subscribe(handler, maxsize=100)
        for i in range(5):
            bus.publish(ev(i), source="x")
        await bus.join()
        assert got == [0, 500, 1, 2, 3, 4]

    run(main())


def test_filters_by_type_and_source(run: Run) -> None:
    async def main() -> None:
        bus = Bus()
        raw: list[Envelope] = []
        from_storage: list[Envelope] = []
        both: list[Envelope] = []
        bus.subscribe(raw.append, types=RawEvent)
        bus.subscribe(from_storage.append, sources="Storage")
        bus.subscribe(both.append, types=[RawEvent, UserInput], sources=["DataCapture"])
        bus.publish(ev(1), source="DataCapture")
        bus.publish(ev(2), source="Storage")
        bus.publish(UserInput("short", "gpio", 0.0), source="DataCapture")
        bus.publish(UserInput("long", "gpio", 0.0), source="CuteFigurine")
        await bus.join()
        assert seqs(raw) == [1, 2]
        assert [e.source for e in from_storage] == ["Storage"]
        assert [e.type for e in both] == [RawEvent, UserInput]

    run(main())


def test_subscribe_rejects_non_message_types() -> None:
    bus = Bus()
    with pytest.raises(TypeError, match="Message subclasses"):
        bus.subscribe(print, types=[int])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="maxsize"):
        bus.subscribe(print, maxsize=0)


def test_best_effort_drops_oldest_and_counts_exactly(run: Run) -> None:
    async def main() -> None:
        bus = Bus()
        got: list[Envelope] = []
        sub = bus.subscribe(got.append, maxsize=10)
        for i in range(25):  # no yield in between: the subscriber cannot run
            bus.publish(ev(i), source="x")
        await bus.join()
        assert seqs(got) == list(range(15, 25))
        assert sub.dropped == 15 and sub.delivered == 10 and sub.high_water == 10
        snap = bus.snapshot()
        assert snap.types["RawEvent"].published == 25
        assert snap.types["RawEvent"].dropped == 15
        assert snap.types["RawEvent"].delivered == 10

    run(main())


def test_best_effort_drops_lowest_priority_first(run: Run) -> None:
    async def main() -> None:
        bus = Bus()
        got: list[Envelope] = []
        sub = bus.subscribe(got.append, maxsize=3)
        bus.publish(ev(1), source="x", priority=Priority.HIGH)
        bus.publish(ev(2), source="x", priority=Priority.LOW)
        bus.publish(ev(3), source="x", priority=Priority.HIGH)
        bus.publish(ev(4), source="x", priority=Priority.NORMAL)  # evicts the LOW one
        bus.publish(ev(5), source="x", priority=Priority.LOW)  # outranked by all: dropped itself
        await bus.join()
        assert seqs(got) == [1, 3, 4]
        assert sub.dropped == 2

    run(main())


def test_latest_only_keeps_the_newest_per_key(run: Run) -> None:
    async def main() -> None:
        bus = Bus()
        got: list[Envelope] = []

        def key(env: Envelope) -> str:
            assert isinstance(env.payload, RawEvent)
            return env.payload.kind

        sub = bus.subscribe(got.append, mode=Delivery.LATEST_ONLY, key=key)
        for i in range(10):
            bus.publish(RawEvent("h", "s", i, "key", 0.0), source="x")
            bus.publish(RawEvent("h", "s", 100 + i, "mouse", 0.0), source="x")
        await bus.join()
        assert seqs(got) == [9, 109]
        assert sub.coalesced == 18 and sub.dropped == 0
        # after delivery a new value is delivered again
        bus.publish(RawEvent("h", "s", 11, "key", 0.0), source="x")
        await bus.join()
        assert seqs(got) == [9, 109, 11]

    run(main())


def test_latest_only_newer_priority_applies(run: Run) -> None:
    async def main() -> None:
        bus = Bus()
        got: list[Envelope] = []
        bus.subscribe(got.append, mode=Delivery.LATEST_ONLY, key=lambda e: e.type.__name__)
        bus.publish(StateChange("IDLE", "FLOW", 1.0, 0.0, 0.0), source="x")  # type: ignore[arg-type]
        bus.publish(ev(1), source="x", priority=Priority.LOW)
        bus.publish(ev(2), source="x", priority=Priority.HIGH)
        await bus.join()
        assert [e.type for e in got] == [RawEvent, StateChange]
        assert seqs(got[:1]) == [2]

    run(main())


def test_reliable_loses_nothing_under_a_slow_subscriber(run: Run) -> None:
    async def main() -> None:
        bus = Bus()
        got: list[int] = []
        max_depth = 0

        async def slow(env: Envelope) -> None:
            nonlocal max_depth
            assert isinstance(env.payload, RawEvent)
            max_depth = max(max_depth, sub.depth)
            await asyncio.sleep(0.0005)
            got.append(env.payload.seq)

        sub = bus.subscribe(slow, mode=Delivery.RELIABLE, maxsize=4)
        for i in range(200):
            await bus.send(ev(i), source="x", timeout=5.0)
            assert sub.depth <= 4
        await bus.join()
        for _ in range(5000):
            if len(got) == 200:
                break
            await asyncio.sleep(0.001)
        assert got == list(range(200))
        assert sub.high_water <= 4 and sub.dropped == 0 and len(bus.dead_letters) == 0

    run(main())


def test_reliable_timeout_goes_to_dead_letters_with_reason(run: Run) -> None:
    async def main() -> None:
        bus = Bus()
        release = asyncio.Event()

        async def stuck(env: Envelope) -> None:
            await release.wait()

        sub = bus.subscribe(stuck, mode=Delivery.RELIABLE, maxsize=2, timeout=30)
        for i in range(3):  # one in the handler, two queued
            await bus.send(ev(i), source="x", timeout=1.0)
            await asyncio.sleep(0)
        assert sub.depth == 2
        env = await bus.send(ev(99), source="x", timeout=0.05)
        letters = bus.dead_letters.items()
        assert len(letters) == 1 and letters[0].envelope is env
        assert "timed out after 0.05 s" in letters[0].reason
        assert sub.dead_lettered == 1
        # the non-waiting publish cannot wait: dead letter at once, saying how to wait
        bus.publish(ev(100), source="x")
        assert "await bus.send" in bus.dead_letters.items()[-1].reason
        release.set()
        await bus.join()

    run(main())


def test_raising_handler_is_isolated_counted_and_reported(run: Run) -> None:
    async def main() -> None:
        registry = ModuleRegistry(error_threshold=3)
        registry.register("Analysis")
        registry.set_status("Analysis", ModuleStatus.HEALTHY)
        bus = Bus(registry)
        good: list[int] = []
        errors: list[Error] = []

        def bad(env: Envelope) -> None:
            raise RuntimeError("boom")

        bus.subscribe(bad, types=RawEvent, module="Analysis", name="bad")
        bus.subscribe(lambda e: good.append(e.payload.seq), types=RawEvent)  # type: ignore[attr-defined]
        bus.subscribe(lambda e: errors.append(e.payload), types=Error)
        for i in range(5):
            bus.publish(ev(i), source="x")
        await bus.join()
        assert good == [0, 1, 2, 3, 4]
        assert len(errors) == 5
        assert errors[0].module == "Analysis" and "RuntimeError: boom" in errors[0].error
        assert errors[0].message_type == "RawEvent"
        assert bus.snapshot().subscribers[0].errors == 5
        health = registry.module("Analysis")
        assert health.effective is ModuleStatus.DEGRADED and health.recent_errors == 5
        assert registry.health() is SystemHealth.DEGRADED

    run(main())


def test_failing_error_handler_does_not_loop(run: Run) -> None:
    async def main() -> None:
        bus = Bus()

        def bad(env: Envelope) -> None:
            raise ValueError("nope")

        sub = bus.subscribe(bad)  # sees everything, Errors included
        bus.publish(ev(1), source="x")
        await bus.join()
        # one failure on the RawEvent, one on the Error it caused, then silence
        assert sub.errors == 2
        assert bus.errors_reported == 2

    run(main())


def test_hanging_async_handler_is_cancelled_and_others_go_on(run: Run) -> None:
    async def main() -> None:
        bus = Bus()
        handled: list[int] = []
        others: list[int] = []
        errors: list[Error] = []

        async def hangs(env: Envelope) -> None:
            assert isinstance(env.payload, RawEvent)
            if env.payload.seq == 0:
                await asyncio.sleep(3600)
            handled.append(env.payload.seq)

        sub = bus.subscribe(hangs, types=RawEvent, timeout=0.05, module="AI")
        bus.subscribe(lambda e: others.append(e.payload.seq), types=RawEvent)  # type: ignore[attr-defined]
        bus.subscribe(lambda e: errors.append(e.payload), types=Error)
        for i in range(3):
            bus.publish(ev(i), source="x")
        await bus.join()
        assert others == [0, 1, 2]
        for _ in range(200):
            if handled == [1, 2]:
                break
            await asyncio.sleep(0.01)
        assert handled == [1, 2]
        assert sub.hangs == 1
        assert errors and "hung" in errors[0].error

    run(main())


def test_publish_threadsafe_from_many_threads(run: Run) -> None:
    async def main() -> None:
        bus = Bus()
        got: list[Envelope] = []
        bus.subscribe(got.append, maxsize=10_000)
        bus.bind()

        def worker(base: int) -> None:
            for i in range(500):
                bus.publish_threadsafe(ev(base + i), source="gpio")

        threads = [threading.Thread(target=worker, args=(k * 1000,)) for k in range(4)]
        for t in threads:
            t.start()
        await asyncio.to_thread(lambda: [t.join() for t in threads])
        await asyncio.sleep(0.05)
        await bus.join()
        assert sorted(seqs(got)) == sorted(k * 1000 + i for k in range(4) for i in range(500))
        for k in range(4):  # per-thread order is kept
            mine = [s for s in seqs(got) if s // 1000 == k]
            assert mine == sorted(mine)

    run(main())


def test_publish_threadsafe_waits_for_reliable_room(run: Run) -> None:
    async def main() -> None:
        bus = Bus()
        got: list[int] = []

        async def slow(env: Envelope) -> None:
            await asyncio.sleep(0.001)
            got.append(env.payload.seq)  # type: ignore[attr-defined]

        bus.subscribe(slow, mode=Delivery.RELIABLE, maxsize=2)
        bus.bind()

        def worker() -> None:
            for i in range(20):
                bus.publish_threadsafe(ev(i), source="gpio")

        await asyncio.to_thread(worker)
        for _ in range(500):
            if len(got) == 20:
                break
            await asyncio.sleep(0.005)
        assert sorted(got) == list(range(20))
        assert len(bus.dead_letters) == 0

    run(main())


def test_publish_threadsafe_before_bind_is_a_clear_error() -> None:
    bus = Bus()
    with pytest.raises(RuntimeError, match="no event loop yet"):
        bus.publish_threadsafe(ev(1), source="gpio")


def test_unsubscribe_stops_delivery(run: Run) -> None:
    async def main() -> None:
        bus = Bus()
        got: list[Envelope] = []
        unsubscribe = bus.subscribe(got.append)
        bus.publish(ev(1), source="x")
        await bus.join()
        unsubscribe()
        bus.publish(ev(2), source="x")
        await bus.join()
        assert seqs(got) == [1]
        assert bus.snapshot().types["RawEvent"].published == 2

    run(main())


def test_latency_histogram_per_priority(run: Run) -> None:
    async def main() -> None:
        bus = Bus()
        bus.subscribe(lambda e: None)
        for i in range(50):
            bus.publish(ev(i), source="x", priority=Priority.HIGH)
        for i in range(20):
            bus.publish(ev(i), source="x", priority=Priority.LOW)
        await bus.join()
        snap = bus.snapshot()
        assert snap.latency["HIGH"]["count"] == 50
        assert snap.latency["LOW"]["count"] == 20
        assert snap.latency["NORMAL"]["count"] == 0
        assert 0 <= snap.latency["HIGH"]["p50_us"] <= snap.latency["HIGH"]["p99_us"]
        assert snap.latency["HIGH"]["p99_us"] < 1_000_000

    run(main())


def test_closed_bus_refuses_publish(run: Run) -> None:
    async def main() -> None:
        bus = Bus()

        async def handler(env: Envelope) -> None:
            await asyncio.sleep(0)

        bus.subscribe(handler)
        bus.publish(HealthCheck(1), source="x")
        await bus.aclose()
        with pytest.raises(RuntimeError, match="closed"):
            bus.publish(HealthCheck(2), source="x")

    run(main())


def test_publish_many_matches_publish_semantics(run: Run) -> None:
    async def main() -> None:
        bus = Bus()
        raw: list[Envelope] = []
        small: list[Envelope] = []
        inputs: list[Envelope] = []
        bus.subscribe(raw.append, types=RawEvent)
        sub_small = bus.subscribe(small.append, types=RawEvent, maxsize=5)
        bus.subscribe(inputs.append, types=UserInput, sources="gpio")
        bus.publish(ev(1000), source="x", priority=Priority.LOW)
        batch = [ev(i) for i in range(10)] + [UserInput("short", "gpio", 0.0)]
        assert bus.publish_many(batch, source="gpio", priority=Priority.HIGH) == 11
        await bus.join()
        assert seqs(raw) == [*range(10), 1000]  # HIGH batch overtakes the queued LOW one
        assert len({e.id for e in raw}) == 11 and all(e.source == "gpio" for e in raw[:10])
        assert seqs(small) == [5, 6, 7, 8, 9]  # does not fit: drop-oldest one by one
        assert sub_small.dropped == 6
        assert len(inputs) == 1
        snap = bus.snapshot()
        assert snap.types["RawEvent"].published == 11
        assert snap.types["UserInput"].published == 1
        assert snap.latency["HIGH"]["count"] == 10 + 5 + 1

    run(main())
