"""The bus module :class:`Storage` and its config: commit path, windows, aggregates, retention,
status, module state (the package docstring, ``modules.storage``, has the whole story)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import math
import os
import sqlite3
import statistics
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bus import Delivery, Envelope, ModuleId, ModuleStatus, Priority
from bus.messages import AnalysisComplete, EventBatch, RawEvent, StorageStatus
from modules.base import Module
from modules.lockfile import try_lock, write_holder
from modules.storage.db import (
    LOCK_SUFFIX,
    Database,
    OpenResult,
    StorageError,
    check_pragmas,
    database_path,
    delete_corrupt_copies,
    ensure_dir,
    is_corruption,
    open_database,
)
from modules.storage.writer import Writer, WriterClosedError, WriterStats

log = logging.getLogger("skelly.storage")

Clock = Callable[[], float]

MAX_WINDOW_HOSTS = 16
"""Hosts that get windows (the analysis tracks as many); the one silent longest goes first."""
Sleep = Callable[[float], Awaitable[Any]]


@dataclass(frozen=True)
class StorageConfig:
    filename: str = "skelly.db"
    """Database file name inside the data directory."""
    commit_max_wait_s: float = 1.0
    """Group commit: the longest an event waits for companions before its transaction starts.
    0 commits at once whenever the writer is idle.  Fewer transactions = fewer fsyncs = less
    SD-card wear."""
    commit_batch_events: int = 100
    """Group commit: start the transaction at once when this many events are waiting."""
    window_s: float = 30.0
    """Length of an EventBatch window (event time, seconds)."""
    emit_every_s: float = 10.0
    """An EventBatch is published every this many seconds of event time."""
    window_grace_s: float = 1.5
    """A window ending at T is published at T + grace, so events acknowledged late are in it."""
    window_max_events: int = 20_000
    """Upper bound of the in-memory window buffer (oldest dropped and counted beyond it)."""
    aggregate_bucket_s: float = 60.0
    """Per-host aggregates are stored for buckets of this length (must be a multiple of
    emit_every_s)."""
    raw_retention_hours: float = 24.0
    """Raw timing events are deleted after this many hours (keystroke timing can identify a
    person)."""
    aggregate_retention_days: float = 365.0
    """Windowed aggregates and the state history are kept this many days."""
    purge_interval_s: float = 600.0
    """How often (event time) the retention purge runs."""
    status_interval_s: float = 30.0
    """How often (real time) StorageStatus is published."""
    integrity_check_on_start: bool = True
    """Run PRAGMA quick_check when opening after an unclean shutdown (skipped after a clean one:
    its time grows with the database); a damaged database is moved aside."""

    def __post_init__(self) -> None:
        positive = (
            "window_s",
            "emit_every_s",
            "aggregate_bucket_s",
            "raw_retention_hours",
            "aggregate_retention_days",
            "purge_interval_s",
            "status_interval_s",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"storage.{name} must be > 0, got {getattr(self, name)!r}")
        if self.commit_max_wait_s < 0 or self.commit_max_wait_s > 10:
            raise ValueError(
                f"storage.commit_max_wait_s must be between 0 and 10, got {self.commit_max_wait_s}"
            )
        if self.commit_batch_events < 1:
            raise ValueError("storage.commit_batch_events must be >= 1")
        if self.window_grace_s < 0:
            raise ValueError("storage.window_grace_s must be >= 0")
        if self.window_max_events < 1:
            raise ValueError("storage.window_max_events must be >= 1")
        ratio = self.aggregate_bucket_s / self.emit_every_s
        if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
            raise ValueError(
                "storage.aggregate_bucket_s must be a whole multiple of storage.emit_every_s "
                f"(got {self.aggregate_bucket_s} and {self.emit_every_s})"
            )
        if not self.filename or "/" in self.filename:
            raise ValueError(f"storage.filename must be a plain file name, got {self.filename!r}")


def database_file(data_dir: str | os.PathLike[str], config: StorageConfig) -> Path:
    """Where the service keeps its database for a given data directory."""
    return Path(data_dir).expanduser() / config.filename


def lock_file(db: Path) -> Path:
    return db.with_name(db.name + LOCK_SUFFIX)


class DatabaseLockedError(StorageError):
    """Another process (a running service) holds the database."""


def acquire_lock(db: Path) -> int:
    """Take the exclusive lock file next to ``db``; return its fd.  Raise if someone holds it."""
    lock_path = lock_file(db)
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StorageError(
            f"cannot create the lock file {lock_path}: {exc.strerror}; "
            "the data directory must be writable by the service user"
        ) from exc
    holder = try_lock(fd)
    if holder is not None:
        who = f" (pid {holder})" if holder else ""
        raise DatabaseLockedError(
            f"the database {db} is in use by another skelly process{who}; "
            "stop the service first (e.g. `sudo systemctl stop skelly`)"
        )
    write_holder(fd)
    return fd


def release_lock(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def bucket_stats(events: Sequence[RawEvent]) -> dict[str, Any]:
    """Aggregates of one host's events in one bucket (timing and categories only)."""
    kinds: dict[str, int] = {}
    categories: dict[str, int] = {}
    corrections = clicks = 0
    speed_sum = 0.0
    speed_n = 0
    idle_s = 0.0
    for ev in events:
        kinds[ev.kind] = kinds.get(ev.kind, 0) + 1
        if ev.kind == "key":
            corrections += 1 if ev.get("correction") else 0
        elif ev.kind == "mouse":
            clicks += int(ev.get("clicks", 0) or 0)
            speed = ev.get("speed")
            if isinstance(speed, (int, float)) and not isinstance(speed, bool):
                speed_sum += float(speed)
                speed_n += 1
        elif ev.kind == "focus":
            cat = str(ev.get("category", "other"))
            categories[cat] = categories.get(cat, 0) + 1
        elif ev.kind == "idle":
            dur = ev.get("duration_s", 0.0)
            if isinstance(dur, (int, float)) and not isinstance(dur, bool):
                idle_s += float(dur)
    return {
        "kinds": kinds,
        "corrections": corrections,
        "clicks": clicks,
        "mouse_speed_mean": speed_sum / speed_n if speed_n else 0.0,
        "focus_switches": kinds.get("focus", 0),
        "categories": categories,
        "idle_s": idle_s,
    }


