"""Retention for real: purged raw events are gone from the bytes of the database and its WAL,
and each host's events age on that host's own clock (another host's wrong clock deletes
nothing young)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from bus.messages import RawEvent
from modules.storage import Storage, StorageConfig

Run = Callable[[Coroutine[Any, Any, Any]], Any]

T = 1_800_000_000.0
HOUR = 3600.0
PURGED = b"purged-7f3a"
KEPT = b"kept-0b1e"


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


def focus(host: str, seq: int, ts: float, app_id: bytes) -> RawEvent:
    attrs = (("category", "code"), ("app_id", app_id.decode() + f"-{seq:06d}"))
    return RawEvent(host, "s1", seq, "focus", ts, attrs)


def test_purged_events_are_not_readable_in_the_database_or_its_wal(
    tmp_path: Path, run: Run
) -> None:
    n_old, n_young = 20_000, 2_000
    config = StorageConfig(commit_max_wait_s=0.0, raw_retention_hours=24.0)

    async def main() -> tuple[bytes, bytes, tuple[int, int], tuple[int, int]]:
        async with Storage(config, tmp_path, clock=lambda: T) as st:
            old = [focus("h1", i, T - 30 * HOUR + i, PURGED) for i in range(1, n_old + 1)]
            young = [focus("h1", n_old + i, T - HOUR + i, KEPT) for i in range(1, n_young + 1)]
            for k in range(0, len(old), 1000):
                await st.commit(old[k : k + 1000])
            await st.commit(young)
            result = await st.purge(now=T)
            free = await st._require_writer().call(lambda db: db.free_pages())
            # read the files while the service still has the database open (closing it would
            # checkpoint on its own and hide a missing checkpoint)
            db_bytes = (tmp_path / "skelly.db").read_bytes()
            wal = tmp_path / "skelly.db-wal"
            wal_bytes = wal.read_bytes() if wal.exists() else b""
            return db_bytes, wal_bytes, result, free

    db_bytes, wal_bytes, result, (free, pages) = run(main())
    assert result == (n_old, 0)
    assert free == 0, f"{free} of {pages} pages left free (purged data lingers in them)"
    assert db_bytes.count(PURGED) == 0
    assert wal_bytes.count(PURGED) == 0
    # the grep works: what is kept is found
    assert db_bytes.count(KEPT) + wal_bytes.count(KEPT) >= n_young


@pytest.mark.parametrize("follow", ["a", "b"])
@pytest.mark.parametrize("skew_h", [48.0, -48.0])
def test_another_hosts_wrong_clock_deletes_nothing_young(
    follow: str, skew_h: float, tmp_path: Path, run: Run
) -> None:
    """Host a's clock is right, host b's is ``skew_h`` off; event time (the module's clock)
    follows one of them.  Each host's acknowledged events are an hour old by its own clock:
    none may go.  A day later each host's events go once they are old by its own clock and
    by event time (the floor)."""
    skew = skew_h * HOUR
    steady = Clock(0.0)
    event_time = Clock(T if follow == "a" else T + skew)
    config = StorageConfig(commit_max_wait_s=0.0, raw_retention_hours=24.0)
    n = 2000

    async def main() -> list[tuple[int, int, int]]:
        st = Storage(config, tmp_path, clock=event_time.now, steady=steady.now)
        async with st:
            for k in range(0, n, 100):
                a = [RawEvent("a", "s1", i, "key", T - HOUR + i, ()) for i in range(k + 1, k + 101)]
                b = [RawEvent("b", "s1", e.seq, "key", e.ts + skew, ()) for e in a]
                await st.commit(a)
                await st.commit(b)

            async def counts() -> tuple[int, int, int]:
                deleted, _ = await st.purge()

                def per_host(db: Any) -> tuple[int, int]:
                    rows = dict(
                        db.conn.execute(
                            "SELECT s.host_id, count(*) FROM events e "
                            "JOIN sessions s ON s.id = e.session GROUP BY s.host_id"
                        ).fetchall()
                    )
                    return rows.get("a", 0), rows.get("b", 0)

                a_left, b_left = await st._require_writer().call(per_host)
                return deleted, a_left, b_left

            out = [await counts()]
            for hours in (25.0, 48.0):
                steady.t += hours * HOUR
                event_time.t += hours * HOUR
                out.append(await counts())
            return out

    first, day_later, two_days_later = run(main())
    assert first == (0, n, n)
    # a day later: a host on or behind event time is aged on its own clock; a host ahead of
    # event time keeps its events until event time too says they are old
    event_t0 = T if follow == "a" else T + skew
    a_left = 0 if event_t0 >= T else n
    b_left = 0 if event_t0 >= T + skew else n
    assert day_later[1:] == (a_left, b_left)
    assert two_days_later[1:] == (0, 0)


@pytest.mark.parametrize("skew_h", [48.0, -48.0])
def test_after_a_restart_each_host_is_aged_on_its_stored_timestamps(
    skew_h: float, tmp_path: Path, run: Run
) -> None:
    """Nothing of a host was seen since the start: its newest stored timestamps stand for its
    clock, so event time following the other host deletes none of its young events."""
    skew = skew_h * HOUR
    config = StorageConfig(commit_max_wait_s=0.0, raw_retention_hours=24.0)

    async def main() -> tuple[int, int]:
        async with Storage(config, tmp_path, clock=lambda: T) as st:
            await st.commit(
                [RawEvent("a", "s1", i, "key", T - HOUR + i, ()) for i in range(1, 501)]
            )
            await st.commit(
                [RawEvent("b", "s1", i, "key", T + skew - HOUR + i, ()) for i in range(1, 501)]
            )
        async with Storage(config, tmp_path, clock=lambda: T + skew) as again:
            deleted, _ = await again.purge()
            return deleted, again.events_total

    assert run(main()) == (0, 1000)
