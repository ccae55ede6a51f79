"""Shared fixtures.

``run`` executes a coroutine on a fresh event loop; it is parametrized so every test that uses it
runs twice, on uvloop and on asyncio's own loop (SPEC §3: the stock loop must work too).

``SKELLY_HYPOTHESIS_PROFILE=emulated`` (set by tests/pi/run-emulated.sh, docs/TESTING.md) loads a
Hypothesis profile for the arm64 run under qemu: no deadline, no too-slow health check, and every
property test runs a fifth of its own example budget (at least 10 examples): the same properties
are checked on the Pi's platform at a cost that fits CI.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
import uvloop
from hypothesis import HealthCheck, settings

from tests.slowness import FACTOR

T = TypeVar("T")

#: under emulation each property test runs 1/EMULATED_DIVISOR of its examples, at least EMULATED_MIN
EMULATED_DIVISOR = 5
EMULATED_MIN = 10
settings.register_profile(
    "emulated", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=20
)
HYPOTHESIS_PROFILE = os.environ.get("SKELLY_HYPOTHESIS_PROFILE", "default")
settings.load_profile(HYPOTHESIS_PROFILE)

LOOPS = {"uvloop": uvloop.new_event_loop, "asyncio": asyncio.new_event_loop}


@pytest.fixture(params=sorted(LOOPS))
def loop_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def run(loop_name: str) -> Callable[[Coroutine[Any, Any, T]], T]:
    factory = LOOPS[loop_name]

    def runner(coro: Coroutine[Any, Any, T]) -> T:
        with asyncio.Runner(loop_factory=factory) as r:
            return r.run(coro)

    return runner


def _fewer_examples(items: list[pytest.Item]) -> None:
    """Scale each property test's own ``max_examples`` (an explicit ``@settings`` wins over a
    profile, so the profile alone would not reach them): @given tests and state machines."""
    seen: set[int] = set()
    for item in items:
        func = getattr(getattr(item, "obj", None), "__func__", getattr(item, "obj", None))
        holder: Any = None
        attr = ""
        if hasattr(func, "_hypothesis_internal_use_settings"):
            holder, attr = func, "_hypothesis_internal_use_settings"
        elif isinstance(cls := getattr(item, "cls", None), type) and hasattr(cls, "settings"):
            holder, attr = cls, "settings"  # RuleBasedStateMachine.TestCase
        if holder is None or id(holder) in seen or not isinstance(getattr(holder, attr), settings):
            continue
        seen.add(id(holder))
        own: settings = getattr(holder, attr)
        fewer = max(EMULATED_MIN, own.max_examples // EMULATED_DIVISOR)
        setattr(holder, attr, settings(own, max_examples=min(own.max_examples, fewer)))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if HYPOTHESIS_PROFILE == "emulated":
        _fewer_examples(items)
    if FACTOR != 1.0:  # a slow machine (tests/slowness.py): scale every test's timeout
        limit = float(config.getini("timeout") or 0) * FACTOR
        for item in items:
            marker = item.get_closest_marker("timeout")
            base = float(marker.args[0]) * FACTOR if marker and marker.args else limit
            item.add_marker(pytest.mark.timeout(base))
    if os.environ.get("SKELLY_HARDWARE") == "1":
        return
    skip = pytest.mark.skip(reason="hardware test: set SKELLY_HARDWARE=1 on a Pi with the figurine")
    for item in items:
        if "hardware" in item.keywords:
            item.add_marker(skip)