class _HostClock:
    """One host's clock as seen through its committed batches: a steady clock plus the median
    offset of the newest timestamp of its last ``keep`` batches (as
    :class:`modules.event_clock.HostTimeFollower`, but per host)."""

    def __init__(self, keep: int = 31) -> None:
        self._offsets: deque[float] = deque(maxlen=keep)
        self._offset = 0.0

    def observe(self, ts: float, steady: Clock) -> None:
        self._offsets.append(ts - steady())
        self._offset = statistics.median(self._offsets)

    def now(self, steady: Clock) -> float:
        return steady() + self._offset


class Storage(Module):
    """The durable store; implements DataCapture's ``EventSink`` (``commit``/``resume_point``)."""

    name = ModuleId.STORAGE

    def __init__(
        self,
        config: StorageConfig | None = None,
        path: str | os.PathLike[str] | None = None,
        *,
        clock: Clock = time.time,
        sleep: Sleep | None = None,
        steady: Clock = time.monotonic,
    ) -> None:
        """``path`` is the database file or the directory to keep it in (``config.filename``
        inside).  ``clock`` gives EVENT time (host wall-clock seconds; a SimClock's ``now`` in the
        simulator); ``sleep(seconds)`` waits that many seconds of the same clock (default
        ``asyncio.sleep``; pass the SimClock's sleep with time compression).  ``steady`` is a
        clock that never jumps (default ``time.monotonic``; a fake clock in tests): each host's
        own clock, which the retention measures ages on, is estimated as ``steady()`` plus an
        offset from its timestamps."""
        super().__init__()
        self.config = config or StorageConfig()
        self._path_arg = path
        self.clock = clock
        self._sleep: Sleep = sleep or asyncio.sleep
        self._steady = steady
        self._host_clocks: dict[str, _HostClock] = {}
        self._writer: Writer | None = None
        self._lock_fd: int | None = None
        self.open_result: OpenResult | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._problem = ""
        self.events_total = 0
        self.last_commit_ts = 0.0
        # windows
        self._windowing = False
        self._buffer: list[RawEvent] = []
        self._buffer_dropped = 0
        self._next_k: int | None = None
        self._hosts: dict[str, None] = {}
        """Hosts seen (most recent last, at most ``MAX_WINDOW_HOSTS``): each gets a window every
        step, an empty one when it sent nothing in it."""
        self.windows_emitted = 0
        self.purges = 0
        """Retention purges run by the periodic task."""
        self.corrupt_copies_deleted = 0
        """Files of databases moved aside as corrupt that the raw retention deleted."""
        # state segments from AnalysisComplete: [start, end, state, windows, confidence_sum]
        self._segment: list[Any] | None = None

    # -- paths ------------------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        if self._path_arg is None:
            raise StorageError(
                "Storage needs a database path or directory: Storage(config, config.state_dir())"
            )
        p = Path(self._path_arg).expanduser()
        if p.is_dir() or (not p.exists() and p.suffix == ""):
            return p / self.config.filename
        return database_path(p)

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    @property
    def writer_stats(self) -> WriterStats:
        return self._require_writer().stats

    # -- open / close -----------------------------------------------------------------------------
    async def open(self) -> OpenResult:
        """Open the database and start the writer.  Idempotent.  A corrupt database is moved
        aside and a fresh one created (``open_result.recovered`` says so)."""
        if self._writer is not None:
            assert self.open_result is not None
            return self.open_result
        db_path = self.path
        await asyncio.to_thread(ensure_dir, db_path.parent)
        self._lock_fd = await asyncio.to_thread(acquire_lock, db_path)
        try:
            db, result = await asyncio.to_thread(
                open_database,
                db_path,
                check=self.config.integrity_check_on_start,
                now=time.time(),
            )
            try:
                self.events_total = await asyncio.to_thread(db.count_events)
            except sqlite3.DatabaseError as exc:
                await asyncio.to_thread(db.close)
                if not is_corruption(exc):
                    raise StorageError(f"cannot read the database {db_path}: {exc}") from exc
                # damage the skipped integrity check would have found: check now, which moves
                # the file aside and starts a fresh one
                db, result = await asyncio.to_thread(
                    open_database, db_path, check=True, now=time.time()
                )
                self.events_total = await asyncio.to_thread(db.count_events)
        except OSError as exc:  # e.g. moving a damaged file aside failed: no crash loop
            release_lock(self._lock_fd)
            self._lock_fd = None
            raise StorageError(f"cannot open the database {db_path}: {exc}") from exc
        except BaseException:
            release_lock(self._lock_fd)
            self._lock_fd = None
            raise
        self.open_result = result
        self._writer = Writer(
            db,
            max_wait_s=self.config.commit_max_wait_s,
            batch_events=self.config.commit_batch_events,
            on_error=self._writer_error_threadside,
        )
        self._writer.start()
        if result.recovered:
            log.error("storage: %s", result.recovered)
            self._problem = result.recovered
        return result

    async def close(self) -> None:
        """Finish pending writes and close (every acknowledged commit is already durable)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            if writer.alive and not writer.stats.failures:
                # nothing failed while open: the next open may skip the integrity check
                with contextlib.suppress(Exception):
                    await writer.call(lambda db: db.mark_clean_shutdown())
            await writer.close()
        if self._lock_fd is not None:
            release_lock(self._lock_fd)
            self._lock_fd = None

    async def __aenter__(self) -> Storage:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _require_writer(self) -> Writer:
        if self._writer is None:
            raise StorageError("storage is not open; call `await storage.open()` first")
        return self._writer

    # -- EventSink --------------------------------------------------------------------------------
    async def commit(self, events: Sequence[RawEvent]) -> int:
        """Store ``events`` durably; return how many were new.  Returns only after the WAL is
        fsynced (``synchronous=FULL``).  Raises :class:`StorageError` if the write failed —
        then none of these events is acknowledged."""
        if not events:
            return 0
        writer = self._require_writer()
        try:
            new = await writer.commit(events)
        except WriterClosedError as exc:
            raise StorageError(str(exc)) from exc
        except Exception as exc:
            self._trouble(f"commit failed: {exc}")
            raise StorageError(
                f"could not store {len(events)} events: {exc}; they are not acknowledged"
            ) from exc
        self.events_total += len(new)
        self.last_commit_ts = self.clock()
        self._observe_hosts(events)
        if new and self._windowing:
            self._buffer_new(new)
        return len(new)

    async def resume_point(self, host_id: str, session_id: str) -> int:
        """Highest seq stored for that session (0 if none); kept even after retention."""
        writer = self._require_writer()
        return await writer.call(lambda db: db.resume_point(host_id, session_id))

    # -- key/value state (Gamification progress) --------------------------------------------------
    async def get_state(self, key: str) -> Any:
        """The JSON value stored under ``key`` (decoded), or None."""
        raw = await self._require_writer().call(lambda db: db.get_state(key))
        return None if raw is None else orjson.loads(raw)

    async def put_state(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value (or a JSON text given as bytes) durably under
        ``key``."""
        if not isinstance(key, str) or not key or len(key) > 200:
            raise ValueError(f"state key must be a non-empty string of <= 200 chars, got {key!r}")
        if isinstance(value, (bytes, bytearray)):
            try:
                orjson.loads(value)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"state value for {key!r} is not valid JSON: {exc}") from None
            text = bytes(value).decode()
        else:
            try:
                text = orjson.dumps(value).decode()
            except TypeError as exc:
                raise ValueError(
                    f"state value for {key!r} is not JSON-serialisable: {exc}"
                ) from None
        now = self.clock()

        def put(db: Database) -> None:
            with db.transaction():
                db.put_state(key, text, now)

        await self._require_writer().call(put)

    async def delete_state(self, key: str) -> bool:
        def delete(db: Database) -> bool:
            with db.transaction():
                return db.delete_state(key)

        return await self._require_writer().call(delete)

    # -- retention --------------------------------------------------------------------------------
    def _observe_hosts(self, events: Sequence[RawEvent]) -> None:
        """Feed each host's clock estimate with the newest timestamp of its committed batch."""
        steady = self._steady
        first, last = events[0], events[-1]
        if first.host_id == last.host_id:  # DataCapture commits one connection's batch
            newest = {last.host_id: last.ts}
        else:
            newest = {}
            for ev in events:
                newest[ev.host_id] = ev.ts
        for host, ts in newest.items():
            clock = self._host_clocks.get(host)
            if clock is None:
                clock = self._host_clocks[host] = _HostClock()
            clock.observe(ts, steady)

    def host_now(self, host_id: str) -> float | None:
        """The estimate of ``host_id``'s own clock (None before anything of it was seen)."""
        clock = self._host_clocks.get(host_id)
        return None if clock is None else clock.now(self._steady)

    async def _raw_cutoffs(self, now: float | None) -> dict[str | None, tuple[float, float]]:
        """Per host: delete its raw events stamped before/after these (None = every host)."""
        keep = self.config.raw_retention_hours * 3600.0
        if now is not None:
            return {None: (now - keep, now + keep)}
        known = set(self._host_clocks)

        def unknown_hosts(db: Database) -> dict[str, float]:
            seeds = {}
            for host in db.hosts_with_events():
                if host not in known:
                    recent = db.recent_ts(host)
                    if recent:
                        seeds[host] = statistics.median(recent)
            return seeds

        # hosts stored before this start: their newest timestamps are a lower bound of their
        # clock (time has only passed since), robust to a few mis-stamped events
        seeds = await self._require_writer().call(unknown_hosts)
        steady = self._steady
        for host, ts in seeds.items():
            self._host_clocks.setdefault(host, _HostClock()).observe(ts, steady)
        floor = self.clock()
        cutoffs: dict[str | None, tuple[float, float]] = {}
        for host, clock in self._host_clocks.items():
            host_now = clock.now(steady)
            # old only if old by the host's own clock AND by event time; ahead only if ahead
            # of both: another host's wrong clock never deletes this host's fresh events
            cutoffs[host] = (min(floor, host_now) - keep, max(floor, host_now) + keep)
        return cutoffs

    async def purge(self, now: float | None = None) -> tuple[int, int]:
        """Delete raw events older than the raw retention and aggregates/state segments older
        than the aggregate retention; returns (events deleted, aggregate rows deleted).  Runs in
        chunks so commits interleave; then hands the free pages back to the filesystem and
        checkpoints, so nothing purged stays readable in the database file or its WAL.

        A raw event's age is measured on its own host's clock (estimated from the timestamps of
        its committed batches, like event time) with event time (``clock``) as a floor: it is
        deleted only when older than ``raw_retention_hours`` by both, or stamped that much ahead
        of both.  ``now`` replaces every clock (tools, tests)."""
        writer = self._require_writer()
        cutoffs = await self._raw_cutoffs(now)
        floor = self.clock() if now is None else now
        raw_cutoff = floor - self.config.raw_retention_hours * 3600.0
        agg_cutoff = floor - self.config.aggregate_retention_days * 86400.0
        limit = 5000
        deleted = 0
        for host, (before, after) in cutoffs.items():

            def chunk(
                db: Database, host: str | None = host, b: float = before, a: float = after
            ) -> int:
                with db.transaction():
                    return db.purge_events(b, limit, a, host)

            while True:
                n = await writer.call(chunk)
                deleted += n
                if n < limit:
                    break

        def rest(db: Database) -> int:
            with db.transaction():
                n = db.purge_aggregates(agg_cutoff)
            freed = db.incremental_vacuum()
            if deleted or n or freed:
                busy, _, _ = db.checkpoint("TRUNCATE")
                if busy:
                    log.warning(
                        "retention purge: a reader kept the WAL from being checkpointed; "
                        "purged pages stay in %s-wal until the next checkpoint",
                        db.path.name,
                    )
            return int(n)

        agg_deleted = await writer.call(rest)
        # a database moved aside as corrupt holds raw events too: it gets the raw retention,
        # counted from when it was moved aside
        gone = await asyncio.to_thread(delete_corrupt_copies, self.path, raw_cutoff)
        if gone:
            self.corrupt_copies_deleted += len(gone)
            log.info("retention purge: deleted %s", ", ".join(p.name for p in gone))
        self.events_total = max(0, self.events_total - deleted)
        if deleted or agg_deleted:
            log.info("retention purge: %d raw events, %d aggregate rows", deleted, agg_deleted)
        return deleted, agg_deleted

    # -- windows ----------------------------------------------------------------------------------
    def feed_windows(self, events: Sequence[RawEvent]) -> None:
        """Add events to the window buffer exactly as a commit does, without the database or the
        bus (``skelly replay`` drives the windows itself with :meth:`emit_due`)."""
        self._buffer_new(events)

    def _buffer_new(self, new: Sequence[RawEvent]) -> None:
        # a clock that stepped back since the last window (the first host seen is behind the
        # Pi's wall clock) must move the grid before the horizon check, or the events committed
        # until the next window tick would be older than the old grid's horizon and left out
        self._regrid_if_stepped_back(self.clock())
        horizon = self._horizon()
        buf = self._buffer
        for ev in new:
            if ev.ts >= horizon:
                buf.append(ev)
        self._note_hosts(new)
        over = len(buf) - self.config.window_max_events
        if over > 0:
            del buf[:over]
            self._buffer_dropped += over

    def _span(self) -> float:
        return max(self.config.window_s, self.config.aggregate_bucket_s)

    def _horizon(self) -> float:
        if self._next_k is None:
            return -math.inf
        return self._next_k * self.config.emit_every_s - self._span()

    def start_windows(self, now: float | None = None) -> None:
        """Fix the window grid: the first window published is the first one whose end + grace
        is after ``now`` (nothing is published for the past)."""
        cfg = self.config
        now = self.clock() if now is None else now
        self._next_k = math.floor((now - cfg.window_grace_s) / cfg.emit_every_s + 1e-9) + 1

    def emit_due(self, now: float | None = None) -> list[EventBatch]:
        """Publish every window whose end + grace has passed at ``now`` (event time) and store
        the aggregates of buckets that closed; return the batches published.  The periodic task
        calls this; tests call it with a fake clock."""
        cfg = self.config
        now = self.clock() if now is None else now
        every = cfg.emit_every_s
        due_k = math.floor((now - cfg.window_grace_s) / every + 1e-9)
        if self._next_k is None:
            self._next_k = due_k
        max_catchup = self._max_catchup()
        self._regrid_if_stepped_back(now)
        if due_k < self._next_k:
            return []
        if due_k - self._next_k >= max_catchup:
            # the clock jumped (suspend, clock step): emit only the last few windows
            self._next_k = due_k - max_catchup + 1
        batches: list[EventBatch] = []
        per_bucket = round(cfg.aggregate_bucket_s / every)
        aggregates: list[tuple[str, float, float, int, dict[str, Any]]] = []
        while self._next_k <= due_k:
            end = self._next_k * every
            start = end - cfg.window_s
            batches.extend(self._window(start, end))
            if self._next_k % per_bucket == 0:
                aggregates.extend(self._aggregates(end - cfg.aggregate_bucket_s, end))
            self._next_k += 1
        horizon = self._horizon()
        self._buffer = [e for e in self._buffer if e.ts >= horizon]
        if self._bus is not None:
            for batch in batches:
                self.publish(batch)
        self.windows_emitted += len(batches)
        if aggregates and self._writer is not None:
            self._background(self._store_aggregates(aggregates), "storing aggregates")
        return batches

    def _max_catchup(self) -> int:
        return max(1, math.ceil(self.config.window_s / self.config.emit_every_s))

    def _regrid_if_stepped_back(self, now: float) -> None:
        """The clock stepped back further than the windows in flight (event time now follows a
        host whose clock is behind the Pi's, or the clock was set back): start the grid again
        from ``now``.  A smaller step back is left alone (nothing is emitted twice)."""
        if self._next_k is None:
            return
        cfg = self.config
        due_k = math.floor((now - cfg.window_grace_s) / cfg.emit_every_s + 1e-9)
        if self._next_k - due_k > self._max_catchup():
            self._next_k = due_k

    def _window(self, start: float, end: float) -> list[EventBatch]:
        evs = sorted((e for e in self._buffer if start <= e.ts < end), key=lambda e: (e.ts, e.seq))
        # every host seen gets its window (analysis needs empty windows to see IDLE); before
        # any host was seen, one empty window with host_id ""
        hosts: dict[str, list[RawEvent]] = {h: [] for h in self._hosts} or {"": []}
        for e in evs:
            hosts.setdefault(e.host_id, []).append(e)
        return [EventBatch(start, end, tuple(h), host) for host, h in hosts.items()]

    def _note_hosts(self, events: Sequence[RawEvent]) -> None:
        hosts = self._hosts
        if not events:
            return
        last = ""
        if events[0].host_id == events[-1].host_id:  # one connection's batch
            events = events[-1:]
        for e in events:
            if e.host_id != last:
                last = e.host_id
                hosts.pop(last, None)
                hosts[last] = None
        while len(hosts) > MAX_WINDOW_HOSTS:
            del hosts[next(iter(hosts))]

    def _aggregates(
        self, start: float, end: float
    ) -> list[tuple[str, float, float, int, dict[str, Any]]]:
        hosts: dict[str, list[RawEvent]] = {}
        for e in self._buffer:
            if start <= e.ts < end:
                hosts.setdefault(e.host_id, []).append(e)
        return [(h, start, end, len(evs), bucket_stats(evs)) for h, evs in hosts.items()]

    async def _store_aggregates(
        self, rows: list[tuple[str, float, float, int, dict[str, Any]]]
    ) -> None:
        def put(db: Database) -> None:
            with db.transaction():
                for row in rows:
                    db.put_aggregate(*row)

        await self._require_writer().call(put)

    async def _seed_buffer(self) -> None:
        now = self.clock()
        start = now - self._span() - self.config.emit_every_s - self.config.window_grace_s
        writer = self._require_writer()
        evs = await writer.call(lambda db: db.events_between(start, math.inf))
        last = await writer.call(lambda db: db.last_state_segment())
        if last is not None:
            self._segment = list(last)
        self._buffer = evs[-self.config.window_max_events :]
        self._note_hosts(evs)

    # -- analysis results -> state segments -------------------------------------------------------
    def _on_analysis(self, env: Envelope) -> None:
        msg = env.payload
        assert isinstance(msg, AnalysisComplete)
        seg = self._segment
        gap = 3 * self.config.emit_every_s
        if (
            seg is not None
            and seg[2] == msg.state.value
            and msg.window_end >= seg[1]
            and msg.window_end - seg[1] <= gap
        ):
            seg[1] = msg.window_end
            seg[3] += 1
            seg[4] += msg.confidence
        else:
            seg = [msg.window_end - self.config.emit_every_s, msg.window_end, msg.state.value, 1]
            seg.append(msg.confidence)
            self._segment = seg
        values = (float(seg[0]), float(seg[1]), str(seg[2]), int(seg[3]), float(seg[4]))

        def put(db: Database) -> None:
            with db.transaction():
                db.put_state_segment(*values)

        if self._writer is not None:
            self._background(self._require_writer().call(put), "storing the state history")

    # -- status -----------------------------------------------------------------------------------
    def _writer_error_threadside(self, exc: BaseException) -> None:
        bus = self._bus
        if bus is not None and bus.loop is not None:
            with contextlib.suppress(RuntimeError):
                bus.loop.call_soon_threadsafe(self._trouble, f"write failed: {exc}")

    def _trouble(self, detail: str) -> None:
        self._problem = detail
        log.error("storage: %s", detail)
        if self._bus is not None:
            self.set_status(ModuleStatus.DEGRADED, detail)
            self.publish(self.status_message(), priority=Priority.HIGH)

    def status_message(self) -> StorageStatus:
        writer = self._writer
        ok = writer is not None and writer.alive and not self._problem
        detail = self._problem or ("ok" if ok else "not open")
        if self._buffer_dropped:
            detail += f"; window buffer dropped {self._buffer_dropped} events (over the limit)"
        return StorageStatus(
            ok=ok,
            events_total=self.events_total,
            pending=writer.pending_events if writer is not None else 0,
            last_commit_ts=self.last_commit_ts,
            detail=detail,
        )

    def _background(self, coro: Awaitable[Any], what: str) -> None:
        async def guarded() -> None:
            try:
                await coro
            except Exception as exc:
                self._trouble(f"{what} failed: {exc}")

        task = asyncio.get_running_loop().create_task(guarded(), name=f"storage-{what}")
        self._tasks.append(task)
        task.add_done_callback(self._forget_task)

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)

    # -- module lifecycle -------------------------------------------------------------------------
    async def on_start(self) -> None:
        # a restart by the orchestrator starts from a clean slate
        self._problem = ""
        self._buffer_dropped = 0
        self._next_k = None
        try:
            result = await self.open()
        except StorageError as exc:
            # Never a crash loop: stay registered, say what is wrong, refuse commits.
            self._problem = str(exc)
            self.set_status(ModuleStatus.UNHEALTHY, str(exc))
            self.publish(self.status_message(), priority=Priority.HIGH)
            return
        if result.recovered:
            self.set_status(ModuleStatus.DEGRADED, result.recovered)
            self.publish(self.status_message(), priority=Priority.HIGH)
        self._windowing = True
        await self._seed_buffer()
        self.start_windows()
        self.subscribe(
            self._on_analysis,
            types=AnalysisComplete,
            sources=ModuleId.ANALYSIS,
            mode=Delivery.BEST_EFFORT,
            maxsize=256,
        )
        loop = asyncio.get_running_loop()
        self._tasks += [
            loop.create_task(self._window_loop(), name="storage-windows"),
            loop.create_task(self._purge_loop(), name="storage-retention"),
            loop.create_task(self._status_loop(), name="storage-status"),
        ]

    async def on_stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._windowing = False
        await self.close()

    async def _window_loop(self) -> None:
        cfg = self.config
        while True:
            assert self._next_k is not None
            due_at = self._next_k * cfg.emit_every_s + cfg.window_grace_s
            await self._sleep(max(0.0, due_at - self.clock()))
            try:
                self.emit_due()
            except Exception as exc:  # keep the windows coming; say what went wrong
                log.exception("storage: publishing a window failed")
                self._trouble(f"publishing a window failed: {exc}")
                self._next_k += 1

    async def _purge_loop(self) -> None:
        while True:
            try:
                await self.purge()
            except Exception as exc:
                self._trouble(f"retention purge failed: {exc}")
            self.purges += 1
            await self._sleep(self.config.purge_interval_s)

    async def _status_loop(self) -> None:
        while True:
            await self._check_pragmas()
            self.publish(self.status_message())
            await asyncio.sleep(self.config.status_interval_s)

    async def _check_pragmas(self) -> None:
        if self._writer is None:
            return
        try:
            await self._writer.call(lambda db: check_pragmas(db.conn))
        except StorageError as exc:
            self._problem = str(exc)
            self.set_status(ModuleStatus.UNHEALTHY, str(exc))
            self.publish(self.status_message(), priority=Priority.HIGH)

    def health(self) -> tuple[ModuleStatus, str]:
        writer = self._writer
        if self.status is ModuleStatus.HEALTHY and writer is not None and not writer.alive:
            return ModuleStatus.UNHEALTHY, "storage writer thread has stopped"
        return self.status, self.detail
