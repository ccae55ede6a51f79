"""`skelly sim` as a real process: starts, registers all eight modules, exits cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = [
    "EventBus",
    "Orchestrator",
    "Storage",
    "DataCapture",
    "AnalysisEngine",
    "Gamification",
    "AI",
    "CuteFigurine",
]


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["HOME"] = str(tmp_path)  # no state leaks into the real home
    env.pop("SKELLY_DATA_DIR", None)
    return env


@pytest.mark.parametrize("loop_flag", [[], ["--stock-loop"]])
def test_sim_headless_runs_and_stops(tmp_path: Path, loop_flag: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "skelly.cli", "sim", "--headless", "--duration", "1.5", *loop_flag],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    for name in MODULES:
        assert name in proc.stdout
    assert "stopped cleanly" in proc.stdout


def test_sim_exits_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "skelly.cli", "sim", "--headless"],
        cwd=ROOT,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        seen = ""
        while "Ctrl-C to stop" not in seen and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen += line
        assert "Ctrl-C to stop" in seen, seen + (proc.stderr.read() if proc.stderr else "")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped cleanly" in out
    assert "Traceback" not in err


def test_bad_config_is_a_clear_cli_error(tmp_path: Path) -> None:
    bad = tmp_path / "c.toml"
    bad.write_text("[bus]\nsend_timeout_s = 'x'\n")
    proc = subprocess.run(
        [sys.executable, "-m", "skelly.cli", "sim", "--config", str(bad), "--duration", "0.1"],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("skelly: error: bus.send_timeout_s: expected a number")
    assert "Traceback" not in proc.stderr
