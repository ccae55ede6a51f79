"""``skelly token``: show the ingest token (creating it on first use), or make a new one."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from modules.ingest.token import (
    TOKEN_FILENAME,
    TokenError,
    load_or_create_token,
    new_token,
    write_token,
)
from skelly.config import load
from skelly.errors import SkellyError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "token",
        help="show the token hosts need to send events (created on first use, mode 0600)",
        description=(
            "Print the pre-shared ingest token on stdout, creating it (256 bits, file mode 0600) "
            "if it does not exist yet. Copy it to the host computer once, e.g. "
            "`ssh pi skelly token > ~/.config/skelly/token && chmod 600 ~/.config/skelly/token`."
        ),
    )
    p.add_argument("--config", help="TOML config file (token in [ingest] token_file or data_dir)")
    p.add_argument(
        "--new",
        action="store_true",
        help="replace the token with a fresh one (every host then needs the new token; "
        "restart the service so it loads it)",
    )
    p.add_argument("--path", action="store_true", help="print the token file's path, not the token")
    p.set_defaults(func=run)


def token_path(config_path: str | None) -> Path:
    config = load(config_path)
    if config.ingest.token_file:
        return Path(config.ingest.token_file).expanduser()
    return config.state_dir() / TOKEN_FILENAME


def run(args: argparse.Namespace) -> int:
    path = token_path(args.config)
    if args.path:
        print(path)
        return 0
    try:
        if args.new:
            token = new_token()
            write_token(path, token)
            print(f"skelly token: wrote a new token to {path}", file=sys.stderr)
        else:
            token, created = load_or_create_token(path)
            if created:
                print(f"skelly token: created {path} (mode 0600)", file=sys.stderr)
    except TokenError as exc:
        raise SkellyError(str(exc)) from None
    except OSError as exc:
        raise SkellyError(
            f"cannot write the token file {path}: {exc.strerror}; run as the service user "
            "or set [ingest] token_file / data_dir to a writable place"
        ) from None
    print(token)
    return 0
