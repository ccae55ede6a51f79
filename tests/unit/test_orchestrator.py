"""The Orchestrator under a fake clock: health rounds, stale -> Unhealthy -> restart with
jittered exponential backoff, crashes, hung handlers, the hourly budget (Degraded, in words),
the watchdog rule, ordered start and stop (docs/STATUS.md §1-3)."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from bus import Bus, ModuleRegistry, ModuleStatus, SystemHealth
from bus.messages import ConfigUpdate, FocusState, LinkStatus, RewardEvent, StateChange
from modules.base import Module
from modules.event_bus import EventBusModule
from modules.orchestrator import ModuleStartFault, Orchestrator, OrchestratorConfig

Run = Callable[[Coroutine[Any, Any, Any]], Any]
S = ModuleStatus


class FakeTime:
    """A monotonic clock and a sleep that only moves when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._seq), fut))
        await fut

    async def advance(self, seconds: float) -> None:
        target = self.now + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            due, _, fut = heapq.heappop(self._sleepers)
            self.now = max(self.now, due)
            if not fut.done():
                fut.set_result(None)
            await settle()
        self.now = target
        await settle()


async def settle(turns: int = 30) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)


class Worker(Module):
    """A test double through the public hooks: ``spawn`` for tasks, ``health`` for replies."""

    def __init__(self, name: str, depends_on: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.name = name
        self.depends_on = depends_on
        self.log: list[str] = []
        self.fail_starts = 0
        self.health_raises = False
        self.handled = 0

    async def on_start(self) -> None:
        self.log.append("start")
        if self.fail_starts:
            self.fail_starts -= 1
            raise RuntimeError("cannot start yet")
        self.subscribe(self._on_config, types=ConfigUpdate)

    def _on_config(self, env: Any) -> None:
        self.handled += 1

    async def on_stop(self) -> None:
        self.log.append("stop")

    def health(self) -> tuple[ModuleStatus, str]:
        if self.health_raises:
            raise RuntimeError("health check stuck")
        return super().health()

    def crash_now(self) -> None:
        async def boom() -> None:
            raise RuntimeError("boom")

        self.spawn(boom(), "work")


class Rig:
    def __init__(self, time: FakeTime, bus: Bus, orch: Orchestrator, notes: list[str]) -> None:
        self.time = time
        self.bus = bus
        self.orch = orch
        self.notes = notes
        self.transitions: dict[str, list[ModuleStatus]] = {}
        self.events: list[tuple[str, ModuleStatus]] = []
        bus.registry.on_change(self._on_change)

    def _on_change(self, name: str, status: ModuleStatus, detail: str) -> None:
        self.transitions.setdefault(name, []).append(status)
        self.events.append((name, status))

    def status(self, name: str) -> ModuleStatus:
        return self.bus.registry.module(name).effective

    def detail(self, name: str) -> str:
        return self.bus.registry.module(name).detail


async def rig(*workers: Module, watchdog_s: float | None = None, **cfg: Any) -> Rig:
    time = FakeTime()
    bus = Bus(ModuleRegistry(clock=time.clock))
    notes: list[str] = []
    settings = dict(health_interval_s=5.0, control_socket=False, stop_timeout_s=1.0) | cfg
    orch = Orchestrator(
        OrchestratorConfig(**settings),
        notify=notes.append,
        watchdog_s=watchdog_s,
        clock=time.clock,
        sleep=time.sleep,
        random=lambda: 0.0,
    )
    r = Rig(time, bus, orch, notes)
    orch.manage([EventBusModule(), orch, *workers])
    await orch.start_all(bus)
    await settle()
    return r


def test_starts_in_dependency_order_ready_once_all_started_and_stops_in_reverse(
    run: Run,
) -> None:
    async def main() -> None:
        a, b, c = Worker("A", ("B",)), Worker("B"), Worker("C", ("A",))
        r = await rig(c, a, b)
        started = [n for n, s in r.events if s is S.HEALTHY]
        assert started == ["EventBus", "Orchestrator", "B", "A", "C"]
        assert r.notes[0].startswith("READY=1\nSTATUS=healthy")
        assert sum(n.startswith("READY=1") for n in r.notes) == 1
        r.events.clear()
        await r.orch.stop_all()
        assert r.notes[-1] == "STOPPING=1"
        stopped = [n for n, s in r.events if s is S.STOPPED]
        assert stopped == ["C", "A", "B", "Orchestrator", "EventBus"]

    run(main())


def test_start_fault_stops_what_started_in_reverse_and_names_the_module(run: Run) -> None:
    class Broken(Worker):
        async def on_start(self) -> None:
            raise OSError(98, "address already in use")

    async def main() -> None:
        good, bad, later = Worker("Good"), Broken("Bad", ("Good",)), Worker("Later", ("Bad",))
        bus = Bus()
        notes: list[str] = []
        orch = Orchestrator(OrchestratorConfig(control_socket=False), notify=notes.append)
        orch.manage([EventBusModule(), orch, good, bad, later])
        with pytest.raises(ModuleStartFault) as info:
            await orch.start_all(bus)
        assert info.value.module is bad and "address already in use" in info.value.detail
        assert good.log == ["start", "stop"] and later.log == []
        assert not any(n.startswith("READY=1") for n in notes)

    run(main())


def test_crash_in_a_task_restarts_after_backoff_and_the_others_keep_working(run: Run) -> None:
    async def main() -> None:
        w, other = Worker("W"), Worker("Other")
        r = await rig(w, other, backoff_initial_s=2.0)
        w.crash_now()
        await settle()
        # Unhealthy (crashed) -> stopped, waiting the first backoff (2 s, no jitter drawn)
        assert S.UNHEALTHY in r.transitions["W"]
        assert r.status("W") is S.STOPPED
        assert "restart 1 of at most 5 an hour in 2.0 s after: crashed in W.work" in r.detail("W")
        assert "RuntimeError: boom" in r.detail("W")
        await r.time.advance(1.9)
        assert w.log == ["start", "stop"]
        r.bus.publish(ConfigUpdate("x"), source="test")
        await settle()
        assert other.handled == 1  # the other module kept working meanwhile
        await r.time.advance(0.2)
        assert w.log == ["start", "stop", "start"]
        assert r.status("W") is S.HEALTHY
        seen = [s for s, _ in itertools.groupby(r.transitions["W"])]
        assert seen[seen.index(S.UNHEALTHY) :] == [
            S.UNHEALTHY,
            S.SHUTTING_DOWN,
            S.STOPPED,
            S.STARTING,
            S.HEALTHY,
        ]
        assert r.orch.books["W"].total == 1
        # it answers health checks again: several rounds pass without another restart
        await r.time.advance(30.0)
        assert w.log.count("start") == 2 and r.status("W") is S.HEALTHY

    run(main())


def test_missed_replies_make_it_stale_then_restarted(run: Run) -> None:
    async def main() -> None:
        w = Worker("W")
        r = await rig(w, missed_replies=3)
        w.health_raises = True  # no HealthReply from now on
        # the first check went out before W had started; the next three go unanswered
        await r.time.advance(5.0)  # check 2 sent
        await r.time.advance(5.0)  # check 2 missed (1)
        await r.time.advance(5.0)  # check 3 missed (2)
        assert w.log == ["start"]
        await r.time.advance(5.0)  # check 4 missed (3) -> stale -> restart
        assert w.log == ["start", "stop"]
        assert "stale: missed 3 health checks in a row (every 5 s)" in r.detail("W")
        w.health_raises = False
        await r.time.advance(1.0)
        assert w.log == ["start", "stop", "start"] and r.status("W") is S.HEALTHY

    run(main())


def test_unhealthy_report_is_restarted_too(run: Run) -> None:
    async def main() -> None:
        w = Worker("W")
        r = await rig(w)
        w.set_status(S.UNHEALTHY, "lost the device")
        await r.time.advance(5.0)
        assert "after: lost the device" in r.detail("W")

    run(main())


def test_backoff_grows_and_a_failed_start_counts_as_the_next_fault(run: Run) -> None:
    async def main() -> None:
        w = Worker("W")
        r = await rig(w, backoff_initial_s=1.0, backoff_max_s=3.0)
        w.fail_starts = 2
        w.crash_now()
        await settle()
        assert "restart 1 of at most 5 an hour in 1.0 s" in r.detail("W")
        await r.time.advance(1.0)  # start fails -> fault 2 -> 2 s
        assert "restart 2 of at most 5 an hour in 2.0 s after: start failed: " in r.detail("W")
        await r.time.advance(2.0)  # fails again -> fault 3 -> 4 s capped at 3 s
        assert "restart 3 of at most 5 an hour in 3.0 s" in r.detail("W")
        await r.time.advance(2.9)
        assert r.status("W") is S.STOPPED
        await r.time.advance(0.1)
        assert r.status("W") is S.HEALTHY
        assert w.log.count("start") == 4

    run(main())


def test_jitter_shortens_the_wait(run: Run) -> None:
    async def main() -> None:
        w = Worker("W")
        r = await rig(w, backoff_initial_s=4.0, backoff_jitter=0.5)
        r.orch._random = lambda: 0.5  # the injected random source: 4 s * (1 - 0.5 * 0.5)
        w.crash_now()
        await settle()
        assert "in 3.0 s after" in r.detail("W")

    run(main())


def test_too_many_restarts_in_an_hour_stays_degraded_and_says_so(run: Run) -> None:
    async def main() -> None:
        w = Worker("W")
        r = await rig(w, max_restarts_per_hour=2, backoff_initial_s=1.0)
        for _ in range(2):
            w.crash_now()
            await settle()
            await r.time.advance(10.0)
            assert r.status("W") is S.HEALTHY
        w.crash_now()
        await settle()
        assert r.status("W") is S.DEGRADED
        words = r.detail("W")
        assert words.startswith("gave up after 2 restarts in the last hour; last fault: crashed")
        assert "restart the service" in words
        assert r.bus.registry.health() is SystemHealth.DEGRADED
        await r.time.advance(600.0)  # stopped, yet never stale, never restarted
        assert r.status("W") is S.DEGRADED and w.log.count("start") == 3
        assert r.bus.registry.health() is SystemHealth.DEGRADED
        assert "W given up" in r.orch.words()
        await r.orch.stop_all()  # it is not stopped a second time
        assert w.log.count("stop") == 3

        # a module waiting for its restart is not stopped again either, and never restarts
        v = Worker("V")
        r = await rig(v, backoff_initial_s=5.0)
        v.crash_now()
        await settle()
        await r.orch.stop_all()
        await r.time.advance(10.0)
        assert v.log == ["start", "stop"]

    run(main())


def test_a_hung_handler_restarts_its_module(run: Run) -> None:
    async def main() -> None:
        w = Worker("W")
        r = await rig(w)
        gate = asyncio.Event()

        async def hang(env: Any) -> None:
            await gate.wait()

        w.subscribe(hang, types=ConfigUpdate, timeout=0.05)
        r.bus.publish(ConfigUpdate("x"), source="test")
        for _ in range(400):  # the bus cancels the call after its (real) 50 ms timeout
            await asyncio.sleep(0.01)
            if w.log == ["start", "stop"]:
                break
        assert w.log == ["start", "stop"]
        assert "hung" in r.detail("W")

    run(main())


def test_watchdog_pings_at_half_the_interval_only_while_not_critical(run: Run) -> None:
    async def main() -> None:
        w = Worker("W")
        r = await rig(w, watchdog_s=2.0, health_interval_s=100.0)

        def pings() -> int:
            return r.notes.count("WATCHDOG=1")

        first = pings()
        await r.time.advance(1.0)
        assert pings() == first + 1
        await r.time.advance(3.0)
        assert pings() == first + 4
        w.set_status(S.UNHEALTHY, "in trouble")  # Critical: no pings
        before = pings()
        await r.time.advance(4.0)
        assert pings() == before
        assert any(n.startswith("STATUS=critical") for n in r.notes)
        w.set_status(S.HEALTHY, "fine again")
        await r.time.advance(1.0)
        assert pings() == before + 1

    run(main())


def test_status_words_name_links_and_focus(run: Run) -> None:
    async def main() -> None:
        r = await rig(Worker("W"))
        r.bus.publish(LinkStatus("host", True, "laptop"), source="DataCapture")
        r.bus.publish(LinkStatus("mcu", True, "/dev/ttyACM0"), source="CuteFigurine")
        r.bus.publish(
            StateChange(FocusState.NEUTRAL, FocusState.FLOW, 0.9, 0.0, 60.0, "laptop"),
            source="AnalysisEngine",
        )
        await settle()
        await r.time.advance(23 * 60 + 5)
        assert r.orch.words() == "healthy; host laptop up; MCU up; FLOW 23 min"
        assert "STATUS=healthy; host laptop up; MCU up; FLOW 23 min" in r.notes
        report = r.orch.status_report()
        assert report["links"]["host"]["peer"] == "laptop"
        assert report["focus"]["state"] == "FLOW"
        assert report["rewards"] == {"coins_today": None, "total_coins": None, "streak": None}
        r.bus.publish(RewardEvent("focus", 5, 40, "25 min of flow"), source="Gamification")
        r.bus.publish(RewardEvent("streak", 15, 55, "3 day streak"), source="Gamification")
        await settle()
        report = r.orch.status_report()
        assert report["rewards"] == {"coins_today": 20, "total_coins": 55, "streak": 3}
        assert {m["name"] for m in report["modules"]} >= {"EventBus", "Orchestrator", "W"}

    run(main())


def test_stop_abandons_a_module_that_overruns_and_still_stops_the_rest(run: Run) -> None:
    class Stuck(Worker):
        async def on_stop(self) -> None:
            await asyncio.Event().wait()

    async def main() -> None:
        first, stuck = Worker("First"), Stuck("Stuck", ("First",))
        r = await rig(first, stuck, stop_timeout_s=0.2)
        await r.orch.stop_all()
        assert first.log == ["start", "stop"]
        assert r.bus.registry.module("First").reported is S.STOPPED

    run(main())


def test_the_orchestrator_restarts_itself_when_its_own_task_crashes(run: Run) -> None:
    async def main() -> None:
        r = await rig(Worker("W"))

        async def boom() -> None:
            raise RuntimeError("orchestrator bug")

        r.orch.spawn(boom(), "oops")
        await settle()
        assert "crashed in Orchestrator.oops" in r.detail("Orchestrator")
        await r.time.advance(1.0)
        assert r.status("Orchestrator") is S.HEALTHY
        assert r.orch.books["Orchestrator"].total == 1
        # its health rounds run again
        sent = r.orch.request_id
        await r.time.advance(5.0)
        assert r.orch.request_id > sent

    run(main())
