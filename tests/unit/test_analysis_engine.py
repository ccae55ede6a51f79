"""AnalysisEngine on a real bus (each test on uvloop and on the stock loop)."""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from typing import Any

from bus import Bus, Envelope, ModuleId, ModuleStatus, Priority
from bus.messages import AnalysisComplete, EventBatch, FocusState, StateChange
from hw_sim.scenarios import Segment, generate, windows
from modules.analysis import AnalysisConfig, AnalysisEngine
from modules.analysis.engine import MAX_HOSTS

Run = Callable[[Coroutine[Any, Any, Any]], Any]
START = 1_764_230_400.0


def batches(host: str = "laptop") -> tuple[list[EventBatch], float]:
    sc = generate(
        "t",
        (Segment(FocusState.NEUTRAL, 2), Segment(FocusState.DISTRACTED, 2)),
        seed=1,
        start=START,
    )
    evs = sc.raw_events(host_id=host)
    return list(windows(evs, sc.start, sc.end, host_id=host)), sc.changes()[0][0]


async def started(
    config: AnalysisConfig | None = None,
) -> tuple[Bus, AnalysisEngine, list[Envelope]]:
    bus = Bus()
    engine = AnalysisEngine(config)
    await engine.start(bus)
    got: list[Envelope] = []
    bus.subscribe(got.append, types=[AnalysisComplete, StateChange], maxsize=10_000)
    return bus, engine, got


def test_publishes_one_result_per_window_and_the_state_change(run: Run) -> None:
    async def main() -> None:
        bus, engine, got = await started()
        assert engine.status is ModuleStatus.HEALTHY
        wins, change_at = batches()
        for b in wins:
            bus.publish(b, source=ModuleId.STORAGE)
        await bus.join()
        results = [e.payload for e in got if isinstance(e.payload, AnalysisComplete)]
        assert [r.window_end for r in results] == [b.window_end for b in wins]
        assert all(e.source == ModuleId.ANALYSIS for e in got)
        assert all(0.0 <= r.confidence <= 1.0 for r in results)
        assert dict(results[0].features)["keys_per_min"] >= 0.0
        changes = [e for e in got if isinstance(e.payload, StateChange)]
        assert len(changes) == 1
        change = changes[0].payload
        assert isinstance(change, StateChange)
        assert (change.previous, change.current) == (FocusState.NEUTRAL, FocusState.DISTRACTED)
        assert 0.0 < change.at - change_at <= 60.0
        assert changes[0].priority is Priority.HIGH
        # time in state runs on window_end and restarts at the change
        before = [r for r in results if r.window_end < change.at]
        assert before[-1].time_in_state_s == before[-1].window_end - results[0].window_end
        assert change.previous_duration_s == change.at - results[0].window_end
        after = [r for r in results if r.window_end >= change.at]
        assert after[0].time_in_state_s == 0.0 and after[0].state is FocusState.DISTRACTED
        assert after[-1].time_in_state_s == after[-1].window_end - change.at
        status, detail = engine.health()
        assert status is ModuleStatus.HEALTHY and "DISTRACTED" in detail
        await engine.stop()
        assert engine.status is ModuleStatus.STOPPED

    run(main())


def test_a_broken_window_degrades_and_a_good_one_recovers(run: Run) -> None:
    async def main() -> None:
        bus, engine, got = await started()
        bus.publish(EventBatch(math.nan, START, ()), source=ModuleId.STORAGE)
        await bus.join()
        assert engine.status is ModuleStatus.DEGRADED
        assert "window bounds must be finite" in engine.detail and engine.windows_refused == 1
        assert not got
        bus.publish(EventBatch(START - 30, START, ()), source=ModuleId.STORAGE)
        await bus.join()
        assert engine.status is ModuleStatus.HEALTHY
        [env] = got
        assert isinstance(env.payload, AnalysisComplete) and env.payload.state is FocusState.IDLE
        await engine.stop()

    run(main())


def test_duplicate_windows_are_ignored_and_hosts_are_tracked_apart(run: Run) -> None:
    async def main() -> None:
        bus, engine, got = await started()
        wins_a, _ = batches("laptop")
        bus.publish(wins_a[0], source=ModuleId.STORAGE)
        bus.publish(wins_a[0], source=ModuleId.STORAGE)  # a re-sent window
        bus.publish(EventBatch(START - 30, START + 30, (), "desktop"), source=ModuleId.STORAGE)
        await bus.join()
        assert len(got) == 2 and engine.windows_analyzed == 2
        assert set(engine.analyzers) == {"laptop", "desktop"}
        await engine.stop()

    run(main())


def test_hosts_are_bounded(run: Run) -> None:
    async def main() -> None:
        bus, engine, _ = await started()
        for i in range(MAX_HOSTS + 5):
            bus.publish(EventBatch(START - 30, START, (), f"h{i}"), source=ModuleId.STORAGE)
        bus.publish(EventBatch(START - 20, START + 10, (), "h7"), source=ModuleId.STORAGE)
        await bus.join()
        assert len(engine.analyzers) == MAX_HOSTS
        assert "h0" not in engine.analyzers and list(engine.analyzers)[-1] == "h7"
        await engine.stop()

    run(main())


def test_config_reaches_the_tracker(run: Run) -> None:
    async def main() -> None:
        bus, engine, got = await started(AnalysisConfig(change_evidence=50, quick_evidence=50))
        wins, _ = batches()
        for b in wins:
            bus.publish(b, source=ModuleId.STORAGE)
        await bus.join()
        assert not [e for e in got if isinstance(e.payload, StateChange)]
        await engine.stop()

    run(main())


def test_results_and_state_changes_name_their_host(run: Run) -> None:
    """Two hosts in different states: every AnalysisComplete and StateChange says whose it is,
    so downstream can tell them apart."""

    async def main() -> None:
        bus, engine, got = await started()
        wins_a, _ = batches("laptop")  # NEUTRAL, then DISTRACTED
        for b in wins_a:
            bus.publish(b, source=ModuleId.STORAGE)
            # the desktop is idle all along: empty windows on the same grid
            idle = EventBatch(b.window_start, b.window_end, (), "desktop")
            bus.publish(idle, source=ModuleId.STORAGE)
        await bus.join()
        results = [e.payload for e in got if isinstance(e.payload, AnalysisComplete)]
        assert {r.host_id for r in results} == {"laptop", "desktop"}
        assert all(r.state is FocusState.IDLE for r in results if r.host_id == "desktop")
        assert {r.state for r in results if r.host_id == "laptop"} == {
            FocusState.NEUTRAL,
            FocusState.DISTRACTED,
        }
        changes = [e.payload for e in got if isinstance(e.payload, StateChange)]
        assert [(c.host_id, c.current) for c in changes] == [("laptop", FocusState.DISTRACTED)]
        await engine.stop()

    run(main())


def test_host_id_is_optional_for_existing_constructors() -> None:
    a = AnalysisComplete(0.0, 30.0, FocusState.FLOW, 0.9, FocusState.FLOW, 0.0)
    s = StateChange(FocusState.FLOW, FocusState.IDLE, 0.7, 30.0, 10.0)
    assert a.host_id == "" and s.host_id == ""
