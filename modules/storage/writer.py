"""The writer thread: all SQLite work of the service happens here, never on the event loop.

Theory of operation
-------------------
Callers on the loop submit *jobs* and await an asyncio future.  Two kinds:

* **commit jobs** (a batch of RawEvents).  The thread takes every commit job that is waiting and
  writes them in ONE transaction: ``BEGIN IMMEDIATE`` → each caller's ``INSERT OR IGNORE`` →
  ``COMMIT`` (with WAL + ``synchronous=FULL`` the COMMIT returns after the WAL is fsynced).  Only
  then are the callers' futures resolved, each with the events of *its* batch that were new.  This
  is group commit: while one transaction is being fsynced, new callers queue up and share the
  next one.  The thread waits for more callers before starting a transaction while fewer than
  ``batch_events`` events are waiting and the oldest has waited less than ``max_wait_s``
  (``max_wait_s = 0`` commits at once whenever the thread is idle).
* **call jobs** (a function of the :class:`Database`): run one at a time, in order, right away
  (they do not wait for the group timer).  Used for resume points, purge chunks, aggregates,
  the key/value state, PRAGMA checks.

Each caller's inserts run under a savepoint: a caller whose batch fails (bad data) is rolled back
alone and gets the exception while its companions commit.  A failing transaction (full disk, I/O
error, the COMMIT itself) is rolled back and every caller in it gets the exception: nothing in it
was acknowledged.  Futures are resolved with ``loop.call_soon_threadsafe``; a caller that gave up
(cancelled future) is simply skipped.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bus.messages import RawEvent
from modules.storage.db import Database, check_pragmas

log = logging.getLogger("skelly.storage")

T = TypeVar("T")


@dataclass(slots=True)
class _Job:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    events: Sequence[RawEvent] | None = None
    fn: Callable[[Database], Any] | None = None
    enqueued: float = field(default_factory=time.monotonic)


class WriterClosedError(RuntimeError):
    """The storage writer has stopped; nothing more can be written."""


@dataclass
class WriterStats:
    transactions: int = 0
    """Group-commit transactions committed (each is one WAL fsync)."""
    committed_events: int = 0
    """New events made durable."""
    largest_group: int = 0
    """Most commit() callers that shared one transaction."""
    failures: int = 0
    last_error: str = ""
    last_commit_monotonic: float = 0.0


def _resolve(fut: asyncio.Future[Any], value: Any, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(value)


class Writer:
    def __init__(
        self,
        db: Database,
        *,
        max_wait_s: float = 1.0,
        batch_events: int = 100,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.db = db
        self.max_wait_s = max_wait_s
        self.batch_events = batch_events
        self.on_error = on_error
        self.stats = WriterStats()
        self._jobs: deque[_Job] = deque()
        self._waiting_events = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="skelly-storage-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def pending_events(self) -> int:
        return self._waiting_events

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- loop side --------------------------------------------------------------------------------
    def _submit(self, job: _Job) -> None:
        with self._cond:
            if self._stopping:
                raise WriterClosedError("storage is closed; no more writes are accepted")
            self._jobs.append(job)
            if job.events is not None:
                self._waiting_events += len(job.events)
            self._cond.notify()

    async def commit(self, events: Sequence[RawEvent]) -> list[RawEvent]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[RawEvent]] = loop.create_future()
        self._submit(_Job(loop, fut, events=events))
        return await fut

    async def call(self, fn: Callable[[Database], T]) -> T:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._submit(_Job(loop, fut, fn=fn))
        return await fut

    async def close(self) -> None:
        """Finish every job already submitted, then stop the thread and close the database."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            await asyncio.to_thread(self._thread.join)
        elif not self._closed:
            self._close_db()

    # -- thread side ------------------------------------------------------------------------------
    def _take(self) -> list[_Job] | None:
        with self._cond:
            while not self._jobs:
                if self._stopping:
                    return None
                self._cond.wait()
            if self._jobs[0].fn is None and not self._stopping:
                deadline = self._jobs[0].enqueued + self.max_wait_s
                while (
                    self._waiting_events < self.batch_events
                    and not self._stopping
                    and all(j.fn is None for j in self._jobs)
                ):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            if self._jobs[0].fn is not None:
                return [self._jobs.popleft()]
            group = []
            while self._jobs and self._jobs[0].fn is None:
                job = self._jobs.popleft()
                assert job.events is not None
                self._waiting_events -= len(job.events)
                group.append(job)
            return group

    def _run(self) -> None:
        try:
            while True:
                jobs = self._take()
                if jobs is None:
                    break
                if jobs[0].fn is not None:
                    self._run_call(jobs[0])
                else:
                    self._run_group(jobs)
        finally:
            self._close_db()

    def _close_db(self) -> None:
        self._closed = True
        try:
            self.db.close()
        except Exception as exc:  # report, do not mask the shutdown
            log.warning("closing the database failed: %s", exc)

    def _run_call(self, job: _Job) -> None:
        assert job.fn is not None
        try:
            value = job.fn(self.db)
        except BaseException as exc:
            self.db.rollback()
            self._deliver(job, None, exc)
            return
        self._deliver(job, value, None)

    def _run_group(self, jobs: list[_Job]) -> None:
        outcomes: list[tuple[list[RawEvent], BaseException | None]] = []
        conn = self.db.conn
        try:
            # never acknowledge anything unless WAL + synchronous=FULL still hold (a few µs)
            check_pragmas(conn)
            self.db.begin()
            for job in jobs:
                assert job.events is not None
                # one caller's bad batch must not fail its companions: a savepoint each
                conn.execute("SAVEPOINT caller")
                try:
                    new = self.db.insert_events(job.events)
                except Exception as exc:
                    # SQLite may have rolled the whole transaction back already (full disk,
                    # I/O error): then the whole group fails with the real reason
                    if not conn.in_transaction:
                        raise
                    try:
                        conn.execute("ROLLBACK TO caller")
                        conn.execute("RELEASE caller")
                    except sqlite3.Error:
                        raise exc from None

                    self.db.forget_sessions()
                    outcomes.append(([], exc))
                    self._failed(exc, 1)
                    continue
                conn.execute("RELEASE caller")
                outcomes.append((new, None))
            self.db.commit()
        except BaseException as exc:
            self.db.rollback()
            self._failed(exc, len(jobs))
            for job in jobs:
                self._deliver(job, None, exc)
            return
        self.stats.transactions += 1
        self.stats.committed_events += sum(len(new) for new, _ in outcomes)
        self.stats.largest_group = max(self.stats.largest_group, len(jobs))
        self.stats.last_commit_monotonic = time.monotonic()
        for job, (new, problem) in zip(jobs, outcomes, strict=True):
            self._deliver(job, new, problem)

    def _failed(self, exc: BaseException, callers: int) -> None:
        self.stats.failures += 1
        self.stats.last_error = str(exc)
        log.error("commit failed for %d caller(s): %s", callers, exc)
        if self.on_error is not None:
            self.on_error(exc)

    @staticmethod
    def _deliver(job: _Job, value: Any, exc: BaseException | None) -> None:
        try:
            job.loop.call_soon_threadsafe(_resolve, job.future, value, exc)
        except RuntimeError:
            log.debug("caller's event loop is closed; result dropped")
