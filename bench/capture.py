"""Capture agent benchmark: CPU of ``skelly capture`` while typing at 10 keys/s, callback time.

Prints ONE JSON object.  Each run starts its own Xvfb (with RECORD), a real ``skelly run`` on
loopback (temporary data dir and token) and a real ``skelly capture`` streaming to it, with
``SKELLY_CAPTURE_CALLBACK_TIMES`` set so the agent records the wall time of every listener
callback it runs (the code pynput calls on its input thread).  ``xdotool type --delay 200``
(xdotool splits the delay between key down and key up: about 10 keys/s) then types for
``--seconds`` and the agent's CPU time (user + system, psutil) over that span is divided by the
wall time.

* ``cpu_percent_of_core`` — median over the runs (target ≤ 1 %); every run's value in ``runs``.
* ``pointer_cpu_percent_of_core`` — median CPU during ``--mouse-seconds`` of pointer motion at
  about 100 events/s after the typing (no target; reported so the cost of a moving mouse is
  known).
* ``callback_p99_ms`` / ``callback_p50_ms`` / ``callback_max_ms`` — over every callback of every
  run (target p99 ≤ 0.2 ms).
* ``keys_stored`` — key events the Pi stored per run (checks the agent really captured them).

Usage: ``python bench/capture.py [--runs 5] [--seconds 60]`` (needs Xvfb, xdotool and the
capture extra).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
TEXT = "the quick brown fox jumps over the lazy dog "


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _xvfb() -> tuple[subprocess.Popen[bytes], str]:
    r, w = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(w), "-nolisten", "tcp", "+extension", "RECORD"],
        pass_fds=(w,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(w)
    with os.fdopen(r, "rb") as f:
        return proc, ":" + f.readline().strip().decode()


def _wait_text(path: Path, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {text!r}: {path.read_text()}")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def one_run(seconds: float, mouse_seconds: float = 0.0) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        xvfb, display = _xvfb()
        (home / "run").mkdir()
        env = {
            **{k: v for k, v in os.environ.items() if k != "WAYLAND_DISPLAY"},
            "DISPLAY": display,
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / "cfg"),
            "XDG_RUNTIME_DIR": str(home / "run"),
        }
        port = _free_port()
        config = home / "pi.toml"
        config.write_text(
            f'data_dir = "{home / "pi"}"\n[ingest]\nport = {port}\n'
            "[figurine]\nserial_enabled = false\n"
        )
        skelly = [sys.executable, "-m", "skelly.cli"]
        token = subprocess.run(
            [*skelly, "token", "--config", str(config)],
            env=env, cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        token_file = home / "token"
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
        pi = subprocess.Popen(
            [*skelly, "run", "--config", str(config)],
            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        times = home / "callbacks.txt"
        log = home / "capture.log"
        capture = None
        try:
            assert pi.stdout is not None and "started" in pi.stdout.readline()
            with open(log, "wb") as logf:
                capture = subprocess.Popen(
                    [*skelly, "capture", "--to", f"127.0.0.1:{port}", "--token-file",
                     str(token_file)],
                    env={**env, "SKELLY_CAPTURE_CALLBACK_TIMES": str(times)},
                    cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT,
                )  # fmt: skip
            _wait_text(log, "capturing keyboard/mouse/focus")
            time.sleep(2.0)  # let start-up work (imports, first connection) finish
            n_keys = int(seconds * 10)
            text = (TEXT * (n_keys // len(TEXT) + 1))[:n_keys]
            proc = psutil.Process(capture.pid)
            c0 = proc.cpu_times()
            t0 = time.monotonic()
            subprocess.run(
                ["xdotool", "type", "--delay", "200", text],
                env={**os.environ, "DISPLAY": display}, check=True,
            )  # fmt: skip
            wall = time.monotonic() - t0
            c1 = proc.cpu_times()
            cpu = (c1.user - c0.user) + (c1.system - c0.system)
            pointer: dict[str, float] = {}
            if mouse_seconds > 0:
                pointer = _pointer_phase(proc, display, mouse_seconds)
            time.sleep(2.0)  # the last events reach the Pi
        finally:
            if capture is not None:
                _stop(capture)
            _stop(pi)
            _stop(xvfb)
        conn = sqlite3.connect(home / "pi" / "skelly.db")
        stored = conn.execute("SELECT count(*) FROM events WHERE kind = 'key'").fetchone()[0]
        conn.close()
        durations = [int(x) for x in times.read_text().split()]
        return {
            "cpu_percent_of_core": round(100.0 * cpu / wall, 3),
            "wall_s": round(wall, 2),
            "keys_typed": n_keys,
            "keys_per_s": round(n_keys / wall, 2),
            "keys_stored": stored,
            **pointer,
            "callback_ns": durations,
        }


def _pointer_phase(proc: psutil.Process, display: str, seconds: float) -> dict[str, float]:
    """CPU while xdotool moves the pointer by 1 px about 100 times a second (a mouse in use
    sends 60-1000 motion events/s; each one costs pynput's X11 back end a parse)."""
    moves = int(seconds * 100)
    chain: list[str] = []
    for i in range(moves):
        chain += ["mousemove_relative", "--", "1" if (i // 200) % 2 == 0 else "-1", "0"]
        chain += ["sleep", "0.01"]
    c0 = proc.cpu_times()
    t0 = time.monotonic()
    subprocess.run(["xdotool", *chain], env={**os.environ, "DISPLAY": display}, check=True)
    wall = time.monotonic() - t0
    c1 = proc.cpu_times()
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    return {
        "pointer_cpu_percent_of_core": round(100.0 * cpu / wall, 3),
        "pointer_moves_per_s": round(moves / wall, 1),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument(
        "--mouse-seconds", type=float, default=20.0, help="pointer phase after typing (0: none)"
    )
    args = ap.parse_args(argv)
    runs = [one_run(args.seconds, args.mouse_seconds) for _ in range(args.runs)]
    all_ns: list[int] = sorted(ns for r in runs for ns in r.pop("callback_ns"))

    def pct(p: float) -> float:
        return round(all_ns[min(len(all_ns) - 1, int(p * len(all_ns)))] / 1e6, 4)

    print(
        json.dumps(
            {
                "bench": "capture",
                "cpu_percent_of_core": statistics.median(r["cpu_percent_of_core"] for r in runs),
                "cpu_target_percent": 1.0,
                "pointer_cpu_percent_of_core": statistics.median(
                    r.get("pointer_cpu_percent_of_core", 0.0) for r in runs
                ),
                "callback_p50_ms": pct(0.50),
                "callback_p99_ms": pct(0.99),
                "callback_max_ms": round(all_ns[-1] / 1e6, 4),
                "callback_target_p99_ms": 0.2,
                "callbacks": len(all_ns),
                "runs": runs,
                "machine": {
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "load_avg_1m": round(os.getloadavg()[0], 2),
                },
            }
        )
    )


if __name__ == "__main__":
    main()
