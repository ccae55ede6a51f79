"""Storage benchmark: durably acknowledged events/s (WAL + synchronous=FULL, group commit), bytes
written per event, and single-event commit latency.  Prints ONE JSON object (medians of runs).

    .venv/bin/python bench/storage.py [--runs 5] [--events 100000] [--dir DIR]

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

from bus.messages import RawEvent
from modules.storage import Storage, StorageConfig


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


def median(runs: list[dict[str, float]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--dir", default=None, help="directory on the disk to measure")
    args = ap.parse_args()
    base = Path(args.dir) if args.dir else Path(tempfile.gettempdir())
    events = make_events(args.events, "bulk")
    seq_runs: list[dict[str, float]] = []
    conc_runs: list[dict[str, float]] = []
    lat_runs: list[dict[str, float]] = []
    grp_runs: list[dict[str, float]] = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="skelly-bench-", dir=base) as tmp:
            seq_runs.append(asyncio.run(run_bulk(Path(tmp) / "a", events, args.batch, 1)))
            conc_runs.append(asyncio.run(run_bulk(Path(tmp) / "b", events, args.batch, 8)))
            lat_runs.append(asyncio.run(run_latency(Path(tmp) / "c", 200)))
            grp_runs.append(asyncio.run(run_group(Path(tmp) / "d", 100)))
    result = {
        "bench": "storage",
        "runs": args.runs,
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
        "fs": str(base),
        "sqlite": __import__("sqlite3").sqlite_version,
        "cpus": os.cpu_count(),
    }
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
