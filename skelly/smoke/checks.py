"""The checks that need nobody: data dir, database, ingest port, a running service.

None of them changes stored data: the data dir gets one temporary file that is deleted again,
the database is opened read-only (``mode=ro``), the lock file is only probed with a shared
``flock`` that is released at once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import socket
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.request import pathname2url

from firmware_bridge.debug import default_socket_path, socket_is_live
from modules.data_capture import IngestConfig
from modules.orchestrator import control_socket_path
from modules.storage import database_file, lock_file
from skelly.app import socket_peer_pid
from skelly.config import Config
from skelly.errors import STOP_SERVICE, data_dir_hint
from skelly.smoke.checklist import Checklist

DATA_DIR = "data dir"
DATABASE = "database"
INGEST = "ingest port"
PROBE_BYTES = 4096


@dataclass(frozen=True)
class Service:
    """A skelly service found running on this data dir."""

    pid: int | None
    how: str

    def __str__(self) -> str:
        who = f"pid {self.pid}" if self.pid else "pid unknown"
        return f"{who}, {self.how}"


def running_service(state: Path, config: Config) -> Service | None:
    """A service (``skelly run``) using the data dir ``state``: its control or console socket
    answers, or the database lock is held.  Nothing is written."""
    for sock in (control_socket_path(state), default_socket_path(state)):
        if socket_is_live(sock):
            return Service(socket_peer_pid(sock), f"answering on {sock}")
    lock = lock_file(database_file(state, config.storage))
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = None
            with contextlib.suppress(OSError, ValueError):
                pid = int(os.pread(fd, 32, 0).decode().strip())
            return Service(pid, f"holding {lock}")
        except OSError:
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover - the loop returns


def _not_a_dir(path: Path) -> Path | None:
    for parent in (path, *path.parents):
        with contextlib.suppress(OSError):
            if parent.exists() and not parent.is_dir():
                return parent
    return None


def check_data_dir(checks: Checklist, state: Path) -> bool:
    """``data_dir`` usable by the service: writable (a temp file written, fsynced and deleted)
    and how much space is free.  Returns True when it passed."""
    hint = data_dir_hint("smoke")
    file_in_way = _not_a_dir(state)
    if file_in_way is not None:
        checks.failed(
            DATA_DIR,
            f"{state}: {file_in_way} is a file, not a directory",
            f"set data_dir (or --data-dir) to a directory; {file_in_way} is in the way",
        )
        return False
    try:
        exists = state.is_dir()
    except OSError as exc:
        checks.failed(DATA_DIR, f"{state}: {exc.strerror}", hint)
        return False
    if not exists:
        parent = next((p for p in state.parents if p.is_dir()), Path("/"))
        if os.access(parent, os.W_OK | os.X_OK):
            checks.passed(
                DATA_DIR,
                f"{state} does not exist yet; the service can create it in {parent} "
                f"({_size(shutil.disk_usage(parent).free)} free)",
            )
            return True
        checks.failed(DATA_DIR, f"{state} does not exist and {parent} is not writable", hint)
        return False
    probe = state / f".skelly-smoke-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"\0" * PROBE_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                probe.unlink()
        dir_fd = os.open(state, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        free = shutil.disk_usage(state).free
    except OSError as exc:
        what = "not writable" if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else ""
        reason = exc.strerror or str(exc)
        detail = f"{state}: {what + ' (' + reason + ')' if what else 'cannot write: ' + reason}"
        if exc.errno == errno.ENOSPC:
            hint = f"the filesystem of {state} is full: free some space"
        elif exc.errno == errno.EROFS:
            hint = f"{state} is on a read-only filesystem: set data_dir to a writable place"
        checks.failed(DATA_DIR, detail, hint)
        return False
    checks.passed(DATA_DIR, f"{state}: writable (write+fsync+delete), {_size(free)} free")
    return True


def check_database(
    checks: Checklist, state: Path, config: Config, service: Service | None = None
) -> None:
    """The database, if present, opens read-only and passes ``PRAGMA quick_check``.

    Nothing in the data dir changes: after a clean shutdown (no ``-wal`` file) with no service
    running the file is opened ``immutable`` (a plain ``mode=ro`` open of a WAL database would
    leave new ``-wal``/``-shm`` files behind); otherwise ``mode=ro`` reads the existing WAL."""
    db = database_file(state, config.storage)
    try:
        present = db.exists()
    except OSError:
        present = False
    if not present:
        checks.skipped(DATABASE, f"no database at {db} yet (the service creates it)")
        return
    wal = db.with_name(db.name + "-wal")
    immutable = service is None and not wal.exists()
    uri = f"file:{pathname2url(str(db))}?mode=ro" + ("&immutable=1" if immutable else "")
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        checks.failed(
            DATABASE,
            f"{db}: cannot open read-only: {exc}",
            "run as the service's user (e.g. `sudo -u skelly skelly smoke --config "
            "/etc/skelly/config.toml`); if the file is damaged, start the service once: it moves "
            "a damaged database aside and says where",
        )
        return
    try:
        conn.execute("PRAGMA busy_timeout = 2000")
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.Error as exc:
        rows = [(f"{exc}",)]
    finally:
        with contextlib.suppress(sqlite3.Error):
            conn.close()
    result = "; ".join(str(r[0]) for r in rows[:5])
    if result == "ok":
        checks.passed(
            DATABASE, f"{db}: quick_check ok (opened read-only, {_size(db.stat().st_size)})"
        )
    else:
        checks.failed(
            DATABASE,
            f"{db}: quick_check found damage: {result}",
            "start the service once: it moves a damaged database aside and says where "
            "(docs/STORAGE.md); `skelly export` first saves what is still readable",
        )


def check_ingest(checks: Checklist, ingest: IngestConfig, service: Service | None) -> None:
    """The ingest address can be bound (closed again at once), or the running service serves it."""
    if not ingest.enabled:
        checks.skipped(INGEST, "[ingest] enabled = false")
        return
    if not ingest.host and not ingest.unix_path:
        checks.skipped(INGEST, "[ingest] host and unix_path are both empty: nothing to listen on")
        return
    parts: list[str] = []
    if ingest.host:
        where = f"{ingest.host}:{ingest.port}"
        try:
            infos = socket.getaddrinfo(
                ingest.host, ingest.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
        except socket.gaierror as exc:
            checks.failed(
                INGEST,
                f"{where}: cannot resolve {ingest.host!r}: {exc.strerror}",
                "set [ingest] host to an address of this machine (127.0.0.1, or 0.0.0.0 for all)",
            )
            return
        family, kind, proto, _, addr = infos[0]
        try:
            with socket.socket(family, kind, proto) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the service binds
                s.bind(addr)
                port = s.getsockname()[1]
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE and service is not None:
                parts.append(f"{where} served by the running service ({service})")
            elif exc.errno == errno.EADDRINUSE:
                checks.failed(
                    INGEST,
                    f"{where} is in use by another process",
                    f"another process listens there (`ss -ltnp 'sport = :{ingest.port}'` shows "
                    f"which; another `skelly run`?): stop it or set [ingest] port",
                )
                return
            elif exc.errno == errno.EADDRNOTAVAIL:
                checks.failed(
                    INGEST,
                    f"{where}: {ingest.host} is not an address of this machine",
                    "set [ingest] host to an address of this machine (0.0.0.0 for all)",
                )
                return
            elif exc.errno in (errno.EACCES, errno.EPERM):
                checks.failed(
                    INGEST,
                    f"{where}: permission denied",
                    "ports below 1024 need privileges the service does not have: set "
                    "[ingest] port to 1024 or above (7878 is the default)",
                )
                return
            else:
                checks.failed(
                    INGEST, f"{where}: cannot bind: {exc.strerror or exc}", "set [ingest] host/port"
                )
                return
        else:
            shown = where if ingest.port else f"{ingest.host}:0 (any free port, e.g. {port})"
            parts.append(f"{shown} can be bound")
    if ingest.unix_path:
        path = Path(ingest.unix_path).expanduser()
        if socket_is_live(path):
            if service is None:
                checks.failed(
                    INGEST,
                    f"{path} is served by another process",
                    f"{STOP_SERVICE}; or set [ingest] unix_path",
                )
                return
            parts.append(f"{path} served by the running service ({service})")
        elif not os.access(path.parent, os.W_OK | os.X_OK):
            checks.failed(
                INGEST,
                f"{path}: its directory {path.parent} is not writable",
                "set [ingest] unix_path to a place the service user can write",
            )
            return
        else:
            parts.append(f"{path} can be created")
    checks.passed(INGEST, "; ".join(parts))
