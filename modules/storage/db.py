"""The synchronous SQLite layer under :class:`modules.storage.Storage` (see docs/STORAGE.md).

Everything here blocks (it fsyncs): the async module runs it on its writer thread, the ``skelly
export`` / ``skelly forget`` commands call it directly.  One :class:`Database` owns one
connection and must only be used from one thread at a time.

Theory of operation
-------------------
* :func:`open_database` makes the directory (0700), creates/opens the file (0600), applies the
  PRAGMAs and *reads them back*, creating the schema on first use.  Any sign of corruption (not a
  database, malformed image, failed ``quick_check``) moves the file and its ``-wal``/``-shm``
  aside with a UTC timestamp suffix and starts a fresh database; the caller is told why
  (:class:`OpenResult.recovered`), so it can report Degraded instead of crash-looping.
* Raw events are keyed ``(session, seq)`` where ``session`` is a small integer standing for
  ``(host_id, session_id)`` in the ``sessions`` table, which also keeps the highest sequence
  number ever stored for the session (``max_seq``) so the resume point survives retention.
* ``insert_events`` is one caller's share of a group-commit transaction; the writer opens the
  transaction (``begin``), lets every waiting caller insert, then ``commit`` (one fsync of the
  WAL with ``synchronous=FULL``).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bus.messages import RawEvent, Scalar

DB_FILENAME = "skelly.db"
SCHEMA_VERSION = 1
SIDE_SUFFIXES = ("-wal", "-shm")
LOCK_SUFFIX = ".lock"

PAGE_SIZE = 4096
"""4 KiB pages: the flash page size of typical SD cards and the Linux page size."""
JOURNAL_SIZE_LIMIT = 16 * 1024 * 1024
"""After a checkpoint the WAL file is truncated back to at most this size."""
WAL_AUTOCHECKPOINT_PAGES = 1000
BUSY_TIMEOUT_MS = 5000

# PRAGMA name -> (value to set, value expected when read back)
_PRAGMAS: tuple[tuple[str, str, object], ...] = (
    ("journal_mode", "WAL", "wal"),
    ("synchronous", "FULL", 2),
    ("foreign_keys", "ON", 1),
    ("secure_delete", "FAST", 2),
    ("journal_size_limit", str(JOURNAL_SIZE_LIMIT), JOURNAL_SIZE_LIMIT),
    ("wal_autocheckpoint", str(WAL_AUTOCHECKPOINT_PAGES), WAL_AUTOCHECKPOINT_PAGES),
    ("temp_store", "MEMORY", 2),
    ("trusted_schema", "OFF", 0),
    ("cell_size_check", "ON", 1),
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS sessions (
    id         INTEGER PRIMARY KEY,
    host_id    TEXT NOT NULL,
    session_id TEXT NOT NULL,
    max_seq    INTEGER NOT NULL DEFAULT 0,
    first_ts   REAL,
    last_ts    REAL,
    UNIQUE (host_id, session_id)
);

CREATE TABLE IF NOT EXISTS events (
    session INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    ts      REAL NOT NULL,
    attrs   TEXT NOT NULL,
    PRIMARY KEY (session, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);

CREATE TABLE IF NOT EXISTS aggregates (
    host_id      TEXT NOT NULL,
    bucket_start REAL NOT NULL,
    bucket_end   REAL NOT NULL,
    events       INTEGER NOT NULL,
    stats        TEXT NOT NULL,
    PRIMARY KEY (host_id, bucket_start)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS aggregates_end ON aggregates (bucket_end);

CREATE TABLE IF NOT EXISTS states (
    start_ts       REAL PRIMARY KEY,
    end_ts         REAL NOT NULL,
    state          TEXT NOT NULL,
    windows        INTEGER NOT NULL,
    confidence_sum REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS states_end ON states (end_ts);

CREATE TABLE IF NOT EXISTS kv (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_ts REAL NOT NULL
) WITHOUT ROWID;
"""


class StorageError(RuntimeError):
    """The database cannot do what was asked; the message says what and what to do."""


class PragmaError(StorageError):
    """A PRAGMA did not take the value it must have (e.g. WAL refused on this filesystem)."""


