"""Really damaged files at start, a process killed with SIGKILL while committing, and the
key/value state surviving a reopen."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from bus import Bus, ModuleStatus
from bus.messages import RawEvent, StorageStatus
from modules.storage import Storage, StorageConfig
from modules.storage.db import StorageError, open_database

Run = Callable[[Coroutine[Any, Any, Any]], Any]
ROOT = Path(__file__).resolve().parents[2]


def key(seq: int, ts: float = 1000.0) -> RawEvent:
    return RawEvent("h1", "s1", seq, "key", ts + seq, (("correction", False),))


def fill(tmp: Path, n: int = 3000) -> Path:
    """A real database with enough rows to span many pages, closed cleanly."""

    async def main() -> None:
        async with Storage(StorageConfig(commit_max_wait_s=0.0), tmp) as st:
            await st.commit([key(i) for i in range(1, n + 1)])
            await st.put_state("coins", {"total": 5})

    asyncio.run(main())
    db = tmp / "skelly.db"
    assert db.stat().st_size > 40 * 4096
    return db


def overwrite(path: Path, offset: int, data: bytes) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(data)


def corrupt_header(db: Path) -> None:
    overwrite(db, 0, b"this is no sqlite header!!")


def truncate_half(db: Path) -> None:
    size = db.stat().st_size
    os.truncate(db, size // 2 + 123)


def all_garbage(db: Path) -> None:
    db.write_bytes(os.urandom(64 * 1024))


def smash_pages(db: Path) -> None:
    # garbage over several b-tree pages in the middle, the header left intact
    size = db.stat().st_size
    overwrite(db, (size // 4096 // 2) * 4096, b"\xa5" * (6 * 4096))


DAMAGE = {
    "header": corrupt_header,
    "truncated": truncate_half,
    "garbage": all_garbage,
    "pages": smash_pages,
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_corrupt_database_is_moved_aside_and_reported(
    damage: str, tmp_path: Path, run: Run
) -> None:
    db = fill(tmp_path)
    # leave a -wal and -shm behind as after a crash, so all three must move
    (tmp_path / "skelly.db-wal").write_bytes(b"\x00" * 100)
    (tmp_path / "skelly.db-shm").write_bytes(b"\x00" * 100)
    DAMAGE[damage](db)
    original = db.read_bytes()

    async def main() -> tuple[ModuleStatus, str, list[StorageStatus], int, int]:
        bus = Bus()
        statuses: list[StorageStatus] = []
        bus.subscribe(lambda env: statuses.append(env.payload), types=StorageStatus)
        st = Storage(StorageConfig(commit_max_wait_s=0.0), tmp_path)
        await st.start(bus)  # must not raise
        await bus.join()
        status, detail = st.status, st.detail
        new = await st.commit([key(1), key(2)])
        resume = await st.resume_point("h1", "s1")
        await st.stop()
        await bus.aclose()
        return status, detail, statuses, new, resume

    status, detail, statuses, new, resume = run(main())
    assert status is ModuleStatus.DEGRADED
    assert "corrupt" in detail and "moved aside" in detail
    assert statuses and statuses[0].ok is False and "corrupt" in statuses[0].detail
    assert (new, resume) == (2, 2)  # a fresh database that works
    moved = sorted(p.name for p in tmp_path.glob("skelly.db.corrupt-*"))
    assert len(moved) == 3
    stamp = moved[0][len("skelly.db.corrupt-") :]
    assert stamp.endswith("Z") and len(stamp) >= 16
    base = f"skelly.db.corrupt-{stamp}"
    assert moved == [base, f"{base}-shm", f"{base}-wal"]
    assert (tmp_path / f"{base}-wal").read_bytes() == b"\x00" * 100
    assert (tmp_path / f"skelly.db.corrupt-{stamp}").read_bytes() == original
    for name in moved:
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600
    assert list(tmp_path.glob("*.pre-open")) == []
    # the fresh database is healthy
    conn = sqlite3.connect(tmp_path / "skelly.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_recovery_twice_keeps_both_copies_and_never_raises(tmp_path: Path) -> None:
    db = fill(tmp_path)
    corrupt_header(db)
    d1, r1 = open_database(tmp_path, now=1_000_000.0)
    d1.close()
    all_garbage(db)
    d2, r2 = open_database(tmp_path, now=1_000_001.0)
    d2.close()
    assert r1.recovered and r2.recovered and r1.moved_to != r2.moved_to
    assert len(list(tmp_path.glob("skelly.db.corrupt-*"))) == 2  # no -wal/-shm this time


def test_a_healthy_database_is_left_alone(tmp_path: Path) -> None:
    fill(tmp_path)
    database, result = open_database(tmp_path)
    try:
        assert result.recovered == "" and not result.created
        assert database.count_events() == 3000
    finally:
        database.close()
    assert list(tmp_path.glob("*.corrupt-*")) == []
    assert list(tmp_path.glob("*.pre-open")) == []


def test_garbage_wal_tail_is_ignored_not_treated_as_corruption(tmp_path: Path) -> None:
    """A torn WAL write (power loss) must not cost the database: SQLite ignores frames whose
    checksums do not match."""
    fill(tmp_path)
    (tmp_path / "skelly.db-wal").write_bytes(os.urandom(3 * 4096 + 57))
    database, result = open_database(tmp_path)
    try:
        assert result.recovered == ""
        assert database.count_events() == 3000
    finally:
        database.close()


def test_unusable_directory_is_unhealthy_not_a_crash(tmp_path: Path, run: Run) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")

    async def main() -> tuple[ModuleStatus, str]:
        bus = Bus()
        st = Storage(StorageConfig(), blocker / "state")
        await st.start(bus)
        with pytest.raises(StorageError, match="not open"):
            await st.commit([key(1)])
        status = (st.status, st.detail)
        await st.stop()
        await bus.aclose()
        return status

    status, detail = run(main())
    assert status is ModuleStatus.UNHEALTHY
    assert "cannot create the data directory" in detail and "data_dir" in detail
    assert list(tmp_path.glob("**/*.corrupt-*")) == []


def test_state_survives_reopen(tmp_path: Path, run: Run) -> None:
    async def write() -> None:
        async with Storage(StorageConfig(), tmp_path) as st:
            assert await st.get_state("gamification") is None
            await st.put_state("gamification", {"coins": 12, "streak": [1, 2], "ok": True})
            await st.put_state("raw", b'{"a": 1.5}')
            await st.put_state("gone", 1)
            assert await st.delete_state("gone") is True
            assert await st.delete_state("gone") is False

    async def read() -> tuple[Any, Any, Any]:
        async with Storage(StorageConfig(), tmp_path) as st:
            return (
                await st.get_state("gamification"),
                await st.get_state("raw"),
                await st.get_state("gone"),
            )

    run(write())
    assert run(read()) == ({"coins": 12, "streak": [1, 2], "ok": True}, {"a": 1.5}, None)


def test_state_rejects_bad_values_clearly(tmp_path: Path, run: Run) -> None:
    async def main() -> None:
        async with Storage(StorageConfig(), tmp_path) as st:
            with pytest.raises(ValueError, match="not valid JSON"):
                await st.put_state("k", b"{nope")
            with pytest.raises(ValueError, match="not JSON-serialisable"):
                await st.put_state("k", {1, 2})
            with pytest.raises(ValueError, match="non-empty string"):
                await st.put_state("", 1)
            assert await st.get_state("k") is None

    run(main())


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from bus.messages import RawEvent
    from modules.storage import Storage, StorageConfig

    async def main(path, start):
        st = Storage(StorageConfig(commit_max_wait_s=0.0), path)
        await st.open()
        seq = start
        while True:
            batch = [RawEvent("h", "s", seq + i, "key", 1.0 + seq + i, (("correction", False),))
                     for i in range(200)]
            await st.commit(batch)
            seq += 200
            sys.stdout.write(f"{seq - 1}\\n")
            sys.stdout.flush()

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


def test_sigkill_while_committing_loses_no_acknowledged_event(tmp_path: Path) -> None:
    """Kill a real process with SIGKILL mid-stream three times: the database reopens with
    integrity_check ok and holds every event the child had acknowledged, each once."""
    acked = 0
    for _ in range(3):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path), str(acked + 1)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        for lines, line in enumerate(child.stdout, 1):
            acked = int(line)
            if lines == 15:
                break
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
        assert child.returncode == -signal.SIGKILL
        # the -wal left behind is recovered on open
        database, result = open_database(tmp_path)
        try:
            assert result.recovered == ""
            assert database.integrity_check() == "ok"
            count, distinct, top = database.conn.execute(
                "SELECT count(*), count(DISTINCT seq), max(seq) FROM events"
            ).fetchone()
            assert distinct == count
            assert top >= acked  # at least everything acknowledged (maybe one batch more)
            missing = database.conn.execute(
                "SELECT ? - count(*) FROM events WHERE seq <= ?", (acked, acked)
            ).fetchone()[0]
            assert missing == 0
            acked = top  # resume where the store says, like a host would
        finally:
            database.close()


def test_copies_of_a_corrupt_database_are_deleted_by_the_raw_retention(
    tmp_path: Path, run: Run
) -> None:
    # a moved-aside copy holds raw keystroke timing too: it must not outlive the raw retention
    t0 = 1_800_000_000.0
    db = fill(tmp_path)
    (tmp_path / "skelly.db-wal").write_bytes(b"\x00" * 100)
    corrupt_header(db)
    d, old = open_database(tmp_path, now=t0 - 25 * 3600)  # moved aside 25 h before t0
    d.close()
    all_garbage(db)
    d, young = open_database(tmp_path, now=t0 - 3600)  # moved aside 1 h before t0
    d.close()
    assert len(old.moved_to) == 2 and len(young.moved_to) == 1
    (tmp_path / "skelly.db.corrupt-unknown").write_bytes(b"x")  # not ours to judge: kept

    async def main() -> None:
        async with Storage(StorageConfig(raw_retention_hours=24.0), tmp_path) as st:
            await st.purge(now=t0)
            assert st.corrupt_copies_deleted == 2

    run(main())
    left = sorted(p.name for p in tmp_path.glob("skelly.db.corrupt-*"))
    assert left == sorted([young.moved_to[0].name, "skelly.db.corrupt-unknown"])


def test_damage_found_after_a_skipped_integrity_check_is_still_recovered(
    tmp_path: Path, run: Run
) -> None:
    # integrity_check_on_start = false (a big database, a slow card): the damage shows on the
    # first read instead; that must still end in a moved-aside copy, not a crash loop
    db = fill(tmp_path, 20_000)
    smash_pages(db)

    async def main() -> tuple[ModuleStatus, str, int]:
        bus = Bus()
        config = StorageConfig(commit_max_wait_s=0.0, integrity_check_on_start=False)
        st = Storage(config, tmp_path)
        await st.start(bus)  # must not raise
        status, detail = st.status, st.detail
        new = await st.commit([key(1), key(2)])
        await st.stop()
        await bus.aclose()
        return status, detail, new

    status, detail, new = run(main())
    assert status is ModuleStatus.DEGRADED and "moved aside" in detail, detail
    assert new == 2
    assert len(list(tmp_path.glob("skelly.db.corrupt-*"))) == 1
