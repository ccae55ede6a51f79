"""kill -9 of a real ingest service (Storage + DataCapture in its own process) during ingest,
50 times: no acknowledged event is ever lost, nothing is stored twice, the database stays sound."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from modules.ingest.client import IngestClient
from tests.sim.ingest_helpers import (
    free_port,
    integrity,
    make_token,
    start_service,
    stored_seqs,
)

KILLS = 50
HOST, SESSION = "crash-host", "crash-session"


@pytest.mark.slow
def test_kill9_during_ingest_never_loses_an_acknowledged_event(tmp_path: Path) -> None:
    token_file, token = make_token(tmp_path)
    db = tmp_path / "data"
    rng = random.Random(4)

    async def scenario() -> None:
        port = free_port()
        client = IngestClient(
            f"127.0.0.1:{port}",
            token,
            host_id=HOST,
            session_id=SESSION,
            backoff=(0.005, 0.05),
            connect_timeout=2.0,
            max_buffer=20_000,
        )
        await client.start()
        stop_producing = asyncio.Event()

        async def produce() -> None:
            ts = 1_764_200_000.0
            kinds = (
                {"kind": "key", "correction": False},
                {"kind": "mouse", "speed": 310.5, "clicks": 1, "span_ms": 1000},
                {"kind": "focus", "category": "code", "app_id": "c0ffee12"},
                {"kind": "idle", "duration_s": 31.0},
            )
            i = 0
            while not stop_producing.is_set():
                ts += 0.05
                await client.send({**kinds[i % 4], "ts": ts})
                i += 1
                if i % 200 == 0:
                    await asyncio.sleep(0)

        producer = asyncio.create_task(produce())
        advanced = 0
        in_flight = 0
        lost: list[str] = []
        started = time.monotonic()
        for n in range(KILLS):
            service = await start_service(db, token_file, port, "--uvloop")
            before = client.acked
            if n % 5 != 4:
                # mid-ingest: wait (event-driven, however slow the machine) until this service
                # has acknowledged something, then kill it a random moment later while the
                # producer keeps it busy; every fifth kill lands right after READY instead
                await _wait_until(lambda b=before: client.acked > b, f"kill {n}: no ack", 60.0)
                await asyncio.sleep(rng.uniform(0.0, 0.05))
            if client.last_seq > client.acked:
                in_flight += 1  # events were sent and not yet acknowledged at the kill
            await service.kill9()
            await asyncio.sleep(0)  # let the client's reader see what arrived before the kill
            acked = client.acked
            if acked > before:
                advanced += 1
            seqs = await asyncio.to_thread(stored_seqs, db, HOST, SESSION)
            prefix = seqs[:acked]
            if len(seqs) < acked or prefix != list(range(1, acked + 1)):
                lost.append(f"kill {n}: acked {acked} but stored {len(seqs)} (prefix broken)")
            if len(set(seqs)) != len(seqs):
                lost.append(f"kill {n}: duplicate seqs stored")
        stop_producing.set()
        service = await start_service(db, token_file, port, "--uvloop")
        await asyncio.wait_for(producer, 30)  # it may wait for buffer room until the restart
        await client.flush(timeout=30)
        last = client.last_seq
        await client.close()
        assert await service.terminate() == 0
        elapsed = time.monotonic() - started
        assert not lost, lost
        # the kills must have hit a live ingest with events in flight, else this proved little
        assert advanced >= KILLS * 4 // 5, f"acks advanced in only {advanced} of {KILLS} rounds"
        assert in_flight >= KILLS // 2, f"events in flight at only {in_flight} of {KILLS} kills"
        assert client.connects >= KILLS // 2
        seqs = await asyncio.to_thread(stored_seqs, db, HOST, SESSION)
        assert seqs == list(range(1, last + 1)), "stored set differs from the sent set"
        assert await asyncio.to_thread(integrity, db) == ["ok"]
        assert last > 1000
        print(
            f"{KILLS} kills in {elapsed:.1f} s, {last} events, {client.connects} connects, "
            f"{in_flight} with events in flight"
        )

    asyncio.run(scenario())


async def _wait_until(predicate: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.002)
