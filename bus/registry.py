"""Module registry: who is on the bus, how each module is doing, and the roll-up of all of them.

Statuses are what a module reports about itself; the *effective* status also folds in what the
registry observes: a module whose heartbeat is older than its ``stale_after`` counts as Unhealthy,
and a module whose handlers failed ``error_threshold`` times inside ``error_window`` seconds counts
at least as Degraded.  Both are computed on every query from an injectable clock, so stale
detection is live without a background task and tests need no sleeping.

Roll-up rule (SPEC §3): any Unhealthy → Critical; else any Degraded → Degraded; else any Starting or
ShuttingDown → Transitioning; all Healthy → Healthy; otherwise (nothing registered, some Stopped)
Unknown.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

from bus.messages import ModuleStatus

Clock = Callable[[], float]

_SEVERITY = {
    ModuleStatus.HEALTHY: 0,
    ModuleStatus.STARTING: 1,
    ModuleStatus.SHUTTING_DOWN: 1,
    ModuleStatus.STOPPED: 1,
    ModuleStatus.DEGRADED: 2,
    ModuleStatus.UNHEALTHY: 3,
}


class SystemHealth(Enum):
    HEALTHY = "Healthy"
    DEGRADED = "Degraded"
    CRITICAL = "Critical"
    TRANSITIONING = "Transitioning"
    UNKNOWN = "Unknown"


class UnknownModuleError(KeyError):
    """A status was reported for a module that never registered."""


def aggregate(statuses: Iterable[ModuleStatus]) -> SystemHealth:
    """Apply the SPEC §3 roll-up rule to effective statuses."""
    seen = set(statuses)
    if ModuleStatus.UNHEALTHY in seen:
        return SystemHealth.CRITICAL
    if ModuleStatus.DEGRADED in seen:
        return SystemHealth.DEGRADED
    if ModuleStatus.STARTING in seen or ModuleStatus.SHUTTING_DOWN in seen:
        return SystemHealth.TRANSITIONING
    if seen == {ModuleStatus.HEALTHY}:
        return SystemHealth.HEALTHY
    return SystemHealth.UNKNOWN


@dataclass(frozen=True, slots=True)
class ModuleHealth:
    name: str
    reported: ModuleStatus
    effective: ModuleStatus
    detail: str
    last_seen_age_s: float
    stale: bool
    recent_errors: int


class _Entry:
    __slots__ = ("detail", "errors", "last_seen", "name", "stale_after", "status")

    def __init__(self, name: str, now: float, stale_after: float) -> None:
        self.name = name
        self.status = ModuleStatus.STARTING
        self.detail = "registered"
        self.last_seen = now
        self.stale_after = stale_after
        self.errors: deque[float] = deque(maxlen=256)


class ModuleRegistry:
    def __init__(
        self,
        clock: Clock = time.monotonic,
        *,
        default_stale_after: float = 30.0,
        error_threshold: int = 5,
        error_window: float = 60.0,
    ) -> None:
        self._clock = clock
        self._default_stale_after = default_stale_after
        self._error_threshold = error_threshold
        self._error_window = error_window
        self._modules: dict[str, _Entry] = {}
        self._listeners: list[Callable[[str, ModuleStatus, str], None]] = []

    # -- registration and reports ---------------------------------------------------------
    def register(self, name: str, *, stale_after: float | None = None) -> None:
        """Register (or re-register after a restart) a module; it starts in Starting."""
        after = self._default_stale_after if stale_after is None else stale_after
        self._modules[name] = _Entry(name, self._clock(), after)
        self._notify(name, ModuleStatus.STARTING, "registered")

    def unregister(self, name: str) -> None:
        self._modules.pop(name, None)

    def names(self) -> list[str]:
        return list(self._modules)

    def _entry(self, name: str) -> _Entry:
        try:
            return self._modules[name]
        except KeyError:
            raise UnknownModuleError(
                f"module {name!r} is not registered; call register({name!r}) first"
            ) from None

    def set_status(self, name: str, status: ModuleStatus, detail: str = "") -> None:
        entry = self._entry(name)
        changed = entry.status is not status or entry.detail != detail
        entry.status = status
        entry.detail = detail
        entry.last_seen = self._clock()
        if changed:
            self._notify(name, status, detail)

    def heartbeat(self, name: str) -> None:
        """The module showed a sign of life (e.g. answered a health check)."""
        self._entry(name).last_seen = self._clock()

    def note_error(self, name: str) -> None:
        """A handler of this module failed (raised or hung)."""
        entry = self._modules.get(name)
        if entry is not None:
            entry.errors.append(self._clock())

    def on_change(self, listener: Callable[[str, ModuleStatus, str], None]) -> Callable[[], None]:
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def _notify(self, name: str, status: ModuleStatus, detail: str) -> None:
        for listener in list(self._listeners):
            listener(name, status, detail)

    # -- queries ------------------------------------------------------------------------------
    def module(self, name: str) -> ModuleHealth:
        entry = self._entry(name)
        now = self._clock()
        age = now - entry.last_seen
        alive = entry.status not in (ModuleStatus.STOPPED, ModuleStatus.SHUTTING_DOWN)
        stale = alive and age > entry.stale_after
        recent = sum(1 for t in entry.errors if now - t <= self._error_window)
        effective = entry.status
        detail = entry.detail
        if stale:
            effective = ModuleStatus.UNHEALTHY
            detail = f"stale: no sign of life for {age:.1f} s (limit {entry.stale_after:g} s)"
        elif recent >= self._error_threshold and _SEVERITY[effective] < 2:
            effective = ModuleStatus.DEGRADED
            detail = f"{recent} handler failures in the last {self._error_window:g} s"
        return ModuleHealth(name, entry.status, effective, detail, age, stale, recent)

    def modules(self) -> list[ModuleHealth]:
        return [self.module(name) for name in self._modules]

    def health(self) -> SystemHealth:
        return aggregate(m.effective for m in self.modules())
