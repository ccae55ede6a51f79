"""systemd's notify protocol for real: `skelly run` under a fake NOTIFY_SOCKET (a real datagram
socket) says READY=1 after start, WATCHDOG=1 at half of WATCHDOG_USEC, STATUS= in words and
STOPPING=1; the watchdog pings come from the event loop, so a stalled loop sends none."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from bus import Bus, ModuleStatus
from modules.base import Module
from modules.event_bus import EventBusModule
from modules.orchestrator import Orchestrator, OrchestratorConfig
from skelly.notify import Notifier, from_environ, watchdog_seconds
from tests.slowness import allow

ROOT = Path(__file__).resolve().parents[2]
Run = Callable[[Coroutine[Any, Any, Any]], Any]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _receive(
    sock: socket.socket, until: Callable[[list[tuple[float, str]]], bool], limit: float
) -> list[tuple[float, str]]:
    got: list[tuple[float, str]] = []
    deadline = time.monotonic() + limit
    while not until(got):
        left = deadline - time.monotonic()
        assert left > 0, f"gave up waiting; received {[m for _, m in got]}"
        sock.settimeout(left)
        try:
            data = sock.recv(4096)
        except TimeoutError:
            continue
        got.append((time.monotonic(), data.decode()))
    return got


def test_service_says_ready_pings_at_half_the_interval_and_says_stopping(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(path))
    config = tmp_path / "config.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "state"}"\n'
        f"[ingest]\nport = {_free_port()}\n"
        "[figurine]\nserial_enabled = false\n"
    )
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "NOTIFY_SOCKET": str(path),
        "WATCHDOG_USEC": "400000",
    }
    env.pop("WATCHDOG_PID", None)
    service = subprocess.Popen(
        [sys.executable, "-m", "skelly.cli", "run", "--config", str(config)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        got = _receive(
            listener,
            lambda g: (
                sum(m == "WATCHDOG=1" for _, m in g) >= 8
                and any(m.startswith("READY=1") for _, m in g)
            ),
            allow(30.0),
        )
        messages = [m for _, m in got]
        ready = next(m for m in messages if m.startswith("READY=1"))
        # READY=1 only once everything has started, with the words
        assert ready.startswith("READY=1\nSTATUS="), ready
        assert "no host yet" in ready
        pings = [t for t, m in got if m == "WATCHDOG=1"]
        gaps = [b - a for a, b in itertools.pairwise(pings[3:])]
        assert min(gaps) >= 0.2 * 0.9, gaps  # never faster than half of WATCHDOG_USEC
        assert sorted(gaps)[len(gaps) // 2] <= allow(0.4), gaps
        service.send_signal(signal.SIGTERM)
        rest = _receive(listener, lambda g: any(m == "STOPPING=1" for _, m in g), allow(10.0))
        out, err = service.communicate(timeout=allow(30.0))
    finally:
        if service.poll() is None:
            service.kill()
        listener.close()
    assert service.returncode == 0, err
    assert "stopped cleanly" in out
    assert rest[-1][1] == "STOPPING=1"


def test_notifier_speaks_to_the_abstract_namespace_and_does_nothing_without_systemd() -> None:
    name = f"skelly-test-{os.getpid()}-{time.monotonic_ns()}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind("\0" + name)
    listener.settimeout(allow(5.0))
    try:
        notifier = from_environ({"NOTIFY_SOCKET": "@" + name})
        assert notifier.enabled
        notifier("READY=1\nSTATUS=healthy")
        assert listener.recv(100) == b"READY=1\nSTATUS=healthy"
        notifier.close()
    finally:
        listener.close()
    quiet = from_environ({})
    assert not quiet.enabled
    quiet("READY=1")  # no socket, no error
    assert Notifier(None).address is None


def test_watchdog_usec_honoured_only_for_this_process() -> None:
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000"}) == 30.0
    mine = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_seconds(mine) == 2.0
    assert watchdog_seconds({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_seconds({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_seconds({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_seconds({}) is None


class Flaky(Module):
    name = "Flaky"


def test_a_stalled_loop_sends_no_pings_and_they_resume_after(run: Run) -> None:
    async def main() -> None:
        notes: list[tuple[float, str]] = []
        orch = Orchestrator(
            OrchestratorConfig(control_socket=False, health_interval_s=3600.0),
            notify=lambda m: notes.append((time.monotonic(), m)),
            watchdog_s=0.1,
        )
        flaky = Flaky()
        orch.manage([EventBusModule(), orch, flaky])
        bus = Bus()
        await orch.start_all(bus)

        def pings() -> list[float]:
            return [t for t, m in notes if m == "WATCHDOG=1"]

        async def wait_pings(n: int) -> None:
            deadline = time.monotonic() + allow(10.0)
            while len(pings()) < n:
                assert time.monotonic() < deadline, notes
                await asyncio.sleep(0.01)

        await wait_pings(3)
        # the loop stalls for 0.5 s (five ping periods): nothing may be sent meanwhile
        stall_start = time.monotonic()
        time.sleep(0.5)  # noqa: ASYNC251 - the stall under test
        stall_end = time.monotonic()
        before = len(pings())
        await wait_pings(before + 3)  # responsive again: the pings resume
        assert not [t for t in pings() if stall_start < t < stall_end]
        # Critical: no pings, however long; recovery resumes them
        flaky.set_status(ModuleStatus.UNHEALTHY, "in trouble")
        critical_from = len(pings())
        await asyncio.sleep(0.5)
        assert len(pings()) == critical_from
        flaky.set_status(ModuleStatus.HEALTHY, "fine")
        await wait_pings(critical_from + 2)
        await orch.stop_all()
        await bus.aclose()
        assert notes[-1][1] == "STOPPING=1"

    run(main())
