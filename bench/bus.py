"""Bus benchmark: delivered messages per CPU-second against peers, and High latency under load.

Prints ONE JSON object.  Every figure counts messages that reached a handler (the handler counts
them; the script checks the count), never messages merely enqueued.  All contestants get the same
pre-built payload objects in the same run:

* ``skelly``    — this bus (envelope per publish, priority lanes, metrics, latency histogram)
* ``queue_bus`` — a naive bus: one ``asyncio.Queue`` and one consumer task per subscriber
* ``pyee``      — ``pyee.asyncio.AsyncIOEventEmitter`` with plain (sync) handlers
* ``blinker``   — ``blinker.Signal`` per message type

Scenarios: ``burst_1`` (bursts of 256 to one subscriber, then one loop turn), ``burst_4`` (bursts of
256 spread over four subscribers filtered by type), ``wakeup`` (one message, then one loop turn).
Rates are per CPU-second of the process (``time.process_time``), the median of ``--runs`` runs,
so a busy shared machine skews them less than wall time would.

``service_path`` is the path the service runs: DataCapture's own ``_publish_events`` (what it calls
after each group commit; it publishes the batch with ``publish_many``) with committed batches of
256 RawEvents, then one loop turn, to one subscriber that takes RawEvent the way a module does (a
bound method taking the envelope).  The queue bus gets the same RawEvents, one ``publish`` each
(it has no batch call), and the same bound method.  ``service_path.ratio_vs_queue_bus`` is the
ratio of the two medians; ``ratio_per_run`` pairs the two rates measured back to back in each run
(and its median is steadier when the machine's load changes during the script).
The bus is pure Python (there is no compile step).

``high_*`` figures: one subscriber receives Normal messages at ~50,000/s (paced) while High
messages arrive every ~0.5 ms; the bus's own High latency histogram gives p50/p99.

Usage: ``python bench/bus.py [--runs 5] [--messages 200000] [--stock-loop]``
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import blinker
import uvloop
from pyee.asyncio import AsyncIOEventEmitter

from bus import Bus, Priority
from bus.messages import (
    AnalysisComplete,
    FocusState,
    Message,
    RawEvent,
    StateChange,
    UserInput,
)
from modules.data_capture import DataCapture

BURST = 256
TYPES: list[type[Message]] = [RawEvent, UserInput, StateChange, AnalysisComplete]


def make_payloads() -> dict[type[Message], list[Message]]:
    """Real payloads, built once and shared by every contestant."""
    return {
        RawEvent: [
            RawEvent("host", "s1", i, "key", 1.7e9 + i, (("correction", False),))
            for i in range(BURST)
        ],
        UserInput: [UserInput("short", "gpio", float(i)) for i in range(BURST)],
        StateChange: [
            StateChange(FocusState.NEUTRAL, FocusState.FLOW, 0.9, float(i), 60.0)
            for i in range(BURST)
        ],
        AnalysisComplete: [
            AnalysisComplete(
                float(i), i + 30.0, FocusState.FLOW, 0.9, FocusState.FLOW, 600.0, (("kpm", 200.0),)
            )
            for i in range(BURST)
        ],
    }


class Counter:
    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, *args: object, **kwargs: object) -> None:
        self.n += 1


# --- contestants: each returns (publish(payload), counters, close) --------------------------------


class QueueBus:
    """The naive baseline: one asyncio.Queue + consumer task per subscriber."""

    def __init__(self) -> None:
        self.subs: dict[type[Message], list[asyncio.Queue[Message]]] = {}
        self.tasks: list[asyncio.Task[None]] = []

    def subscribe(self, tp: type[Message], handler: Callable[[Message], None]) -> None:
        q: asyncio.Queue[Message] = asyncio.Queue(maxsize=100_000)
        self.subs.setdefault(tp, []).append(q)

        async def consume() -> None:
            while True:
                item = await q.get()
                handler(item)

        self.tasks.append(asyncio.get_running_loop().create_task(consume()))

    def publish(self, payload: Message) -> None:
        for q in self.subs.get(type(payload), ()):
            q.put_nowait(payload)

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@dataclass
class Contestant:
    publish: Callable[[Message], object]
    counters: list[Counter]
    close: Callable[[], Coroutine[Any, Any, None]]
    burst: Callable[[list[Message]], object] | None = None
    """Publishes a whole burst at once, where the library has such a call."""


def _skelly_publisher(bus: Bus) -> Callable[[Message], object]:
    publish = bus.publish

    def pub(payload: Message) -> None:  # (a closure is cheaper than partial with keywords)
        publish(payload, source="bench")

    return pub


async def setup_skelly(n_subs: int) -> Contestant:
    bus = Bus()
    counters = [Counter() for _ in range(n_subs)]
    for tp, c in zip(TYPES, counters, strict=False):
        bus.subscribe(c, types=tp, maxsize=4096)
    return Contestant(_skelly_publisher(bus), counters, bus.aclose)


async def setup_skelly_batch(n_subs: int) -> Contestant:
    """This bus, publishing each burst with ``publish_many`` (same envelopes and metrics)."""
    bus = Bus()
    counters = [Counter() for _ in range(n_subs)]
    for tp, c in zip(TYPES, counters, strict=False):
        bus.subscribe(c, types=tp, maxsize=4096)
    return Contestant(
        _skelly_publisher(bus),
        counters,
        bus.aclose,
        functools.partial(bus.publish_many, source="bench"),
    )


async def setup_queue_bus(n_subs: int) -> Contestant:
    qb = QueueBus()
    counters = [Counter() for _ in range(n_subs)]
    for tp, c in zip(TYPES, counters, strict=False):
        qb.subscribe(tp, c)
    return Contestant(qb.publish, counters, qb.close)


async def setup_pyee(n_subs: int) -> Contestant:
    ee = AsyncIOEventEmitter()
    counters = [Counter() for _ in range(n_subs)]
    for tp, c in zip(TYPES, counters, strict=False):
        ee.on(tp.__name__, c)
    emit = ee.emit

    def pub(payload: Message) -> None:  # pyee routes by name: the caller names the type
        emit(type(payload).__name__, payload)

    async def close() -> None:
        ee.remove_all_listeners()

    return Contestant(pub, counters, close)


async def setup_blinker(n_subs: int) -> Contestant:
    signals = {tp: blinker.Signal(tp.__name__) for tp in TYPES}
    counters = [Counter() for _ in range(n_subs)]
    for tp, c in zip(TYPES, counters, strict=False):
        signals[tp].connect(c, weak=False)

    def pub(payload: Message) -> None:  # one signal per type: the caller picks it
        signals[type(payload)].send(payload)

    async def close() -> None:
        for s in signals.values():
            s.receivers.clear()

    return Contestant(pub, counters, close)


CONTESTANTS = {
    "skelly": setup_skelly,
    "skelly_batch": setup_skelly_batch,
    "queue_bus": setup_queue_bus,
    "pyee": setup_pyee,
    "blinker": setup_blinker,
}


async def run_bursts(name: str, n_subs: int, messages: int, payloads: Any) -> float:
    c = await CONTESTANTS[name](n_subs)
    pub, counters, close, burst_publish = c.publish, c.counters, c.close, c.burst
    # one burst interleaves the subscribed types so every subscriber gets its share
    burst: list[Message] = []
    for i in range(BURST):
        burst.append(payloads[TYPES[i % n_subs]][i])
    rounds = messages // BURST
    gc.collect()
    t0 = time.process_time()
    if burst_publish is not None:
        for _ in range(rounds):
            burst_publish(burst)
            await asyncio.sleep(0)
    else:
        for _ in range(rounds):
            for p in burst:
                pub(p)
            await asyncio.sleep(0)
    for _ in range(100):  # let queued contestants finish
        if sum(c.n for c in counters) >= rounds * BURST:
            break
        await asyncio.sleep(0)
    cpu = time.process_time() - t0
    delivered = sum(c.n for c in counters)
    await close()
    if delivered != rounds * BURST:
        raise SystemExit(f"{name}: delivered {delivered} of {rounds * BURST}: benchmark invalid")
    return delivered / cpu


class ModuleLikeSink:
    """A subscriber the way a module writes one: a bound method taking one envelope (or item)."""

    def __init__(self) -> None:
        self.n = 0

    def on_event(self, item: object) -> None:
        self.n += 1


def _data_capture_on(bus: Bus) -> DataCapture:
    """DataCapture bound to ``bus`` without starting its listeners: only its publish is run."""
    capture = DataCapture()
    capture._bus = bus
    return capture


def service_publish_call(payloads: Any) -> str:
    """Which bus call DataCapture makes for a committed batch (checked, not assumed)."""
    calls: list[str] = []

    class Spy(Bus):
        def publish(self, *args: Any, **kwargs: Any) -> Any:
            calls.append("publish")
            return super().publish(*args, **kwargs)

        def publish_many(self, *args: Any, **kwargs: Any) -> int:
            calls.append("publish_many")
            return super().publish_many(*args, **kwargs)

    _data_capture_on(Spy())._publish_events(list(payloads[RawEvent][:4]))
    return "+".join(sorted(set(calls))) or "nothing"


async def run_service_path(name: str, messages: int, payloads: Any) -> float:
    """Committed batches of RawEvents as DataCapture publishes them, to one module-like sink."""
    batch: list[RawEvent] = list(payloads[RawEvent])
    sink = ModuleLikeSink()
    rounds = messages // BURST
    if name == "skelly":
        bus = Bus()
        bus.subscribe(sink.on_event, types=RawEvent, maxsize=4096)
        publish_batch = _data_capture_on(bus)._publish_events
        close = bus.aclose
    else:
        qb = QueueBus()
        qb.subscribe(RawEvent, sink.on_event)
        publish = qb.publish

        def publish_batch(events: list[RawEvent]) -> None:
            for event in events:
                publish(event)

        close = qb.close
    gc.collect()
    t0 = time.process_time()
    for _ in range(rounds):
        publish_batch(batch)
        await asyncio.sleep(0)
    for _ in range(100):  # let the queue bus's consumer finish
        if sink.n >= rounds * BURST:
            break
        await asyncio.sleep(0)
    cpu = time.process_time() - t0
    await close()
    if sink.n != rounds * BURST:
        raise SystemExit(f"service path, {name}: delivered {sink.n} of {rounds * BURST}: invalid")
    return sink.n / cpu


async def run_wakeup(name: str, n_subs: int, messages: int, payloads: Any) -> tuple[float, float]:
    c = await CONTESTANTS[name](n_subs)
    pub, counters, close = c.publish, c.counters, c.close
    # the same interleaving of types as the bursts, one message per loop turn
    plist = [payloads[TYPES[i % n_subs]][i] for i in range(BURST)]
    n = messages // 4
    gc.collect()
    t0 = time.process_time()
    w0 = time.perf_counter()
    for i in range(n):
        pub(plist[i & (BURST - 1)])
        await asyncio.sleep(0)
    cpu = time.process_time() - t0
    wall = time.perf_counter() - w0
    delivered = sum(k.n for k in counters)
    await close()
    if delivered != n:
        raise SystemExit(f"{name}: wake-up delivered {delivered} of {n}: benchmark invalid")
    return delivered / cpu, delivered / wall


async def run_latency(duration: float, normal_rate: float) -> dict[str, float]:
    bus = Bus()
    bus.subscribe(lambda env: None, maxsize=100_000)
    raw = make_payloads()[RawEvent]
    high = UserInput("short", "gpio", 0.0)
    loop = asyncio.get_running_loop()
    stop = loop.time() + duration
    sent_normal = 0
    sent_high = 0

    async def normal_load() -> None:
        nonlocal sent_normal
        start = loop.time()
        while loop.time() < stop:
            due = int((loop.time() - start) * normal_rate) - sent_normal
            for i in range(min(due, 500)):
                bus.publish(raw[i & (BURST - 1)], source="load")
            sent_normal += max(0, min(due, 500))
            await asyncio.sleep(0.0005)

    async def high_load() -> None:
        nonlocal sent_high
        while loop.time() < stop:
            await asyncio.sleep(0.0005)
            bus.publish(high, source="button", priority=Priority.HIGH)
            sent_high += 1

    await asyncio.sleep(0.05)
    bus.reset_latency()
    t0 = loop.time()
    await asyncio.gather(normal_load(), high_load())
    elapsed = loop.time() - t0
    await bus.join()
    hist = bus.latency(Priority.HIGH)
    normal = bus.latency(Priority.NORMAL)
    await bus.aclose()
    return {
        "high_p50_us": hist.percentile(50),
        "high_p99_us": hist.percentile(99),
        "high_count": hist.total,
        "normal_p99_us": normal.percentile(99),
        "normal_rate_achieved_per_s": round(sent_normal / elapsed),
    }


def median(values: list[float]) -> float:
    return statistics.median(values)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    payloads = make_payloads()
    runs = args.runs
    results: dict[str, Any] = {
        "delivered_per_cpu_s": {},
        "delivered_per_cpu_s_4_subscribers": {},
        "wakeup_per_s": {},
        "wakeup_per_wall_s": {},
        "wakeup_per_s_4_subscribers": {},
    }
    raw: dict[str, dict[str, list[float]]] = {k: {} for k in results}
    service: dict[str, list[float]] = {"skelly": [], "queue_bus": []}
    for _ in range(runs):
        for name in service:
            service[name].append(await run_service_path(name, args.messages, payloads))
        # interleave contestants inside each run so machine noise hits all of them alike
        for name in CONTESTANTS:
            raw["delivered_per_cpu_s"].setdefault(name, []).append(
                await run_bursts(name, 1, args.messages, payloads)
            )
            raw["delivered_per_cpu_s_4_subscribers"].setdefault(name, []).append(
                await run_bursts(name, 4, args.messages, payloads)
            )
            cpu_rate, wall_rate = await run_wakeup(name, 1, args.messages, payloads)
            raw["wakeup_per_s"].setdefault(name, []).append(cpu_rate)
            raw["wakeup_per_wall_s"].setdefault(name, []).append(wall_rate)
            cpu_rate, _ = await run_wakeup(name, 4, args.messages, payloads)
            raw["wakeup_per_s_4_subscribers"].setdefault(name, []).append(cpu_rate)
    for key, per_name in raw.items():
        results[key] = {name: round(median(v)) for name, v in per_name.items()}
    per_run = [s / q for s, q in zip(service["skelly"], service["queue_bus"], strict=True)]
    skelly_rate, queue_rate = median(service["skelly"]), median(service["queue_bus"])
    results["service_path"] = {
        "data_capture_publishes_with": service_publish_call(payloads),
        "delivered_per_cpu_s": {"skelly": round(skelly_rate), "queue_bus": round(queue_rate)},
        "ratio_vs_queue_bus": round(skelly_rate / queue_rate, 2),
        "ratio_per_run": [round(r, 2) for r in per_run],
        "ratio_per_run_median": round(median(per_run), 2),
    }
    lat = [await run_latency(args.latency_seconds, 50_000) for _ in range(runs)]
    for key in lat[0]:
        results[key] = round(median([r[key] for r in lat]), 1)
    peers = ("queue_bus", "pyee", "blinker")
    for key, label in (
        ("delivered_per_cpu_s", "ratios"),
        ("delivered_per_cpu_s_4_subscribers", "ratios_4_subscribers"),
    ):
        rates = results[key]
        results[label] = {
            f"{mine}_vs_{peer}": round(rates[mine] / rates[peer], 2)
            for mine in ("skelly", "skelly_batch")
            for peer in peers
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--latency-seconds", type=float, default=2.0)
    parser.add_argument("--stock-loop", action="store_true")
    args = parser.parse_args()
    factory = asyncio.new_event_loop if args.stock_loop else uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        results = runner.run(main_async(args))
    results["meta"] = {
        "loop": "asyncio" if args.stock_loop else "uvloop",
        "runs": args.runs,
        "messages_per_run": args.messages,
        "burst": BURST,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "statistic": "median of runs; rates per CPU-second unless named wall",
        "bus_build": "pure Python (no compile step)",
    }
    print(json.dumps(results))


if __name__ == "__main__":
    main()
