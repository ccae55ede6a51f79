"""Start-up time does not grow with the database: ``quick_check`` (which reads every page) runs
only after an unclean shutdown, not after a clean one (docs/STORAGE.md, "Corrupt database at
start").  The figure for a year of data is in bench/storage.py; this checks which check runs
when."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from bus.messages import RawEvent
from modules.storage import Storage, StorageConfig, db

Run = Callable[[Coroutine[Any, Any, Any]], Any]
ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from bus.messages import RawEvent
    from modules.storage import Storage, StorageConfig

    async def main(path):
        st = Storage(StorageConfig(commit_max_wait_s=0.0), path)
        await st.open()
        await st.commit([RawEvent("h", "s", 1000 + i, "key", 5.0 + i, ()) for i in range(100)])
        sys.stdout.write("committed\\n")
        sys.stdout.flush()
        await asyncio.sleep(60)  # killed here, the database still open

    asyncio.run(main(sys.argv[1]))
    """
)


def events(n: int) -> list[RawEvent]:
    return [
        RawEvent("h", "s", i, "key", 1.0 + i, (("correction", False),)) for i in range(1, n + 1)
    ]


def test_quick_check_runs_only_after_an_unclean_shutdown(
    tmp_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[str] = []
    real = db._quick_check

    def counting(conn: Any) -> str:
        ran.append("quick_check")
        return real(conn)

    monkeypatch.setattr(db, "_quick_check", counting)
    config = StorageConfig(commit_max_wait_s=0.0)

    async def open_close(commit: bool = False) -> str:
        async with Storage(config, tmp_path) as st:
            if commit:
                await st.commit(events(500))
            assert st.open_result is not None
            return st.open_result.check

    # a new file: nothing to check
    assert run(open_close(commit=True)) == "new file" and ran == []
    # after a clean close: skipped, however big the database
    assert run(open_close()) == "skipped: clean shutdown" and ran == []
    assert run(open_close()) == "skipped: clean shutdown" and ran == []

    # a process killed while it has the database open: the next open checks
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "committed\n"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    child.stdout.close()
    assert (tmp_path / "skelly.db-wal").stat().st_size > 0  # left behind, as after a crash
    assert run(open_close()) == "quick_check" and ran == ["quick_check"]
    # ... and that open closed cleanly again
    assert run(open_close()) == "skipped: clean shutdown" and ran == ["quick_check"]

    # a writer that closed without marking a clean shutdown (e.g. a tool, an old version)
    database, result = db.open_database(tmp_path)
    assert result.check == "skipped: clean shutdown"
    database.close()
    assert not (tmp_path / "skelly.db-wal").exists()
    assert run(open_close()) == "quick_check" and ran == ["quick_check"] * 2

    # integrity_check_on_start = false: never
    async def unchecked() -> str:
        async with Storage(StorageConfig(integrity_check_on_start=False), tmp_path) as st:
            assert st.open_result is not None
            return st.open_result.check

    database, _ = db.open_database(tmp_path)
    database.close()  # unclean again
    assert run(unchecked()) == "off" and ran == ["quick_check"] * 2
    # every event survived all of it
    database, _ = db.open_database(tmp_path)
    try:
        assert database.count_events() == 600
    finally:
        database.close()
