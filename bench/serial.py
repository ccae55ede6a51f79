"""Serial link benchmark over a real pty: frames/s and round trips, beside the wire's limits.

Prints ONE JSON object. The host side is ``firmware_bridge.link.SerialLink`` running
``HostProtocol`` on the pty's slave (opened through pyserial, as on the Pi); the MCU side is the
simulated MCU (``hw_sim.mcu``, ``McuProtocol``) on the pty's master. By default the MCU runs in its
own process (``python -m hw_sim.mcu --quiet``), as the real MCU is separate hardware; the same
scenarios with the MCU inside the host's process and loop are reported as ``inline_*``.

Every counted frame is a command the MCU decoded, executed and acknowledged: the host counts the
ACKs it received (including ACKs for values it had already superseded), never frames merely
written; the run fails if the MCU reported CRC errors.

Scenarios (each the median of ``--runs`` runs of ``--seconds`` seconds, after a short warm-up):

* ``stop_and_wait`` — unpaced; SET_GLOW only; the next glow is set when the previous one was ACKed.
  Each round trip (set → ACK event on the host) gives ``rtt_p50_us`` / ``rtt_p99_us``.
* ``pipelined`` — unpaced (the software ceiling): all seven command slots (sleep, brightness,
  glow, pose, text, animation, tone) are kept in flight at once; each slot gets its next value the
  moment its previous one is ACKed (a window of seven frames), so the link never idles for a round
  trip and nothing is produced only to be coalesced away.
* ``paced_115200`` — the same pipelined producer with the host link *and* the simulated MCU paced
  to 115200 baud (8N1: 11520 bytes/s each way).

Physical limit at a baud rate = ``baud / 10`` bytes/s (8N1) divided by the mean size on the wire
(both delimiters included) of the frames the host actually sent in that scenario
(``frame_bytes_*``: host bytes out / frames out over the measured window): the most such frames a
UART could carry one way. ``limit_frames_per_s_115200`` uses the paced scenario's frames,
``limit_frames_per_s_230400`` / ``_921600`` the pipelined scenario's, so each ratio compares like
with like.

Rates are per wall-clock second. Because the machine may be shared, the pipelined run also
reports frames per CPU-second of the host process (``pipelined_frames_per_host_cpu_s``: what the
Pi-side software can push when it has a core; the MCU's work is in the child) and per CPU-second
of host and MCU together (``pipelined_frames_per_cpu_s_both_sides``).

Usage: ``python bench/serial.py [--runs 5] [--seconds 1.0] [--stock-loop] [--no-inline]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

# this script is named serial.py: take its own folder off the path so ``import serial`` finds
# pyserial, and put the repository root on it instead
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import psutil  # noqa: E402
import uvloop  # noqa: E402

from firmware_bridge.core.messages import (  # noqa: E402
    Animation,
    Face,
    Message,
    PlayAnimation,
    SetBrightness,
    SetGlow,
    SetPose,
    ShowText,
    Sleep,
    Tone,
)
from firmware_bridge.core.protocol import Acked, Event, HostProtocol, Slot, Timing  # noqa: E402
from firmware_bridge.link import SerialLink  # noqa: E402
from hw_sim.mcu import SimulatedMcu  # noqa: E402

BAUDS = (115200, 230400, 921600)
TIMING = Timing(heartbeat_s=1.0)
VARIANTS = 200


def _glow(i: int) -> SetGlow:
    # no zero bytes in the body, so every glow frame has the same COBS size
    return SetGlow(1 + i % 250, 1 + (i * 7) % 250, 7, 200, 1500, 100, 300)


def _mix(i: int) -> list[Message]:
    """One new value for every command slot (the order the core sends them in)."""
    return [
        Sleep(i % 2 == 0, 1 + i % 200),
        SetBrightness(1 + i % 250),
        _glow(i),
        SetPose(1 + i % 250, 400),
        ShowText(Face.FOCUSED, f"focus {i}", 2000),
        PlayAnimation(Animation.NOD, 1, 100),
        Tone(440 + i, 50, 100),
    ]


SLOT_INDEX = {slot: n for n, slot in enumerate(Slot)}  # Slot order == the order in _mix
GLOWS = [_glow(i) for i in range(VARIANTS)]
MIXES = [_mix(i) for i in range(VARIANTS)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextlib.asynccontextmanager
async def mcu_at(where: str, baud: int | None) -> AsyncIterator[tuple[str, Callable[[], float]]]:
    """Yield (pty path, CPU seconds used by the MCU so far) of a simulated MCU, inline (its CPU
    is the host process's) or in a child process."""
    if where == "inline":
        async with SimulatedMcu(baud=baud, timing=TIMING) as mcu:
            yield str(mcu.path), lambda: 0.0
            if mcu.protocol.counters.crc_errors:
                raise RuntimeError("the MCU saw damaged frames on a clean pty")
        return
    folder = tempfile.mkdtemp(prefix="skelly-bench-")
    path = os.path.join(folder, "mcu")
    cmd = [sys.executable, "-m", "hw_sim.mcu", "--link", path, "--quiet", "--loop", "uvloop"]
    if baud is not None:
        cmd += ["--baud", str(baud)]
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=_HERE.parent
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        line = (await proc.stdout.readline()).decode()
        if not line.startswith("simulated MCU at"):
            raise RuntimeError(f"simulated MCU did not start: {line!r}")
        child = psutil.Process(proc.pid)

        def child_cpu() -> float:
            t = child.cpu_times()
            return float(t.user + t.system)

        yield path, child_cpu
        raw, _ = await asyncio.wait_for(proc.communicate(b"state\nquit\n"), 10)
        out = raw.decode()
        if "'crc_errors': 0," not in out:
            raise RuntimeError(f"simulated MCU saw damaged frames: {out}")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        with contextlib.suppress(OSError):
            os.rmdir(folder)


async def _session(where: str, baud: int | None, seconds: float, mode: str) -> dict[str, Any]:
    """One run: frames acknowledged per wall second and per CPU second, frame size, round trips."""
    host = HostProtocol(TIMING)
    rtts: list[float] = []
    state: dict[str, Any] = {"i": 0, "sent_at": 0.0, "measuring": False, "stop": False}

    def next_glow() -> None:
        state["i"] += 1
        state["sent_at"] = time.perf_counter()
        host.command(GLOWS[state["i"] % VARIANTS])
        link.wakeup()

    def on_event(event: Event) -> None:
        if not isinstance(event, Acked):
            return
        if mode == "stop_and_wait":
            if state["measuring"]:
                rtts.append(time.perf_counter() - state["sent_at"])
            if not state["stop"]:
                next_glow()
        elif mode == "pipelined" and not state["stop"]:
            # pipelined: every slot gets its next value as soon as its last one is ACKed, so all
            # seven slots are in flight at once and the link never idles for a round trip
            state["i"] += 1
            host.command(MIXES[state["i"] % VARIANTS][SLOT_INDEX[event.slot]])
            link.wakeup()

    async with mcu_at(where, baud) as (path, mcu_cpu):
        link = SerialLink(path, baud or 921600, host, pace=baud is not None, on_event=on_event)
        async with link:
            await link.wait_up(timeout=10)
            if mode == "stop_and_wait":
                next_glow()
            else:
                for msg in MIXES[0]:
                    host.command(msg)
                link.wakeup()
            await asyncio.sleep(min(0.3, seconds / 3))  # warm-up
            c0 = host.counters.as_dict()
            wall0, cpu0, mcu0 = time.perf_counter(), time.process_time(), mcu_cpu()
            state["measuring"] = True
            await asyncio.sleep(seconds)
            c1 = host.counters.as_dict()
            wall = time.perf_counter() - wall0
            cpu = time.process_time() - cpu0
            mcu = mcu_cpu() - mcu0
            state["stop"] = True
            state["measuring"] = False
    acks = c1["acks_in"] - c0["acks_in"]
    frames_out = c1["frames_out"] - c0["frames_out"]
    return {
        "frames_per_s": acks / wall,
        "frames_per_host_cpu_s": acks / cpu,
        "frames_per_cpu_s_both_sides": acks / (cpu + mcu),
        "frame_bytes": (c1["bytes_out"] - c0["bytes_out"]) / max(1, frames_out),
        "retransmits": c1["retransmits"] - c0["retransmits"],
        "rtts": rtts,
    }


def run_scenario(
    factory: Callable[[], asyncio.AbstractEventLoop],
    runs: int,
    seconds: float,
    where: str,
    baud: int | None,
    mode: str,
) -> dict[str, float]:
    """Medians over ``runs`` fresh runs (new loop, new pty, new MCU each time)."""
    results = []
    for _ in range(runs):
        with asyncio.Runner(loop_factory=factory) as runner:
            results.append(runner.run(_session(where, baud, seconds, mode)))
    out: dict[str, float] = {}
    for key in ("frames_per_s", "frames_per_host_cpu_s", "frames_per_cpu_s_both_sides"):
        out[key] = round(statistics.median(r[key] for r in results), 1)
    out["frame_bytes"] = round(statistics.median(r["frame_bytes"] for r in results), 2)
    out["retransmits"] = sum(r["retransmits"] for r in results)
    if results[0]["rtts"]:
        out["rtt_p50_us"] = round(
            statistics.median(percentile(r["rtts"], 0.50) for r in results) * 1e6, 1
        )
        out["rtt_p99_us"] = round(
            statistics.median(percentile(r["rtts"], 0.99) for r in results) * 1e6, 1
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--stock-loop", action="store_true", help="asyncio's loop instead of uvloop")
    ap.add_argument("--no-inline", action="store_true", help="skip the MCU-in-process figures")
    args = ap.parse_args()
    if args.runs < 5:
        ap.error("--runs must be at least 5 (figures are medians of >= 5 runs)")
    factory = asyncio.new_event_loop if args.stock_loop else uvloop.new_event_loop
    started = time.perf_counter()
    r, s = args.runs, args.seconds
    sw = run_scenario(factory, r, s, "process", None, "stop_and_wait")
    pl = run_scenario(factory, r, s, "process", None, "pipelined")
    paced = run_scenario(factory, r, max(s, 1.5), "process", 115200, "pipelined")

    def limit(baud: int, frame_bytes: float) -> float:
        return round(baud / 10 / frame_bytes, 1)

    out: dict[str, Any] = {
        "loop": "asyncio" if args.stock_loop else "uvloop",
        "runs": r,
        "seconds_per_run": s,
        "transport": "pty (os.openpty); host: pyserial serial_for_url + SerialLink",
        "mcu": "hw_sim.mcu in a child process (uvloop)",
        "stop_and_wait_frames_per_s": sw["frames_per_s"],
        "rtt_p50_us": sw["rtt_p50_us"],
        "rtt_p99_us": sw["rtt_p99_us"],
        "frame_bytes_stop_and_wait": sw["frame_bytes"],
        "pipelined_frames_per_s": pl["frames_per_s"],
        "pipelined_frames_per_host_cpu_s": pl["frames_per_host_cpu_s"],
        "pipelined_frames_per_cpu_s_both_sides": pl["frames_per_cpu_s_both_sides"],
        "frame_bytes_pipelined": pl["frame_bytes"],
        "pipelined_retransmits": pl["retransmits"],
        "paced_115200_frames_per_s": paced["frames_per_s"],
        "frame_bytes_paced_115200": paced["frame_bytes"],
        "limit_frames_per_s_115200": limit(115200, paced["frame_bytes"]),
        "limit_frames_per_s_230400": limit(230400, pl["frame_bytes"]),
        "limit_frames_per_s_921600": limit(921600, pl["frame_bytes"]),
        "limit_glow_frames_per_s_921600": limit(921600, sw["frame_bytes"]),
    }
    out["pipelined_over_limit_921600"] = round(
        pl["frames_per_s"] / out["limit_frames_per_s_921600"], 2
    )
    out["pipelined_host_cpu_over_limit_921600"] = round(
        pl["frames_per_host_cpu_s"] / out["limit_frames_per_s_921600"], 2
    )
    out["paced_115200_share_of_limit"] = round(
        paced["frames_per_s"] / out["limit_frames_per_s_115200"], 3
    )
    if not args.no_inline:
        isw = run_scenario(factory, r, s, "inline", None, "stop_and_wait")
        ipl = run_scenario(factory, r, s, "inline", None, "pipelined")
        out["inline_stop_and_wait_frames_per_s"] = isw["frames_per_s"]
        out["inline_rtt_p50_us"] = isw["rtt_p50_us"]
        out["inline_rtt_p99_us"] = isw["rtt_p99_us"]
        out["inline_pipelined_frames_per_s"] = ipl["frames_per_s"]
        out["inline_pipelined_frames_per_cpu_s"] = ipl["frames_per_host_cpu_s"]
    out["load_average_1m"] = round(os.getloadavg()[0], 2)
    out["python"] = platform.python_version()
    out["cpus"] = os.cpu_count()
    out["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
