"""Shared fixtures.

``run`` executes a coroutine on a fresh event loop; it is parametrized so every test that uses it
runs twice, on uvloop and on asyncio's own loop (SPEC §3: the stock loop must work too).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
import uvloop

from tests.slowness import FACTOR

T = TypeVar("T")

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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
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
