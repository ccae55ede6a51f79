"""Event time follows the host's clock: windows hold the host's events even when the Pi's wall
clock is hours off (a Pi without RTC or NTP), which the Pi's own clock cannot do."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from bus import Bus, Envelope, ModuleRegistry
from bus.messages import EventBatch
from modules.data_capture import DataCapture, IngestConfig
from modules.event_clock import HostTimeFollower, ObservingSink
from modules.ingest.client import IngestClient
from modules.storage import Storage, StorageConfig

Run = Callable[[Coroutine[Any, Any, Any]], Any]
TOKEN = "event-clock-test-token-0123456789abcdefghij"


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 500.0

    def __call__(self) -> float:
        return self.t


def test_follower_uses_the_wall_clock_until_a_host_speaks() -> None:
    mono = FakeMonotonic()
    clock = HostTimeFollower(fallback=lambda: 1000.0, monotonic=mono)
    assert clock.now() == 1000.0 and not clock.following
    clock.observe(5000.0)  # host is far ahead of the Pi's idea of the time
    assert clock.following and clock.now() == 5000.0
    mono.t += 12.5
    assert clock.now() == 5012.5  # advances on the monotonic clock between batches


def test_follower_ignores_a_lone_bogus_timestamp_and_old_resends() -> None:
    mono = FakeMonotonic()
    clock = HostTimeFollower(fallback=lambda: 0.0, monotonic=mono)
    for i in range(10):
        mono.t += 1.0
        clock.observe(2000.0 + i)
    assert abs(clock.now() - 2009.0) < 1e-9
    clock.observe(4_000_000_000.0)  # a far-future stamp
    clock.observe(100.0)  # an old event resent after a reconnect
    assert abs(clock.now() - 2009.0) < 1.0


def test_follower_holds_jitter_but_follows_a_real_step_back() -> None:
    mono = FakeMonotonic()
    clock = HostTimeFollower(fallback=lambda: 0.0, monotonic=mono, keep=1)
    clock.observe(3000.0)
    first = clock.now()
    clock.observe(2999.6)  # a slower delivery: jitter
    assert clock.now() == first
    clock.observe(2000.0)  # the host's clock was set back
    assert clock.now() == 2000.0


def test_storage_regrids_its_windows_when_the_clock_steps_back(tmp_path: Path) -> None:
    cfg = StorageConfig(window_s=30.0, emit_every_s=10.0, window_grace_s=1.0)
    storage = Storage(cfg, tmp_path / "db", clock=lambda: 0.0)
    storage.start_windows(now=10_000.0)
    assert [b.window_end for b in storage.emit_due(now=10_011.0)] == [10_000.0, 10_010.0]
    assert storage.emit_due(now=10_005.0) == []  # a small step back: nothing twice
    stepped = storage.emit_due(now=2_000.5 + 1.0)  # 8000 s back: grid starts again
    assert [b.window_end for b in stepped] == [2_000.0]
    assert [b.window_end for b in storage.emit_due(now=2_011.0)] == [2_010.0]


class ManualTime:
    """The Pi's monotonic clock, advanced only by the test; ``sleep`` waits on it (so Storage's
    window task runs exactly when the test moves time, however busy the machine is)."""

    def __init__(self) -> None:
        self.t = 500.0
        self._moved = asyncio.Condition()

    def __call__(self) -> float:
        return self.t

    async def advance(self, dt: float) -> None:
        self.t += dt
        async with self._moved:
            self._moved.notify_all()
        for _ in range(5):  # let the woken tasks run
            await asyncio.sleep(0)

    async def sleep(self, seconds: float) -> None:
        until = self.t + seconds
        async with self._moved:
            await self._moved.wait_for(lambda: self.t >= until)


async def _wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


SKEW = -7200.0
STEP = 0.2  # host seconds per chunk
PER_STEP = 10  # events per chunk: 50 per second


async def _windows_with_host_behind(
    tmp_path: Path, follow: bool
) -> tuple[list[EventBatch], list[float]]:
    """Host clock 2 h behind the Pi: stream 4 s of typing (host time), collect the windows.

    With ``follow`` the Pi's monotonic clock is a :class:`ManualTime` that moves one chunk at a
    time, each chunk durably acknowledged first: which window holds which event is then fixed,
    not a matter of how fast the machine is.  Without it Storage runs on the Pi's wall clock."""
    cfg = StorageConfig(
        window_s=3.0,
        emit_every_s=1.0,
        window_grace_s=0.3,
        commit_max_wait_s=0.0,
        aggregate_bucket_s=60.0,
    )
    mono = ManualTime()
    follower = HostTimeFollower(monotonic=mono)
    if follow:
        storage = Storage(cfg, tmp_path / "db", clock=follower.now, sleep=mono.sleep)
    else:
        storage = Storage(cfg, tmp_path / "db", clock=time.time)
    bus = Bus(ModuleRegistry())
    batches: list[EventBatch] = []

    def on_batch(env: Envelope) -> None:
        assert isinstance(env.payload, EventBatch)
        batches.append(env.payload)

    bus.subscribe(on_batch, types=EventBatch)
    sink = ObservingSink(storage, follower.observe)
    capture = DataCapture(IngestConfig(port=0, max_events_per_s=0), sink=sink, token=TOKEN)
    await storage.start(bus)
    await capture.start(bus)
    client = IngestClient(f"127.0.0.1:{capture.port}", TOKEN, host_id="h", session_id="s")
    await client.start()
    base = time.time() + SKEW
    sent: list[float] = []
    for chunk in range(round(4.0 / STEP)):
        for i in range(PER_STEP):
            ts = base + chunk * STEP + i * (STEP / PER_STEP)
            await client.send({"kind": "key", "ts": ts, "correction": False})
            sent.append(ts)
        await client.flush(timeout=30)  # durably committed, so in Storage's window buffer
        await mono.advance(STEP)
    if follow:
        last_end = math.floor(sent[-1] / cfg.emit_every_s + 1) * cfg.emit_every_s
        while not (batches and batches[-1].window_end >= last_end):
            await mono.advance(STEP)  # let the last windows close
            await _wait_for(lambda: storage.windows_emitted == len(batches), "the bus")
    else:
        seen = len(batches)
        await _wait_for(lambda: len(batches) > seen, "a window after the last commit")
    await client.close()
    await capture.stop()
    await storage.stop()
    await bus.aclose()
    return batches, sent


