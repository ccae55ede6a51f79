"""The real agent under a real X server: xdotool types, moves, clicks, scrolls and switches
between two real X windows; a real `skelly capture` streams to a real `skelly run` on loopback;
the events stored in its SQLite database are checked, and the key identities are nowhere.

One Xvfb (tests/capture/conftest.py), one `skelly run` and one `skelly capture` for the module;
every step waits for the events it needs (no fixed sleeps)."""

from __future__ import annotations

import itertools
import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from skelly.capture import control
from tests.capture.capture_helpers import ROOT, skelly, x_env, xdotool
from tests.sim.ingest_helpers import free_port
from tests.slowness import allow

WORDS = "hello world"
TYPED_AFTER = "xyz"
BACKSPACES = 3


@dataclass
class Rig:
    display: str
    home: Path
    env: dict[str, str]
    db: Path
    port: int
    spool: Path
    log: Path
    capture: subprocess.Popen[bytes]
    windows: list[str]

    def events(self) -> list[dict[str, Any]]:
        conn = sqlite3.connect(self.db, timeout=10)
        try:
            rows = conn.execute(
                "SELECT e.seq, e.kind, e.ts, e.attrs FROM events e JOIN sessions s "
                "ON e.session = s.id WHERE s.session_id LIKE 'capture-%' ORDER BY e.seq"
            ).fetchall()
        except sqlite3.OperationalError:
            return []  # the service has not created its tables yet
        finally:
            conn.close()
        return [{"seq": r[0], "kind": r[1], "ts": r[2], **json.loads(r[3])} for r in rows]

    def wait_for(
        self, what: str, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 20
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + allow(timeout)
        while True:
            events = self.events()
            if done(events):
                return events
            if self.capture.poll() is not None:
                pytest.fail(f"skelly capture exited: {self.log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}; stored: {events}")
            time.sleep(0.05)

    def keys(self) -> list[dict[str, Any]]:
        return [e for e in self.events() if e["kind"] == "key"]


def _wait_line(path: Path, text: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + allow(timeout)
    while text not in path.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"no {text!r} from the process: {path.read_text()}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def rig(xvfb: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    home = tmp_path_factory.mktemp("capture-home")
    env = x_env(xvfb, home)
    port = free_port()
    config = home / "pi.toml"
    config.write_text(
        f'data_dir = "{home / "pi-state"}"\n'
        f"[ingest]\nport = {port}\n"
        "[storage]\ncommit_max_wait_s = 0.0\n"
        "[figurine]\nserial_enabled = false\n"
    )
    token = skelly("token", "--config", str(config), env=env)
    assert token.returncode == 0, token.stderr
    token_file = home / "token"
    token_file.write_text(token.stdout.strip() + "\n")
    token_file.chmod(0o600)
    (home / "cfg" / "skelly").mkdir(parents=True)
    (home / "cfg" / "skelly" / "capture.toml").write_text(
        '[categories]\n"SkellyEditor" = "code"\n"skellychat" = "communication"\n'
    )
    service = subprocess.Popen(
        [sys.executable, "-m", "skelly.cli", "run", "--config", str(config)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    log = home / "capture.log"
    windows_proc: subprocess.Popen[str] | None = None
    capture: subprocess.Popen[bytes] | None = None
    try:
        assert service.stdout is not None
        assert "started" in service.stdout.readline()
        spool = home / "spool.ndjson"
        with open(log, "wb") as logf:
            capture = subprocess.Popen(
                [sys.executable, "-m", "skelly.cli", "-vv", "capture", "--to",
                 f"127.0.0.1:{port}", "--token-file", str(token_file), "--spool", str(spool)],
                cwd=ROOT, env=env, stdout=logf, stderr=subprocess.STDOUT,
            )  # fmt: skip
        _wait_line(log, "capturing keyboard/mouse/focus on X11 display", capture, 30)
        windows_proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("xwindows.py")),
             "editor.SkellyEditor", "skellychat.SkellyChat"],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert windows_proc.stdout is not None
        windows = [windows_proc.stdout.readline().strip() for _ in range(2)]
        assert all(w.startswith("0x") for w in windows), windows
        yield Rig(xvfb, home, env, home / "pi-state" / "skelly.db", port, spool, log, capture,
                  windows)  # fmt: skip
    finally:
        if windows_proc is not None:
            windows_proc.kill()
            windows_proc.wait()
        if capture is not None and capture.poll() is None:
            capture.send_signal(signal.SIGTERM)
            try:
                capture.wait(timeout=allow(15))
            except subprocess.TimeoutExpired:
                capture.kill()
                capture.wait()
        service.send_signal(signal.SIGTERM)
        try:
            service.wait(timeout=allow(30))
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait()


def _focus_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == "focus"]


def test_real_input_arrives_as_timing_only_events(rig: Rig) -> None:
    d = rig.display
    # focus the editor window (no window manager: the agent falls back to GetInputFocus)
    xdotool(d, "windowfocus", "--sync", rig.windows[0])
    events = rig.wait_for("the editor's focus event", lambda ev: len(_focus_events(ev)) >= 1)
    first = _focus_events(events)[-1]
    assert first["category"] == "code"
    keys_before = len(rig.keys())
    xdotool(d, "type", "--delay", "20", WORDS)
    xdotool(d, "key", "--delay", "20", *["BackSpace"] * BACKSPACES)
    xdotool(d, "type", "--delay", "20", TYPED_AFTER)
    want = keys_before + len(WORDS) + BACKSPACES + len(TYPED_AFTER)
    rig.wait_for(f"{want} key events", lambda ev: sum(e["kind"] == "key" for e in ev) >= want)
    keys = rig.keys()[keys_before:]
    assert len(keys) == len(WORDS) + BACKSPACES + len(TYPED_AFTER)
    flags = [k["correction"] for k in keys]
    assert flags == [False] * len(WORDS) + [True] * BACKSPACES + [False] * len(TYPED_AFTER)
    assert all(set(k) == {"seq", "kind", "ts", "correction"} for k in keys)
    assert all(a["ts"] <= b["ts"] for a, b in itertools.pairwise(keys))

    # pointer: moves, 2 left clicks + 1 right click, 3 wheel notches (buttons 4, 4, 5)
    xdotool(d, "mousemove", "10", "10", "mousemove", "400", "300", "mousemove", "600", "500")
    xdotool(d, "click", "1", "click", "1", "click", "3")
    xdotool(d, "click", "4", "click", "4", "click", "5")

    def pointer_done(ev: list[dict[str, Any]]) -> bool:
        clicks = sum(int(e["clicks"]) for e in ev if e["kind"] == "mouse")
        ticks = sum(int(e["ticks"]) for e in ev if e["kind"] == "scroll")
        return clicks >= 3 and ticks >= 3

    events = rig.wait_for("3 clicks and 3 scroll ticks", pointer_done)
    mouse = [e for e in events if e["kind"] == "mouse"]
    assert sum(e["clicks"] for e in mouse) == 3
    assert any(e["speed"] > 0 for e in mouse)
    assert all(set(e) == {"seq", "kind", "ts", "speed", "clicks", "span_ms"} for e in mouse)
    scroll = [e for e in events if e["kind"] == "scroll"]
    assert sum(e["ticks"] for e in scroll) == 3

    # switch to the chat window: a focus change with the overridden category, another app id
    xdotool(d, "windowfocus", "--sync", rig.windows[1])
    events = rig.wait_for(
        "the chat window's focus event",
        lambda ev: any(e["category"] == "communication" for e in _focus_events(ev)),
    )
    chat = next(e for e in _focus_events(events) if e["category"] == "communication")
    assert chat["app_id"] != first["app_id"]
    assert set(chat) == {"seq", "kind", "ts", "category", "app_id"}
    assert rig.events()[-1]["seq"] == len(rig.events())  # nothing refused, nothing missing

    # no key identity, no window class or title anywhere: database, spool, the DEBUG log
    blobs = {
        "database": b"".join(p.read_bytes() for p in rig.db.parent.glob("skelly.db*")),
        "spool": rig.spool.read_bytes() if rig.spool.exists() else b"",
        "log": rig.log.read_bytes(),
    }
    assert b"DEBUG" in blobs["log"]  # the log ran at DEBUG level
    for name, blob in blobs.items():
        for secret in (b"hello", b"world", b"xyz", b"BackSpace", b"backspace", b"SkellyEditor",
                       b"skellychat", b"secret window title"):  # fmt: skip
            assert secret.lower() not in blob.lower(), (name, secret)


def test_pause_resume_status_over_the_control_socket(rig: Rig) -> None:
    status = skelly("capture", "--status", env=rig.env)
    assert status.returncode == 0, status.stderr
    assert len(status.stdout.splitlines()) == 1
    line = status.stdout
    assert f"connected to 127.0.0.1:{rig.port}" in line and "not connected" not in line
    assert "events/min" in line and "last ack" in line and "capturing" in line

    paused = skelly("capture", "--pause", "30m", env=rig.env)
    assert paused.returncode == 0, paused.stderr
    assert "paused until" in paused.stdout and "paused at" in paused.stdout
    status = skelly("capture", "--status", env=rig.env)
    assert "paused until" in status.stdout and "min left" in status.stdout

    before = len(rig.keys())
    xdotool(rig.display, "type", "--delay", "20", "abc")  # while paused: dropped
    # the three presses reached the agent's callback (and were dropped there) before resuming
    sock = rig.home / "run" / control.SOCKET_NAME
    deadline = time.monotonic() + allow(20)
    while control.request(sock, {"cmd": "status"})["dropped"] < 3:
        assert time.monotonic() < deadline, "the agent never saw the keys typed while paused"
        time.sleep(0.05)
    status = skelly("capture", "--status", env=rig.env)
    assert "3 inputs dropped" in status.stdout, status.stdout
    resumed = skelly("capture", "--resume", env=rig.env)
    assert resumed.returncode == 0, resumed.stderr
    assert "capturing" in resumed.stdout and "resumed at" in resumed.stdout
    xdotool(rig.display, "type", "--delay", "20", "de")
    # events are stored in order, so once "de" is there "abc" would be too had it been captured
    rig.wait_for(
        "2 keys after resume", lambda ev: sum(e["kind"] == "key" for e in ev) >= before + 2
    )
    assert len(rig.keys()) == before + 2
    log = rig.log.read_text()
    assert "paused for 30 min" in log and "resumed: capturing" in log


def test_second_agent_and_bad_pause_are_one_line_errors(rig: Rig, tmp_path: Path) -> None:
    bad = skelly("capture", "--pause", "soon", env=rig.env)
    assert bad.returncode == 2
    assert bad.stderr.startswith("skelly: error: --pause:") and len(bad.stderr.splitlines()) == 1
    token = tmp_path / "t"
    token.write_text("x" * 43 + "\n")
    token.chmod(0o600)
    second = skelly("capture", "--to", f"127.0.0.1:{rig.port}", "--token-file", str(token),
                    "--spool", str(tmp_path / "s.ndjson"), env=rig.env)  # fmt: skip
    assert second.returncode == 2, second.stderr
    err = [ln for ln in second.stderr.splitlines() if ln.startswith("skelly: error:")]
    assert len(err) == 1 and "already running" in err[0], second.stderr


def test_wrong_token_ends_the_agent_with_one_line(rig: Rig, tmp_path: Path) -> None:
    """The Pi refuses the token for good: the agent stops (status 2) instead of running on."""
    token = tmp_path / "wrong-token"
    token.write_text("w" * 43 + "\n")
    token.chmod(0o600)
    (tmp_path / "run").mkdir()
    env = {**rig.env, "XDG_RUNTIME_DIR": str(tmp_path / "run")}  # not the running agent's
    result = skelly("capture", "--quiet", "--to", f"127.0.0.1:{rig.port}", "--token-file",
                    str(token), "--spool", str(tmp_path / "s.ndjson"), env=env)  # fmt: skip
    assert result.returncode == 2, result.stderr
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("skelly: error:")]
    assert len(errors) == 1 and "refused the connection" in errors[0], result.stderr
    assert "check --token-file" in errors[0]
