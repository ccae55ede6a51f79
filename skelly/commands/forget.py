"""``skelly forget``: delete everything Storage holds (docs/STORAGE.md) and the events
``skelly send`` spooled in ``<data_dir>/spool/`` (docs/CLI.md §3)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from modules.ingest.client import SpoolLockedError, lock_spool, unlock_spool
from modules.storage import (
    DatabaseLockedError,
    acquire_lock,
    database_file,
    release_lock,
)
from modules.storage.db import (
    PRE_OPEN_SUFFIX,
    StorageError,
    corrupt_copies,
    open_readonly,
    side_files,
)
from skelly.config import load
from skelly.errors import SkellyError, data_dir_hint, require_dir

CONFIRM_WORD = "forget"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "forget",
        help="delete everything stored about you (events, aggregates, state history, coins)",
        description=(
            "Delete the database with every raw event, aggregate, focus-state history and "
            "module state (focus coins, streaks), plus copies of damaged databases moved aside "
            "earlier and the events `skelly send` spooled in <data_dir>/spool/. Asks you to "
            "type 'forget' unless --yes is given. Refuses while the service (or a skelly send "
            "on that spool) is running: stop it first (e.g. `sudo systemctl stop skelly`)."
        ),
    )
    p.add_argument("--config", help="TOML config file (the database is in data_dir)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=run)


def _victims(db: Path, spool: Path) -> list[Path]:
    files = [db, *side_files(db)]
    files += [p.with_name(p.name + PRE_OPEN_SUFFIX) for p in side_files(db)]
    files += corrupt_copies(db)
    files += _spool_files(spool)
    return [p for p in files if p.exists()]


def _spool_files(spool: Path) -> list[Path]:
    """Everything in the spool directory (spool files, their temp and lock files)."""
    try:
        return sorted(p for p in spool.iterdir() if not p.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise SkellyError(
            f"cannot read the spool directory {spool}: {exc.strerror}; " + data_dir_hint("forget")
        ) from None


def _lock_spools(spool: Path) -> list[tuple[int, Path]]:
    """Take the lock of every spool file so no sender writes one while it is deleted; refuse
    (releasing what was taken) if a sender holds one."""
    held: list[tuple[int, Path]] = []
    spools: set[Path] = set()
    for path in _spool_files(spool):
        if path.name.endswith(".ndjson"):
            spools.add(path)
        elif path.name.endswith(".ndjson.lock"):
            spools.add(path.with_name(path.name.removesuffix(".lock")))
    try:
        for path in sorted(spools):
            held.append((lock_spool(path), path))
    except SpoolLockedError as exc:
        _unlock_spools(held)
        who = f" (pid {exc.pid})" if exc.pid else ""
        raise SkellyError(
            f"the spool {exc.path} is in use by a running skelly send{who}; let it finish or "
            "stop it, then run `skelly forget` again (nothing was deleted)"
        ) from None
    return held


def _unlock_spools(held: list[tuple[int, Path]]) -> None:
    for fd, path in held:
        unlock_spool(fd, path)


def _describe(db: Path) -> str:
    if not db.exists():
        return "no database (only copies of damaged ones)"
    try:
        database = open_readonly(db)
    except StorageError:
        return "a database that cannot be read"
    try:
        counts = database.conn.execute(
            "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM aggregates), "
            "(SELECT count(*) FROM states), (SELECT count(*) FROM kv)"
        ).fetchone()
    except Exception as exc:  # a damaged file: still deletable, say so
        return f"a database that cannot be read ({exc})"
    finally:
        database.close()
    return (
        f"{counts[0]} raw events, {counts[1]} aggregates, {counts[2]} state-history "
        f"segments, {counts[3]} saved module states"
    )


def run(args: argparse.Namespace) -> int:
    config = load(args.config)
    state = config.state_dir()
    db = database_file(state, config.storage)
    spool = state / "spool"
    exists = require_dir(
        state, write=True, create=False, what="the data directory", hint=data_dir_hint("forget")
    )
    if not exists or not _victims(db, spool):
        print(f"skelly forget: nothing to forget: there is no database at {db}")
        return 0
    try:
        fd = acquire_lock(db)
    except DatabaseLockedError as exc:
        raise SkellyError(
            f"{exc}, then run `skelly forget` again (nothing was deleted; a running service "
            "would keep writing to the files)"
        ) from None
    except StorageError as exc:
        raise SkellyError(str(exc)) from None
    try:
        spools = _lock_spools(spool)
    except BaseException:
        release_lock(fd)
        raise
    try:
        what = _describe(db)
        spooled = [p for p in _spool_files(spool) if p.suffix == ".ndjson"]
        if spooled:
            what += f" and {len(spooled)} spool files of skelly send"
        victims = [p for p in _victims(db, spool) if not p.name.endswith(".ndjson.lock")]
        if not args.yes:
            print(f"skelly forget: this deletes {what} in {db.parent}:")
            for path in victims:
                print(f"  {path}")
            print(f"Type '{CONFIRM_WORD}' to delete it all, anything else to keep it: ", end="")
            sys.stdout.flush()
            answer = sys.stdin.readline().strip()
            if answer != CONFIRM_WORD:
                print("skelly forget: not confirmed; nothing was deleted")
                return 1
        failed = []
        for path in victims:
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                failed.append(f"{path}: {exc.strerror}")
        if failed:
            raise SkellyError(
                "could not delete " + "; ".join(failed) + "; fix the permissions and run "
                "`skelly forget` again"
            )
    finally:
        # the spool locks go with their files (unlink while held, docs/CLI.md §3); the
        # database's lock file stays: it holds no data, and unlinking it could let two
        # processes believe they hold the lock
        _unlock_spools(spools)
        with contextlib.suppress(OSError):
            spool.rmdir()
        release_lock(fd)
    print(f"skelly forget: deleted {what} ({len(victims)} files)")
    return 0
