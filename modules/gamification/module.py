"""Gamification on the bus: a thin shell around the pure :class:`Companion` core.

The shell feeds the core every AnalysisComplete, StateChange, UserInput and InterventionResponse
with the wall clock's ``now``, publishes what it returns, arms one timer at the core's next
deadline (quiet hours begin or end, snooze over, an undelivered request times out: no polling)
and saves the core's snapshot through an injected :class:`Store` (Storage in the service)
whenever it changed, one write at a time, newest value wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from bus import Delivery, Envelope, ModuleId, ModuleStatus, Priority
from bus.messages import (
    AnalysisComplete,
    CompanionCommand,
    CompanionMode,
    InterventionRequest,
    InterventionResponse,
    Message,
    ModuleReady,
    StateChange,
    UserInput,
)
from modules.base import Module
from modules.gamification.config import GamificationConfig
from modules.gamification.core import Companion
from modules.gamification.localtime import zone

log = logging.getLogger(__name__)

MINOR_SAVE_EVERY_S = 60.0
"""Today's focus seconds alone are saved at most this often (one SQLite write per window
would be a write every 10 s on an SD card)."""


class Store(Protocol):
    """Where progress is kept (``modules.storage.Storage`` has these)."""

    async def get_state(self, key: str) -> Any: ...

    async def put_state(self, key: str, value: Any) -> None: ...


class MemoryStore:
    """A store in a dict (tests, or running without Storage)."""

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.data: dict[str, Any] = {} if data is None else data
        self.writes = 0

    async def get_state(self, key: str) -> Any:
        return self.data.get(key)

    async def put_state(self, key: str, value: Any) -> None:
        self.writes += 1
        self.data[key] = value


class Gamification(Module):
    name = ModuleId.GAMIFICATION

    def __init__(
        self,
        config: GamificationConfig | None = None,
        *,
        store: Store | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__()
        self.config = config or GamificationConfig()
        self.store = store
        self.clock = clock
        self.sleep = sleep
        """Sleeps seconds of ``clock`` (the simulator passes its compressed clock and sleep)."""
        self.core: Companion | None = None
        self._timer: asyncio.Task[None] | None = None
        self._deadline: float | None = None
        self._saving: asyncio.Task[None] | None = None
        self._saved_at = float("-inf")

    async def on_start(self) -> None:
        cfg = self.config
        try:
            tz = zone(cfg.timezone)
        except ValueError as exc:
            self.set_status(ModuleStatus.UNHEALTHY, str(exc))
            return
        snapshot = None
        if self.store is not None:
            try:
                snapshot = await self.store.get_state(cfg.store_key)
            except Exception as exc:  # storage trouble must not stop the companion
                log.warning("gamification: cannot read progress: %s", exc)
                self.set_status(ModuleStatus.DEGRADED, f"progress not loaded: {exc}")
        self.core = Companion(cfg, tz, snapshot)
        self._emit(self.core.start(self.clock()))
        # modules that start after this one (the figurine) missed that first CompanionMode
        self.subscribe(self._on_ready, types=ModuleReady, maxsize=64)
        if not cfg.enabled:
            self.set_status(ModuleStatus.HEALTHY, "disabled in config: no interventions")
            return
        self.subscribe(self._on_analysis, types=AnalysisComplete, maxsize=256)
        self.subscribe(self._on_state_change, types=StateChange, maxsize=64)
        self.subscribe(self._on_input, types=UserInput, mode=Delivery.RELIABLE, maxsize=64)
        self.subscribe(self._on_command, types=CompanionCommand, maxsize=64)
        self.subscribe(
            self._on_response, types=InterventionResponse, mode=Delivery.RELIABLE, maxsize=64
        )
        self._arm()

    async def on_stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._saving is not None:
            await asyncio.wait({self._saving}, timeout=2.0)
            self._saving.cancel()
            with contextlib.suppress(BaseException):
                await self._saving
        if self.core is not None and (self.core.dirty or self.core.minor_dirty):
            await self._save_once()

    def health(self) -> tuple[ModuleStatus, str]:
        core = self.core
        if core is None or self.status is not ModuleStatus.HEALTHY:
            return self.status, self.detail
        p = core.progress
        now = self.clock()
        mode = "quiet hours" if core.quiet(now) else "snoozed" if core.snoozed(now) else "awake"
        return self.status, f"{mode}; {p.coins} coins; streak {p.streak}"

    # -- handlers -----------------------------------------------------------------------------
    def _on_analysis(self, env: Envelope) -> None:
        assert isinstance(env.payload, AnalysisComplete) and self.core is not None
        self._emit(self.core.on_analysis(self.clock(), env.payload))

    def _on_ready(self, env: Envelope) -> None:
        assert isinstance(env.payload, ModuleReady)
        if self.core is not None and env.payload.module != self.name:
            self._emit(self.core.current_mode(self.clock()))

    def _on_state_change(self, env: Envelope) -> None:
        assert isinstance(env.payload, StateChange) and self.core is not None
        self._emit(self.core.on_state_change(self.clock(), env.payload))

    def _on_input(self, env: Envelope) -> None:
        assert isinstance(env.payload, UserInput) and self.core is not None
        self._emit(self.core.on_input(self.clock(), env.payload))

    def _on_command(self, env: Envelope) -> None:
        assert isinstance(env.payload, CompanionCommand) and self.core is not None
        self._emit(self.core.on_command(self.clock(), env.payload))

    def _on_response(self, env: Envelope) -> None:
        assert isinstance(env.payload, InterventionResponse) and self.core is not None
        self._emit(self.core.on_response(self.clock(), env.payload))

    async def _wait(self, delay: float) -> None:
        await self.sleep(delay)
        self._timer = None
        if self.core is not None and self.status not in (
            ModuleStatus.SHUTTING_DOWN,
            ModuleStatus.STOPPED,
        ):
            self._emit(self.core.tick(self.clock()))

    # -- plumbing -----------------------------------------------------------------------------
    def _emit(self, messages: list[Message]) -> None:
        for msg in messages:
            high = isinstance(msg, (CompanionMode, InterventionRequest))
            self.publish(msg, priority=Priority.HIGH if high else Priority.NORMAL)
        core = self.core
        if core is not None and self.store is not None and self._wants_save(core):
            if self._saving is None or self._saving.done():
                self._saving = asyncio.get_running_loop().create_task(
                    self._save(), name="gamification.save"
                )
        self._arm()

    def _arm(self) -> None:
        core = self.core
        if core is None or self._bus is None or self.status is ModuleStatus.STOPPED:
            return
        now = self.clock()
        deadline = core.next_deadline(now)
        if self._timer is not None and not self._timer.done() and deadline == self._deadline:
            return  # already waiting for exactly that
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadline = deadline
        if deadline is None:
            return
        # the wall clock may jump: never sleep more than an hour on one reading
        delay = min(max(deadline - now, 0.0), 3600.0) + 0.01
        self._timer = asyncio.get_running_loop().create_task(
            self._wait(delay), name="gamification.timer"
        )

    def _wants_save(self, core: Companion) -> bool:
        minor = core.minor_dirty and self.clock() - self._saved_at >= MINOR_SAVE_EVERY_S
        return core.dirty or minor

    async def _save(self) -> None:
        while self.core is not None and self._wants_save(self.core):
            await self._save_once()

    async def _save_once(self) -> None:
        core, store = self.core, self.store
        if core is None or store is None:
            return
        core.dirty = core.minor_dirty = False
        self._saved_at = self.clock()
        try:
            await store.put_state(self.config.store_key, core.snapshot())
        except Exception as exc:  # keep deciding; say so in health
            core.dirty = True
            log.warning("gamification: cannot save progress: %s", exc)
            self.set_status(ModuleStatus.DEGRADED, f"progress not saved: {exc}")
            await asyncio.sleep(5.0)
        else:
            if self.status is ModuleStatus.DEGRADED:
                self.set_status(ModuleStatus.HEALTHY, "running")
