"""Ingest benchmark: events/s over loopback TCP, parsed+validated+published and durably acked.

Prints ONE JSON object (medians of ``--runs`` runs).  The Pi side (DataCapture on uvloop, and for
the durable figure modules.storage.Storage: SQLite WAL, synchronous=FULL, group commit) runs in
this process; the host side is a separate process that pre-builds the NDJSON (a realistic mix:
70 % key, 15 % mouse, 10 % focus, 5 % idle), then writes it through a plain blocking socket while a
thread reads the acks.  A run is timed by the sender from its first byte to the ack that covers its
last event, so every figure counts events that went all the way through.

* ``parsed_events_per_s`` — framing, orjson decode, validation, RawEvent built, published on the
  bus to one subscriber that counts them (checked), acked; the sink returns at once (no disk).
* ``acked_events_per_s`` — the same with the real Storage: an event counts once its ack arrived,
  i.e. after its WAL commit was fsynced.
* ``bytes_written_per_event`` — bytes this process wrote to the block layer during the durable runs
  (``/proc/self/io`` write_bytes: WAL, checkpoints into the database) per event; also the database
  file growth per event.

Usage: ``python bench/ingest.py [--runs 5] [--parsed-events 200000] [--acked-events 100000]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bus import Bus, Delivery, ModuleRegistry  # noqa: E402
from bus.messages import RawEvent  # noqa: E402
from modules.data_capture import DataCapture, IngestConfig  # noqa: E402
from modules.storage import Storage, StorageConfig  # noqa: E402

TOKEN = "bench-token-0123456789abcdefghijklmnopqrstuv"
TS0 = 1_764_212_345.0


def build_events(n: int) -> bytes:
    out = []
    for seq in range(1, n + 1):
        ts = TS0 + seq * 0.01
        r = seq % 20
        if r < 14:
            ev: dict[str, Any] = {"kind": "key", "seq": seq, "ts": ts, "correction": r == 3}
        elif r < 17:
            ev = {"kind": "mouse", "seq": seq, "ts": ts, "speed": 412.5, "clicks": r - 14,
                  "span_ms": 1000}  # fmt: skip
        elif r < 19:
            ev = {"kind": "focus", "seq": seq, "ts": ts, "category": "code", "app_id": "c0ffee12"}
        else:
            ev = {"kind": "idle", "seq": seq, "ts": ts, "duration_s": 42.0}
        out.append(orjson.dumps(ev))
    return b"\n".join(out) + b"\n"


def sender(port: int, n: int, session: str) -> None:
    """Host side (own process): hello, blast ``n`` events, wait for the ack of the last one."""
    blob = build_events(n)
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rfile = sock.makefile("rb")
    hello = {"kind": "hello", "proto": 1, "token": TOKEN, "host_id": "bench",
             "session_id": session}  # fmt: skip
    sock.sendall(orjson.dumps(hello) + b"\n")
    welcome = orjson.loads(rfile.readline())
    assert welcome.get("welcome") is True, welcome
    done: dict[str, Any] = {}

    def read_acks() -> None:
        errors = 0
        for line in rfile:
            msg = orjson.loads(line)
            if "error" in msg:
                errors += 1
            elif msg.get("ack", 0) >= n:
                done["t1"] = time.perf_counter()
                break
        done["errors"] = errors

    reader = threading.Thread(target=read_acks)
    reader.start()
    t0 = time.perf_counter()
    sock.sendall(blob)
    reader.join()
    sock.close()
    print(json.dumps({"elapsed": done["t1"] - t0, "errors": done["errors"], "bytes": len(blob)}))


class NullSink:
    async def commit(self, events: Sequence[RawEvent]) -> int:
        return len(events)

    async def resume_point(self, host_id: str, session_id: str) -> int:
        return 0


async def run_sender(port: int, n: int, session: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--sender", str(port), str(n), session,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"sender failed ({proc.returncode})")
    result: dict[str, Any] = json.loads(out)
    if result["errors"]:
        raise RuntimeError(f"the Pi refused {result['errors']} benchmark events")
    return result


def write_bytes() -> int:
    with open("/proc/self/io", encoding="ascii") as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    cfg = IngestConfig(port=0, max_events_per_s=0.0)
    # --- parsed, validated, published (no disk) ---
    bus = Bus(ModuleRegistry())
    received = [0]

    def count(env: Any) -> None:
        received[0] += 1

    bus.subscribe(count, types=RawEvent, mode=Delivery.BEST_EFFORT, maxsize=args.parsed_events)
    capture = DataCapture(cfg, sink=NullSink(), token=TOKEN)
    await capture.start(bus)
    parsed = []
    for i in range(args.runs):
        received[0] = 0
        res = await run_sender(capture.port, args.parsed_events, f"parse-{i}")
        await bus.join()
        if received[0] != args.parsed_events:
            raise RuntimeError(f"subscriber got {received[0]} of {args.parsed_events} events")
        parsed.append(args.parsed_events / res["elapsed"])
    await capture.stop()
    await bus.aclose()

    # --- durably acknowledged (real Storage, WAL + synchronous=FULL) ---
    tmp = Path(tempfile.mkdtemp(prefix="skelly-bench-ingest-", dir=args.dir))
    storage = Storage(StorageConfig(), tmp)
    await storage.open()
    bus = Bus(ModuleRegistry())
    capture = DataCapture(cfg, sink=storage, token=TOKEN)
    capture.publish_events = True
    await capture.start(bus)
    acked = []
    wb0, size0 = write_bytes(), dir_bytes(tmp)
    tx0 = storage.writer_stats.transactions
    for i in range(args.runs):
        res = await run_sender(capture.port, args.acked_events, f"durable-{i}")
        acked.append(args.acked_events / res["elapsed"])
    total = args.runs * args.acked_events
    written = write_bytes() - wb0
    transactions = storage.writer_stats.transactions - tx0
    await capture.stop()
    await storage.close()
    await bus.aclose()
    growth = dir_bytes(tmp) - size0
    shutil.rmtree(tmp)
    return {
        "bench": "ingest",
        "parsed_events_per_s": round(statistics.median(parsed)),
        "acked_events_per_s": round(statistics.median(acked)),
        "bytes_written_per_event": round(written / total, 1),
        "db_growth_bytes_per_event": round(growth / total, 1),
        "events_per_commit": round(total / max(transactions, 1), 1),
        "parsed_runs": [round(x) for x in parsed],
        "acked_runs": [round(x) for x in acked],
        "runs": args.runs,
        "parsed_events_per_run": args.parsed_events,
        "acked_events_per_run": args.acked_events,
        "wire_bytes_per_event": round(res["bytes"] / args.acked_events, 1),
        "loop": "uvloop",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "storage_dir": str(tmp.parent),
    }


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--sender":
        sender(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--parsed-events", type=int, default=200_000)
    parser.add_argument("--acked-events", type=int, default=100_000)
    parser.add_argument("--dir", default=None, help="where the benchmark database goes (a disk)")
    args = parser.parse_args()
    import uvloop

    result = uvloop.run(bench(args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