class CorruptDatabaseError(StorageError):
    """The database file is damaged."""


@dataclass(frozen=True, slots=True)
class OpenResult:
    path: Path
    created: bool
    recovered: str = ""
    """Empty, or why the old file was moved aside (with where it went)."""
    moved_to: tuple[Path, ...] = ()
    check: str = ""
    """What the open checked: ``"quick_check"`` (after an unclean shutdown, or when that is not
    known), ``"skipped: clean shutdown"``, ``"off"`` (``check=False``) or ``"new file"``."""


def database_path(path_or_dir: str | os.PathLike[str]) -> Path:
    """A directory (existing, or given without a suffix) means ``<dir>/skelly.db``."""
    p = Path(path_or_dir).expanduser()
    if p.is_dir() or (not p.exists() and p.suffix == ""):
        return p / DB_FILENAME
    return p


def side_files(db: Path) -> list[Path]:
    return [db.with_name(db.name + s) for s in SIDE_SUFFIXES]


def corrupt_copies(db: Path) -> list[Path]:
    """Files a corrupt-database recovery moved aside (they hold user data too)."""
    if not db.parent.is_dir():
        return []
    return sorted(db.parent.glob(f"{db.name}.corrupt-*"))


_STAMP_FORMAT = "%Y%m%dT%H%M%S%fZ"


def _utc_stamp(now: float) -> str:
    return _dt.datetime.fromtimestamp(now, _dt.UTC).strftime(_STAMP_FORMAT)


def delete_corrupt_copies(db: Path, before: float) -> list[Path]:
    """Delete the copies :func:`move_aside` made before ``before`` (by the UTC stamp in their
    name; names without a valid stamp are left alone).  They hold raw timing events, so the raw
    retention applies to them too.  Returns what was deleted."""
    prefix = f"{db.name}.corrupt-"
    deleted = []
    for path in corrupt_copies(db):
        stamp = path.name[len(prefix) :]
        for suffix in SIDE_SUFFIXES:
            stamp = stamp.removesuffix(suffix)
        try:
            when = _dt.datetime.strptime(stamp, _STAMP_FORMAT).replace(tzinfo=_dt.UTC)
        except ValueError:
            continue
        if when.timestamp() < before:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                deleted.append(path)
    return deleted


def _secure_file(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.chmod(path, 0o600)


def ensure_dir(directory: Path) -> None:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"cannot create the data directory {directory}: {exc.strerror}; "
            "set data_dir in the config to a writable place"
        ) from exc


