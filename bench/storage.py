"""Storage benchmark: durably acknowledged events/s (WAL + synchronous=FULL, group commit), bytes
written per event, single-event commit latency, and start -> serving time at a year of data.
Prints ONE JSON object (medians of runs).

    .venv/bin/python bench/storage.py [--runs 5] [--events 100000] [--dir DIR]
                                      [--startup-events 2500000 | --startup-events 0]

Start-up: one database is built once (``--startup-events`` raw events spread over the last 24 h,
the raw retention, plus 365 days of per-minute aggregates for 16 h a day and a state history),
then ``Storage.start(bus)`` (open, checks, counting, window seeding: until commits are accepted)
is timed after a clean shutdown and after an unclean one (the clean-shutdown mark cleared, as a
crash leaves it), ``--runs`` times each.

Every figure is end to end through ``Storage.commit`` (writer thread, real fsync on a real file):
``acked_events_per_s`` counts events whose ``commit()`` had returned.  ``--dir`` must be on the
disk you want to measure (the default is a temp dir under the system temp directory).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bus import Bus
from bus.messages import RawEvent
from modules.storage import Storage, StorageConfig
from modules.storage.db import CLEAN_SHUTDOWN_KEY, open_database


def make_events(n: int, session: str) -> list[RawEvent]:
    out = []
    t = 1_764_212_345.0
    for i in range(1, n + 1):
        t += 0.15
        if i % 10 == 0:
            out.append(
                RawEvent("host-1", session, i, "mouse", t, (("speed", 412.5), ("clicks", 1)))
            )
        else:
            out.append(RawEvent("host-1", session, i, "key", t, (("correction", i % 17 == 0),)))
    return out


def db_size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir() if p.name.startswith("skelly.db"))


def wchar() -> int:
    """Bytes this process handed to write() so far (WAL frames, checkpoints, everything)."""
    with open("/proc/self/io", encoding="ascii") as f:
        for line in f:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    return 0


async def run_bulk(
    directory: Path, events: list[RawEvent], batch: int, callers: int
) -> dict[str, float]:
    cfg = StorageConfig(commit_max_wait_s=0.0)
    async with Storage(cfg, directory) as st:
        chunks = [events[i : i + batch] for i in range(0, len(events), batch)]
        w0 = wchar()
        t0 = time.perf_counter()
        acked = 0

        async def caller(mine: list[list[RawEvent]]) -> None:
            nonlocal acked
            for chunk in mine:
                new = await st.commit(chunk)
                acked += new

        await asyncio.gather(*(caller(chunks[k::callers]) for k in range(callers)))
        dt = time.perf_counter() - t0
        written = wchar() - w0
        tx = st.writer_stats.transactions
    size = await asyncio.to_thread(db_size, directory)
    assert acked == len(events), (acked, len(events))
    return {
        "events_per_s": acked / dt,
        "bytes_written_per_event": written / acked,
        "db_bytes_per_event": size / acked,
        "transactions": tx,
    }


async def run_latency(directory: Path, n: int) -> dict[str, float]:
    cfg = StorageConfig(commit_max_wait_s=0.0)
    lat = []
    async with Storage(cfg, directory) as st:
        for ev in make_events(n, "lat"):
            t0 = time.perf_counter()
            await st.commit([ev])
            lat.append(time.perf_counter() - t0)
    lat.sort()
    return {"p50_ms": lat[len(lat) // 2] * 1e3, "p99_ms": lat[int(len(lat) * 0.99)] * 1e3}


async def run_group(directory: Path, callers: int) -> dict[str, float]:
    """``callers`` concurrent single-event commits with the default 1 s / 100-event policy."""
    async with Storage(StorageConfig(commit_batch_events=callers), directory) as st:
        evs = make_events(callers, "grp")
        t0 = time.perf_counter()
        await asyncio.gather(*(st.commit([e]) for e in evs))
        dt = time.perf_counter() - t0
        return {"transactions": st.writer_stats.transactions, "seconds": dt}


def build_year(directory: Path, n_events: int) -> dict[str, float]:
    """A database as it looks after a year of use: the last 24 h of raw events (the raw
    retention keeps no more), 365 days of aggregates and state segments."""
    t0 = time.perf_counter()
    database, _ = open_database(directory)
    conn = database.conn
    now = time.time()
    day = 86_400.0
    step = day / max(n_events, 1)
    conn.execute("BEGIN")
    conn.execute(
        "INSERT INTO sessions(id, host_id, session_id, max_seq) VALUES (1, 'host-1', 's', ?)",
        (n_events,),
    )
    chunk = 100_000
    for lo in range(0, n_events, chunk):
        conn.executemany(
            "INSERT INTO events(session, seq, kind, ts, attrs) VALUES (1, ?, ?, ?, ?)",
            (
                (i + 1, "key", now - day + i * step, '{"correction":false}')
                for i in range(lo, min(lo + chunk, n_events))
            ),
        )
    conn.execute("COMMIT")
    conn.execute("BEGIN")
    minute_rows = (
        ("host-1", d * day + m * 60.0, d * day + m * 60.0 + 60.0, 40, '{"kinds":{"key":40}}')
        for d in range(-365, 0)
        for m in range(8 * 60, 24 * 60)
    )
    conn.executemany(
        "INSERT INTO aggregates(host_id, bucket_start, bucket_end, events, stats) "
        "VALUES (?, ? + ?, ? + ?, ?, ?)",
        ((h, now, a, now, b, n, st) for h, a, b, n, st in minute_rows),
    )
    conn.executemany(
        "INSERT INTO states(start_ts, end_ts, state, windows, confidence_sum) "
        "VALUES (?, ?, ?, ?, ?)",
        (
            (now + k * 1800.0, now + k * 1800.0 + 1800.0, "FLOW", 180, 90.0)
            for k in range(-365 * 48, 0)
        ),
    )
    conn.execute("COMMIT")
    database.mark_clean_shutdown()
    database.close()
    return {
        "build_s": time.perf_counter() - t0,
        "db_mb": db_size(directory) / 1e6,
    }


async def time_start(directory: Path) -> tuple[float, str]:
    bus = Bus()
    st = Storage(StorageConfig(), directory)
    t0 = time.perf_counter()
    await st.start(bus)
    dt = time.perf_counter() - t0
    assert st.open_result is not None and not st.open_result.recovered
    check = st.open_result.check
    await st.stop()
    await bus.aclose()
    return dt, check


def mark_unclean(directory: Path) -> None:
    conn = __import__("sqlite3").connect(directory / "skelly.db")
    conn.execute("UPDATE meta SET value = '0' WHERE key = ?", (CLEAN_SHUTDOWN_KEY,))
    conn.commit()
    conn.close()


def run_startup(base: Path, n_events: int, runs: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="skelly-bench-year-", dir=base) as tmp:
        directory = Path(tmp)
        built = build_year(directory, n_events)
        clean: list[float] = []
        unclean: list[float] = []
        for _ in range(runs):
            dt, check = asyncio.run(time_start(directory))
            assert check == "skipped: clean shutdown", check
            clean.append(dt)
            mark_unclean(directory)
            dt, check = asyncio.run(time_start(directory))
            assert check == "quick_check", check
            unclean.append(dt)
        return {
            "startup_raw_events": n_events,
            "startup_db_mb": round(built["db_mb"], 1),
            "startup_build_s": round(built["build_s"], 1),
            "start_to_serving_clean_s": round(statistics.median(clean), 3),
            "start_to_serving_clean_max_s": round(max(clean), 3),
            "start_to_serving_after_crash_s": round(statistics.median(unclean), 3),
        }


def median(runs: list[dict[str, float]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--dir", default=None, help="directory on the disk to measure")
    ap.add_argument(
        "--startup-events",
        type=int,
        default=2_500_000,
        help="raw events in the start-up database (24 h of them); 0 skips the start-up figures",
    )
    ap.add_argument("--skip-commit", action="store_true", help="only the start-up figures")
    args = ap.parse_args()
    base = Path(args.dir) if args.dir else Path(tempfile.gettempdir())
    events = make_events(args.events, "bulk")
    seq_runs: list[dict[str, float]] = []
    conc_runs: list[dict[str, float]] = []
    lat_runs: list[dict[str, float]] = []
    grp_runs: list[dict[str, float]] = []
    for _ in range(0 if args.skip_commit else args.runs):
        with tempfile.TemporaryDirectory(prefix="skelly-bench-", dir=base) as tmp:
            seq_runs.append(asyncio.run(run_bulk(Path(tmp) / "a", events, args.batch, 1)))
            conc_runs.append(asyncio.run(run_bulk(Path(tmp) / "b", events, args.batch, 8)))
            lat_runs.append(asyncio.run(run_latency(Path(tmp) / "c", 200)))
            grp_runs.append(asyncio.run(run_group(Path(tmp) / "d", 100)))
    result: dict[str, object] = {"bench": "storage", "runs": args.runs}
    if not args.skip_commit:
        result |= {
            "events_per_run": args.events,
            "batch": args.batch,
            "acked_events_per_s": round(median(seq_runs, "events_per_s")),
            "acked_events_per_s_8_callers": round(median(conc_runs, "events_per_s")),
            "transactions_8_callers": round(median(conc_runs, "transactions")),
            "bytes_written_per_event": round(median(seq_runs, "bytes_written_per_event"), 1),
            "db_bytes_per_event": round(median(seq_runs, "db_bytes_per_event"), 1),
            "single_event_commit_p50_ms": round(median(lat_runs, "p50_ms"), 3),
            "single_event_commit_p99_ms": round(median(lat_runs, "p99_ms"), 3),
            "group_100_single_event_callers_transactions": round(median(grp_runs, "transactions")),
            "group_100_single_event_callers_s": round(median(grp_runs, "seconds"), 4),
        }
    if args.startup_events > 0:
        result |= run_startup(base, args.startup_events, args.runs)
    result |= {
        "fs": str(base),
        "sqlite": __import__("sqlite3").sqlite_version,
        "cpus": os.cpu_count(),
    }
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
