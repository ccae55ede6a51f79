"""Gamification on a real bus: the shell publishes the core's decisions, wakes at quiet-hour
edges without polling, and keeps progress in the store (a dict, and the real Storage/SQLite)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bus import Bus, Envelope, ModuleId, ModuleStatus, Priority
from bus.messages import (
    AnalysisComplete,
    CompanionMode,
    FocusState,
    InterventionRequest,
    InterventionResponse,
    ModuleReady,
    RewardEvent,
    UserInput,
)
from modules.gamification import Gamification, GamificationConfig, MemoryStore
from modules.storage import Storage, StorageConfig
from tests.slowness import allow

Run = Callable[[Coroutine[Any, Any, Any]], Any]
BERLIN = ZoneInfo("Europe/Berlin")
NOON = dt.datetime(2026, 11, 18, 12, 0, tzinfo=BERLIN).timestamp()
CFG = GamificationConfig(timezone="Europe/Berlin")
D, F = FocusState.DISTRACTED, FocusState.FLOW


class SignallingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.written = asyncio.Event()

    async def put_state(self, key: str, value: Any) -> None:
        await super().put_state(key, value)
        self.written.set()


class Watch:
    def __init__(self, bus: Bus) -> None:
        self.got: list[Envelope] = []
        self.arrived = asyncio.Event()
        bus.subscribe(self._take, types=[InterventionRequest, RewardEvent, CompanionMode])

    def _take(self, env: Envelope) -> None:
        self.got.append(env)
        self.arrived.set()

    def payloads(self, tp: type) -> list[Any]:
        return [e.payload for e in self.got if isinstance(e.payload, tp)]

    async def until(self, tp: type, n: int = 1) -> list[Any]:
        while len(self.payloads(tp)) < n:
            self.arrived.clear()
            await self.arrived.wait()
        return self.payloads(tp)


def window(now: float, state: FocusState, tis: float, conf: float = 0.9) -> AnalysisComplete:
    return AnalysisComplete(now - 30, now, state, conf, state, tis, (), "laptop")


def test_requests_responses_and_progress_through_the_store(run: Run) -> None:
    async def main() -> None:
        now = [NOON]
        store = SignallingStore()
        bus = Bus()
        watch = Watch(bus)
        g = Gamification(CFG, store=store, clock=lambda: now[0])
        await g.start(bus)
        assert g.status is ModuleStatus.HEALTHY
        (mode,) = await watch.until(CompanionMode)
        assert mode == CompanionMode(False, 0.0, "start")
        for i in range(1, 62):
            now[0] += 10
            bus.publish(window(now[0], D, 9 * 60 + i * 10), source=ModuleId.ANALYSIS)
        (req,) = await watch.until(InterventionRequest)
        assert req.kind == "nudge"
        assert [e.priority for e in watch.got if e.payload is req] == [Priority.HIGH]
        bus.publish(InterventionResponse(req.intervention_id, "delivered"), source="CuteFigurine")
        bus.publish(
            InterventionResponse(req.intervention_id, "dismissed", 1.2), source="CuteFigurine"
        )
        await bus.join()
        assert g.core is not None and g.core.progress.cooldown_s["nudge"] == 45 * 60
        # saved at once, not only at stop (a power cut must not lose it)
        while store.data.get("gamification", {}).get("cooldown_s", {}).get("nudge") != 45 * 60:
            store.written.clear()
            await asyncio.wait_for(store.written.wait(), allow(5.0))
        # a long press from either origin snoozes, and says so
        bus.publish(UserInput("long", "mcu", now[0]), source="CuteFigurine")
        modes = await watch.until(CompanionMode, 2)
        assert modes[-1].snoozed_until == now[0] + 30 * 60
        await g.stop()
        saved = store.data["gamification"]
        assert saved["cooldown_s"]["nudge"] == 45 * 60
        assert saved["snoozed_until"] == now[0] + 30 * 60
        # a new process: the same progress
        g2 = Gamification(CFG, store=store, clock=lambda: now[0])
        await g2.start(bus)
        assert g2.core is not None
        assert g2.core.snapshot() == saved
        assert "snoozed" in g2.health()[1]
        await g2.stop()

    run(main())


def test_the_shell_wakes_at_the_start_of_quiet_hours(run: Run) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        ten_pm = dt.datetime(2026, 11, 18, 22, 0, tzinfo=BERLIN).timestamp()

        def clock() -> float:  # real time passing, starting a quarter second before 22:00
            return ten_pm - 0.25 + (loop.time() - t0)

        bus = Bus()
        watch = Watch(bus)
        g = Gamification(CFG, clock=clock)
        await g.start(bus)
        modes = await watch.until(CompanionMode, 2)
        assert modes[0].quiet is False and modes[1] == CompanionMode(True, 0.0, "quiet hours")
        assert clock() >= ten_pm
        await g.stop()

    run(main())


def test_progress_survives_a_restart_on_the_real_storage(run: Run, tmp_path: Path) -> None:
    async def main() -> None:
        now = [NOON]
        for attempt in range(2):
            async with Storage(StorageConfig(), tmp_path) as storage:
                bus = Bus()
                watch = Watch(bus)
                g = Gamification(CFG, store=storage, clock=lambda: now[0])
                await g.start(bus)
                for i in range(1, 32 * 6):
                    now[0] += 10
                    bus.publish(window(now[0], F, i * 10.0, 0.95), source=ModuleId.ANALYSIS)
                await bus.join()
                streaks = [r for r in watch.payloads(RewardEvent) if r.kind == "streak"]
                # the day is counted once, by the first run only
                assert len(streaks) == (1 if attempt == 0 else 0)
                await g.stop()
            now[0] += 3600
        async with Storage(StorageConfig(), tmp_path) as storage:
            saved = await storage.get_state("gamification")
        assert saved["streak"] == 1 and saved["coins"] > 0
        assert saved["streak_date"] == "2026-11-18"

    run(main())


def test_an_unknown_time_zone_is_a_start_fault_that_names_it(run: Run) -> None:
    async def main() -> None:
        g = Gamification(GamificationConfig(timezone="Mars/Olympus"))
        await g.start(Bus())
        assert g.status is ModuleStatus.UNHEALTHY
        assert "unknown time zone 'Mars/Olympus'" in g.start_fault

    run(main())


def test_focus_seconds_alone_are_saved_at_most_once_a_minute(run: Run) -> None:
    async def main() -> None:
        now = [NOON]
        store = MemoryStore()
        bus = Bus()
        g = Gamification(CFG, store=store, clock=lambda: now[0])
        await g.start(bus)
        await bus.join()
        before = store.writes
        for i in range(1, 12 * 6 + 1):  # 12 min of flow: no coins yet, only focus seconds
            now[0] += 10
            bus.publish(window(now[0], F, i * 10.0, 0.95), source=ModuleId.ANALYSIS)
            await bus.join()
            await asyncio.sleep(0)
        assert 10 <= store.writes - before <= 13
        await g.stop()
        assert g.core is not None
        assert store.data["gamification"]["days"]["2026-11-18"]["focus_s"] == 12 * 60 - 10

    run(main())


def test_the_timer_sleeps_on_the_injected_clock(run: Run) -> None:
    # the simulator's compressed clock: the shell's waits are in that clock's seconds
    async def main() -> None:
        now = [dt.datetime(2026, 11, 18, 21, 0, tzinfo=BERLIN).timestamp()]
        slept: list[float] = []
        forever = asyncio.Event()

        async def sleep(seconds: float) -> None:
            slept.append(seconds)
            if len(slept) > 1:
                await forever.wait()
            now[0] += seconds

        bus = Bus()
        watch = Watch(bus)
        g = Gamification(CFG, clock=lambda: now[0], sleep=sleep)
        await g.start(bus)
        modes = await watch.until(CompanionMode, 2)
        assert modes[1] == CompanionMode(True, 0.0, "quiet hours")
        assert 3600.0 <= slept[0] <= 3600.1  # 21:00 -> 22:00 in one wait
        await g.stop()

    run(main())


def test_a_module_that_starts_later_is_told_the_mode_in_force(run: Run) -> None:
    """The figurine starts after Gamification (dependency order) and subscribes late: it would
    miss quiet hours until the next change; its ModuleReady makes Gamification say the mode."""

    async def main() -> None:
        night = dt.datetime(2026, 11, 18, 23, 30, tzinfo=BERLIN).timestamp()
        bus = Bus()
        g = Gamification(CFG, clock=lambda: night)
        await g.start(bus)
        await bus.join()
        late = Watch(bus)  # subscribes after Gamification's first CompanionMode
        bus.publish(ModuleReady(ModuleId.FIGURINE, "ready"), source=ModuleId.FIGURINE)
        (mode,) = await asyncio.wait_for(late.until(CompanionMode), allow(5.0))
        assert mode.quiet is True
        await g.stop()
        await bus.aclose()

    run(main())
