"""`skelly sim` as a real process: the pipeline runs, the console attaches, Ctrl-C is clean."""

from __future__ import annotations

import os
import re
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
def test_sim_runs_the_whole_pipeline(tmp_path: Path, loop_flag: list[str]) -> None:
    """Host → TCP ingest → SQLite → windows → analysis → StateChange → figurine MCU on a pty.

    Headless: the start-up lines, no live line while it runs, then a summary of what happened.
    """
    cmd = [sys.executable, "-m", "skelly.cli", "sim", "--headless", "--duration", "8"]
    cmd += ["--speed", "120", "--scenario", "distraction", *loop_flag]
    proc = subprocess.run(
        cmd, cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=90
    )
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr + out
    for name in MODULES:
        assert name in out
    assert "Traceback" not in proc.stderr, proc.stderr
    live = [line for line in out.splitlines() if re.match(r"\[\d\d:\d\d:\d\d\]", line)]
    assert not live, live  # no live narration in headless mode
    summary = out[out.index("skelly sim: summary of ") :]
    ups = dict(re.findall(r"^  (mcu|host) link: up (\d+)x", summary, re.M))
    assert int(ups.get("mcu", 0)) >= 1 and int(ups.get("host", 0)) >= 1, summary
    changes = re.search(r"^  focus changes: (\d+): .*-> ", summary, re.M)
    assert changes and int(changes.group(1)) >= 1, summary  # analysis changed state
    assert re.search(r"^  figurine: \d+ looks shown, last: glow #", summary, re.M), summary
    last = out.strip().splitlines()[-1]
    match = re.search(r"after (\d+) analysis windows and (\d+) focus changes", last)
    assert match, last
    assert int(match.group(1)) >= 30 and int(match.group(2)) == int(changes.group(1))


def test_console_attaches_to_the_running_sim(tmp_path: Path) -> None:
    state = tmp_path / "state"
    sim = subprocess.Popen(
        # live mode: the narration says when the MCU link is up and what the figurine shows
        [sys.executable, "-m", "skelly.cli", "sim", "--state-dir", str(state)],
        cwd=ROOT,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert sim.stdout is not None
        deadline = time.monotonic() + 30
        seen = ""
        while "mcu link up" not in seen and time.monotonic() < deadline:
            line = sim.stdout.readline()
            if not line:
                break
            seen += line
        assert "mcu link up" in seen, seen
        console = subprocess.run(
            [
                *(sys.executable, "-m", "skelly.cli", "console"),
                *("--socket", str(state / "console.sock"), "--send", "glow 255 0 0"),
                *("--count", "2", "--no-input", "--duration", "20"),
            ],
            cwd=ROOT,
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert console.returncode == 0, console.stderr
        assert "attached to the service" in console.stdout
        assert "SET_GLOW       r=255 g=0 b=0" in console.stdout, console.stdout
        assert "MCU_ACK" in console.stdout
        sim.send_signal(signal.SIGINT)
        out, err = sim.communicate(timeout=30)
    finally:
        if sim.poll() is None:
            sim.kill()
    assert sim.returncode == 0, err
    assert "figurine: glow #ff0000" in out  # the command reached the simulated MCU


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
