"""``skelly smoke``: the on-device smoke test (docs/SMOKE.md)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import shutil
import sys
import tempfile
from pathlib import Path

from skelly import app
from skelly.cli import EXIT_INTERRUPTED
from skelly.config import Config, load
from skelly.errors import SkellyError
from skelly.smoke import Checklist, SimRig, SmokeOptions, run_smoke
from skelly.smoke.outputs import Console
from skelly.smoke.runner import SIM_FAULTS, Rig


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"expected seconds above 0 and at most 3600, got {text}")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "smoke",
        help="on-device smoke test: every output, the MCU handshake, the button, ports, data dir",
        description=(
            "Makes every configured output show something you can see or hear (glow red, "
            "green, blue; eyes blink; servo sweeps; buzzer chirps; the MCU's ring, display, "
            "servo and buzzer) and asks whether you saw it, checks the MCU handshake (firmware, "
            "protocol, capabilities), waits for a button press, checks the ingest port, the "
            "data dir and the database (read-only), and prints a checklist: PASS / FAIL / SKIP "
            "with a hint per failure. Exit 0 all passed, 1 something failed, 2 could not run. "
            "Stop the service first (`sudo systemctl stop skelly`): it holds the pins and the "
            "port. docs/SMOKE.md."
        ),
    )
    p.add_argument("--config", help="TOML config file (e.g. /etc/skelly/config.toml)")
    p.add_argument("--data-dir", default="", help="check this data dir instead of the config's")
    p.add_argument(
        "--yes",
        action="store_true",
        help="unattended: no questions; visible steps pass when the hardware accepted them",
    )
    p.add_argument(
        "--sim",
        action="store_true",
        help="simulated pins (MockFactory) and MCU (pty); a temporary data dir",
    )
    p.add_argument(
        "--sim-fault",
        action="append",
        default=[],
        choices=SIM_FAULTS,
        help="with --sim: break the simulated hardware (repeatable)",
    )
    p.add_argument(
        "--button-timeout",
        type=_seconds,
        default=10.0,
        metavar="S",
        help="how long to wait for the button press (default 10)",
    )
    p.add_argument(
        "--handshake-timeout",
        type=_seconds,
        default=5.0,
        metavar="S",
        help="how long to wait for the MCU's HELLO reply (default 5)",
    )
    p.add_argument(
        "--step",
        type=_seconds,
        default=None,
        metavar="S",
        help="how long each visible step is held (default 1; 0.1 with --sim)",
    )
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=run)


def sim_config(config: Config, *, from_file: bool, data_dir: Path, mcu_path: Path) -> Config:
    """docs/SMOKE.md §4: the MCU at the simulator's pty; without a config file every output on
    and ingest on any free loopback port."""
    fig = dataclasses.replace(
        config.figurine, serial=dataclasses.replace(config.figurine.serial, url=str(mcu_path))
    )
    ingest = config.ingest
    if not from_file:
        fig = dataclasses.replace(
            fig,
            gpio_enabled=True,
            serial_enabled=True,
            gpio=dataclasses.replace(fig.gpio, buzzer_enabled=True),
        )
        ingest = dataclasses.replace(ingest, host="127.0.0.1", port=0, unix_path="")
    return dataclasses.replace(config, data_dir=str(data_dir), figurine=fig, ingest=ingest)


def run(args: argparse.Namespace) -> int:
    if args.sim_fault and not args.sim:
        raise SkellyError("--sim-fault needs --sim (it breaks the simulated hardware)")
    if not args.yes and not sys.stdin.isatty():
        raise SkellyError(
            "standard input is not a terminal, so nobody can answer 'did you see it?': run "
            "`skelly smoke --yes` for an unattended run (steps then pass when the hardware "
            "accepted them, not confirmed by a person)"
        )
    config = load(args.config)
    if args.data_dir:
        config = dataclasses.replace(config, data_dir=args.data_dir)
    step = args.step if args.step is not None else (0.1 if args.sim else 1.0)
    opts = SmokeOptions(
        yes=args.yes,
        sim=args.sim,
        button_timeout=args.button_timeout,
        handshake_timeout=args.handshake_timeout,
        step=step,
    )
    out = sys.stderr if args.json else sys.stdout
    console = Console(out, yes=args.yes)

    async def main(stop: asyncio.Event) -> int:
        work = asyncio.ensure_future(_smoke(config, args, opts, console))
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if not work.done():
            work.cancel()  # its finally blocks turn the outputs off and close the devices
            with contextlib.suppress(asyncio.CancelledError):
                await work
            print("skelly smoke: interrupted; outputs off", file=sys.stderr, flush=True)
            return EXIT_INTERRUPTED
        checklist = work.result()
        if args.json:
            sys.stdout.write(json.dumps(checklist.as_dict(), ensure_ascii=False, indent=2) + "\n")
        else:
            console.say("")
            for line in checklist.render():
                console.say(line)
            if args.yes:
                console.say("(unattended: --yes; nothing was confirmed by a person)")
        return checklist.exit_code

    return app.run_loop(main)


async def _smoke(
    config: Config, args: argparse.Namespace, opts: SmokeOptions, console: Console
) -> Checklist:
    if not args.sim:
        return await run_smoke(config, opts, console, Rig(pin_factory=app.lgpio_factory))
    temp: Path | None = None
    if args.config or args.data_dir:
        data_dir = config.state_dir()
    else:
        temp = Path(tempfile.mkdtemp(prefix="skelly-smoke-"))
        data_dir = temp
    try:
        async with SimRig(frozenset(args.sim_fault), config.figurine.gpio) as rig:
            cfg = sim_config(
                config, from_file=bool(args.config), data_dir=data_dir, mcu_path=rig.path
            )
            rig.gpio = cfg.figurine.gpio
            console.say(f"skelly smoke --sim: MockFactory pins, simulated MCU at {rig.path}")
            return await run_smoke(cfg, opts, console, rig.rig())
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
