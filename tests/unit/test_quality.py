"""Lint, format and type checks run as part of the suite, so CI enforces them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CODE = ["bus", "modules", "firmware_bridge", "hw_sim", "skelly", "tests", "bench"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_ruff_lint_is_clean() -> None:
    result = _run("ruff", "check", *CODE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = _run("ruff", "format", "--check", *CODE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_on_bus_and_firmware_bridge_and_clean_elsewhere() -> None:
    # pyproject.toml makes bus/ and firmware_bridge/ strict; the rest is checked at the default
    result = _run("mypy", "bus", "firmware_bridge", "modules", "hw_sim", "skelly")
    assert result.returncode == 0, result.stdout + result.stderr
