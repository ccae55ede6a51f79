"""Composition root: builds the modules from config and runs them on the bus.

Only this package chooses real or simulated parts and the event loop (uvloop by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from bus import Bus, ModuleRegistry
from modules.ai import AI
from modules.analysis import AnalysisEngine
from modules.base import Module
from modules.data_capture import DataCapture
from modules.event_bus import EventBusModule
from modules.figurine import CuteFigurine
from modules.gamification import Gamification
from modules.orchestrator import Orchestrator
from modules.storage import Storage
from skelly.config import Config


def build_modules(config: Config) -> list[Module]:
    """The eight modules in dependency (start) order."""
    return [
        EventBusModule(),
        Orchestrator(config.orchestrator),
        Storage(config.storage, config.state_dir()),
        DataCapture(config.ingest),
        AnalysisEngine(config.analysis),
        Gamification(config.gamification),
        AI(config.ai),
        CuteFigurine(config.figurine),
    ]


def make_bus(config: Config) -> Bus:
    return Bus(
        ModuleRegistry(),
        send_timeout=config.bus.send_timeout_s,
        dead_letter_maxlen=config.bus.dead_letter_keep,
    )


async def start_all(bus: Bus, modules: list[Module]) -> None:
    for module in modules:
        await module.start(bus)


async def stop_all(modules: list[Module], timeout: float = 10.0) -> None:
    for module in reversed(modules):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(module.stop(), timeout)


def run_loop(main: Callable[[], Coroutine[Any, Any, int]], *, use_uvloop: bool = True) -> int:
    """Run ``main`` on uvloop (or the stock loop) with SIGTERM/SIGINT cancelling it cleanly."""
    factory = None
    if use_uvloop:
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_with_signals(main))


async def _with_signals(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    main_task = asyncio.create_task(main(), name="skelly-main")
    stopper = asyncio.create_task(stop.wait(), name="skelly-signal-wait")
    done, _ = await asyncio.wait({main_task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if main_task in done:
        stopper.cancel()
        return main_task.result()
    main_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await main_task
    return 0
