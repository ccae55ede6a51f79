"""``skelly sim``: the whole pipeline on a laptop, no hardware, built-in defaults."""

from __future__ import annotations

import argparse
import sys

from hw_sim.scenarios import SCENARIOS
from skelly import app
from skelly import sim as simulator
from skelly.config import load


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "sim",
        help="run the whole pipeline with a simulated host and figurine",
        description=(
            "Runs all eight modules on real code paths: a simulated host streams a scenario over "
            "TCP, SQLite stores it, analysis classifies it and the figurine link drives a "
            "simulated MCU on a pseudo-terminal. Event time runs --speed times faster. On a "
            "terminal it draws a live view (the figurine's glow, posture, face and text, the "
            "focus state and its timeline, coins, links, the latest intervention) with keys s / "
            "l / d for a short / long / double press of the figurine's button and q to quit; "
            "otherwise it prints a line per event."
        ),
    )
    p.add_argument("--config", help="TOML config file (default: built-in defaults)")
    p.add_argument(
        "--headless",
        action="store_true",
        help="no live view or lines while it runs (for tests and CI): the start-up lines, then "
        "a summary of links, focus changes, figurine looks and events when it stops",
    )
    p.add_argument(
        "--record",
        metavar="FILE",
        default="",
        help="write the captured events to FILE as NDJSON, the input `skelly send` and "
        "`skelly replay` take",
    )
    p.add_argument(
        "--scenario", default="workday", choices=sorted(SCENARIOS), help="what the host does"
    )
    p.add_argument("--speed", type=float, default=60.0, help="event time per real second (60)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the scenario")
    p.add_argument(
        "--duration", type=float, default=0.0, help="stop after this many seconds (0: until Ctrl-C)"
    )
    p.add_argument("--state-dir", default="", help="keep state here (default: a temporary dir)")
    p.add_argument("--stock-loop", action="store_true", help="use asyncio's loop, not uvloop")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load(args.config)
    opts = simulator.SimOptions(
        scenario=args.scenario,
        speed=args.speed,
        seed=args.seed,
        duration=args.duration,
        state_dir=args.state_dir,
        headless=args.headless,
        view=not args.headless and sys.stdout.isatty(),
        record=args.record,
    )
    simulator.check_options(opts)

    def say(line: str) -> None:
        print(line, flush=True)

    return app.run_loop(
        lambda stop: simulator.run(config, opts, say, stop), use_uvloop=not args.stock_loop
    )
