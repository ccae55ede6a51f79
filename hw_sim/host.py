"""Simulated host: replays a scenario through the real ingest protocol, time-compressed.

``SimulatedHost(scenario, clock, client)`` sends every event of a
:class:`~hw_sim.scenarios.Scenario` when the :class:`~hw_sim.clock.SimClock` reaches the event's
``ts``, through an :class:`~modules.ingest.client.IngestClient` (the same client ``skelly send``
uses: real TCP or Unix socket, hello with token, cumulative durable acks, resume after a
reconnect).  With ``SimClock(speed=60)`` a 30-minute scenario plays in 30 s, and because Storage
and Analysis are given the same clock every window and duration is in event time.

    clock = SimClock(60.0, start=sc.start)
    client = IngestClient(f"127.0.0.1:{port}", token, host_id="sim-host", session_id="sim-1")
    await client.start()
    host = SimulatedHost(sc, clock, client)
    await host.run()              # returns when every event was handed to the client
    await client.flush()          # ... and acknowledged (durably stored) by the Pi

Events keep their scripted ``ts`` (when they happened); the client numbers them (``seq``), so a
host can replay several scenarios on one session.  The host sends everything that is due, then
sleeps until the next event is due: at 60x a busy typing minute is a few hundred events per real
second, well within the Pi's default limit of 2000 events/s per connection.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hw_sim.clock import SimClock
from hw_sim.scenarios import Scenario
from modules.ingest.client import IngestClient
from modules.storage import StorageConfig

__all__ = ["HostStats", "SimulatedHost", "compressed_storage_config", "stream_scenario"]

MAX_LATE_START_S = 60.0
"""A scenario may start at most this far (event time) before the clock's now ..."""
MAX_LATE_START_REAL_S = 10.0
"""... or this many seconds of real time at the clock's speed, whichever is more: a scenario
generated for ``clock.now()`` on a busy machine may be a few real seconds late by the time it is
checked (at 60x one real second is a minute of event time); its due events are sent at once.  A
scenario generated for another time is still refused."""


@dataclass
class HostStats:
    sent: int = 0
    """Events handed to the client."""
    max_lag_s: float = 0.0
    """Largest difference between the clock and an event's ts when it was sent (event time)."""
    state_changes: list[tuple[float, str]] = field(default_factory=list)
    """(time, scripted state) at each scripted segment start, as it was passed."""


class SimulatedHost:
    """Streams one scenario's events in (compressed) real time through an ingest client."""

    def __init__(
        self,
        scenario: Scenario,
        clock: SimClock,
        client: IngestClient,
        *,
        on_segment: Callable[[float, str], None] | None = None,
    ) -> None:
        self.scenario = scenario
        self.clock = clock
        self.client = client
        self.on_segment = on_segment
        self.stats = HostStats()
        self._timing_checked = False

    def check_timing(self) -> None:
        """Refuse a scenario that lies in the clock's past (it would be sent in one burst).

        :meth:`run` checks on its first call unless this was called before: a caller that must
        connect first (:func:`stream_scenario`) checks *before* connecting, so a connection that
        takes long on a slow machine (while a compressed clock runs on) is not mistaken for a
        scenario generated in the past; the events that became due meanwhile are sent at once."""
        now = self.clock.now()
        allowance = max(MAX_LATE_START_S, MAX_LATE_START_REAL_S * self.clock.speed)
        if self.scenario.start < now - allowance:
            raise ValueError(
                f"scenario {self.scenario.name!r} starts at {self.scenario.start:.0f} but the "
                f"clock is already at {now:.0f}; generate it with start=clock.now() or give the "
                "SimClock start=scenario.start"
            )
        self._timing_checked = True

    async def run(self) -> int:
        """Send every event when it is due; returns the number sent."""
        if not self._timing_checked:
            self.check_timing()
        events = self.scenario.events
        spans = list(self.scenario.truth)
        i = 0
        while i < len(events):
            now = self.clock.now()
            while spans and spans[0].start <= now:
                span = spans.pop(0)
                self.stats.state_changes.append((span.start, span.state.value))
                if self.on_segment is not None:
                    self.on_segment(span.start, span.state.value)
            due = events[i]["ts"]
            if due > now:
                next_at = min(due, spans[0].start) if spans else due
                await self.clock.sleep_until(next_at)
                continue
            while i < len(events) and events[i]["ts"] <= now:
                await self.client.send(_without_seq(events[i]))
                self.stats.max_lag_s = max(self.stats.max_lag_s, now - events[i]["ts"])
                self.stats.sent += 1
                i += 1
            # let the client's writer run between bursts
            await asyncio.sleep(0)
        return self.stats.sent

    async def run_until_end(self) -> int:
        """:meth:`run`, then wait (in event time) until the scenario's end."""
        n = await self.run()
        if math.isfinite(self.scenario.end):
            await self.clock.sleep_until(self.scenario.end)
        return n


def _without_seq(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != "seq"}


def compressed_storage_config(config: StorageConfig, speed: float) -> StorageConfig:
    """Storage settings that keep up with a clock running ``speed`` times too fast.

    Group commit waits in *real* time (a 1 s wait at 60x is a minute of event time, so events
    would reach the window buffer after their window closed): commit at once.  The window grace
    is event time: give at least 100 ms of real time for the last commits before a window
    closes.
    """
    if not speed > 0:
        raise ValueError(f"clock speed must be positive, got {speed!r}")
    return dataclasses.replace(
        config,
        commit_max_wait_s=0.0,
        window_grace_s=max(config.window_grace_s, 0.1 * speed),
    )


async def stream_scenario(
    scenario: Scenario,
    clock: SimClock,
    target: str,
    token: str,
    *,
    host_id: str = "sim-host",
    session_id: str = "sim-1",
    connect_timeout: float = 10.0,
    flush_timeout: float = 30.0,
) -> HostStats:
    """Connect an IngestClient to ``target`` (``host:port`` or ``unix:/path``), stream the
    scenario in compressed time, wait until everything is acknowledged, close."""
    client = IngestClient(target, token, host_id=host_id, session_id=session_id)
    host = SimulatedHost(scenario, clock, client)
    host.check_timing()  # before connecting: see SimulatedHost.check_timing
    await client.start()
    try:
        await client.wait_connected(timeout=connect_timeout)
        await host.run()
        await client.flush(timeout=flush_timeout)
        return host.stats
    finally:
        await client.close()
