"""One real Mosquitto for the whole MQTT test directory (started once, stopped at the end)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
import uvloop

from tests.mqtt.broker import Broker

T = TypeVar("T")


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    b = Broker.create(tmp_path_factory.mktemp("mosquitto"))
    yield b
    b.stop()


@pytest.fixture
def run_uv() -> Callable[[Coroutine[Any, Any, T]], T]:
    """Run on uvloop, the loop the service runs on (``run`` from tests/conftest.py runs a test on
    both loops; the broker tests use it where both matter)."""

    def runner(coro: Coroutine[Any, Any, T]) -> T:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
            return r.run(coro)

    return runner
