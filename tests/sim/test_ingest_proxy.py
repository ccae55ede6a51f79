"""Connection cuts mid-line through a fault-injecting TCP proxy: what is stored equals what was
sent, nothing twice (real TCP, real SQLite through modules.storage.Storage)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from bus import Bus, ModuleRegistry
from modules.data_capture import DataCapture, IngestConfig
from modules.ingest.client import IngestClient
from modules.storage import Storage, StorageConfig
from tests.sim.ingest_helpers import integrity, stored_seqs

Run = Callable[[Coroutine[Any, Any, Any]], Any]
TOKEN = "proxy-test-token-0123456789abcdefghijklmnop"


class CuttingProxy:
    """Forwards TCP to ``upstream``; each of the first ``cuts`` connections is aborted after a
    random number of bytes in one direction (host→Pi: mid-event; Pi→host: mid-ack), after
    forwarding only the part of the chunk before the cut point."""

    def __init__(self, upstream_port: int, cuts: int, rng: random.Random) -> None:
        self.upstream_port = upstream_port
        self.cuts_left = cuts
        self.cuts_done = 0
        self.cut_mid_line = 0
        self.rng = rng
        self.server: asyncio.Server | None = None
        self.port = 0
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            cw.transport.abort()
            return
        cut_up: int | None = None
        cut_down: int | None = None
        if self.cuts_left > 0:
            self.cuts_left -= 1
            if self.rng.random() < 0.7:
                cut_up = self.rng.randint(200, 8_000)  # after the hello, inside the events
            else:
                cut_down = self.rng.randint(60, 400)  # inside the welcome or an ack line
        done = asyncio.Event()

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter, cut: int | None) -> None:
            passed = 0
            try:
                while True:
                    data = await r.read(4096)
                    if not data:
                        break
                    if cut is not None and passed + len(data) >= cut:
                        part = data[: cut - passed]
                        w.write(part)
                        if part[-1:] != b"\n":
                            self.cut_mid_line += 1
                        self.cuts_done += 1
                        break
                    passed += len(data)
                    w.write(data)
                    await w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                done.set()

        up = asyncio.create_task(pump(cr, uw, cut_up))
        down = asyncio.create_task(pump(ur, cw, cut_down))
        try:
            await done.wait()
        except asyncio.CancelledError:
            pass  # the proxy is closing
        finally:
            for t in (up, down):
                t.cancel()
            for t in (up, down):
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            cw.transport.abort()
            uw.transport.abort()
            self.tasks.discard(task)


def test_cuts_mid_line_store_exactly_the_sent_set(run: Run, tmp_path: Path) -> None:
    db = tmp_path / "data"

    async def scenario() -> None:
        # group commit still groups, but a partial batch after a cut waits 50 ms, not 1 s
        storage = Storage(StorageConfig(commit_max_wait_s=0.05), db)
        await storage.open()
        bus = Bus(ModuleRegistry())
        capture = DataCapture(IngestConfig(port=0, max_events_per_s=0), sink=storage, token=TOKEN)
        await capture.start(bus)
        proxy = CuttingProxy(capture.port, cuts=40, rng=random.Random(7))
        await proxy.start()
        client = IngestClient(
            f"127.0.0.1:{proxy.port}",
            TOKEN,
            host_id="proxy-host",
            session_id="cut-1",
            backoff=(0.002, 0.02),
        )
        await client.start()
        ts = 1_764_300_000.0
        i = 0
        while proxy.cuts_done < 40 and i < 200_000:
            i += 1
            ts += 0.02
            if i % 3 == 0:
                await client.send({"kind": "key", "ts": ts, "correction": i % 7 == 0})
            elif i % 3 == 1:
                await client.send(
                    {"kind": "mouse", "ts": ts, "speed": 120.25, "clicks": 0, "span_ms": 500}
                )
            else:
                await client.send({"kind": "focus", "ts": ts, "category": "docs", "app_id": "d0c5"})
            if i % 500 == 0:
                await asyncio.sleep(0.005)  # spread the events over many connections
        await client.flush(timeout=60)
        sent = client.last_seq
        await client.close()
        await proxy.close()
        await capture.stop()
        await storage.close()
        await bus.aclose()
        assert proxy.cuts_done == 40, (proxy.cuts_done, i)
        assert proxy.cut_mid_line >= 25, proxy.cut_mid_line
        assert client.connects >= 30
        assert client.refused_count == 0
        seqs = await asyncio.to_thread(stored_seqs, db, "proxy-host", "cut-1")
        assert len(seqs) == len(set(seqs)), "an event was stored twice"
        assert seqs == list(range(1, sent + 1)), "stored set differs from the sent set"
        assert await asyncio.to_thread(integrity, db) == ["ok"]

    run(scenario())
