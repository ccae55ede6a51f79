"""``skelly sim``: the whole pipeline on a laptop, no hardware, built-in defaults."""

from __future__ import annotations

import argparse
import asyncio
import tempfile

from skelly import app
from skelly.config import load


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sim", help="run the whole pipeline with simulated hardware")
    p.add_argument("--config", help="TOML config file (default: built-in defaults)")
    p.add_argument("--headless", action="store_true", help="no live view; log lines only")
    p.add_argument(
        "--duration", type=float, default=0.0, help="stop after this many seconds (0: until Ctrl-C)"
    )
    p.add_argument("--stock-loop", action="store_true", help="use asyncio's loop, not uvloop")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load(args.config)
    return app.run_loop(lambda: _main(config, args), use_uvloop=not args.stock_loop)


async def _main(config: object, args: argparse.Namespace) -> int:
    from skelly.config import Config

    assert isinstance(config, Config)
    with tempfile.TemporaryDirectory(prefix="skelly-sim-") as tmp:
        if not config.data_dir:
            import dataclasses

            config = dataclasses.replace(config, data_dir=tmp)
        bus = app.make_bus(config)
        modules = app.build_modules(config)
        await app.start_all(bus, modules)
        print("skelly sim: bus up with all eight modules registered:", flush=True)
        for module in modules:
            health = bus.registry.module(module.name)
            print(f"  {module.name:<15} {health.effective.value:<10} {health.detail}", flush=True)
        placeholders = [m.name for m in modules if m.placeholder]
        if placeholders:
            print(
                "skelly sim: honest note: these modules are placeholders that do nothing yet: "
                + ", ".join(placeholders),
                flush=True,
            )
        print(
            f"skelly sim: system health {bus.registry.health().value}; Ctrl-C to stop", flush=True
        )
        try:
            if args.duration > 0:
                await asyncio.sleep(args.duration)
            else:
                await asyncio.Event().wait()
        finally:
            await app.stop_all(modules)
            await bus.aclose()
            print("skelly sim: stopped cleanly", flush=True)
    return 0
