"""Module registry: statuses, the roll-up rule for every combination, live stale detection."""

from __future__ import annotations

import itertools

import pytest

from bus import ModuleRegistry, ModuleStatus, SystemHealth, aggregate
from bus.registry import UnknownModuleError

S = ModuleStatus


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def expected(statuses: tuple[ModuleStatus, ...]) -> SystemHealth:
    # SPEC §3 read literally, as a decision list
    if any(s is S.UNHEALTHY for s in statuses):
        return SystemHealth.CRITICAL
    if any(s is S.DEGRADED for s in statuses):
        return SystemHealth.DEGRADED
    if any(s in (S.STARTING, S.SHUTTING_DOWN) for s in statuses):
        return SystemHealth.TRANSITIONING
    if statuses and all(s is S.HEALTHY for s in statuses):
        return SystemHealth.HEALTHY
    return SystemHealth.UNKNOWN


@pytest.mark.parametrize("size", [0, 1, 2, 3])
def test_roll_up_for_every_combination(size: int) -> None:
    for combo in itertools.product(list(ModuleStatus), repeat=size):
        assert aggregate(combo) is expected(combo), combo


def test_roll_up_examples() -> None:
    assert aggregate([S.HEALTHY] * 8) is SystemHealth.HEALTHY
    assert aggregate([S.HEALTHY, S.STOPPED]) is SystemHealth.UNKNOWN
    assert aggregate([S.DEGRADED, S.STARTING]) is SystemHealth.DEGRADED
    assert aggregate([S.UNHEALTHY, S.DEGRADED]) is SystemHealth.CRITICAL
    assert aggregate([S.HEALTHY, S.SHUTTING_DOWN]) is SystemHealth.TRANSITIONING
    assert aggregate([]) is SystemHealth.UNKNOWN


def test_registry_reports_and_rolls_up() -> None:
    reg = ModuleRegistry(FakeClock())
    reg.register("Storage")
    reg.register("AI")
    assert reg.health() is SystemHealth.TRANSITIONING
    reg.set_status("Storage", S.HEALTHY)
    reg.set_status("AI", S.HEALTHY)
    assert reg.health() is SystemHealth.HEALTHY
    reg.set_status("AI", S.DEGRADED, "LLM endpoint down; templates in use")
    assert reg.health() is SystemHealth.DEGRADED
    assert reg.module("AI").detail == "LLM endpoint down; templates in use"


def test_stale_detection_is_live_on_the_injected_clock() -> None:
    clock = FakeClock()
    reg = ModuleRegistry(clock, default_stale_after=30.0)
    reg.register("Analysis")
    reg.set_status("Analysis", S.HEALTHY)
    clock.t += 29.0
    assert reg.health() is SystemHealth.HEALTHY
    clock.t += 2.0  # 31 s without a sign of life
    health = reg.module("Analysis")
    assert health.stale and health.effective is S.UNHEALTHY and health.reported is S.HEALTHY
    assert "stale" in health.detail
    assert reg.health() is SystemHealth.CRITICAL
    reg.heartbeat("Analysis")
    assert reg.health() is SystemHealth.HEALTHY


def test_stopped_module_never_goes_stale() -> None:
    clock = FakeClock()
    reg = ModuleRegistry(clock, default_stale_after=5.0)
    reg.register("AI", stale_after=5.0)
    reg.set_status("AI", S.STOPPED)
    clock.t += 100
    assert reg.module("AI").effective is S.STOPPED
    assert reg.health() is SystemHealth.UNKNOWN


def test_handler_errors_degrade_then_age_out() -> None:
    clock = FakeClock()
    reg = ModuleRegistry(clock, error_threshold=3, error_window=60.0)
    reg.register("AI")
    reg.set_status("AI", S.HEALTHY)
    for _ in range(3):
        reg.note_error("AI")
    assert reg.module("AI").effective is S.DEGRADED
    clock.t += 61
    reg.heartbeat("AI")
    assert reg.module("AI").effective is S.HEALTHY


def test_listeners_see_changes_and_unknown_module_is_clear() -> None:
    reg = ModuleRegistry(FakeClock())
    seen: list[tuple[str, ModuleStatus, str]] = []
    remove = reg.on_change(lambda *a: seen.append(a))
    reg.register("Storage")
    reg.set_status("Storage", S.HEALTHY, "ok")
    reg.set_status("Storage", S.HEALTHY, "ok")  # no change, no event
    remove()
    reg.set_status("Storage", S.DEGRADED, "disk slow")
    assert seen == [("Storage", S.STARTING, "registered"), ("Storage", S.HEALTHY, "ok")]
    with pytest.raises(UnknownModuleError, match="register"):
        reg.set_status("Nope", S.HEALTHY)