def test_windows_follow_a_host_clock_hours_away_from_the_pi(run: Run, tmp_path: Path) -> None:
    batches, sent = run(_windows_with_host_behind(tmp_path / "follow", follow=True))
    # the windows are cut on the host's time line (where its events lie), 2 h behind the Pi's:
    # judged against the events sent, not against the wall clock now (under emulation on a busy
    # machine the test itself can take more than a minute)
    assert all(sent[0] - 3.0 < b.window_end <= sent[-1] + 3.0 + 1.0 for b in batches), (
        [b.window_end - sent[0] for b in batches],
        sent[-1] - sent[0],
    )
    assert all(b.window_end < time.time() + SKEW / 2 for b in batches)
    # ... and each holds exactly the host's events of its span
    got = [(b.window_end, len(b.events)) for b in batches]
    want = [(b.window_end, sum(b.window_start <= t < b.window_end for t in sent)) for b in batches]
    assert got == want
    assert sum(n >= 100 for _, n in got) >= 2, got  # full 3 s windows (150 events) among them


def test_the_pis_own_clock_would_leave_those_windows_empty(run: Run, tmp_path: Path) -> None:
    batches, _sent = run(_windows_with_host_behind(tmp_path / "pi", follow=False))
    assert batches, "windows are still emitted on the Pi's clock"
    assert all(len(b.events) == 0 for b in batches), [len(b.events) for b in batches]
