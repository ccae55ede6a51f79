"""The capture agent's control socket: pause, resume, status (docs/CAPTURE.md §7).

One Unix socket per user, ``$XDG_RUNTIME_DIR/skelly-capture.sock`` (or
``~/.config/skelly/capture.sock`` when there is no runtime directory), mode 0600.  A request is
one JSON line, ``{"cmd": "status"}``, ``{"cmd": "pause", "seconds": 1800}`` or
``{"cmd": "resume"}``; the reply is one JSON line with the agent's status.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

from skelly.capture.categories import config_dir

SOCKET_NAME = "skelly-capture.sock"
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def socket_path() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return Path(runtime) / SOCKET_NAME
    return config_dir() / "capture.sock"


def parse_duration(text: str) -> float:
    """``30m``, ``1h``, ``90s``, ``1h30m`` -> seconds; ValueError otherwise."""
    m = _DURATION.fullmatch(text.strip())
    if not text.strip() or m is None or not any(m.groups()):
        raise ValueError(f"{text!r} is not a duration like 30m, 1h, 90s or 1h30m")
    h, mi, s = (int(g or 0) for g in m.groups())
    seconds = h * 3600 + mi * 60 + s
    if seconds <= 0:
        raise ValueError(f"{text!r}: a pause must be longer than 0 s")
    return float(seconds)


class NoAgent(Exception):
    """No agent answers on the control socket."""


def request(path: Path, message: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """Send one request to the agent at ``path``; its reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise NoAgent(f"no skelly capture agent answers at {path} ({exc.strerror})") from None
        s.sendall(json.dumps(message).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    reply: dict[str, Any] = json.loads(data)
    return reply


def agent_alive(path: Path) -> bool:
    try:
        request(path, {"cmd": "status"}, timeout=2.0)
    except (NoAgent, OSError, ValueError):
        return False
    return True


def _clock_time(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


def status_line(st: dict[str, Any], now: float | None = None) -> str:
    """One line: connection state, events/min, last ack age, paused-until."""
    now = time.time() if now is None else now
    if st.get("connected"):
        conn = f"connected to {st['target']}"
    else:
        why = st.get("problem") or "connecting"
        conn = f"not connected to {st['target']} ({why})"
    age = st.get("last_ack_age_s")
    ack = "last ack never" if age is None else f"last ack {age:.1f} s ago"
    until = st.get("paused_until")
    if until is None:
        state = "capturing"
    elif until == "resume":
        state = "paused until --resume"
    else:
        left = max(0.0, float(until) - now)
        state = f"paused until {_clock_time(float(until))} ({left / 60:.0f} min left)"
    if until is not None:
        state += f", {st.get('dropped', 0)} inputs dropped"
    change = st.get("last_change")
    if change:
        state += f" ({change})"
    return (
        f"skelly capture: {conn} · {st['events_per_min']:.0f} events/min · {ack} · "
        f"{st['unacked']} waiting · {state}"
    )
