"""``skelly capture --install-user-service``: start the agent at login (docs/CAPTURE.md §8).

Linux: a systemd *user* unit ``~/.config/systemd/user/skelly-capture.service`` (tied to the
graphical session, so DISPLAY is there); macOS: a launchd agent
``~/Library/LaunchAgents/org.skelly-jelly.capture.plist`` (**not tested here**).  Both run this
Python with ``-m skelly.cli capture`` and exactly the arguments given (absolute paths).
"""

from __future__ import annotations

import os
import plistlib
import sys
from collections.abc import Sequence
from pathlib import Path

UNIT_NAME = "skelly-capture.service"
LAUNCHD_LABEL = "org.skelly-jelly.capture"


def command(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "skelly.cli", "capture", *args]


def _systemd_quote(arg: str) -> str:
    """One ExecStart word: double-quoted when needed, ``%`` doubled (systemd specifiers)."""
    arg = arg.replace("%", "%%")
    if arg and not any(c in arg for c in " \t\"'\\;$"):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$") + '"'


def systemd_unit(args: Sequence[str], target: str) -> str:
    exec_start = " ".join(_systemd_quote(a) for a in command(args))
    return (
        "[Unit]\n"
        f"Description=Skelly-Jelly capture agent (input timing only) to {target}\n"
        "PartOf=graphical-session.target\n"
        "After=graphical-session.target\n"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        f"ExecStart={exec_start}\n"
        "Restart=on-failure\n"
        "RestartSec=10\n"
        "\n"
        "[Install]\n"
        "WantedBy=graphical-session.target\n"
    )


def launchd_plist(args: Sequence[str]) -> bytes:  # pragma: no cover - macOS, not tested here
    return plistlib.dumps(
        {
            "Label": LAUNCHD_LABEL,
            "ProgramArguments": command(args),
            "RunAtLoad": True,
            "KeepAlive": {"SuccessfulExit": False},
            "ProcessType": "Interactive",
        }
    )


def install(args: Sequence[str], target: str) -> tuple[Path, str]:
    """Write the unit (or plist); returns its path and the command that enables it."""
    if sys.platform == "darwin":  # pragma: no cover - not tested here
        path = Path.home() / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(launchd_plist(args))
        return path, f"launchctl load -w {path}"
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    path = Path(base) / "systemd" / "user" / UNIT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(systemd_unit(args, target), encoding="utf-8")
    return path, f"systemctl --user daemon-reload && systemctl --user enable --now {UNIT_NAME}"
