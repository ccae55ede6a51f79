"""Orchestrator: owns the modules' lifecycles, checks their health, restarts them, talks to
systemd and answers ``skelly status``.

Theory of operation (docs/STATUS.md):

- :meth:`Orchestrator.start_all` starts the managed modules in dependency order (the
  Orchestrator itself among them), raising :class:`ModuleStartFault` on a start-up fault after
  stopping what started; then ``READY=1``.  :meth:`Orchestrator.stop_all` says ``STOPPING=1``,
  cancels pending restarts and stops everything in reverse within ``stop_timeout_s``.
- Every ``health_interval_s`` a round (:meth:`Orchestrator.check_round`) first judges the
  previous one (missed replies, Unhealthy reports, hung handlers) and then publishes the next
  ``HealthCheck``.  Crashes (``Error(fatal=True)``) and hung handlers are acted on at once.
- A restart stops the module, waits a jittered exponential backoff and starts it again; more
  than ``max_restarts_per_hour`` faults in an hour and the module stays stopped, Degraded, with
  the reason in words.
- While ``watchdog_s`` is set, a loop task sends ``WATCHDOG=1`` every half of it unless the
  system health is Critical; it runs on the event loop, so a stalled loop sends nothing.

Time, sleeping and randomness are injected so the rules run under a fake clock in tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random as _random
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bus import Bus, Envelope, ModuleId, ModuleStatus, Priority, SystemHealth
from bus.messages import (
    Error,
    HealthCheck,
    HealthReply,
    LinkStatus,
    RewardEvent,
    StateChange,
)
from modules.base import Module
from modules.orchestrator.control import ControlServer, ControlSocketError
from modules.orchestrator.policy import RestartBook, backoff_delay, start_order

log = logging.getLogger("skelly.orchestrator")

Notify = Callable[[str], None]


@dataclass(frozen=True)
class OrchestratorConfig:
    health_interval_s: float = 5.0
    """How often every module is asked for its health."""
    missed_replies: int = 3
    """Health checks missed in a row that make a module stale (then it is restarted)."""
    backoff_initial_s: float = 1.0
    """Wait before the first restart of a module within an hour; doubles with each one."""
    backoff_max_s: float = 60.0
    """The longest wait before a restart."""
    backoff_jitter: float = 0.5
    """Up to this fraction of the wait is taken off at random."""
    max_restarts_per_hour: int = 5
    """More faults than this within an hour and the module stays stopped, Degraded."""
    stop_timeout_s: float = 5.0
    """Budget for stopping every module on shutdown (and for stopping one to restart it)."""
    control_socket: bool = True
    """Serve ``skelly status`` on ``<data_dir>/control.sock``."""

    def __post_init__(self) -> None:
        for name in ("health_interval_s", "backoff_initial_s", "stop_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be more than 0 s, got {getattr(self, name)}")
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError(
                f"backoff_max_s ({self.backoff_max_s}) must be at least backoff_initial_s "
                f"({self.backoff_initial_s})"
            )
        if not 0 <= self.backoff_jitter < 1:
            raise ValueError(
                f"backoff_jitter must be 0 or more and below 1, got {self.backoff_jitter}"
            )
        if self.missed_replies < 1:
            raise ValueError(f"missed_replies must be at least 1, got {self.missed_replies}")
        if self.max_restarts_per_hour < 0:
            raise ValueError(
                f"max_restarts_per_hour must be 0 or more, got {self.max_restarts_per_hour}"
            )


class ModuleStartFault(Exception):
    """A module was Unhealthy at the end of its start (docs/CLI.md §2)."""

    def __init__(self, module: Module, detail: str) -> None:
        super().__init__(f"{module.name}: {detail}")
        self.module = module
        self.detail = detail


class Orchestrator(Module):
    name = ModuleId.ORCHESTRATOR

    def __init__(
        self,
        config: OrchestratorConfig | None = None,
        *,
        control_socket: Path | None = None,
        notify: Notify | None = None,
        watchdog_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
        wall: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.config = config or OrchestratorConfig()
        self.control_socket = control_socket if self.config.control_socket else None
        self._notify = notify
        self.watchdog_s = watchdog_s
        self._clock = clock
        self._sleep = sleep
        self._random = random
        self._wall = wall
        self.started_at = clock()
        self.modules: list[Module] = []
        self._by_name: dict[str, Module] = {}
        self.books: dict[str, RestartBook] = {}
        self.last_fault: dict[str, str] = {}
        self.running: set[str] = set()
        self.given_up: set[str] = set()
        self.restarting: dict[str, asyncio.Task[None]] = {}
        self._bus_ref: Bus | None = None
        self.request_id = 0
        self._since_request: dict[str, int] = {}
        self._replied: dict[str, int] = {}
        self._missed: dict[str, int] = {}
        self._hang_base: dict[str, int] = {}
        self.ready = False
        self.stopping = False
        self.pings = 0
        self.loop_lag_s = 0.0
        self.loop_lag_max_s = 0.0
        self.words_sent = ""
        self._control: ControlServer | None = None
        self.links: dict[str, dict[str, tuple[bool, str, float]]] = {}
        self.focus: tuple[str, str, float, float] | None = None
        self.coins_today: int | None = None
        self.total_coins: int | None = None
        self.streak: int | None = None
        self._coins_day = ""

    # -- what it manages --------------------------------------------------------------------
    def manage(self, modules: Sequence[Module]) -> None:
        """Take charge of ``modules`` (this Orchestrator may be among them)."""
        ordered = start_order(list(modules))
        if self not in ordered:
            ordered.insert(0, self)
        self.modules = ordered
        self._by_name = {m.name: m for m in ordered}
        limit = self.config.max_restarts_per_hour
        self.books = {m.name: RestartBook(limit) for m in ordered}

    def module(self, name: str) -> Module:
        return self._by_name[name]

    def notify(self, message: str) -> None:
        if self._notify is not None:
            try:
                self._notify(message)
            except OSError as exc:  # systemd went away; the service keeps working
                log.warning("systemd notify failed: %s", exc)

    # -- start and stop ---------------------------------------------------------------------
    async def start_all(self, bus: Bus) -> None:
        """Start every managed module in dependency order; on a start-up fault stop what was
        started (reverse order) and raise :class:`ModuleStartFault`."""
        if not self.modules:
            self.manage([self])
        self._bus_ref = bus
        started: list[Module] = []
        try:
            for module in self.modules:
                started.append(module)
                await module.start(bus)
                if module.start_fault:
                    raise ModuleStartFault(module, module.start_fault)
                self._mark_running(module.name)
            try:  # last, so a second service trips over the database or ports first
                await self._open_control()
            except ControlSocketError as exc:
                raise ModuleStartFault(self, str(exc)) from None
        except BaseException:
            await self._stop_in_reverse(started)
            raise
        self.ready = True
        self.notify(f"READY=1\nSTATUS={self.words()}")
        self.words_sent = self.words()

    async def stop_all(self) -> None:
        """``STOPPING=1``, cancel pending restarts, stop everything in reverse order within
        ``stop_timeout_s`` (Storage flushes in its stop)."""
        self.stopping = True
        self.notify("STOPPING=1")
        pending = list(self.restarting.values())
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._stop_in_reverse(self.modules)

    async def _stop_in_reverse(self, modules: Sequence[Module]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.stop_timeout_s
        for module in reversed(modules):
            self.running.discard(module.name)
            if module.name in self.given_up or module.status is ModuleStatus.STOPPED:
                continue  # stopped already (given up, or waiting for a restart)
            budget = max(0.05, deadline - loop.time())
            try:
                async with asyncio.timeout(budget):
                    await module.stop()
            except TimeoutError:
                log.warning("%s did not stop within %.1f s; left behind", module.name, budget)

    def _mark_running(self, name: str) -> None:
        self.running.add(name)
        self._since_request[name] = self.request_id
        self._missed[name] = 0
        self._hang_base[name] = self._hangs(name)

    # -- the Orchestrator's own module life -------------------------------------------------
    async def on_start(self) -> None:
        if not self.modules:
            self.manage([self])
        self._bus_ref = self.bus
        self.subscribe(self._on_reply, types=HealthReply, maxsize=256)
        self.subscribe(self._on_error, types=Error, maxsize=256)
        self.subscribe(self._on_link, types=LinkStatus, maxsize=64)
        self.subscribe(self._on_state, types=StateChange, maxsize=64)
        self.subscribe(self._on_reward, types=RewardEvent, maxsize=64)
        if self.ready:  # restarted: serve again (the first start serves once all have started)
            await self._open_control()
        self.spawn(self._health_loop(), "health")
        if self.watchdog_s:
            self.spawn(self._watchdog_loop(), "watchdog")

    async def _open_control(self) -> None:
        if self.control_socket is not None and self._control is None:
            control = ControlServer(self.control_socket, self.status_report)
            await control.start()
            self._control = control

    async def on_stop(self) -> None:
        control, self._control = self._control, None
        if control is not None:
            await control.close()

    # -- health rounds ----------------------------------------------------------------------
    async def _health_loop(self) -> None:
        interval = self.config.health_interval_s
        while True:
            self.check_round()
            due = self._clock() + interval
            await self._sleep(interval)
            # how late the loop woke this task: a busy or stalled loop shows here first
            self.loop_lag_s = max(0.0, self._clock() - due)
            self.loop_lag_max_s = max(self.loop_lag_max_s, self.loop_lag_s)

    def check_round(self) -> None:
        """Judge the replies to the previous check, restart who needs it, send the next one."""
        bus = self.bus
        for name in sorted(self.running):
            if name in self.restarting or name in self.given_up:
                continue
            asked = self.request_id > self._since_request.get(name, self.request_id)
            if asked and self._replied.get(name, -1) < self.request_id:
                self._missed[name] = self._missed.get(name, 0) + 1
            else:
                self._missed[name] = 0
            reason = self._judge(name, bus)
            if reason:
                self.restart(name, reason)
        self.request_id += 1
        bus.publish(HealthCheck(self.request_id), source=self.name, priority=Priority.HIGH)
        self._update_words()

    def _judge(self, name: str, bus: Bus) -> str:
        limit = self.config.missed_replies
        if self._missed.get(name, 0) >= limit:
            return (
                f"stale: missed {limit} health checks in a row "
                f"(every {self.config.health_interval_s:g} s)"
            )
        if name in bus.registry.names():
            health = bus.registry.module(name)
            if health.effective is ModuleStatus.UNHEALTHY:
                return health.detail or "Unhealthy"
        hung = self._hangs(name) - self._hang_base.get(name, 0)
        if hung > 0:
            return f"{hung} handler call(s) hung past their timeout"
        return ""

    def _hangs(self, name: str) -> int:
        bus = self._bus_ref
        if bus is None:
            return 0
        return sum(s.hangs for s in bus.subscriptions if s.module == name)

    def _on_reply(self, env: Envelope) -> None:
        reply = env.payload
        assert isinstance(reply, HealthReply)
        self._replied[reply.module] = max(self._replied.get(reply.module, -1), reply.request_id)

    def _on_error(self, env: Envelope) -> None:
        error = env.payload
        assert isinstance(error, Error)
        name = error.module
        if name not in self.running or name in self.restarting:
            return
        if error.fatal:
            self.restart(name, f"crashed in {error.where}: {error.error}")
        elif env.source == ModuleId.EVENT_BUS and self._hangs(name) > self._hang_base.get(name, 0):
            self.restart(name, f"handler {error.where} hung: {error.error}")

    # -- restarts ---------------------------------------------------------------------------
    def restart(self, name: str, reason: str) -> None:
        """Restart module ``name`` (with backoff) because of ``reason``, unless one is already
        under way or it was given up."""
        if self.stopping or name in self.restarting or name in self.given_up:
            return
        if name not in self._by_name or self._bus_ref is None:
            return
        self.running.discard(name)
        task = asyncio.get_running_loop().create_task(
            self._restart(name, reason), name=f"orchestrator.restart.{name}"
        )
        self.restarting[name] = task

    async def _restart(self, name: str, reason: str) -> None:
        module = self._by_name[name]
        book = self.books[name]
        bus = self._bus_ref
        assert bus is not None
        cfg = self.config
        try:
            while True:
                n = book.note(self._clock())
                self.last_fault[name] = reason
                log.warning("%s: %s (fault %d in the last hour)", name, reason, n)
                if module.status is not ModuleStatus.UNHEALTHY:  # say why before it stops
                    module.set_status(ModuleStatus.UNHEALTHY, reason)
                await self._stop_one(module)
                if n > book.limit:
                    self._give_up(module, bus, reason)
                    return
                delay = backoff_delay(
                    n,
                    initial=cfg.backoff_initial_s,
                    cap=cfg.backoff_max_s,
                    jitter=cfg.backoff_jitter,
                    r=self._random(),
                )
                module.set_status(
                    ModuleStatus.STOPPED,
                    f"restart {n} of at most {book.limit} an hour in {delay:.1f} s after: {reason}",
                )
                self._update_words()
                await self._sleep(delay)
                try:
                    await module.start(bus)
                except Exception as exc:
                    reason = f"start failed: {type(exc).__name__}: {exc}"
                    continue
                if module.status is ModuleStatus.UNHEALTHY:
                    reason = f"start failed: {module.detail}"
                    continue
                self._mark_running(name)
                log.warning("%s restarted (%s)", name, module.detail)
                self._update_words()
                return
        finally:
            if self.restarting.get(name) is asyncio.current_task():
                del self.restarting[name]

    async def _stop_one(self, module: Module) -> None:
        try:
            async with asyncio.timeout(self.config.stop_timeout_s):
                await module.stop()
        except TimeoutError:
            log.warning("%s did not stop within %g s", module.name, self.config.stop_timeout_s)
        except Exception as exc:
            log.warning("%s failed while stopping: %r", module.name, exc)

    def _give_up(self, module: Module, bus: Bus, reason: str) -> None:
        limit = self.books[module.name].limit
        words = (
            f"gave up after {limit} restarts in the last hour; last fault: {reason}; restart "
            "the service (systemctl restart skelly) to try again"
        )
        self.given_up.add(module.name)
        bus.registry.register(module.name, stale_after=math.inf)
        module.set_status(ModuleStatus.DEGRADED, words)
        log.error("%s: %s", module.name, words)
        self._update_words()

    # -- systemd ----------------------------------------------------------------------------
    async def _watchdog_loop(self) -> None:
        assert self.watchdog_s
        period = self.watchdog_s / 2.0
        while True:
            self.ping()
            await self._sleep(period)

    def ping(self) -> bool:
        """One watchdog turn: ``WATCHDOG=1`` unless the health is Critical (returns whether
        it was sent); ``STATUS=`` too when the words changed."""
        self._update_words()
        if self.bus.registry.health() is SystemHealth.CRITICAL:
            return False
        self.notify("WATCHDOG=1")
        self.pings += 1
        return True

    def _update_words(self) -> None:
        if not self.ready or self.stopping or self._bus_ref is None:
            return
        words = self.words()
        if words != self.words_sent:
            self.words_sent = words
            self.notify(f"STATUS={words}")

    def words(self) -> str:
        """The state of the service in a few words: ``healthy; host laptop up; MCU up; FLOW
        23 min`` (plus any module that is not Healthy)."""
        bus = self._bus_ref
        if bus is None:
            return "starting"
        parts = [bus.registry.health().value.lower()]
        troubled = []
        for m in bus.registry.modules():
            if m.name in self.given_up:
                troubled.append(f"{m.name} given up")
            elif m.name in self.restarting:
                troubled.append(f"{m.name} restarting")
            elif m.effective is not ModuleStatus.HEALTHY:
                troubled.append(f"{m.name} {m.effective.value.lower()}")
        if troubled:
            parts[0] += " (" + ", ".join(troubled) + ")"
        hosts = self.links.get("host", {})
        up = sorted(peer or "?" for peer, (is_up, _d, _t) in hosts.items() if is_up)
        if up:
            parts.append("host " + ", ".join(up) + " up")
        else:
            parts.append("host down" if hosts else "no host yet")
        mcu = self.links.get("mcu")
        if mcu:
            parts.append("MCU up" if any(u for u, _d, _t in mcu.values()) else "MCU down")
        if self.focus is not None:
            state, _host, since, _conf = self.focus
            parts.append(f"{state} {int((self._clock() - since) // 60)} min")
        return "; ".join(parts)

    # -- what it watches ------------------------------------------------------------------------
    def _on_link(self, env: Envelope) -> None:
        link = env.payload
        assert isinstance(link, LinkStatus)
        peers = self.links.setdefault(link.link, {})
        if link.link == "mcu":
            peers.clear()
        peers[link.peer] = (link.up, link.detail, self._clock())

    def _on_state(self, env: Envelope) -> None:
        change = env.payload
        assert isinstance(change, StateChange)
        self.focus = (change.current.value, change.host_id, self._clock(), change.confidence)

    def _on_reward(self, env: Envelope) -> None:
        reward = env.payload
        assert isinstance(reward, RewardEvent)
        day = time.strftime("%Y-%m-%d", time.localtime(self._wall()))
        if day != self._coins_day:
            self._coins_day = day
            self.coins_today = 0
        self.coins_today = (self.coins_today or 0) + reward.coins
        self.total_coins = reward.total_coins
        if reward.kind == "streak":  # Gamification says "<n> day streak"
            match = re.match(r"\s*(\d+) day streak", reward.reason)
            if match:
                self.streak = int(match.group(1))

    # -- skelly status ------------------------------------------------------------------------
    def _facts(self, name: str) -> dict[str, Any]:
        module = self._by_name.get(name)
        if module is None or name in self.restarting or name in self.given_up:
            return {}
        try:
            return dict(module.facts())
        except Exception as exc:  # a module's own report must not break skelly status
            return {"error": f"{type(exc).__name__}: {exc}"}

    def status_report(self) -> dict[str, Any]:
        """Everything ``skelly status`` shows (docs/STATUS.md §4)."""
        bus = self.bus
        now = self._clock()
        registry = bus.registry
        modules = []
        for h in registry.modules():
            book = self.books.get(h.name)
            modules.append(
                {
                    "name": h.name,
                    "status": h.effective.value,
                    "reported": h.reported.value,
                    "detail": h.detail,
                    "stale": h.stale,
                    "restarts": book.total if book else 0,
                    "restarts_last_hour": book.in_window(now) if book else 0,
                    "given_up": h.name in self.given_up,
                    "restarting": h.name in self.restarting,
                    "facts": self._facts(h.name),
                }
            )
        links: dict[str, Any] = {}
        for link, peers in self.links.items():
            for peer, (up, detail, since) in sorted(peers.items()):
                entry = {"up": up, "peer": peer, "detail": detail, "for_s": round(now - since, 1)}
                if link not in links or up:
                    links[link] = entry
        focus = None
        if self.focus is not None:
            state, host, since, conf = self.focus
            focus = {
                "state": state,
                "host": host,
                "for_s": round(now - since, 1),
                "confidence": conf,
            }
        snap = bus.snapshot()
        queues = [
            {
                "name": s.name,
                "module": s.module,
                "depth": s.depth,
                "high_water": s.high_water,
                "maxsize": s.maxsize,
                "dropped": s.dropped,
                "dead_lettered": s.dead_lettered,
                "errors": s.errors,
                "hangs": s.hangs,
            }
            for s in snap.subscribers
        ]
        latency = {
            p: {"count": v["count"], "p50_us": v["p50_us"], "p99_us": v["p99_us"]}
            for p, v in snap.latency.items()
        }
        return {
            "version": 1,
            "pid": os.getpid(),
            "uptime_s": round(now - self.started_at, 1),
            "health": registry.health().value,
            "words": self.words(),
            "loop_lag_ms": {
                "last": round(self.loop_lag_s * 1000, 1),
                "max": round(self.loop_lag_max_s * 1000, 1),
            },
            "modules": modules,
            "links": links,
            "focus": focus,
            "rewards": {
                "coins_today": self.coins_today,
                "total_coins": self.total_coins,
                "streak": self.streak,
            },
            "queues": queues,
            "latency": latency,
            "dead_letters": snap.dead_letters,
            "errors_reported": snap.errors_reported,
        }