def _precreate(db: Path) -> bool:
    """Create the database file with mode 0600 before SQLite does (no umask window)."""
    try:
        fd = os.open(db, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return False
    except OSError as exc:
        raise StorageError(f"cannot create the database {db}: {exc.strerror}") from exc
    os.close(fd)
    return True


PRE_OPEN_SUFFIX = ".pre-open"


def _hold_side_files(db: Path) -> None:
    """Keep a second name (a hard link) for the -wal/-shm before SQLite opens the database:
    closing the last connection to a damaged database may delete or rewrite them, and a
    recovery must be able to move aside what was there (the -wal may hold the newest data)."""
    for side in side_files(db):
        held = side.with_name(side.name + PRE_OPEN_SUFFIX)
        with contextlib.suppress(FileNotFoundError):
            held.unlink()
        if not side.exists():
            continue
        try:
            os.link(side, held)
        except OSError:
            shutil.copy2(side, held)


def _release_side_files(db: Path) -> None:
    for side in side_files(db):
        with contextlib.suppress(FileNotFoundError):
            side.with_name(side.name + PRE_OPEN_SUFFIX).unlink()


def move_aside(db: Path, now: float | None = None) -> tuple[Path, ...]:
    """Rename the database and its -wal/-shm (as they were before the failed open, if held)
    to ``<name>.corrupt-<UTC stamp>[-wal|-shm]``.  Nothing of the old files stays next to the
    new database: a stale -wal must never be replayed into a fresh file."""
    stamp = _utc_stamp(time.time() if now is None else now)
    moved = []
    if db.exists():
        dst = db.with_name(f"{db.name}.corrupt-{stamp}")
        os.replace(db, dst)
        _secure_file(dst)
        moved.append(dst)
    for side, suffix in zip(side_files(db), SIDE_SUFFIXES, strict=True):
        held = side.with_name(side.name + PRE_OPEN_SUFFIX)
        dst = db.with_name(f"{db.name}.corrupt-{stamp}{suffix}")
        if held.exists():
            os.replace(held, dst)
            with contextlib.suppress(FileNotFoundError):
                side.unlink()
        elif side.exists():
            os.replace(side, dst)
        else:
            continue
        _secure_file(dst)
        moved.append(dst)
    return tuple(moved)


_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26


def is_corruption(exc: sqlite3.Error) -> bool:
    """True for "database disk image is malformed" / "file is not a database" (any extended
    code), False for busy, I/O, permission, disk-full errors — those are not fixed by starting
    a fresh file and must not make us throw the user's data aside."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        text = str(exc).lower()
        return "malformed" in text or "not a database" in text
    return int(code) & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def _connect(db: Path, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        uri = f"file:{db}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def apply_pragmas(conn: sqlite3.Connection) -> dict[str, object]:
    """Set the durability/space PRAGMAs and read every one back; raise if one did not take."""
    seen: dict[str, object] = {}
    for name, value, expected in _PRAGMAS:
        conn.execute(f"PRAGMA {name} = {value}").fetchall()
        row = conn.execute(f"PRAGMA {name}").fetchone()
        got = row[0] if row else None
        if isinstance(got, str):
            got = got.lower()
        seen[name] = got
        if got != expected:
            raise PragmaError(
                f"SQLite refused PRAGMA {name}={value} (reads back {got!r}, needs {expected!r}); "
                "the data directory must be on a local filesystem that supports WAL "
                "(not a network share); set data_dir in the config to such a place"
            )
    return seen


def check_pragmas(conn: sqlite3.Connection) -> None:
    """Assert at runtime that the connection still runs WAL with synchronous=FULL."""
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    sync = conn.execute("PRAGMA synchronous").fetchone()[0]
    if str(mode).lower() != "wal" or sync != 2:
        raise PragmaError(
            f"database durability settings changed underneath: journal_mode={mode}, "
            f"synchronous={sync} (need wal and 2=FULL); restart the service"
        )


def _init_new_file(conn: sqlite3.Connection) -> None:
    """Settings that only take on an empty file, before WAL mode and the first table: 4 KiB
    pages, and incremental auto-vacuum so free pages of purged data can be handed back to the
    filesystem with ``incremental_vacuum`` instead of a full VACUUM rewrite."""
    conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")


def _init_schema(conn: sqlite3.Connection) -> None:
    conn.executescript("BEGIN IMMEDIATE;" + SCHEMA + "COMMIT;")
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        conn.execute(
            "INSERT INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
    elif int(row[0]) > SCHEMA_VERSION:
        raise StorageError(
            f"the database was written by a newer version (schema {row[0]} > {SCHEMA_VERSION}); "
            "upgrade skelly or `skelly export` with the newer version and `skelly forget`"
        )


def _quick_check(conn: sqlite3.Connection) -> str:
    rows = conn.execute("PRAGMA quick_check").fetchall()
    result = "; ".join(str(r[0]) for r in rows[:5])
    return "" if result == "ok" else result


def open_database(
    path_or_dir: str | os.PathLike[str],
    *,
    check: bool = True,
    now: float | None = None,
) -> tuple[Database, OpenResult]:
    """Open (creating or recovering) the database.  Raises :class:`StorageError` only when even a
    fresh database cannot be created (unwritable directory, WAL unsupported)."""
    db = database_path(path_or_dir)
    ensure_dir(db.parent)
    created = _precreate(db)
    # a WAL with frames left next to the database: the last writer did not close it (a clean
    # close checkpoints and deletes it) -- or a reader is open right now; check either way
    wal = side_files(db)[0]
    wal_left = wal.exists() and wal.stat().st_size > 0
    _hold_side_files(db)
    try:
        database, checked = _open_checked(db, created, check, wal_left)
        _release_side_files(db)
        return database, OpenResult(db, created, check=checked)
    except CorruptDatabaseError as exc:
        reason = str(exc)
    except sqlite3.DatabaseError as exc:
        if not is_corruption(exc):
            _release_side_files(db)
            raise StorageError(
                f"cannot open the database {db}: {exc}; check that the data directory is "
                "writable by the service user and the disk is not full"
            ) from exc
        reason = str(exc) or type(exc).__name__
    moved = move_aside(db, now)
    _precreate(db)
    try:
        database, checked = _open_checked(db, True, check, False)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot create a fresh database at {db}: {exc}") from exc
    where = ", ".join(str(p) for p in moved)
    recovered = f"database was corrupt ({reason}); moved aside to {where}; started a fresh one"
    return database, OpenResult(db, True, recovered, moved, checked)


CLEAN_SHUTDOWN_KEY = "clean_shutdown"
"""``meta`` row: "1" written by :meth:`Database.mark_clean_shutdown` as the last transaction
before a clean close, "0" written at every open."""


def _open_checked(db: Path, created: bool, check: bool, wal_left: bool) -> tuple[Database, str]:
    conn = _connect(db)
    try:
        if created or db.stat().st_size == 0:
            _init_new_file(conn)
        apply_pragmas(conn)
        _init_schema(conn)
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (CLEAN_SHUTDOWN_KEY,)).fetchone()
        clean = row is not None and row[0] == "1" and not wal_left
        if created:
            checked = "new file"
        elif not check:
            checked = "off"
        elif clean:
            checked = "skipped: clean shutdown"
        else:
            checked = "quick_check"
            problem = _quick_check(conn)
            if problem:
                raise CorruptDatabaseError(f"quick_check: {problem}")
        # from now on the file is in use: a crash before the next clean close means a check
        conn.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?, '0')", (CLEAN_SHUTDOWN_KEY,)
        )
        for p in (db, *side_files(db)):
            _secure_file(p)
    except BaseException:
        conn.close()
        raise
    return Database(conn, db), checked


def open_readonly(path_or_dir: str | os.PathLike[str]) -> Database:
    db = database_path(path_or_dir)
    if not db.exists():
        raise FileNotFoundError(db)
    try:
        conn = _connect(db, readonly=True)
        conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read the database {db}: {exc}") from exc
    return Database(conn, db)


def _attrs_json(attrs: Iterable[tuple[str, Scalar]]) -> str:
    return orjson.dumps(dict(attrs)).decode()


@dataclass
class SessionInfo:
    id: int
    max_seq: int


@dataclass
class InsertResult:
    new: list[RawEvent] = field(default_factory=list)


class Database:
    """One connection.  Not thread-safe: use it from one thread at a time."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self._sessions: dict[tuple[str, str], SessionInfo] = {}
        self.transactions = 0

    def close(self) -> None:
        self.conn.close()

    # -- transactions -----------------------------------------------------------------------------
    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.conn.execute("COMMIT")
        self.transactions += 1

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        # cached max_seq values may be ahead of what is stored now
        self.forget_sessions()

    def forget_sessions(self) -> None:
        """Drop cached session ids/max_seq (after a partial rollback they may be ahead)."""
        self._sessions.clear()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.begin()
        try:
            yield
        except BaseException:
            self.rollback()
            raise
        self.commit()

    # -- raw events -------------------------------------------------------------------------------
    def _session(self, host_id: str, session_id: str, ts: float) -> SessionInfo:
        key = (host_id, session_id)
        info = self._sessions.get(key)
        if info is not None:
            return info
        row = self.conn.execute(
            "SELECT id, max_seq FROM sessions WHERE host_id = ? AND session_id = ?", key
        ).fetchone()
        if row is None:
            cur = self.conn.execute(
                "INSERT INTO sessions(host_id, session_id, max_seq, first_ts, last_ts) "
                "VALUES (?, ?, 0, ?, ?)",
                (host_id, session_id, ts, ts),
            )
            assert cur.lastrowid is not None
            row = (cur.lastrowid, 0)
        info = SessionInfo(int(row[0]), int(row[1]))
        self._sessions[key] = info
        return info

    def insert_events(self, events: Sequence[RawEvent]) -> list[RawEvent]:
        """Insert inside the current transaction; return the events that were new (duplicates by
        (host_id, session_id, seq) — stored before or repeated in ``events`` — are left out)."""
        groups: dict[tuple[str, str], list[RawEvent]] = {}
        for ev in events:
            groups.setdefault((ev.host_id, ev.session_id), []).append(ev)
        new: list[RawEvent] = []
        for (host_id, session_id), evs in groups.items():
            info = self._session(host_id, session_id, evs[0].ts)
            lo = min(e.seq for e in evs)
            hi = max(e.seq for e in evs)
            seen: set[int] = set()
            if lo <= info.max_seq:
                seen.update(
                    r[0]
                    for r in self.conn.execute(
                        "SELECT seq FROM events WHERE session = ? AND seq BETWEEN ? AND ?",
                        (info.id, lo, min(hi, info.max_seq)),
                    )
                )
            fresh = []
            for ev in evs:
                if ev.seq not in seen:
                    seen.add(ev.seq)
                    fresh.append(ev)
            if not fresh:
                continue
            sid = info.id
            self.conn.executemany(
                "INSERT OR IGNORE INTO events(session, seq, kind, ts, attrs) "
                "VALUES (?, ?, ?, ?, ?)",
                [(sid, e.seq, e.kind, e.ts, _attrs_json(e.attrs)) for e in fresh],
            )
            last_ts = max(e.ts for e in fresh)
            if hi > info.max_seq:
                self.conn.execute(
                    "UPDATE sessions SET max_seq = ?, last_ts = max(coalesce(last_ts, ?), ?) "
                    "WHERE id = ?",
                    (hi, last_ts, last_ts, sid),
                )
                info.max_seq = hi
            new.extend(fresh)
        return new

    def resume_point(self, host_id: str, session_id: str) -> int:
        info = self._sessions.get((host_id, session_id))
        if info is not None:
            return info.max_seq
        row = self.conn.execute(
            "SELECT max_seq FROM sessions WHERE host_id = ? AND session_id = ?",
            (host_id, session_id),
        ).fetchone()
        return int(row[0]) if row else 0

    def count_events(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM events").fetchone()[0])

    def events_between(self, start: float, end: float) -> list[RawEvent]:
        rows = self.conn.execute(
            "SELECT s.host_id, s.session_id, e.seq, e.kind, e.ts, e.attrs "
            "FROM events e JOIN sessions s ON s.id = e.session "
            "WHERE e.ts >= ? AND e.ts < ? ORDER BY e.ts, e.seq",
            (start, end),
        ).fetchall()
        return [_row_event(r) for r in rows]

    # -- retention --------------------------------------------------------------------------------
    def purge_events(
        self,
        before_ts: float,
        limit: int = 5000,
        after_ts: float = math.inf,
        host_id: str | None = None,
    ) -> int:
        """Delete up to ``limit`` raw events stamped before ``before_ts`` or after ``after_ts``
        (mis-stamped in the future) inside the caller's transaction; only ``host_id``'s events
        when given (each host's age is measured on its own clock)."""
        if host_id is None:
            cur = self.conn.execute(
                "DELETE FROM events WHERE (session, seq) IN "
                "(SELECT session, seq FROM events WHERE ts < ? OR ts > ? LIMIT ?)",
                (before_ts, after_ts, limit),
            )
        else:
            # "+session": walk the ts index (the old/future ends), not all of the host's rows
            cur = self.conn.execute(
                "DELETE FROM events WHERE (session, seq) IN "
                "(SELECT session, seq FROM events WHERE (ts < ? OR ts > ?) "
                "AND +session IN (SELECT id FROM sessions WHERE host_id = ?) LIMIT ?)",
                (before_ts, after_ts, host_id, limit),
            )
        return cur.rowcount

    def hosts_with_events(self) -> list[str]:
        return [
            str(r[0])
            for r in self.conn.execute(
                "SELECT DISTINCT s.host_id FROM sessions s "
                "WHERE EXISTS (SELECT 1 FROM events e WHERE e.session = s.id)"
            )
        ]

    def recent_ts(self, host_id: str, n: int = 31) -> list[float]:
        """The timestamps of ``host_id``'s ``n`` last stored events of each of its sessions,
        newest first, at most ``n`` (by the primary key: no scan of other hosts' events)."""
        sessions = [
            int(r[0])
            for r in self.conn.execute("SELECT id FROM sessions WHERE host_id = ?", (host_id,))
        ]
        out: list[float] = []
        for sid in sessions:
            out.extend(
                float(r[0])
                for r in self.conn.execute(
                    "SELECT ts FROM events WHERE session = ? ORDER BY seq DESC LIMIT ?", (sid, n)
                )
            )
        out.sort(reverse=True)
        return out[:n]

    def purge_aggregates(self, before_ts: float) -> int:
        a = self.conn.execute("DELETE FROM aggregates WHERE bucket_end < ?", (before_ts,)).rowcount
        s = self.conn.execute("DELETE FROM states WHERE end_ts < ?", (before_ts,)).rowcount
        return a + s

    def free_pages(self) -> tuple[int, int]:
        """(free pages, pages) of the database file."""
        free, pages = self.conn.execute(
            "SELECT freelist_count, page_count FROM pragma_freelist_count, pragma_page_count"
        ).fetchone()
        return int(free), int(pages)

    def incremental_vacuum(self, pages: int = 0) -> int:
        """Hand up to ``pages`` free pages (0 = all of them) back to the filesystem: pages in
        use at the end of the file move into free slots (overwriting what was left there) and
        the file is truncated.  Returns how many pages were freed.

        The PRAGMA frees one page per step of its statement; ``Connection.execute`` steps a
        statement that returns no rows only once, so it would free a single page per call.
        ``executescript`` steps it to the end (one statement, one transaction)."""
        before = self.free_pages()[0]
        if before:
            self.conn.executescript(f"PRAGMA incremental_vacuum({int(pages)})")
        return before - self.free_pages()[0]

    def checkpoint(self, mode: str = "PASSIVE") -> tuple[int, int, int]:
        if mode not in ("PASSIVE", "FULL", "RESTART", "TRUNCATE"):
            raise ValueError(f"unknown checkpoint mode {mode!r}")
        row = self.conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    # -- aggregates and states --------------------------------------------------------------------
    def put_aggregate(
        self, host_id: str, start: float, end: float, events: int, stats: dict[str, Any]
    ) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO aggregates(host_id, bucket_start, bucket_end, events, stats) "
            "VALUES (?, ?, ?, ?, ?)",
            (host_id, start, end, events, orjson.dumps(stats).decode()),
        )

    def put_state_segment(
        self, start: float, end: float, state: str, windows: int, confidence_sum: float
    ) -> None:
        self.conn.execute(
            "INSERT INTO states(start_ts, end_ts, state, windows, confidence_sum) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(start_ts) DO UPDATE SET "
            "end_ts = excluded.end_ts, state = excluded.state, windows = excluded.windows, "
            "confidence_sum = excluded.confidence_sum",
            (start, end, state, windows, confidence_sum),
        )

    def last_state_segment(self) -> tuple[float, float, str, int, float] | None:
        row = self.conn.execute(
            "SELECT start_ts, end_ts, state, windows, confidence_sum FROM states "
            "ORDER BY start_ts DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return float(row[0]), float(row[1]), str(row[2]), int(row[3]), float(row[4])

    # -- key/value state --------------------------------------------------------------------------
    def get_state(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put_state(self, key: str, value: str, now: float) -> None:
        self.conn.execute(
            "INSERT INTO kv(key, value, updated_ts) VALUES (?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET "
            "value = excluded.value, updated_ts = excluded.updated_ts",
            (key, value, now),
        )

    def delete_state(self, key: str) -> bool:
        return self.conn.execute("DELETE FROM kv WHERE key = ?", (key,)).rowcount > 0

    # -- everything, for export -------------------------------------------------------------------
    def export(self) -> dict[str, Any]:
        """Everything stored, as plain JSON-ready values, read in one snapshot."""
        self.conn.execute("BEGIN")
        try:
            out = self._export_tables()
            out["events"] = [e for chunk in self._export_events() for e in chunk]
            return out
        finally:
            self.conn.execute("COMMIT")

    def export_to(self, write: Callable[[bytes], Any], extra: dict[str, Any]) -> int:
        """Stream everything stored as one JSON object to ``write`` (events in chunks, so a
        large database does not need to fit in memory); one read snapshot.  Returns the number
        of raw events written."""
        self.conn.execute("BEGIN")
        try:
            head = {**extra, **self._export_tables()}
            write(orjson.dumps(head)[:-1] + b',"events":[')
            n = 0
            for chunk in self._export_events():
                body = orjson.dumps(chunk)[1:-1]
                if not body:
                    continue
                write((b"," if n else b"") + body)
                n += len(chunk)
            write(b"]}\n")
            return n
        finally:
            self.conn.execute("COMMIT")

    def _export_events(self, chunk: int = 5000) -> Iterator[list[dict[str, Any]]]:
        cur = self.conn.execute(
            "SELECT s.host_id, s.session_id, e.seq, e.kind, e.ts, e.attrs "
            "FROM events e JOIN sessions s ON s.id = e.session "
            "ORDER BY s.host_id, s.session_id, e.seq"
        )
        while True:
            rows = cur.fetchmany(chunk)
            if not rows:
                return
            yield [
                {
                    "host_id": r[0],
                    "session_id": r[1],
                    "seq": r[2],
                    "kind": r[3],
                    "ts": r[4],
                    **orjson.loads(r[5]),
                }
                for r in rows
            ]

    def _export_tables(self) -> dict[str, Any]:
        c = self.conn
        meta = dict(c.execute("SELECT key, value FROM meta ORDER BY key").fetchall())
        sessions = [
            {
                "host_id": r[0],
                "session_id": r[1],
                "max_seq": r[2],
                "first_ts": r[3],
                "last_ts": r[4],
            }
            for r in c.execute(
                "SELECT host_id, session_id, max_seq, first_ts, last_ts FROM sessions "
                "ORDER BY host_id, session_id"
            )
        ]
        aggregates = [
            {
                "host_id": r[0],
                "bucket_start": r[1],
                "bucket_end": r[2],
                "events": r[3],
                "stats": orjson.loads(r[4]),
            }
            for r in c.execute(
                "SELECT host_id, bucket_start, bucket_end, events, stats FROM aggregates "
                "ORDER BY bucket_start, host_id"
            )
        ]
        states = [
            {
                "start": r[0],
                "end": r[1],
                "state": r[2],
                "windows": r[3],
                "mean_confidence": r[4] / r[3] if r[3] else 0.0,
            }
            for r in c.execute(
                "SELECT start_ts, end_ts, state, windows, confidence_sum FROM states "
                "ORDER BY start_ts"
            )
        ]
        kv = {
            r[0]: {"value": orjson.loads(r[1]), "updated_ts": r[2]}
            for r in c.execute("SELECT key, value, updated_ts FROM kv ORDER BY key")
        }
        counts = {
            "events": int(c.execute("SELECT count(*) FROM events").fetchone()[0]),
            "sessions": len(sessions),
            "aggregates": len(aggregates),
            "states": len(states),
            "state_keys": len(kv),
        }
        return {
            "schema_version": int(meta.get("schema_version", "0")),
            "counts": counts,
            "sessions": sessions,
            "aggregates": aggregates,
            "states": states,
            "state": kv,
        }

    def mark_clean_shutdown(self) -> None:
        """The last transaction before a clean close: the next open may skip ``quick_check``."""
        with self.transaction():
            self.conn.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES (?, '1')", (CLEAN_SHUTDOWN_KEY,)
            )

    def integrity_check(self) -> str:
        rows = self.conn.execute("PRAGMA integrity_check").fetchall()
        return "; ".join(str(r[0]) for r in rows[:5])


def _row_event(r: Sequence[Any]) -> RawEvent:
    attrs = tuple(orjson.loads(r[5]).items())
    return RawEvent(str(r[0]), str(r[1]), int(r[2]), str(r[3]), float(r[4]), attrs)
