"""Fixtures for the capture agent's tests: one real Xvfb for the whole directory (DISPLAY is
set only for child processes, never in this process), helpers to run ``skelly``."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.slowness import allow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def xvfb() -> Iterator[str]:
    """A fresh Xvfb on a free display number (chosen by Xvfb: -displayfd); yields ':N'."""
    if shutil.which("Xvfb") is None or shutil.which("xdotool") is None:
        pytest.fail("Xvfb and xdotool are needed (Debian: apt-get install xvfb xdotool)")
    r, w = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(w), "-nolisten", "tcp", "-screen", "0", "1024x768x24",
         "+extension", "RECORD"],
        pass_fds=(w,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(w)
    try:
        with os.fdopen(r, "rb") as f:
            number = f.readline().strip().decode()
        assert number.isdigit(), f"Xvfb did not report its display ({number!r})"
        yield f":{number}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=allow(10))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
