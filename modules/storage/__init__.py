"""Storage: durable SQLite store of host events, windowed aggregates and module state.

See docs/STORAGE.md for the schema, the PRAGMAs and why, group commit, retention and recovery.

Theory of operation
-------------------
* :meth:`Storage.open` opens (or creates, or recovers) the database under the path it was given
  and starts the writer thread (:mod:`modules.storage.writer`); all SQLite work happens there,
  the event loop only awaits futures.  A lock file next to the database keeps a second service
  (and ``skelly forget``) away while it is open.
* :meth:`Storage.commit` is DataCapture's durable-acknowledgement path (``EventSink``): it returns
  only after the events are committed with WAL + ``synchronous=FULL``; concurrent callers share
  one transaction (group commit).  Duplicates by (host_id, session_id, seq) are ignored.
* As a bus module (:meth:`start`) it also runs three named tasks:

  - *windows* — on EVENT time (the injectable ``clock``), every ``emit_every_s`` it publishes an
    EventBatch for the window ``[end - window_s, end)`` where ``end`` is a multiple of
    ``emit_every_s`` and the emission happens ``window_grace_s`` after ``end`` (so late acks are
    in).  Every ``aggregate_bucket_s`` it also stores per-host aggregates of the bucket that just
    closed (kept ``aggregate_retention_days``).  The events come from an in-memory buffer of
    newly committed events (bounded by ``window_max_events``), seeded from the database at start.
  - *retention* — every ``purge_interval_s`` of event time, deletes raw events older than
    ``raw_retention_hours`` and aggregates/state segments older than ``aggregate_retention_days``.
  - *status* — StorageStatus to the orchestrator every ``status_interval_s`` (real time) and at
    once on trouble (High priority), with the PRAGMAs re-checked each time.

  AnalysisComplete results are folded into state segments (start, end, state) so ``export`` keeps
  a state history after the raw events are gone.

Layout: ``module`` (:class:`Storage`, :class:`StorageConfig`, the lock file, windows, retention,
status), ``writer`` (the writer thread and group commit), ``db`` (the synchronous SQLite layer:
schema, PRAGMAs, recovery, queries; ``skelly export`` / ``skelly forget`` use it directly).
"""

from modules.storage.db import StorageError
from modules.storage.module import (
    DatabaseLockedError,
    Storage,
    StorageConfig,
    acquire_lock,
    bucket_stats,
    database_file,
    lock_file,
    release_lock,
)

__all__ = [
    "DatabaseLockedError",
    "Storage",
    "StorageConfig",
    "StorageError",
    "acquire_lock",
    "bucket_stats",
    "database_file",
    "lock_file",
    "release_lock",
]
