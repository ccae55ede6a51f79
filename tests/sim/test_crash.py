"""Crash injection into each of the eight real modules in turn (issue 10): a task of the module
raises, or one of its handlers hangs.  The Orchestrator reports it Unhealthy, stops it, restarts
it after the backoff and it is Healthy again; meanwhile the other seven keep working — the
ingest keeps acknowledging events from a real client over TCP (when the module down is neither
Storage nor DataCapture, also while it is down; for those two, right after it is back).

Faults go in through public hooks only: ``Module.spawn`` (the module's own task) and
``Module.subscribe`` (a handler of the module).  The restart's wait is held open by a gate in
the Orchestrator's injected sleep, so "while it is down" is a state, not a guess about time."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import uvloop

from bus import Bus, Envelope, ModuleStatus
from bus.messages import ConfigUpdate
from modules.base import Module
from modules.ingest.client import IngestClient
from modules.orchestrator import Orchestrator
from skelly import app
from skelly.config import load
from tests.slowness import allow

S = ModuleStatus
EIGHT = [
    "EventBus",
    "Orchestrator",
    "Storage",
    "DataCapture",
    "AnalysisEngine",
    "Gamification",
    "AI",
    "CuteFigurine",
]
ACK_NEEDS = {"Storage", "DataCapture"}  # the modules an acknowledgement goes through


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    def __init__(self, tmp: Path) -> None:
        self.port = _free_port()
        config = tmp / "config.toml"
        config.write_text(
            f'data_dir = "{tmp / "state"}"\n'
            f"[ingest]\nport = {self.port}\n"
            "[storage]\ncommit_max_wait_s = 0.0\n"
            "[figurine]\nserial_enabled = false\n"
            "[orchestrator]\nhealth_interval_s = 0.2\nbackoff_initial_s = 0.01\n"
            "control_socket = false\n"
        )
        self.config = load(config, env={})
        self.token = "t" * 32
        self.gate = asyncio.Event()
        self.bus: Bus = app.make_bus(self.config)
        self.modules = app.build_modules(self.config, token=self.token)
        # the composition root's Orchestrator, with a sleep that holds restarts at the gate
        i = next(i for i, m in enumerate(self.modules) if isinstance(m, Orchestrator))
        self.orch = Orchestrator(self.config.orchestrator, sleep=self._sleep)
        self.modules[i] = self.orch
        self.transitions: dict[str, list[tuple[ModuleStatus, str]]] = {}
        self.bus.registry.on_change(
            lambda n, s, d: self.transitions.setdefault(n, []).append((s, d))
        )
        self.client: IngestClient | None = None
        self.ts = itertools.count()

    async def _sleep(self, seconds: float) -> None:
        task = asyncio.current_task()
        if task is not None and task.get_name().startswith("orchestrator.restart."):
            await self.gate.wait()
        await asyncio.sleep(seconds)

    def module(self, name: str) -> Module:
        return next(m for m in self.modules if m.name == name)

    def status(self, name: str) -> ModuleStatus:
        return self.bus.registry.module(name).effective

    async def start(self) -> None:
        await app.start_all(self.bus, self.modules)
        self.client = IngestClient(
            f"127.0.0.1:{self.port}",
            self.token,
            host_id="laptop",
            session_id="crash",
            backoff=(0.05, 0.3),
        )
        await self.client.start()

    async def acked(self, n: int = 5) -> None:
        """Send ``n`` events and wait until every one is acknowledged (durably stored)."""
        assert self.client is not None
        t0 = time.time() - 60
        for _ in range(n):
            await self.client.send(
                {"kind": "key", "ts": t0 + next(self.ts) * 0.15, "correction": False}
            )
        await self.client.flush(timeout=allow(20.0))
        assert self.client.acked == self.client.last_seq, list(self.client.refused)

    async def until(self, what: str, check: Any) -> None:
        deadline = time.monotonic() + allow(20.0)
        while not check():
            assert time.monotonic() < deadline, f"{what}: {self.transitions}"
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.close()
        await app.stop_all(self.modules)
        await self.bus.aclose()


def _run(coro: Any) -> Any:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


@pytest.mark.parametrize("fault", ["raise in its task", "hang in its handler"])
@pytest.mark.parametrize("name", EIGHT)
def test_each_module_crashed_is_restarted_and_the_others_keep_working(
    tmp_path: Path, name: str, fault: str
) -> None:
    async def main() -> None:
        svc = Service(tmp_path)
        await svc.start()
        try:
            await svc.acked()
            target = svc.module(name)
            svc.transitions.clear()
            if fault == "raise in its task":

                async def boom() -> None:
                    raise RuntimeError("injected fault")

                target.spawn(boom(), "injected")
                why = "crashed in " + name + ".injected: RuntimeError: injected fault"
            else:
                release = asyncio.Event()

                async def hang(env: Envelope) -> None:
                    await release.wait()

                target.subscribe(hang, types=ConfigUpdate, timeout=0.1)
                svc.bus.publish(ConfigUpdate("injected"), source="test")
                why = "hung"
            # down: Unhealthy with the reason, then stopped and waiting for its restart
            await svc.until(
                "stopped for a restart",
                lambda: (
                    svc.bus.registry.module(name).reported is S.STOPPED
                    and "restart 1 of at most" in svc.bus.registry.module(name).detail
                ),
            )
            assert why in svc.bus.registry.module(name).detail
            others = [m for m in EIGHT if m != name]
            if name not in ACK_NEEDS:
                await svc.acked()  # the pipeline still acknowledges while it is down
            for other in others:
                assert svc.orch.books[other].total == 0, other
                assert svc.status(other) in (S.HEALTHY, S.DEGRADED), (other, svc.status(other))
            svc.gate.set()
            await svc.until("healthy again", lambda: svc.status(name) is S.HEALTHY)
            seen = [s for s, _ in itertools.groupby(s for s, _ in svc.transitions[name])]
            assert seen == [S.UNHEALTHY, S.SHUTTING_DOWN, S.STOPPED, S.STARTING, S.HEALTHY]
            assert svc.orch.books[name].total == 1
            await svc.acked()  # and after it is back
            assert all(svc.orch.books[o].total == 0 for o in others)
        finally:
            await svc.stop()

    _run(main())
