"""Helpers for the capture agent's tests: child environments on a display, running skelly
and xdotool."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.slowness import allow

ROOT = Path(__file__).resolve().parents[2]


def x_env(display: str, home: Path) -> dict[str, str]:
    """Environment for a child on ``display`` with its own HOME/config/runtime dirs."""
    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "XDG_SESSION_TYPE")}
    (home / "run").mkdir(mode=0o700, exist_ok=True)
    env.update(
        DISPLAY=display,
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "cfg"),
        XDG_RUNTIME_DIR=str(home / "run"),
        PYTHONPATH=str(ROOT),
    )
    return env


def skelly(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "skelly.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=allow(timeout),
    )


def xdotool(display: str, *args: str) -> None:
    subprocess.run(
        ["xdotool", *args],
        env={**os.environ, "DISPLAY": display},
        check=True,
        timeout=allow(30),
        capture_output=True,
    )
