"""Service benchmark (issue 10): `skelly run` as systemd would run it, with simulated back ends.

Prints ONE JSON object.  The service is a real ``skelly run`` process with the built-in defaults
(group commit as shipped) on a fresh data dir, under a fake ``NOTIFY_SOCKET`` (a datagram socket
in this process) with ``WATCHDOG_USEC`` as deploy/skelly.service sets it (WatchdogSec=30), and its
figurine link talking to the simulated MCU (hw_sim, on a pty served by this process).

* ``ready_s`` — process start (``Popen``) → ``READY=1`` received; median of ``--runs``.
* ``stop_s`` — SIGTERM → the process has exited (storage flushed, all stopped); median.
* ``idle_cpu_percent`` — the service's user+system CPU time over ``--idle-s`` seconds of idling
  (no host connected, MCU link up, health checks and watchdog running) as a percentage of one
  core (/proc/<pid>/stat); median of ``--runs``.
* ``rss_mib`` — the service's VmRSS after the idle window (all eight modules running); median.
* ``cli_start_s`` — ``skelly --version`` (interpreter start and the CLI's imports, no service):
  the part of ``ready_s`` that is not the service starting; ``load_average_1min`` says how busy
  the machine was.
* ``disk_mib_per_hour`` — bytes the service process caused to be written to the block layer
  (/proc/<pid>/io ``write_bytes``: WAL, checkpoints, database, state) while a host streams a
  realistic 5 events/s (70 % key, 15 % mouse, 10 % focus, 5 % idle; every event acknowledged),
  per hour: median of ``--disk-windows`` consecutive windows of ``--disk-s`` seconds each after a
  warm-up; ``disk_mib_per_hour_total`` is the whole measured span.

Usage: ``python bench/service.py [--runs 5] [--idle-s 60] [--disk-s 60] [--disk-windows 5]``
(the targets: idle CPU <= 0.5 %, RSS <= 45 MiB, READY <= 1.0 s, stop <= 1 s, disk < 100 MiB/h).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hw_sim.mcu import SimulatedMcu  # noqa: E402
from modules.ingest.client import IngestClient  # noqa: E402
from modules.ingest.token import new_token, write_token  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
WATCHDOG_USEC = 30_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def write_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError("no write_bytes")


class Service:
    def __init__(self, work: Path, mcu_path: str, token_file: Path) -> None:
        self.work = work
        self.port = free_port()
        self.config = work / "config.toml"
        self.config.write_text(
            f'data_dir = "{work / "state"}"\n'
            f'[ingest]\nport = {self.port}\ntoken_file = "{token_file}"\n'
            f'[figurine.serial]\nurl = "{mcu_path}"\n'
        )
        self.notify_path = work / "notify.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self.messages: list[str] = []

    async def start(self) -> float:
        """Start it; returns seconds from Popen to READY=1."""
        self.notify_path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        listener.bind(str(self.notify_path))
        listener.setblocking(False)
        env = {
            **os.environ,
            "NOTIFY_SOCKET": str(self.notify_path),
            "WATCHDOG_USEC": str(WATCHDOG_USEC),
            "PYTHONPATH": str(ROOT),
        }
        env.pop("WATCHDOG_PID", None)
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(  # noqa: ASYNC220 - fork+exec, does not wait
            [sys.executable, "-m", "skelly.cli", "run", "--config", str(self.config)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            while True:
                data = await asyncio.wait_for(loop.sock_recv(listener, 4096), 60.0)
                self.messages.append(data.decode())
                if data.startswith(b"READY=1"):
                    return time.perf_counter() - t0
        except TimeoutError:
            err = self.proc.stderr.read().decode() if self.proc.stderr else ""
            raise RuntimeError(f"no READY=1 within 60 s: {err[-2000:]}") from None
        finally:
            listener.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def stop(self) -> float:
        """SIGTERM; returns seconds until the process has exited."""
        assert self.proc is not None
        t0 = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(self.proc.wait, 60)
        took = time.perf_counter() - t0
        if code != 0:
            err = self.proc.stderr.read().decode() if self.proc.stderr else ""
            raise RuntimeError(f"skelly run exited {code}: {err[-2000:]}")
        return took


def event(i: int) -> dict[str, Any]:
    r = i % 20
    ts = time.time()
    if r < 14:
        return {"kind": "key", "ts": ts, "correction": r == 3}
    if r < 17:
        return {"kind": "mouse", "ts": ts, "speed": 412.5, "clicks": r - 14, "span_ms": 200}
    if r < 19:
        return {"kind": "focus", "ts": ts, "category": "code", "app_id": "c0ffee12"}
    return {"kind": "idle", "ts": ts, "duration_s": 4.0}


async def stream(client: IngestClient, rate: float, seconds: float, first: int) -> int:
    """Send events ``first``, ``first + 1``, ... at ``rate`` per second for ``seconds``;
    returns the next index."""
    start = time.monotonic()
    i = first
    while (due := start + (i - first) / rate) < start + seconds:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        await client.send(event(i))
        i += 1
    await asyncio.sleep(max(0.0, start + seconds - time.monotonic()))
    return i


def cli_start_s() -> float:
    """Seconds for ``skelly --version``: the interpreter and the CLI's imports, no service."""
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "skelly.cli", "--version"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return time.perf_counter() - t0


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="skelly-bench-service-", dir=args.tmp) as tmp:
        base = Path(tmp)
        token = new_token()
        token_file = base / "token"
        write_token(token_file, token)
        ready, stop, idle, rss = [], [], [], []
        cli = [cli_start_s() for _ in range(args.runs)]
        load_before = os.getloadavg()[0]
        async with SimulatedMcu(base / "mcu") as mcu:
            for run in range(args.runs):
                work = base / f"run{run}"
                work.mkdir()
                svc = Service(work, str(mcu.path), token_file)
                ready.append(await svc.start())
                if args.idle_s > 0:
                    await asyncio.sleep(args.settle_s)
                    c0, t0 = cpu_s(svc.pid), time.monotonic()
                    await asyncio.sleep(args.idle_s)
                    c1, t1 = cpu_s(svc.pid), time.monotonic()
                    idle.append(100.0 * (c1 - c0) / (t1 - t0))
                rss.append(rss_mib(svc.pid))
                stop.append(await svc.stop())

            disk: list[float] = []
            total_mib_h = None
            sent = 0
            if args.disk_s > 0:
                work = base / "disk"
                work.mkdir()
                svc = Service(work, str(mcu.path), token_file)
                await svc.start()
                client = IngestClient(
                    f"127.0.0.1:{svc.port}", token, host_id="bench", session_id="disk"
                )
                await client.start()
                i = await stream(client, args.rate, args.warmup_s, 0)
                b_start, t_start = write_bytes(svc.pid), time.monotonic()
                for _ in range(args.disk_windows):
                    b0, t0 = write_bytes(svc.pid), time.monotonic()
                    i = await stream(client, args.rate, args.disk_s, i)
                    b1, t1 = write_bytes(svc.pid), time.monotonic()
                    disk.append((b1 - b0) / (t1 - t0) * 3600 / 2**20)
                await client.flush(timeout=30)
                sent = client.last_seq
                total_mib_h = (write_bytes(svc.pid) - b_start) / (time.monotonic() - t_start)
                total_mib_h = total_mib_h * 3600 / 2**20
                await client.close()
                await svc.stop()

    def med(xs: list[float]) -> float | None:
        return round(statistics.median(xs), 4) if xs else None

    return {
        "bench": "service",
        "idle_cpu_percent": med(idle),
        "rss_mib": med(rss),
        "ready_s": med(ready),
        "stop_s": med(stop),
        "disk_mib_per_hour": med(disk),
        "disk_mib_per_hour_total": round(total_mib_h, 3) if total_mib_h is not None else None,
        "cli_start_s": med(cli),
        "load_average_1min": round(load_before, 2),
        "runs": args.runs,
        "idle_s": args.idle_s,
        "disk_s": args.disk_s,
        "disk_windows": args.disk_windows,
        "rate_events_per_s": args.rate,
        "events_acked": sent,
        "all": {
            "idle_cpu_percent": [round(x, 4) for x in idle],
            "rss_mib": [round(x, 2) for x in rss],
            "ready_s": [round(x, 3) for x in ready],
            "stop_s": [round(x, 3) for x in stop],
            "disk_mib_per_hour": [round(x, 3) for x in disk],
            "cli_start_s": [round(x, 3) for x in cli],
        },
        "targets": {
            "idle_cpu_percent": 0.5,
            "rss_mib": 45,
            "ready_s": 1.0,
            "stop_s": 1.0,
            "disk_mib_per_hour": 100,
        },
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
    }


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5, help="start/idle/stop runs (median)")
    p.add_argument("--idle-s", type=float, default=60.0, help="idle window per run (0: skip)")
    p.add_argument("--settle-s", type=float, default=3.0, help="wait after READY before idling")
    p.add_argument("--disk-s", type=float, default=60.0, help="one disk window (0: skip)")
    p.add_argument("--disk-windows", type=int, default=5, help="disk windows (median)")
    p.add_argument("--warmup-s", type=float, default=15.0, help="streaming before disk windows")
    p.add_argument("--rate", type=float, default=5.0, help="events per second for the disk run")
    p.add_argument("--tmp", default=None, help="where the data dirs go (a real disk, not tmpfs)")
    return p.parse_args(argv)


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(parse()))))
