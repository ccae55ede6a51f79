"""The Orchestrator's rules as plain functions and small objects (no bus, no clock read).

- :func:`start_order`: dependency order of modules (stable topological sort).
- :func:`backoff_delay`: jittered, capped, exponential delay before the N-th restart.
- :class:`RestartBook`: one module's faults in the last hour and whether it has used its budget.

docs/STATUS.md §1-2 states the rules; tests/unit/test_orchestrator_policy.py checks them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, TypeVar

from bus import ModuleId

HOUR_S = 3600.0

DEPENDS_ON: Mapping[str, tuple[str, ...]] = {
    ModuleId.EVENT_BUS: (),
    ModuleId.ORCHESTRATOR: (ModuleId.EVENT_BUS,),
    ModuleId.STORAGE: (ModuleId.EVENT_BUS,),
    ModuleId.DATA_CAPTURE: (ModuleId.STORAGE,),
    ModuleId.ANALYSIS: (ModuleId.STORAGE,),
    ModuleId.GAMIFICATION: (ModuleId.ANALYSIS, ModuleId.STORAGE),
    ModuleId.AI: (ModuleId.GAMIFICATION,),
    ModuleId.FIGURINE: (ModuleId.AI, ModuleId.GAMIFICATION),
}
"""Who must be running before whom, for the eight modules (a module's own ``depends_on``
attribute, when not empty, takes precedence)."""


class _Named(Protocol):
    @property
    def name(self) -> str: ...


M = TypeVar("M", bound=_Named)


def dependencies(module: _Named) -> tuple[str, ...]:
    own: tuple[str, ...] = tuple(getattr(module, "depends_on", ()) or ())
    return own or DEPENDS_ON.get(module.name, ())


def start_order(modules: Sequence[M]) -> list[M]:
    """``modules`` reordered so every module comes after what it depends on, otherwise keeping
    the given order.  A dependency on a module not in the list is ignored only if it is one of
    the eight (a test may run a subset); anything else, or a cycle, raises ``ValueError``."""
    by_name = {m.name: m for m in modules}
    if len(by_name) != len(modules):
        raise ValueError("two modules share a name: " + ", ".join(m.name for m in modules))
    placed: list[M] = []
    done: set[str] = set()
    visiting: set[str] = set()

    def visit(m: M, path: tuple[str, ...]) -> None:
        if m.name in done:
            return
        if m.name in visiting:
            raise ValueError("modules depend on each other in a cycle: " + " -> ".join(path))
        visiting.add(m.name)
        for dep in dependencies(m):
            if dep in by_name:
                visit(by_name[dep], (*path, dep))
            elif dep not in DEPENDS_ON:
                raise ValueError(f"{m.name} depends on {dep!r}, which is not a module here")
        visiting.discard(m.name)
        done.add(m.name)
        placed.append(m)

    for m in modules:
        visit(m, (m.name,))
    return placed


def backoff_delay(n: int, *, initial: float, cap: float, jitter: float, r: float) -> float:
    """Seconds to wait before the ``n``-th restart (n >= 1): ``initial * 2**(n-1)`` capped at
    ``cap``, then shortened by up to ``jitter`` of itself (``r`` uniform in [0, 1)), so modules
    that failed together do not all come back in the same instant."""
    if n < 1:
        raise ValueError(f"restart number starts at 1, got {n}")
    base = min(cap, initial * 2.0 ** min(n - 1, 62))
    return base * (1.0 - jitter * r)


class RestartBook:
    """One module's faults that led to a restart, within the last hour."""

    def __init__(self, limit: int, window_s: float = HOUR_S) -> None:
        self.limit = limit
        self.window_s = window_s
        self._times: deque[float] = deque()
        self.total = 0

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] >= self.window_s:
            self._times.popleft()

    def note(self, now: float) -> int:
        """Record a fault at ``now``; returns how many there were in the last hour (this one
        included)."""
        self._trim(now)
        self._times.append(now)
        self.total += 1
        return len(self._times)

    def in_window(self, now: float) -> int:
        self._trim(now)
        return len(self._times)

    def exhausted(self, now: float) -> bool:
        """More faults in the last hour than restarts allowed: give up."""
        return self.in_window(now) > self.limit


def names(modules: Iterable[_Named]) -> list[str]:
    return [m.name for m in modules]
