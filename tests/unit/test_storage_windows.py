"""EventBatch windows, aggregates, the state history and retention, all on a fake event-time
clock (no real sleeping: the module's periodic tasks sleep on the fake clock)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import orjson

from bus import Bus, Envelope, FocusState, ModuleId
from bus.messages import AnalysisComplete, EventBatch, RawEvent, StorageStatus
from modules.storage import Storage, StorageConfig, bucket_stats

Run = Callable[[Coroutine[Any, Any, Any]], Any]

T0 = 1_200_000.0  # a multiple of 10 and of 60
START = T0 + 2.0  # the first window published ends at T0+10 and is due at T0+11.5


class FakeClock:
    """Event time that only moves when the test says so; ``sleep`` waits for it."""

    def __init__(self, start: float) -> None:
        self.t = start
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.t + seconds, fut))
        await fut

    def advance(self, seconds: float) -> None:
        self.t += seconds
        keep = []
        for deadline, fut in self._sleepers:
            if deadline <= self.t + 1e-9:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((deadline, fut))
        self._sleepers = keep


async def settle(bus: Bus) -> None:
    for _ in range(5):
        await asyncio.sleep(0)
    await bus.join()


async def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for work on the writer thread to land (bounded; not a timing assumption)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.005)


def key(seq: int, ts: float, host: str = "h1", correction: bool = False) -> RawEvent:
    return RawEvent(host, "s1", seq, "key", ts, (("correction", correction),))


def cfg(**kw: Any) -> StorageConfig:
    base: dict[str, Any] = {"commit_max_wait_s": 0.0, "window_grace_s": 1.5}
    base.update(kw)
    return StorageConfig(**base)


class Harness:
    def __init__(self, tmp: Path, config: StorageConfig, start: float = START) -> None:
        self.clock = FakeClock(start)
        self.bus = Bus()
        self.storage = Storage(
            config, tmp, clock=self.clock.now, sleep=self.clock.sleep, steady=self.clock.now
        )
        self.batches: list[EventBatch] = []
        self.statuses: list[StorageStatus] = []

    async def __aenter__(self) -> Harness:
        def on_batch(env: Envelope) -> None:
            assert isinstance(env.payload, EventBatch)
            assert env.source == ModuleId.STORAGE
            self.batches.append(env.payload)

        def on_status(env: Envelope) -> None:
            assert isinstance(env.payload, StorageStatus)
            self.statuses.append(env.payload)

        self.bus.subscribe(on_batch, types=EventBatch, maxsize=10_000)
        self.bus.subscribe(on_status, types=StorageStatus, maxsize=10_000)
        await self.storage.start(self.bus)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.storage.stop()
        await self.bus.aclose()

    async def step(self, seconds: float) -> None:
        self.clock.advance(seconds)
        await settle(self.bus)


def test_windows_are_30s_every_10s_with_the_right_events(tmp_path: Path, run: Run) -> None:
    async def main() -> Harness:
        async with Harness(tmp_path, cfg()) as h:
            await settle(h.bus)
            assert h.batches == []  # nothing is published for the past
            # one event every second from T0 to T0+39 (ts T0+i+0.5)
            evs = [key(i + 1, T0 + i + 0.5, correction=(i % 5 == 0)) for i in range(40)]
            assert await h.storage.commit(evs) == 40
            await h.step(9.0)
            assert h.batches == []  # the window ending at T0+10 is due at T0+11.5
            await h.step(0.5)
            assert len(h.batches) == 1
            b = h.batches[0]
            assert (b.window_start, b.window_end, b.host_id) == (T0 - 20, T0 + 10, "h1")
            assert b.events == tuple(evs[:10])
            await h.step(10.0)
            await h.step(10.0)
            await h.step(10.0)
            assert [(b.window_start, b.window_end) for b in h.batches] == [
                (T0 - 20 + 10 * i, T0 + 10 + 10 * i) for i in range(4)
            ]
            assert h.batches[2].events == tuple(evs[0:30])
            assert h.batches[3].events == tuple(evs[10:40])
            # each event is in exactly three consecutive windows
            seen = [e.seq for b in h.batches for e in b.events]
            assert all(seen.count(s) == 3 for s in range(11, 21))
            return h

    h = run(main())
    assert h.storage.windows_emitted == 4


def test_empty_windows_are_published_and_late_acks_within_grace_count(
    tmp_path: Path, run: Run
) -> None:
    async def main() -> None:
        async with Harness(tmp_path, cfg()) as h:
            await h.step(8.0)  # now T0+10: the window ending at T0+10 is not due yet
            # acknowledged late (inside the grace), stamped before the window end
            await h.storage.commit([key(1, T0 + 9.9)])
            await h.step(1.5)
            assert [len(b.events) for b in h.batches] == [1]
            await h.step(30.0)
            assert [len(b.events) for b in h.batches] == [1, 1, 1, 0]
            assert h.batches[-1].events == ()
            assert h.batches[-1].host_id == "h1"

    run(main())


def test_two_hosts_get_separate_batches(tmp_path: Path, run: Run) -> None:
    async def main() -> None:
        async with Harness(tmp_path, cfg()) as h:
            await h.storage.commit([key(1, T0 + 1, host="a"), key(1, T0 + 2, host="b")])
            await h.step(9.5)
            assert sorted((b.host_id, len(b.events)) for b in h.batches) == [("a", 1), ("b", 1)]

    run(main())


def test_every_host_gets_its_empty_window(tmp_path: Path, run: Run) -> None:
    """A host that goes quiet gets empty windows (its analysis sees IDLE) while another host is
    busy, and when nobody sends anything every host gets one, not only the last host seen."""

    async def main() -> None:
        async with Harness(tmp_path, cfg()) as h:
            await h.storage.commit([key(1, T0 + 1, host="a"), key(1, T0 + 2, host="b")])
            await h.step(9.5)  # window [T0-20, T0+10) published
            h.batches.clear()
            await h.storage.commit([key(2, T0 + 30, host="b")])
            await h.step(30.0)  # windows ending T0+20, T0+30, T0+40
            by_end: dict[float, dict[str, int]] = {}
            for b in h.batches:
                by_end.setdefault(b.window_end, {})[b.host_id] = len(b.events)
            assert by_end == {
                T0 + 20: {"a": 1, "b": 1},
                T0 + 30: {"a": 1, "b": 1},
                T0 + 40: {"a": 0, "b": 1},  # a went quiet: an empty window, not none
            }
            h.batches.clear()
            for _ in range(4):  # nobody sends: both hosts get empty windows
                await h.step(10.0)
            assert sorted(b.window_end for b in h.batches if b.host_id == "a") == [
                T0 + 50,
                T0 + 60,
                T0 + 70,
                T0 + 80,
            ]
            assert sorted(
                (b.host_id, len(b.events)) for b in h.batches if b.window_end == T0 + 80
            ) == [
                ("a", 0),
                ("b", 0),
            ]

    run(main())


def test_duplicates_do_not_reach_windows(tmp_path: Path, run: Run) -> None:
    async def main() -> None:
        async with Harness(tmp_path, cfg()) as h:
            evs = [key(i, T0 + i) for i in range(1, 6)]
            await h.storage.commit(evs)
            assert await h.storage.commit(evs) == 0
            await h.step(9.5)
            assert h.batches[0].events == tuple(evs)

    run(main())


def test_a_clock_jump_publishes_only_the_last_windows(tmp_path: Path, run: Run) -> None:
    async def main() -> None:
        async with Harness(tmp_path, cfg()) as h:
            await h.step(86_400.0)
            ends = [b.window_end for b in h.batches]
            assert len(ends) == 3
            assert ends[-1] == T0 + 86_400
            assert ends == sorted(ends) and ends[1] - ends[0] == 10

    run(main())


def test_window_buffer_is_bounded_and_the_drop_is_reported(tmp_path: Path, run: Run) -> None:
    async def main() -> None:
        async with Harness(tmp_path, cfg(window_max_events=50)) as h:
            await h.storage.commit([key(i, T0 + i * 0.01) for i in range(1, 201)])
            await h.step(9.5)
            assert len(h.batches[0].events) == 50
            assert h.batches[0].events[-1].seq == 200
            assert "dropped 150" in h.storage.status_message().detail

    run(main())


def test_windows_resume_after_restart_from_the_database(tmp_path: Path, run: Run) -> None:
    async def main() -> None:
        async with Harness(tmp_path, cfg()) as h:
            await h.storage.commit([key(i, T0 + i) for i in range(1, 6)])
        async with Harness(tmp_path, cfg(), start=T0 + 6) as h2:
            await h2.step(5.5)
            assert [e.seq for e in h2.batches[0].events] == [1, 2, 3, 4, 5]

    run(main())


def test_aggregates_per_bucket_are_stored(tmp_path: Path, run: Run) -> None:
    async def main() -> None:
        async with Harness(tmp_path, cfg()) as h:
            evs: list[RawEvent] = [key(i, T0 + i, correction=(i <= 3)) for i in range(1, 11)]
            evs.append(
                RawEvent("h1", "s1", 11, "mouse", T0 + 20, (("speed", 100.0), ("clicks", 2)))
            )
            evs.append(
                RawEvent("h1", "s1", 12, "mouse", T0 + 21, (("speed", 300.0), ("clicks", 1)))
            )
            evs.append(
                RawEvent("h1", "s1", 13, "focus", T0 + 22, (("category", "code"), ("app_id", "x")))
            )
            evs.append(RawEvent("h1", "s1", 14, "idle", T0 + 30, (("duration_s", 12.5),)))
            evs.append(key(15, T0 + 61))  # next bucket
            await h.storage.commit(evs)
            for _ in range(7):
                await h.step(10.0)
            await h.step(1.5)
            await until(lambda: _aggregates(tmp_path) != [])

    run(main())
    aggs = _aggregates(tmp_path)
    assert aggs[0][:4] == ("h1", T0, T0 + 60, 14)
    stats = orjson.loads(aggs[0][4])
    assert stats == {
        "kinds": {"key": 10, "mouse": 2, "focus": 1, "idle": 1},
        "corrections": 3,
        "clicks": 3,
        "mouse_speed_mean": 200.0,
        "focus_switches": 1,
        "categories": {"code": 1},
        "idle_s": 12.5,
    }


def _aggregates(tmp: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(tmp / "skelly.db")
    try:
        return conn.execute(
            "SELECT host_id, bucket_start, bucket_end, events, stats FROM aggregates "
            "ORDER BY bucket_start"
        ).fetchall()
    finally:
        conn.close()


def test_bucket_stats_of_nothing() -> None:
    assert bucket_stats([])["mouse_speed_mean"] == 0.0


def test_analysis_results_fold_into_state_segments(tmp_path: Path, run: Run) -> None:
    def result(end: float, state: FocusState, conf: float) -> AnalysisComplete:
        return AnalysisComplete(end - 30, end, state, conf, state, 0.0)

    async def main() -> list[tuple[Any, ...]]:
        async with Harness(tmp_path, cfg()) as h:
            plan = [FocusState.FLOW] * 3 + [FocusState.DISTRACTED] * 2 + [FocusState.FLOW]
            for i, state in enumerate(plan):
                h.bus.publish(result(T0 + 10 * (i + 1), state, 0.5), source=ModuleId.ANALYSIS)
            # from someone else: ignored
            h.bus.publish(result(T0 + 70, FocusState.IDLE, 1.0), source=ModuleId.AI)
            await settle(h.bus)
            return await h.storage._require_writer().call(
                lambda db: db.conn.execute(
                    "SELECT start_ts, end_ts, state, windows, confidence_sum FROM states "
                    "ORDER BY start_ts"
                ).fetchall()
            )

    segs = run(main())
    assert segs == [
        (T0, T0 + 30, "FLOW", 3, 1.5),
        (T0 + 30, T0 + 50, "DISTRACTED", 2, 1.0),
        (T0 + 50, T0 + 60, "FLOW", 1, 0.5),
    ]


def test_purge_deletes_old_raw_events_and_old_aggregates(tmp_path: Path, run: Run) -> None:
    config = cfg(raw_retention_hours=24.0, aggregate_retention_days=365.0)

    async def main() -> None:
        async with Storage(config, tmp_path, clock=lambda: T0) as st:
            old = [key(i, T0 - 86_400 - 100 + i) for i in range(1, 11)]
            young = [key(i, T0 - 86_400 + 100 + i) for i in range(11, 21)]
            future = [key(i, T0 + 86_400 + 10 + i) for i in range(21, 24)]
            ahead = [key(i, T0 + 86_400 - 100 + i) for i in range(24, 26)]
            await st.commit(old + young + future + ahead)

            def aggs(db: Any) -> None:
                with db.transaction():
                    db.put_aggregate("h1", T0 - 366 * 86400, T0 - 366 * 86400 + 60, 1, {})
                    db.put_aggregate("h1", T0 - 364 * 86400, T0 - 364 * 86400 + 60, 1, {})
                    db.put_state_segment(T0 - 400 * 86400, T0 - 399 * 86400, "FLOW", 1, 1.0)

            await st._require_writer().call(aggs)
            # too old, and mis-stamped more than the retention period ahead
            assert await st.purge(now=T0) == (13, 2)
            assert st.events_total == 12
            assert await st.purge(now=T0) == (0, 0)
            # the resume point is kept when the raw events of a session are gone
            assert await st.purge(now=T0 + 200) == (10, 0)
            assert await st.resume_point("h1", "s1") == 25
            assert st.events_total == 2
            assert await st.purge(now=T0 + 2 * 86_400 + 200) == (2, 1)  # + the 364-day one
            assert st.events_total == 0

    run(main())
    conn = sqlite3.connect(tmp_path / "skelly.db")
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM aggregates").fetchone()[0] == 0
    conn.close()


def test_purge_runs_on_its_own_on_the_event_clock(tmp_path: Path, run: Run) -> None:
    config = cfg(raw_retention_hours=1.0, purge_interval_s=600.0)

    async def main() -> None:
        async with Harness(tmp_path, config, start=T0) as h:
            st = h.storage
            await until(lambda: st.purges == 1)  # runs once at start
            await st.commit([key(i, T0 + i) for i in range(1, 101)])
            await st.commit([key(i, T0 + 3000 + i) for i in range(101, 151)])
            for n in (2, 3, 4):
                await h.step(600.0)
                await until(lambda n=n: st.purges == n)
            assert st.events_total == 150  # at T0+1800 nothing is an hour old yet
            await h.step(1900.0)  # T0+3700: events stamped before T0+100 are over 1 h old
            await until(lambda: st.purges == 5)
            assert st.events_total == 51
            await h.step(599.0)
            await asyncio.sleep(0.05)
            assert st.purges == 5  # not due before another 600 s of event time
            await h.step(3001.0)
            await until(lambda: st.purges == 6)
            assert st.events_total == 0

    run(main())


def test_status_is_published_and_says_ok(tmp_path: Path, run: Run) -> None:
    async def main() -> None:
        async with Harness(tmp_path, cfg()) as h:
            await h.storage.commit([key(1, T0)])
            await until(lambda: len(h.statuses) >= 1)
            st = h.storage.status_message()
            assert st.ok and st.events_total == 1 and st.last_commit_ts == START
            assert h.statuses[0].ok

    run(main())


def test_state_history_continues_across_a_restart(tmp_path: Path, run: Run) -> None:
    def result(end: float) -> AnalysisComplete:
        return AnalysisComplete(end - 30, end, FocusState.FLOW, 1.0, FocusState.FLOW, 0.0)

    async def main() -> list[tuple[Any, ...]]:
        async with Harness(tmp_path, cfg()) as h:
            h.bus.publish(result(T0 + 10), source=ModuleId.ANALYSIS)
            h.bus.publish(result(T0 + 20), source=ModuleId.ANALYSIS)
            await settle(h.bus)
        async with Harness(tmp_path, cfg(), start=T0 + 25) as h2:
            h2.bus.publish(result(T0 + 30), source=ModuleId.ANALYSIS)
            await settle(h2.bus)
            return await h2.storage._require_writer().call(
                lambda db: db.conn.execute(
                    "SELECT start_ts, end_ts, windows FROM states"
                ).fetchall()
            )

    assert run(main()) == [(T0, T0 + 30, 3)]


def test_the_module_can_be_restarted_in_place(tmp_path: Path, run: Run) -> None:
    """The orchestrator restarts an unhealthy module with stop() + start() on the same object."""

    async def main() -> None:
        async with Harness(tmp_path, cfg()) as h:
            await h.storage.commit([key(1, T0 + 1)])
            await h.storage.stop()
            assert not h.storage.is_open
            await h.storage.start(h.bus)
            assert h.storage.is_open and h.storage.status_message().ok
            assert await h.storage.commit([key(1, T0 + 1), key(2, T0 + 2)]) == 1
            await h.step(9.5)
            assert [e.seq for e in h.batches[-1].events] == [1, 2]

    run(main())
