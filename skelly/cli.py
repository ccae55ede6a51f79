"""``skelly`` command line.  Each subcommand lives in ``skelly/commands/<name>.py`` and exposes
``register(subparsers)``; the parser it adds sets ``func`` to a callable returning the exit code."""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

import skelly.commands
from skelly.config import ConfigError
from skelly.errors import SkellyError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skelly",
        description="Skelly-Jelly Edge: the Raspberry Pi side of the focus companion figurine.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(skelly.commands.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"skelly.commands.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        code: int = args.func(args)
    except (SkellyError, ConfigError) as exc:
        print(f"skelly: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
