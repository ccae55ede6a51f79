"""Storage's durable-ack path against real SQLite files: dedupe, resume, durability, group
commit (transactions counted by the writer AND by reading the commit frames in the WAL file),
file modes and the PRAGMAs read back."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from bus import Bus, ModuleStatus
from bus.messages import RawEvent
from modules.storage import DatabaseLockedError, Storage, StorageConfig
from modules.storage.db import PragmaError, StorageError, apply_pragmas

Run = Callable[[Coroutine[Any, Any, Any]], Any]


def key(seq: int, session: str = "s1", host: str = "h1", ts: float = 1000.0) -> RawEvent:
    return RawEvent(host, session, seq, "key", ts + seq * 0.1, (("correction", seq % 7 == 0),))


def mouse(seq: int, session: str = "s1") -> RawEvent:
    return RawEvent(
        "h1",
        session,
        seq,
        "mouse",
        1000.0 + seq,
        (("speed", 412.5), ("clicks", 2), ("span_ms", 1000)),
    )


def rows(db: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT s.host_id, s.session_id, e.seq, e.kind, e.ts, e.attrs FROM events e "
            "JOIN sessions s ON s.id = e.session ORDER BY s.session_id, e.seq"
        ).fetchall()
    finally:
        conn.close()


def wal_commit_frames(wal: Path) -> int:
    """Count commit frames in a WAL file (frame header word 2 = db size, non-zero on commits),
    only those whose salts match the WAL header (i.e. the current WAL generation)."""
    data = wal.read_bytes()
    if len(data) < 32:
        return 0
    page_size = struct.unpack(">I", data[8:12])[0]
    salts = data[16:24]
    frame = 24 + page_size
    commits = 0
    off = 32
    while off + frame <= len(data):
        header = data[off : off + 24]
        if header[8:16] != salts:
            break
        if struct.unpack(">I", header[4:8])[0] != 0:
            commits += 1
        off += frame
    return commits


def test_commit_dedupes_and_resumes(tmp_path: Path, run: Run) -> None:
    async def main() -> None:
        async with Storage(StorageConfig(commit_max_wait_s=0.0), tmp_path) as st:
            assert await st.resume_point("h1", "s1") == 0
            assert await st.commit([key(i) for i in range(1, 11)]) == 10
            assert await st.resume_point("h1", "s1") == 10
            # a resend overlapping what is stored, with a repeat inside the batch
            again = [key(i) for i in range(8, 16)] + [key(12)]
            assert await st.commit(again) == 5
            assert await st.resume_point("h1", "s1") == 15
            assert await st.resume_point("h1", "other") == 0
            assert await st.commit([key(3, session="s2")]) == 1
            assert await st.commit([]) == 0

    run(main())
    stored = rows(tmp_path / "skelly.db")
    assert [(r[1], r[2]) for r in stored] == [("s1", i) for i in range(1, 16)] + [("s2", 3)]
    assert stored[6][5] == '{"correction":true}'


def test_attrs_round_trip_with_types(tmp_path: Path, run: Run) -> None:
    async def main() -> list[RawEvent]:
        async with Storage(StorageConfig(commit_max_wait_s=0.0), tmp_path) as st:
            focus = RawEvent("h1", "s1", 2, "focus", 5.0, (("category", "code"), ("app_id", "c0f")))
            idle = RawEvent("h1", "s1", 3, "idle", 6.0, (("duration_s", 42.0),))
            await st.commit([mouse(1), focus, idle])
            return await st._require_writer().call(lambda db: db.events_between(0, 1e12))

    got = run(main())
    assert got[0] == RawEvent(
        "h1", "s1", 2, "focus", 5.0, (("category", "code"), ("app_id", "c0f"))
    )
    assert got[1].attrs == (("duration_s", 42.0),)
    assert got[2].attrs == (("speed", 412.5), ("clicks", 2), ("span_ms", 1000))
    assert isinstance(got[2].get("clicks"), int)


def test_acknowledged_events_survive_close_without_anything_else(tmp_path: Path, run: Run) -> None:
    """Acked means durable: read the file with a separate connection while the store is still
    open (no close, no checkpoint), then again after reopening."""
    db = tmp_path / "skelly.db"

    async def main() -> None:
        st = Storage(StorageConfig(commit_max_wait_s=0.0), tmp_path)
        await st.open()
        assert await st.commit([key(i) for i in range(1, 501)]) == 500
        # an independent reader sees every acknowledged event before any close
        assert len(rows(db)) == 500
        await st.close()
        async with Storage(StorageConfig(), tmp_path) as again:
            assert await again.resume_point("h1", "s1") == 500

    run(main())
    assert len(rows(db)) == 500


def test_concurrent_commits_share_one_transaction(tmp_path: Path, run: Run) -> None:
    """50 callers of 1 event each within the group window: one transaction, one WAL commit
    frame, every caller told its own count."""
    cfg = StorageConfig(commit_max_wait_s=2.0, commit_batch_events=50)

    async def main() -> tuple[list[int], int, int]:
        async with Storage(cfg, tmp_path) as st:
            base_tx = st.writer_stats.transactions
            wal = tmp_path / "skelly.db-wal"
            base_frames = wal_commit_frames(wal)
            results = await asyncio.gather(*(st.commit([key(i)]) for i in range(1, 51)))
            tx = st.writer_stats.transactions - base_tx
            frames = wal_commit_frames(wal) - base_frames
            return list(results), tx, frames

    results, tx, frames = run(main())
    assert results == [1] * 50
    assert tx == 1
    assert frames == 1


def test_without_companions_the_group_waits_at_most_max_wait(tmp_path: Path, run: Run) -> None:
    cfg = StorageConfig(commit_max_wait_s=0.3, commit_batch_events=100)

    async def main() -> float:
        async with Storage(cfg, tmp_path) as st:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            assert await st.commit([key(1)]) == 1
            return loop.time() - t0

    waited = run(main())
    assert 0.25 <= waited < 2.0


def test_separate_sequential_commits_are_separate_transactions(tmp_path: Path, run: Run) -> None:
    async def main() -> tuple[int, int]:
        async with Storage(StorageConfig(commit_max_wait_s=0.0), tmp_path) as st:
            base = st.writer_stats.transactions
            frames0 = wal_commit_frames(tmp_path / "skelly.db-wal")
            for i in range(1, 6):
                await st.commit([key(i)])
            return (
                st.writer_stats.transactions - base,
                wal_commit_frames(tmp_path / "skelly.db-wal") - frames0,
            )

    assert run(main()) == (5, 5)


def test_files_are_private_and_pragmas_hold(tmp_path: Path, run: Run) -> None:
    data = tmp_path / "state"

    async def main() -> dict[str, int]:
        async with Storage(StorageConfig(commit_max_wait_s=0.0), data) as st:
            await st.commit([key(1)])
            modes = {
                p.name: p.stat().st_mode & 0o777 for p in data.iterdir() if p.name.startswith("s")
            }
            pragmas = await st._require_writer().call(
                lambda db: (
                    db.conn.execute("PRAGMA journal_mode").fetchone()[0],
                    db.conn.execute("PRAGMA synchronous").fetchone()[0],
                    db.conn.execute("PRAGMA auto_vacuum").fetchone()[0],
                )
            )
            assert pragmas == ("wal", 2, 2)
            return modes

    old = os.umask(0o022)
    try:
        modes = run(main())
    finally:
        os.umask(old)
    assert modes == {
        "skelly.db": 0o600,
        "skelly.db-wal": 0o600,
        "skelly.db-shm": 0o600,
        "skelly.db.lock": 0o600,
    }
    assert data.stat().st_mode & 0o777 == 0o700


def test_second_open_of_the_same_database_is_refused(tmp_path: Path, run: Run) -> None:
    async def main() -> None:
        async with Storage(StorageConfig(), tmp_path):
            with pytest.raises(DatabaseLockedError, match="in use by another skelly process"):
                await Storage(StorageConfig(), tmp_path).open()

    run(main())


def test_commit_before_open_says_what_to_do(run: Run, tmp_path: Path) -> None:
    async def main() -> None:
        with pytest.raises(StorageError, match=r"await storage\.open"):
            await Storage(StorageConfig(), tmp_path).commit([key(1)])

    run(main())


def test_path_may_be_a_file(tmp_path: Path, run: Run) -> None:
    target = tmp_path / "custom.sqlite"

    async def main() -> None:
        async with Storage(StorageConfig(commit_max_wait_s=0.0), target) as st:
            await st.commit([key(1)])

    run(main())
    assert len(rows(target)) == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("window_s", 0.0, "window_s must be > 0"),
        ("commit_max_wait_s", 20.0, "between 0 and 10"),
        ("aggregate_bucket_s", 25.0, "whole multiple"),
        ("filename", "a/b.db", "plain file name"),
    ],
)
def test_bad_config_is_refused_clearly(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StorageConfig(**{field: value})  # type: ignore[arg-type]


def test_pragmas_that_do_not_take_fail_loudly() -> None:
    conn = sqlite3.connect(":memory:")  # an in-memory database cannot do WAL
    with pytest.raises(PragmaError, match="journal_mode=WAL"):
        apply_pragmas(conn)
    conn.close()


def test_a_changed_pragma_at_runtime_makes_the_module_unhealthy(tmp_path: Path, run: Run) -> None:
    async def main() -> tuple[ModuleStatus, str, bool]:
        bus = Bus()
        st = Storage(StorageConfig(commit_max_wait_s=0.0), tmp_path)
        await st.start(bus)
        assert st.status is ModuleStatus.HEALTHY
        await st._require_writer().call(lambda db: db.conn.execute("PRAGMA synchronous = NORMAL"))
        # nothing is acknowledged without WAL + synchronous=FULL
        with pytest.raises(StorageError, match="synchronous=1"):
            await st.commit([key(1)])
        await st._check_pragmas()
        result = (st.status, st.detail, st.status_message().ok)
        await st.stop()
        await bus.aclose()
        return result

    status, detail, ok = run(main())
    assert status is ModuleStatus.UNHEALTHY
    assert "synchronous=1" in detail and not ok


def test_a_bad_batch_fails_alone_and_its_companions_commit(tmp_path: Path, run: Run) -> None:
    cfg = StorageConfig(commit_max_wait_s=2.0, commit_batch_events=3)
    bad = RawEvent("h1", "s9", 1, "key", 1.0, (("correction", object()),))  # type: ignore[arg-type]

    async def main() -> list[Any]:
        async with Storage(cfg, tmp_path) as st:
            out = await asyncio.gather(
                st.commit([key(1)]),
                st.commit([bad]),
                st.commit([key(2)]),
                return_exceptions=True,
            )
            assert st.writer_stats.transactions == 1
            return [*out, await st.resume_point("h1", "s9")]

    first, second, third, resume_bad = run(main())
    assert (first, third, resume_bad) == (1, 1, 0)
    assert isinstance(second, StorageError) and "not acknowledged" in str(second)
    assert [r[2] for r in rows(tmp_path / "skelly.db")] == [1, 2]


def test_a_full_disk_fails_the_commit_and_nothing_is_acknowledged(tmp_path: Path, run: Run) -> None:
    """SQLITE_FULL for real: the database may not grow (max_page_count), then may again."""

    async def main() -> tuple[int, str, bool]:
        bus = Bus()
        st = Storage(StorageConfig(commit_max_wait_s=0.0), tmp_path)
        await st.start(bus)
        writer = st._require_writer()
        now = time.time()  # recent events: the retention purge at start must not take them
        await st.commit([key(1, ts=now)])
        pages = await writer.call(lambda db: db.conn.execute("PRAGMA page_count").fetchone()[0])
        await writer.call(lambda db: db.conn.execute(f"PRAGMA max_page_count = {pages}"))
        with pytest.raises(StorageError, match="full"):
            await st.commit([key(i, ts=now) for i in range(2, 5002)])
        detail = st.detail
        degraded = st.status is ModuleStatus.DEGRADED
        await writer.call(lambda db: db.conn.execute("PRAGMA max_page_count = 1073741823"))
        resume = await st.resume_point("h1", "s1")
        assert await st.commit([key(i, ts=now) for i in range(2, 5002)]) == 5000
        await st.stop()
        await bus.aclose()
        return resume, detail, degraded

    resume, detail, degraded = run(main())
    assert resume == 1  # the failed batch was not stored at all
    assert degraded and "full" in detail
    assert len(rows(tmp_path / "skelly.db")) == 5001


def test_sqlite_runs_on_the_writer_thread_not_the_loop(tmp_path: Path, run: Run) -> None:
    async def main() -> tuple[int, int]:
        async with Storage(StorageConfig(), tmp_path) as st:
            other = await st._require_writer().call(lambda db: threading.get_ident())
            return threading.get_ident(), other

    loop_thread, writer_thread = run(main())
    assert loop_thread != writer_thread


def test_a_full_group_does_not_wait_for_the_timer(tmp_path: Path, run: Run) -> None:
    cfg = StorageConfig(commit_max_wait_s=5.0, commit_batch_events=100)

    async def main() -> float:
        async with Storage(cfg, tmp_path) as st:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            assert await st.commit([key(i) for i in range(1, 101)]) == 100
            return loop.time() - t0

    assert run(main()) < 2.5
