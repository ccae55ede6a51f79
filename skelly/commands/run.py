"""``skelly run``: the service (what systemd starts on the Pi)."""

from __future__ import annotations

import argparse
import asyncio
import logging

from skelly import app, notify
from skelly.config import Config, load
from skelly.errors import data_dir_hint, require_dir

log = logging.getLogger("skelly.run")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "run",
        help="run the service: ingest, storage, analysis and the figurine",
        description=(
            "Starts the eight modules in dependency order on uvloop and runs until SIGTERM or "
            "Ctrl-C, then stops them in reverse order (storage flushed last but one). The "
            "Orchestrator health-checks them and restarts one that crashes or stops answering; "
            "under systemd (Type=notify) it sends READY=1, WATCHDOG=1 and STATUS=; `skelly "
            "status` asks it how everything is (docs/STATUS.md). Built-in "
            "defaults apply to anything the config file leaves out. A fault at start-up (data "
            "directory not writable, database held by another process, ingest port in use, TLS "
            "files unreadable) ends it with one line and exit status 2; faults that heal at run "
            "time (MCU unplugged, no host) leave it running, Degraded."
        ),
    )
    p.add_argument("--config", help="TOML config file (e.g. /etc/skelly/config.toml)")
    p.add_argument("--stock-loop", action="store_true", help="use asyncio's loop, not uvloop")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load(args.config)
    require_dir(
        config.state_dir(),
        write=True,
        create=True,
        what="the data directory",
        hint=data_dir_hint("run"),
    )
    return app.run_loop(lambda stop: serve(config, stop), use_uvloop=not args.stock_loop)


async def serve(config: Config, stop: asyncio.Event) -> int:
    """Start the modules, run until ``stop``, stop them.  A start-up fault (docs/CLI.md §2)
    raises :class:`~skelly.errors.StartupFault` after stopping what had started."""
    bus = app.make_bus(config)
    notifier = notify.from_environ()
    modules = app.build_modules(config, notify=notifier, watchdog_s=notify.watchdog_seconds())
    try:
        await app.start_all(bus, modules)
    except BaseException:
        await bus.aclose()
        notifier.close()
        raise
    try:
        for module in modules:
            health = bus.registry.module(module.name)
            log.warning("%-15s %-10s %s", module.name, health.effective.value, health.detail)
        print(f"skelly run: started; system health {bus.registry.health().value}", flush=True)
        await stop.wait()
    finally:
        await app.stop_all(modules)
        await bus.aclose()
        notifier.close()
    print("skelly run: stopped cleanly", flush=True)
    return 0
