"""``skelly`` command line.  Each subcommand lives in ``skelly/commands/<name>.py`` and exposes
``register(subparsers)``; the parser it adds sets ``func`` to a callable returning the exit code.

Failures are one line, ``skelly: error: <what and what to do>``, exit status 2 (docs/CLI.md §1).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import logging
import os
import pkgutil
import sys
from collections.abc import Sequence

import skelly.commands
from skelly.config import ConfigError
from skelly.errors import SkellyError, describe_os_error

DISTRIBUTION = "skelly-jelly-edge"
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 128 + 13  # what a tool killed by SIGPIPE reports


def version() -> str:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed: run `pip install -e .`)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skelly",
        description="Skelly-Jelly Edge: the Raspberry Pi side of the focus companion figurine.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument(
        "--version", action="version", version=f"skelly {version()}", help="print the version"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(skelly.commands.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"skelly.commands.{info.name}")
        module.register(sub)
    return parser


def _error(text: str) -> int:
    print(f"skelly: error: {text}", file=sys.stderr, flush=True)
    return EXIT_ERROR


def _stdout_gone() -> int:
    """The reader of stdout went away: exit quietly, and keep the interpreter's final flush of
    stdout from raising again at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        code: int = args.func(args)
        sys.stdout.flush()
    except (SkellyError, ConfigError) as exc:
        return _error(str(exc))
    except BrokenPipeError:
        return _stdout_gone()
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except OSError as exc:
        # a file or socket the command needed and could not use: say which and why (a command
        # that knows better turns it into a SkellyError with its own advice)
        return _error(describe_os_error(exc))
    return code


if __name__ == "__main__":
    sys.exit(main())
