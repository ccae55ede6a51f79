"""Composition root: builds the modules from config and runs them on the bus.

Only this package chooses real or simulated parts and the event loop (uvloop by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from bus import Bus, ModuleRegistry
from firmware_bridge.debug import default_socket_path
from modules.ai import AI
from modules.analysis import AnalysisEngine
from modules.base import Module
from modules.data_capture import DataCapture, EventSink
from modules.event_bus import EventBusModule
from modules.event_clock import HostTimeFollower, ObservingSink
from modules.figurine import CuteFigurine
from modules.gamification import Gamification
from modules.mqtt_bridge import MqttBridge
from modules.orchestrator import ModuleStartFault, Orchestrator, control_socket_path
from modules.storage import Storage
from skelly.config import Config
from skelly.errors import StartupFault


def build_modules(
    config: Config,
    *,
    event_clock: Callable[[], float] | None = None,
    event_sleep: Callable[[float], Awaitable[None]] | None = None,
    token: str | None = None,
    pin_factory: Callable[[], Any] | None = None,
    notify: Callable[[str], None] | None = None,
    watchdog_s: float | None = None,
) -> list[Module]:
    """The eight modules in dependency (start) order, wired to each other, and the MQTT bridge
    when ``[mqtt] enabled``.

    Event time for Storage's windows follows the hosts' timestamps (``HostTimeFollower``, fed
    by every committed batch) unless ``event_clock``/``event_sleep`` are given (the simulator
    passes its SimClock's); ``token`` overrides the ingest token file; ``notify`` and
    ``watchdog_s`` connect the Orchestrator to systemd (skelly/notify.py).
    """
    state = config.state_dir()
    sink: EventSink
    if event_clock is None:
        follower = HostTimeFollower()
        storage = Storage(config.storage, state, clock=follower.now, sleep=event_sleep)
        sink = ObservingSink(storage, follower.observe)
    else:
        storage = Storage(config.storage, state, clock=event_clock, sleep=event_sleep)
        sink = storage
    gamification = Gamification(
        config.gamification,
        store=storage,
        clock=event_clock or time.time,
        sleep=event_sleep or asyncio.sleep,
    )
    figurine = CuteFigurine(
        config.figurine,
        debug_socket=default_socket_path(state),
        pin_factory=pin_factory or (lgpio_factory if config.figurine.gpio_enabled else None),
    )
    modules: list[Module] = [
        EventBusModule(),
        Orchestrator(
            config.orchestrator,
            control_socket=control_socket_path(state),
            notify=notify,
            watchdog_s=watchdog_s,
        ),
        storage,
        DataCapture(config.ingest, sink=sink, state_dir=state, token=token),
        AnalysisEngine(config.analysis, store=storage),  # per-person baselines persist
        # cooldowns, snooze and quiet hours follow the simulator's compressed clock when given
        gamification,
        AI(config.ai),
        figurine,
    ]
    if config.mqtt.enabled:  # optional, after what it reports on (docs/MQTT.md)
        modules.append(
            MqttBridge(
                config.mqtt,
                firmware=lambda: _firmware(figurine),
                progress=lambda: _progress(gamification),
            )
        )
    return modules


def _firmware(figurine: CuteFigurine) -> str | None:
    """The MCU's firmware and protocol version from its HELLO, once the link was up."""
    protocol = figurine.protocol
    if protocol is None or protocol.fw_version is None or not protocol.protocol_version:
        return None
    fw = ".".join(map(str, protocol.fw_version))
    return f"firmware {fw}, protocol {protocol.protocol_version}"


def _progress(gamification: Gamification) -> tuple[int, int] | None:
    core = gamification.core
    return None if core is None else (core.progress.coins, core.progress.streak)


def lgpio_factory() -> Any:
    """The Pi's pin factory for ``[figurine] gpio_enabled`` (lgpio, the ``pi`` extra); the
    simulator passes gpiozero's MockFactory to :func:`build_modules` instead."""
    from gpiozero.pins.lgpio import LGPIOFactory

    return LGPIOFactory()


def make_bus(config: Config) -> Bus:
    return Bus(
        ModuleRegistry(),
        send_timeout=config.bus.send_timeout_s,
        dead_letter_maxlen=config.bus.dead_letter_keep,
    )


async def start_all(bus: Bus, modules: list[Module]) -> None:
    """Start ``modules`` through their Orchestrator (dependency order, docs/STATUS.md §1); on
    the first start-up fault (a module Unhealthy at the end of its start, docs/CLI.md §2) what
    started is stopped in reverse order and :class:`StartupFault` names the module and what it
    reported."""
    orchestrator = _orchestrator(modules)
    orchestrator.manage(modules)
    try:
        await orchestrator.start_all(bus)
    except ModuleStartFault as fault:
        raise StartupFault(fault.module.name, _explain(fault.module, fault.detail)) from None


def _orchestrator(modules: list[Module]) -> Orchestrator:
    for module in modules:
        if isinstance(module, Orchestrator):
            return module
    return Orchestrator()


def _explain(module: Module, fault: str) -> str:
    """Add what the module's own words leave out: who holds the socket, what to do."""
    if isinstance(module, DataCapture) and "address already in use" in fault:
        return (
            f"{fault}; another process listens there (another `skelly run`? `ss -ltnp` shows "
            "which): stop it or set [ingest] port"
        )
    sock = getattr(module, "debug_socket", None)
    if isinstance(module, Orchestrator):
        sock = module.control_socket
    if isinstance(module, CuteFigurine | Orchestrator) and sock and "already serves" in fault:
        pid = socket_peer_pid(sock)
        if pid is not None:
            return f"{fault} (held by pid {pid})"
    return fault


def socket_peer_pid(path: Path) -> int | None:
    """The pid of the process serving the Unix socket ``path`` (Linux), or None."""
    peercred = getattr(socket, "SO_PEERCRED", None)
    if peercred is None:
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1.0)
            s.connect(str(path))
            creds = s.getsockopt(socket.SOL_SOCKET, peercred, struct.calcsize("3i"))
    except OSError:
        return None
    pid: int = struct.unpack("3i", creds)[0]
    return pid or None


async def stop_all(modules: list[Module]) -> None:
    """Stop ``modules`` in reverse order through their Orchestrator (``STOPPING=1``, pending
    restarts cancelled, within its ``stop_timeout_s``)."""
    orchestrator = _orchestrator(modules)
    if not orchestrator.modules:
        orchestrator.manage(modules)
    await orchestrator.stop_all()


def run_loop(
    main: Callable[[asyncio.Event], Coroutine[Any, Any, int]], *, use_uvloop: bool = True
) -> int:
    """Run ``main(stop)`` on uvloop (or the stock loop).

    SIGTERM/SIGINT set ``stop`` so ``main`` can shut down in order (flush storage, close links);
    a second signal while stopping cancels ``main`` outright.
    """
    factory = None
    if use_uvloop:
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_with_signals(main))


async def _with_signals(main: Callable[[asyncio.Event], Coroutine[Any, Any, int]]) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    task = asyncio.current_task()
    assert task is not None

    def on_signal() -> None:
        if stop.is_set():
            task.cancel()  # second Ctrl-C: stop waiting for an orderly shutdown
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal)
    try:
        return await main(stop)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


async def until_stopped(work: Coroutine[Any, Any, int], stop: asyncio.Event) -> int:
    """Run ``work`` until it returns or ``stop`` is set (then cancel it and return 0).

    For commands with nothing to flush on Ctrl-C (the console): one signal ends them.
    """
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return 0
