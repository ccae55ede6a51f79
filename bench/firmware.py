"""MicroPython firmware benchmark: frames/s on the MicroPython unix port against the Python
simulated MCU in the same run, and the firmware's peak heap over a long noisy session.

Prints ONE JSON object.

* **Throughput.** Each MCU runs as its own process on a pty: the firmware
  (``firmware_bridge/mcu_firmware``, precompiled with mpy-cross, ``micropython -X heapsize=64K
  -m hw_unix``) and the simulated MCU (``python -m hw_sim.mcu --quiet``, ``McuProtocol``). One
  driver greets each with HELLO, then keeps ``--window`` SET_GLOW commands in flight (a fresh
  seq each; the next is written when an ACK comes back) for ``--seconds``, unpaced. Counted:
  ACKs received, i.e. commands the MCU decoded, checked, executed and acknowledged; also per
  CPU-second of the MCU process (the machine may be shared). Both are run ``--runs`` times,
  alternating, and the medians reported.
* **Heap.** The firmware at its test budget (64 KiB heap, 64-bit port) under the real host link
  (``SerialLink`` + ``HostProtocol``) through the simulator's fault injection (bit flips, lost
  bytes, duplicated frames both ways), random commands every 5-50 ms and button presses, for
  ``--minutes``. Its main loop records the ``gc.mem_alloc()`` high-water; sampled every 30 s.
  Also: MemoryErrors (none allowed), sessions, presses made / reported.

Usage: ``python bench/firmware.py [--minutes 10] [--seconds 3] [--runs 3] [--window 16]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tty
from pathlib import Path
from typing import Any

# bench/serial.py would shadow pyserial: take this folder off the path, put the repository root on
_HERE = Path(__file__).resolve().parent
ROOT = _HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from firmware_bridge.core.framing import FrameDecoder, encode_frame  # noqa: E402
from firmware_bridge.core.messages import (  # noqa: E402
    Ack,
    Hello,
    HelloReply,
    Role,
    SetGlow,
    decode_packet,
    encode_message,
)
from firmware_bridge.core.protocol import Connected, Disconnected, InputReceived  # noqa: E402
from hw_sim.mcu import Faults  # noqa: E402
from tests.firmware.harness import FirmwareRig, Host, noisy_session  # noqa: E402
from tests.firmware.micropython import (  # noqa: E402
    HEAP_BUDGET,
    compiled_firmware,
    micropython_binary,
)


class Driver:
    """Raw frames to one MCU on ``fd``: a HELLO, then a window of SET_GLOWs."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.decoder = FrameDecoder()
        self.acks = 0
        self.replied = asyncio.Event()
        self.ack_seen = asyncio.Event()
        self.seq = 0
        self.out = bytearray()
        loop = asyncio.get_running_loop()
        loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        for payload in self.decoder.feed(data):
            msg = decode_packet(payload).msg
            if isinstance(msg, Ack):
                self.acks += 1
                self.ack_seen.set()
            elif isinstance(msg, HelloReply):
                self.replied.set()

    def send(self, msg: Any) -> None:
        self.seq = (self.seq + 1) & 0xFFFF
        self.out += encode_frame(encode_message(msg, self.seq, sender=Role.HOST))
        self.flush()

    def flush(self) -> None:
        while self.out:
            try:
                n = os.write(self.fd, self.out)
            except BlockingIOError:
                return
            del self.out[:n]

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.fd)


async def _throughput(
    fd: int, proc: psutil.Process, seconds: float, window: int
) -> dict[str, float]:
    driver = Driver(fd)
    try:
        async with asyncio.timeout(10):
            while not driver.replied.is_set():  # the MCU may still be starting: ask again
                driver.send(Hello(heartbeat_ms=5000))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.25):
                        await driver.replied.wait()
        for i in range(window):
            driver.send(SetGlow(i, 0, 0))
        loop = asyncio.get_running_loop()

        async def pump(seconds: float) -> None:
            end = loop.time() + seconds
            while loop.time() < end:
                before = driver.acks
                driver.ack_seen.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        await driver.ack_seen.wait()
                for i in range(driver.acks - before):  # one new command per ACK
                    driver.send(SetGlow(driver.seq & 0xFF, i & 0xFF, 0))

        await pump(0.5)  # warm-up
        t0, a0, cpu0 = loop.time(), driver.acks, proc.cpu_times()
        await pump(seconds)
        t1, a1, cpu1 = loop.time(), driver.acks, proc.cpu_times()
        cpu = cpu1.user + cpu1.system - cpu0.user - cpu0.system
        return {
            "frames_per_s": (a1 - a0) / (t1 - t0),
            "frames_per_mcu_cpu_s": (a1 - a0) / max(cpu, 1e-9),
        }
    finally:
        driver.close()


