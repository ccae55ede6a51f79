"""``skelly forget``: delete everything Storage holds (docs/STORAGE.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from modules.storage import (
    DatabaseLockedError,
    acquire_lock,
    database_file,
    release_lock,
)
from modules.storage_db import (
    PRE_OPEN_SUFFIX,
    StorageError,
    corrupt_copies,
    open_readonly,
    side_files,
)
from skelly.config import load
from skelly.errors import SkellyError

CONFIRM_WORD = "forget"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "forget",
        help="delete everything stored about you (events, aggregates, state history, coins)",
        description=(
            "Delete the database with every raw event, aggregate, focus-state history and "
            "module state (focus coins, streaks), plus copies of damaged databases moved aside "
            "earlier. Asks you to type 'forget' unless --yes is given. Refuses while the "
            "service is running: stop it first (e.g. `sudo systemctl stop skelly`)."
        ),
    )
    p.add_argument("--config", help="TOML config file (the database is in data_dir)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=run)


def _victims(db: Path) -> list[Path]:
    files = [db, *side_files(db)]
    files += [p.with_name(p.name + PRE_OPEN_SUFFIX) for p in side_files(db)]
    files += corrupt_copies(db)
    return [p for p in files if p.exists()]


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
    db = database_file(config.state_dir(), config.storage)
    if not _victims(db):
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
        what = _describe(db)
        victims = _victims(db)
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
        # the lock file stays: it holds no data, and unlinking it could let two processes
        # believe they hold the lock
        release_lock(fd)
    print(f"skelly forget: deleted {what} ({len(victims)} files)")
    return 0
