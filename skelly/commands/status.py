"""``skelly status``: how the running service is, through its control socket (docs/STATUS.md §4)."""

from __future__ import annotations

import argparse
import json
import socket
import sys
from pathlib import Path
from typing import Any

from modules.orchestrator import control_socket_path
from skelly.config import load
from skelly.errors import SkellyError

TIMEOUT_S = 5.0
MAX_REPLY = 4 << 20
DASH = "—"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "status",
        help="show how the running service is: modules, links, queues, latency, focus",
        description=(
            "Asks the running service (skelly run, or skelly sim) through its control socket "
            "<data_dir>/control.sock: each module's health and detail and restarts, the host "
            "and MCU links, queue depths and drops, publish-to-handler latency p50/p99 per "
            "priority, the focus state and time in it, today's coins and the streak."
        ),
    )
    p.add_argument("--config", help="TOML config file of the service (to find its data_dir)")
    p.add_argument("--state-dir", default="", help="the service's data dir (skelly sim's)")
    p.add_argument("--socket", default="", help="the control socket itself")
    p.add_argument("--json", action="store_true", help="print the service's JSON as is")
    p.set_defaults(func=run)


def socket_path(args: argparse.Namespace) -> Path:
    if args.socket:
        return Path(args.socket).expanduser()
    if args.state_dir:
        return control_socket_path(Path(args.state_dir).expanduser())
    return control_socket_path(load(args.config).state_dir())


def ask(path: Path, timeout: float = TIMEOUT_S) -> dict[str, Any]:
    """The service's status report, or a :class:`SkellyError` saying why there is none."""
    hint = (
        "is `skelly run` running with this data_dir (--config/--state-dir)? `skelly sim` "
        "serves one in its --state-dir"
    )
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(path))
            s.sendall(b"status\n")
            chunks: list[bytes] = []
            size = 0
            while chunk := s.recv(65536):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_REPLY:
                    raise SkellyError(f"the service on {path} sent more than 4 MiB; not a status")
    except (FileNotFoundError, ConnectionRefusedError):
        raise SkellyError(f"no skelly service answers on {path}; {hint}") from None
    except PermissionError:
        raise SkellyError(
            f"cannot open the control socket {path}: permission denied (it is 0600); run as the "
            "service's user, e.g. `sudo -u skelly skelly status --config /etc/skelly/config.toml`"
        ) from None
    except TimeoutError:
        raise SkellyError(
            f"the service on {path} did not answer within {timeout:g} s; its event loop may "
            "be stalled (under systemd the watchdog restarts it)"
        ) from None
    except OSError as exc:
        raise SkellyError(f"cannot ask the service on {path}: {exc.strerror or exc}") from None
    try:
        reply = json.loads(b"".join(chunks))
    except ValueError:
        raise SkellyError(
            f"the service on {path} answered with something that is not JSON; {hint}"
        ) from None
    if not isinstance(reply, dict):
        raise SkellyError(f"the service on {path} answered with something that is not a status")
    if "error" in reply:
        raise SkellyError(f"the service on {path} said: {reply['error']}")
    return reply


def run(args: argparse.Namespace) -> int:
    report = ask(socket_path(args))
    if args.json:
        sys.stdout.write(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    else:
        sys.stdout.write("\n".join(render(report)) + "\n")
    return 0


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return DASH
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _lag(lag: dict[str, float] | None) -> str:
    if not lag:
        return ""
    return f", loop lag {lag['last']:g} ms (max {lag['max']:g} ms)"


def _or_dash(value: object) -> str:
    return DASH if value is None else str(value)


def render(r: dict[str, Any]) -> list[str]:
    """The report as a few lines for a person."""
    out = [
        f"skelly: {r.get('words', '')}",
        f"service  pid {r.get('pid')}, up {_dur(r.get('uptime_s'))}, health {r.get('health')}"
        + _lag(r.get("loop_lag_ms")),
        "modules",
    ]
    for m in r.get("modules", []):
        restarts = f"restarts {m['restarts']}"
        if m.get("restarts_last_hour"):
            restarts += f" ({m['restarts_last_hour']} in the last hour)"
        out.append(f"  {m['name']:<15} {m['status']:<12} {restarts:<14}  {m['detail']}")
    links = r.get("links", {})
    parts = []
    for name in ("host", "mcu"):
        link = links.get(name)
        label = "MCU" if name == "mcu" else "host"
        if link is None:
            parts.append(f"{label} {DASH}")
            continue
        peer = f" {link['peer']}" if link.get("peer") and name == "host" else ""
        state = "up" if link["up"] else "down"
        detail = f", {link['detail']}" if link.get("detail") else ""
        parts.append(f"{label}{peer} {state} for {_dur(link.get('for_s'))}{detail}")
    out.append("links    " + "; ".join(parts))
    focus = r.get("focus")
    if focus:
        host = f", host {focus['host']}" if focus.get("host") else ""
        out.append(
            f"focus    {focus['state']} for {_dur(focus.get('for_s'))}"
            f" (confidence {focus.get('confidence', 0):.2f}{host})"
        )
    else:
        out.append(f"focus    {DASH} (no state yet)")
    rewards = r.get("rewards") or {}
    out.append(
        f"rewards  coins today {_or_dash(rewards.get('coins_today'))}, total "
        f"{_or_dash(rewards.get('total_coins'))}, streak {_or_dash(rewards.get('streak'))}"
    )
    queues = r.get("queues", [])
    depth = sum(q["depth"] for q in queues)
    dropped = sum(q["dropped"] for q in queues)
    out.append(
        f"queues   {len(queues)} subscribers, {depth} queued, {dropped} dropped, "
        f"{r.get('dead_letters', 0)} dead-lettered, {r.get('errors_reported', 0)} handler errors"
    )
    busy = sorted(queues, key=lambda q: (q["dropped"], q["high_water"]), reverse=True)
    for q in busy[:5]:
        if q["high_water"] or q["dropped"] or q["depth"]:
            out.append(
                f"  {q['name']:<40} depth {q['depth']}/{q['maxsize']} (high {q['high_water']}), "
                f"dropped {q['dropped']}"
            )
    out.append("latency  publish -> handler, per priority")
    for prio, lat in r.get("latency", {}).items():
        if lat.get("count"):
            out.append(
                f"  {prio:<9} p50 {lat['p50_us']} us, p99 {lat['p99_us']} us ({lat['count']} msgs)"
            )
        else:
            out.append(f"  {prio:<9} {DASH} (none yet)")
    return out
