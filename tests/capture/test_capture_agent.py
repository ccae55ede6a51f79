"""The agent's asyncio side against the real ingest server (DataCapture on loopback): events
queued from the summariser arrive, an idle agent pings so the Pi's idle timeout does not close
its connection, and the control socket answers."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from bus import Bus, ModuleRegistry
from bus.messages import RawEvent
from modules.data_capture import DataCapture, IngestConfig
from modules.ingest.client import IngestClient, Spool, Target
from skelly.capture import agent as agent_mod
from skelly.capture import control
from skelly.capture.summariser import Summariser
from tests.slowness import allow

Run = Callable[[Coroutine[Any, Any, Any]], Any]
TOKEN = "capture-agent-test-token-abcdefghijklmnopqrstu"


class Sink:
    def __init__(self) -> None:
        self.events: list[RawEvent] = []

    async def commit(self, events: Sequence[RawEvent]) -> int:
        self.events.extend(events)
        return len(events)

    async def resume_point(self, host_id: str, session_id: str) -> int:
        return max((e.seq for e in self.events if e.session_id == session_id), default=0)


async def _until(what: str, done: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + allow(timeout)
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def _scenario(tmp: Path, idle_timeout: float) -> tuple[int, list[str]]:
    """Run an agent for 3 idle timeouts after one key; (connections made, its messages)."""
    sink = Sink()
    bus = Bus(ModuleRegistry())
    server = DataCapture(
        IngestConfig(port=0, max_events_per_s=0.0, idle_timeout_s=idle_timeout),
        sink=sink,
        token=TOKEN,
    )
    await server.start(bus)
    client = IngestClient(
        Target("127.0.0.1", server.port),
        TOKEN,
        host_id="h",
        session_id="capture-s",
        spool=Spool(tmp / "spool.ndjson", "h", "capture-s"),
        backoff=(0.05, 0.05),
    )
    await client.start()
    summariser = Summariser()
    lock = threading.Lock()
    said: list[str] = []
    agent = agent_mod.CaptureAgent(
        client, summariser, lock, control_path=tmp / "c.sock", tick_s=0.05, say=said.append
    )
    task = asyncio.create_task(agent.run())
    try:
        with lock:
            summariser.key(time.time(), True)
        await _until("the key stored", lambda: len(sink.events) == 1)
        assert sink.events[0].kind == "key" and sink.events[0].attrs == (("correction", True),)
        st = await asyncio.to_thread(control.request, tmp / "c.sock", {"cmd": "status"})
        assert st["connected"] is True and st["events_per_min"] == 1.0
        await asyncio.sleep(3 * idle_timeout)  # idle on purpose: does the connection survive?
        connects = client.connects
    finally:
        agent.stopping.set()
        await task
        await client.close()
        await server.stop()
        await bus.aclose()
    return connects, said


def test_idle_agent_pings_and_keeps_its_connection(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    idle_timeout = allow(0.4)
    monkeypatch.setattr(agent_mod, "PING_AFTER_S", idle_timeout / 4)
    connects, _ = run(_scenario(tmp_path, idle_timeout))
    assert connects == 1


def test_without_pings_the_pi_closes_the_idle_connection(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control for the test above: the same idle time without pings ends the connection."""
    idle_timeout = allow(0.4)
    monkeypatch.setattr(agent_mod, "PING_AFTER_S", float("inf"))
    connects, _ = run(_scenario(tmp_path, idle_timeout))
    assert connects >= 2


async def _serve(sink: Sink) -> tuple[DataCapture, Bus]:
    bus = Bus(ModuleRegistry())
    server = DataCapture(IngestConfig(port=0, max_events_per_s=0.0), sink=sink, token=TOKEN)
    await server.start(bus)
    return server, bus


def _client(port: int, session: str, spool: Path) -> IngestClient:
    return IngestClient(
        Target("127.0.0.1", port),
        TOKEN,
        host_id="h",
        session_id=session,
        spool=Spool(spool, "h", session),
        backoff=(0.05, 0.05),
    )


def test_reused_session_continues_after_what_the_pi_holds(run: Run, tmp_path: Path) -> None:
    """--session S again with an empty spool: numbering waits for the welcome's resume_seq, so
    the new events are not mistaken for duplicates of the earlier run's 1..5."""

    async def main() -> None:
        sink = Sink()
        server, bus = await _serve(sink)
        earlier = _client(server.port, "desk", tmp_path / "a.ndjson")
        await earlier.start()
        for i in range(5):
            await earlier.send({"kind": "key", "ts": 1_764_000_000.0 + i, "correction": False})
        await earlier.flush(allow(10))
        await earlier.close()
        client = _client(server.port, "desk", tmp_path / "b.ndjson")
        await client.start()
        summariser = Summariser()
        lock = threading.Lock()
        agent = agent_mod.CaptureAgent(
            client,
            summariser,
            lock,
            control_path=tmp_path / "c.sock",
            tick_s=0.05,
            hold_until_welcome=True,
        )
        with lock:  # captured before the first welcome
            summariser.key(1_764_000_100.0, True)
            summariser.key(1_764_000_100.5, False)
        task = asyncio.create_task(agent.run())
        try:
            await _until("7 events stored", lambda: len(sink.events) == 7)
        finally:
            agent.stopping.set()
            await task
            await client.close()
            await server.stop()
            await bus.aclose()
        assert [e.seq for e in sink.events] == [1, 2, 3, 4, 5, 6, 7]
        assert [e.attrs for e in sink.events[5:]] == [
            (("correction", True),),
            (("correction", False),),
        ]

    run(main())


def test_spools_left_by_earlier_runs_are_sent_at_start(run: Run, tmp_path: Path) -> None:
    async def main() -> None:
        spool_dir = tmp_path / "spool"
        old_path = spool_dir / "h-capture-old.ndjson"
        old = Spool(old_path, "h", "capture-old")
        old.lock()
        lines = [
            orjson.dumps({"kind": "key", "ts": 1_764_000_000.0 + s, "correction": False, "seq": s})
            for s in (1, 2, 3)
        ]
        old.open([])
        old.close(lines)  # what a stopped run leaves: its unacknowledged events
        assert old_path.exists()  # a crashed run's unacknowledged events

        sink = Sink()
        server, bus = await _serve(sink)
        client = _client(server.port, "capture-new", spool_dir / "h-capture-new.ndjson")
        await client.start()
        agent = agent_mod.CaptureAgent(
            client,
            Summariser(),
            threading.Lock(),
            control_path=tmp_path / "c.sock",
            tick_s=0.05,
            make_client=lambda session, spool: _client(server.port, session, spool.path),
        )
        task = asyncio.create_task(agent.run(spool_dir))
        try:
            await _until("the old session's events", lambda: len(sink.events) == 3)
            await _until("the old spool removed", lambda: not old_path.exists())
        finally:
            agent.stopping.set()
            await task
            await client.close()
            await server.stop()
            await bus.aclose()
        assert {e.session_id for e in sink.events} == {"capture-old"}
        assert [e.seq for e in sink.events] == [1, 2, 3]

    run(main())
