"""``skelly export``: everything Storage holds, as one JSON document (docs/STORAGE.md)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modules.storage import database_file
from modules.storage.db import StorageError, open_readonly
from skelly.config import load
from skelly.errors import SkellyError, data_dir_hint, require_dir

FORMAT = "skelly-export/1"

ExportTo = Callable[[Callable[[bytes], Any], dict[str, Any]], int]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "export",
        help="write everything stored about you as JSON (raw events, aggregates, state)",
        description=(
            "Write everything the Pi stores as one JSON object: sessions, raw timing events "
            "(at most the last raw_retention_hours), per-minute aggregates, the focus-state "
            "history and module state such as focus coins. Works whether or not the service "
            "runs (the database is read in one consistent snapshot; SQLite's WAL lets a reader "
            "work next to the writing service)."
        ),
    )
    p.add_argument("--config", help="TOML config file (the database is in data_dir)")
    p.add_argument(
        "--output",
        "-o",
        default="-",
        metavar="FILE|-",
        help="where to write the JSON (default '-': standard output); a file is created "
        "with mode 0600 and replaced atomically",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load(args.config)
    state = config.state_dir()
    require_dir(
        state, write=False, create=False, what="the data directory", hint=data_dir_hint("export")
    )
    db = database_file(state, config.storage)
    if not db.exists():
        raise SkellyError(
            f"there is no database at {db}: nothing has been stored yet (or `skelly forget` "
            "deleted it); check data_dir in the config if you expected data here"
        )
    try:
        database = open_readonly(db)
    except StorageError as exc:
        raise SkellyError(
            f"{exc}; run export as the service's user (e.g. `sudo -u skelly skelly export "
            "--config /etc/skelly/config.toml`); if the file is damaged, start the service "
            "once: it moves a damaged database aside and says where"
        ) from None
    extra = {"format": FORMAT, "exported_at": time.time(), "database": str(db)}
    try:
        if args.output == "-":
            out = sys.stdout.buffer
            count = database.export_to(out.write, extra)
            out.flush()
        else:
            count = _export_file(database.export_to, Path(args.output).expanduser(), extra)
    except StorageError as exc:
        raise SkellyError(str(exc)) from None
    except (sqlite3.Error, ValueError) as exc:
        # the file opened but a page read while exporting is damaged (ValueError: a stored
        # JSON text that no longer decodes); nothing complete was written
        raise SkellyError(
            f"the database {db} is damaged ({exc}); the export is incomplete"
            + ("" if args.output == "-" else f" and {args.output} was not written")
            + ". Start the service once: it moves a damaged database aside and says where"
        ) from None
    finally:
        with contextlib.suppress(sqlite3.Error):
            database.close()
    if args.output != "-":
        print(
            f"skelly export: wrote {count} raw events and all aggregates to {args.output}",
            file=sys.stderr,
        )
    return 0


def _export_file(export_to: ExportTo, target: Path, extra: dict[str, Any]) -> int:
    if target.is_dir():
        raise SkellyError(
            f"--output {target} is a directory; give a file name such as "
            f"{target / 'skelly-export.json'}"
        )
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise SkellyError(f"cannot write {target}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            count = int(export_to(f.write, extra))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return count
