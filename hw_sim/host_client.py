"""The simulated host's side of the ingest protocol (docs/INGEST.md).

The client itself is ``modules.ingest.client.IngestClient`` — the same code ``skelly send`` uses,
so the simulator exercises the real protocol path (real TCP or Unix socket, hello, token, durable
acks, resume after reconnect).  This module re-exports it for hw_sim code and adds
:func:`stream_events`, which feeds an (async) iterable of event dicts through a client.

    client = IngestClient(f"127.0.0.1:{capture.port}", token, host_id="sim-host",
                          session_id="sim-1")
    await client.start()
    await stream_events(client, scenario_events())   # dicts without seq; seq is assigned
    await client.flush()
    await client.close()
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable
from typing import Any

from modules.ingest.client import IngestClient, IngestClientError, Spool, Target

__all__ = ["IngestClient", "IngestClientError", "Spool", "Target", "stream_events"]


async def stream_events(
    client: IngestClient, events: Iterable[dict[str, Any]] | AsyncIterable[dict[str, Any]]
) -> int:
    """Send every event (waiting while the client's buffer is full); returns how many."""
    n = 0
    if isinstance(events, AsyncIterable):
        async for event in events:
            await client.send(event)
            n += 1
    else:
        for event in events:
            await client.send(event)
            n += 1
    return n