async def _firmware_throughput(seconds: float, window: int) -> dict[str, float]:
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    proc = await asyncio.create_subprocess_exec(
        str(micropython_binary()), "-X", f"heapsize={HEAP_BUDGET}", "-m", "hw_unix",
        "--serial", os.ttyname(slave),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "MICROPYPATH": str(compiled_firmware())},
    )  # fmt: skip
    try:
        return await _throughput(master, psutil.Process(proc.pid), seconds, window)
    finally:
        proc.kill()
        await proc.wait()
        os.close(master)
        os.close(slave)


async def _sim_throughput(seconds: float, window: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="skelly-bench-") as tmp:
        link = Path(tmp) / "mcu"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hw_sim.mcu", "--link", str(link), "--quiet",
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            cwd=ROOT,
        )  # fmt: skip
        assert proc.stdout is not None
        await proc.stdout.readline()  # "simulated MCU at ..."
        fd = os.open(link, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(fd)
        try:
            return await _throughput(fd, psutil.Process(proc.pid), seconds, window)
        finally:
            os.close(fd)
            proc.kill()
            await proc.wait()


async def _heap_session(minutes: float) -> dict[str, Any]:
    faults = Faults(corrupt_rate=0.003, drop_rate=0.003, duplicate_rate=0.05)
    samples: list[int] = []
    async with FirmwareRig(faults=faults, seed=14) as rig:
        host = Host(rig)
        async with host.link:
            await host.link.wait_up(timeout=10)
            host.protocol.set_glow(1, 1, 1)
            await host.sync()
            presses = 0
            end = time.monotonic() + minutes * 60
            round_ = 0
            while time.monotonic() < end:
                seconds = min(30.0, end - time.monotonic())
                presses += await noisy_session(rig, host, seconds, seed=round_, max_presses=10**9)
                round_ += 1
                heap = await rig.ask("heap", "HEAP")
                samples.append(int(heap.split("peak=")[1].split()[0]))
            await host.sync(60)
            await rig.wait_until(lambda: len(host.of(InputReceived)) >= presses, 30)
            stats = await rig.ask("stats", "STATS")
            heap = await rig.ask("heap", "HEAP")
        assert rig.relay is not None
        c = rig.relay.counters
        values = dict(w.split("=") for w in (stats + " " + heap).split() if "=" in w)
        return {
            "minutes": minutes,
            "heap_budget_bytes": HEAP_BUDGET,
            "heap_peak_bytes": int(values["peak"]),
            "heap_peak_fraction_of_budget": round(int(values["peak"]) / HEAP_BUDGET, 3),
            "heap_peak_samples_every_30s": samples,
            "memory_errors": sum("MemoryError" in ln for ln in rig.lines),
            "loop_errors": int(values["errors"]),
            "frames_in": int(values["in"]),
            "frames_out": int(values["out"]),
            "crc_errors_at_mcu": int(values["crc"]),
            "duplicates_at_mcu": int(values["dup"]),
            "faults_injected": {
                "corrupted": c.corrupted,
                "dropped": c.dropped,
                "duplicated": c.duplicated,
            },
            "sessions": len(host.of(Connected)),
            "disconnects": [e.reason for e in host.of(Disconnected)],
            "presses_made": presses,
            "presses_reported": len(host.of(InputReceived)),
        }


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"micropython": str(micropython_binary())}
    fw: list[dict[str, float]] = []
    sim: list[dict[str, float]] = []
    for _ in range(args.runs):
        fw.append(await _firmware_throughput(args.seconds, args.window))
        sim.append(await _sim_throughput(args.seconds, args.window))
    for name, runs in (("micropython_firmware", fw), ("python_simulated_mcu", sim)):
        for key in ("frames_per_s", "frames_per_mcu_cpu_s"):
            out[f"{name}_{key}"] = round(statistics.median(r[key] for r in runs))
    out["firmware_vs_simulator_frames_per_s"] = round(
        out["micropython_firmware_frames_per_s"] / out["python_simulated_mcu_frames_per_s"], 3
    )
    if args.minutes > 0:
        out["noisy_session"] = await _heap_session(args.minutes)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="noisy heap session (0: skip)")
    ap.add_argument("--seconds", type=float, default=3.0, help="each throughput run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--window", type=int, default=16, help="commands in flight")
    args = ap.parse_args()
    print(json.dumps(asyncio.run(_main(args))))


if __name__ == "__main__":
    main()
