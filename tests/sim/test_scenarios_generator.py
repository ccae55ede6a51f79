"""The scenario generator and the simulation clock."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from bus.messages import FocusState
from hw_sim.clock import SimClock
from hw_sim.scenarios import (
    SCENARIOS,
    Perturb,
    Segment,
    generate,
    scenario,
    windows,
)
from modules.ingest.validate import validate_event

Run = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.mark.parametrize("name", SCENARIOS)
def test_events_are_valid_wire_events_in_order(name: str) -> None:
    sc = scenario(name, seed=3)
    assert sc.events, name
    for i, ev in enumerate(sc.events, start=1):
        assert ev["seq"] == i
        validate_event(dict(ev), "h", "s")  # the real validator: raises on anything wrong
    stamps = [ev["ts"] for ev in sc.events]
    assert stamps == sorted(stamps)
    assert sc.start <= stamps[0] and stamps[-1] <= sc.end
    kinds = {ev["kind"] for ev in sc.events}
    assert {"key", "mouse", "focus"} <= kinds


def test_truth_covers_the_scenario_without_gaps() -> None:
    sc = scenario("workday", seed=1)
    assert sc.truth[0].start == sc.start and sc.truth[-1].end == sc.end
    for a, b in zip(sc.truth, sc.truth[1:], strict=False):
        assert a.end == b.start and a.state is not b.state
    assert {s.state for s in sc.truth} == set(FocusState)
    assert sc.state_at(sc.start + 1) is FocusState.NEUTRAL
    changes = sc.changes()
    assert len(changes) == len(sc.truth) - 1
    assert changes[0][1:] == (FocusState.NEUTRAL, FocusState.TRANSITIONING)


def test_seeded_and_reproducible() -> None:
    assert scenario("flow", seed=5).events == scenario("flow", seed=5).events
    assert scenario("flow", seed=5).events != scenario("flow", seed=6).events


def test_perturbation_changes_typing_speed() -> None:
    def keys_per_min(sc_events: tuple[dict[str, Any], ...], minutes: float) -> float:
        return sum(1 for e in sc_events if e["kind"] == "key") / minutes

    script = (Segment(FocusState.FLOW, 10),)
    base = generate("f", script, seed=2)
    slow = generate("f", script, seed=2, perturb=Perturb(iki=1.5))
    assert keys_per_min(slow.events, 10) < 0.9 * keys_per_min(base.events, 10)


def test_profiles_have_the_reference_signatures() -> None:
    flow = generate("f", (Segment(FocusState.FLOW, 10),), seed=4)
    keys = [e["ts"] for e in flow.events if e["kind"] == "key"]
    gaps = sorted(b - a for a, b in itertools.pairwise(keys) if b - a < 1.0)
    assert 0.12 < gaps[len(gaps) // 2] < 0.18  # median IKI about 150 ms
    distracted = generate("d", (Segment(FocusState.DISTRACTED, 10),), seed=4)
    switches = sum(1 for e in distracted.events if e["kind"] == "focus")
    assert switches / 10 > 6  # app hops every few seconds
    idle = generate("i", (Segment(FocusState.NEUTRAL, 1), Segment(FocusState.IDLE, 10)), seed=4)
    late = [e for e in idle.events if e["ts"] > idle.start + 120]
    assert len(late) < 15 and late[-1]["kind"] == "idle" and late[-1]["duration_s"] >= 30


def test_bad_scripts_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="unknown scenario 'nope'; choose one of"):
        scenario("nope")
    with pytest.raises(ValueError, match="at least one segment"):
        generate("x", ())
    with pytest.raises(ValueError, match="minutes > 0"):
        generate("x", (Segment(FocusState.FLOW, 0),))


def test_windows_follow_storage_grid() -> None:
    sc = scenario("idle", seed=1, start=1_764_230_403.0)
    batches = list(windows(sc.raw_events(), sc.start, sc.end))
    assert all(b.window_end % 10 == 0 and b.window_end - b.window_start == 30 for b in batches)
    assert batches[0].window_start >= sc.start and batches[-1].window_end <= sc.end
    for b in batches:
        assert all(b.window_start <= e.ts < b.window_end for e in b.events)
    assert [b.window_end for b in batches] == sorted({b.window_end for b in batches})


# --- SimClock -------------------------------------------------------------------------------


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_clock_compresses_time() -> None:
    mono = FakeMonotonic()
    clock = SimClock(60.0, start=1000.0, monotonic=mono)
    assert clock.now() == 1000.0 and clock() == 1000.0
    mono.t += 2.0
    assert clock.now() == pytest.approx(1120.0)
    assert clock.real_delay(1180.0) == pytest.approx(1.0)
    assert clock.real_delay(0.0) == 0.0


@pytest.mark.parametrize("speed", [0, -1, math.nan, math.inf, True, "60"])
def test_clock_refuses_bad_speed(speed: object) -> None:
    with pytest.raises(ValueError, match="clock speed must be"):
        SimClock(speed)  # type: ignore[arg-type]


def test_clock_sleeps_in_simulated_time(run: Run) -> None:
    async def main() -> float:
        clock = SimClock(1000.0, start=5000.0)
        loop = asyncio.get_running_loop()
        t = loop.time()
        await clock.sleep(50.0)  # 50 simulated seconds = 50 ms
        assert clock.now() >= 5050.0
        return loop.time() - t

    assert 0.04 <= run(main()) < 2.0
