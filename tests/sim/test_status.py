"""`skelly status` against a running `skelly sim --headless` (real processes, real control
socket): the text view and --json, and the one-line error when no service runs."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from tests.slowness import allow

ROOT = Path(__file__).resolve().parents[2]
SKELLY = [sys.executable, "-m", "skelly.cli"]
EIGHT = {
    "EventBus",
    "Orchestrator",
    "Storage",
    "DataCapture",
    "AnalysisEngine",
    "Gamification",
    "AI",
    "CuteFigurine",
}


def _status(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SKELLY, "status", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=allow(30.0),
    )


def test_status_of_a_running_sim_as_text_and_json(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {**os.environ, "HOME": str(tmp_path)}
    sim = subprocess.Popen(
        # a slow compressed clock: the simulated host's late-start allowance (60 s of event
        # time) is then 3 s of real time, plenty on a busy machine
        [*SKELLY, "sim", "--headless", "--speed", "20", "--state-dir", str(state)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert sim.stdout is not None
        line = sim.stdout.readline()
        assert "state in" in line, line
        sock = state / "control.sock"
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        # wait (by asking) until the simulated host is connected and a focus state is known
        deadline = time.monotonic() + allow(60.0)
        while True:
            done = _status("--state-dir", str(state), "--json", env=env)
            if sim.poll() is not None:
                out, err = sim.communicate()
                raise AssertionError(f"skelly sim ended early: {out[-1500:]}{err[-1500:]}")
            assert done.returncode == 0, done.stderr
            report = json.loads(done.stdout)
            if report["focus"] and report["links"].get("host", {}).get("up"):
                break
            assert time.monotonic() < deadline, report
            time.sleep(0.2)
        assert {m["name"] for m in report["modules"]} == EIGHT
        assert all(m["status"] == "Healthy" for m in report["modules"]), report["modules"]
        assert report["health"] == "Healthy"
        assert report["links"]["mcu"]["up"] is True
        assert report["pid"] == sim.pid
        assert report["loop_lag_ms"]["max"] >= report["loop_lag_ms"]["last"] >= 0
        assert report["focus"]["state"] in {
            "FLOW",
            "HYPERFOCUS",
            "NEUTRAL",
            "TRANSITIONING",
            "DISTRACTED",
            "IDLE",
        }
        assert report["latency"]["HIGH"]["count"] > 0  # the health checks themselves
        assert any(q["name"] == "Orchestrator._on_reply" for q in report["queues"])
        assert set(report["rewards"]) == {"coins_today", "total_coins", "streak"}
        assert report["words"].startswith("healthy; host sim-host up; MCU up; ")

        text = _status("--socket", str(sock), env=env)
        assert text.returncode == 0, text.stderr
        out = text.stdout
        assert out.startswith("skelly: healthy; host sim-host up; MCU up")
        for name in EIGHT:
            assert f"  {name} " in out
        assert "links    host sim-host up for " in out and "MCU up for " in out
        assert "focus    " in out and " for " in out.split("focus    ")[1].splitlines()[0]
        assert "queues   " in out and " dropped" in out
        assert "  HIGH      p50 " in out and " p99 " in out
        assert "rewards  coins today " in out
        assert "restarts 0" in out
        assert ", loop lag " in out

        sim.send_signal(signal.SIGTERM)
        out_sim, err = sim.communicate(timeout=allow(30.0))
        assert "stopped cleanly" in out_sim, out_sim + err
    finally:
        if sim.poll() is None:
            sim.kill()
    assert sim.returncode == 0, err
    assert not (state / "control.sock").exists()  # removed on the way out
    gone = _status("--state-dir", str(state), env=env)
    assert gone.returncode == 2
    assert gone.stdout == ""
    lines = gone.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("skelly: error: no skelly service answers on ")


def test_status_without_a_service_is_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "SKELLY_DATA_DIR": str(tmp_path / "nothing")}
    done = _status(env=env)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"skelly: error: no skelly service answers on {tmp_path / 'nothing' / 'control.sock'}; "
        "is `skelly run` running with this data_dir (--config/--state-dir)? `skelly sim` "
        "serves one in its --state-dir"
    )
    # something that is not a skelly service on the socket path
    (tmp_path / "plain").write_text("")
    done = _status("--socket", str(tmp_path / "plain"), env=env)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("skelly: error: ")
