"""A real ingest service process for crash tests and benchmarks: Storage + DataCapture.

    python tests/sim/ingest_service.py --db DIR_OR_FILE --port PORT --token-file FILE

Prints ``READY <port>`` on stdout once it listens, then serves until killed (SIGTERM stops it
cleanly; the tests use SIGKILL).  Uses the stock loop unless ``--uvloop``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from bus import Bus, ModuleRegistry
from modules.data_capture import DataCapture, IngestConfig
from modules.storage import Storage, StorageConfig


async def main(args: argparse.Namespace) -> int:
    storage = Storage(StorageConfig(integrity_check_on_start=True), args.db)
    await storage.open()
    bus = Bus(ModuleRegistry())
    config = IngestConfig(
        host="127.0.0.1",
        port=args.port,
        token_file=args.token_file,
        max_events_per_s=args.rate,
        auth_timeout_s=args.auth_timeout,
    )
    capture = DataCapture(config, sink=storage)
    await capture.start(bus)
    if capture.port == 0:
        print(f"FAILED {capture.detail}", flush=True)
        return 1
    print(f"READY {capture.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await capture.stop()
    await storage.close()
    with contextlib.suppress(Exception):
        await bus.aclose()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token-file", required=True)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--auth-timeout", type=float, default=2.0)
    parser.add_argument("--uvloop", action="store_true")
    ns = parser.parse_args()
    if ns.uvloop:
        import uvloop

        sys.exit(uvloop.run(main(ns)))
    sys.exit(asyncio.run(main(ns)))
