"""MQTT bridge benchmark (issue 13): 50 devices on one local Mosquitto.

Prints ONE JSON object.  Each run starts its own ``mosquitto`` (loopback, anonymous, no
persistence) and, in this process, ``--devices`` (50) bridges — each a real bus with a real
``MqttBridge`` and its own MQTT connection (the "bridge cores in one process" of the issue).  Every
device gets an analysis window every ``--interval`` s (1 s: ten times the service's real 10 s
cadence, so a short run has enough samples), which the bridge publishes as its retained state.

* ``publish_to_subscriber_p99_ms`` — ``AnalysisComplete`` published on a device's bus → the state
  message received by a subscriber in a *separate process* (aiomqtt, ``skelly/+/state``); both
  ends stamp ``time.time()`` on the same machine.  Each message is matched by a sequence number
  carried in ``time_in_state_s``.
* ``broker_cpu_percent`` — mosquitto's CPU (psutil on its pid) over the fan-out phase, percent of
  one core; ``bridge_cpu_ms_per_device_s`` — this process's CPU (50 buses + 50 bridges, no
  subscriber) per device per second of run.
* ``mirror_output_p99_ms`` — one more pair: a state change on device ``src``'s bus → the RGB pins
  of device ``dst``'s figurine (``mirror = "src"``, gpiozero ``MockFactory`` pins, first pin change
  timestamp after ``clear_states``) changed; changes alternate FLOW / DISTRACTED every 0.3 s.
  Target ≤ 50 ms on loopback.
* Each figure is the median over ``--runs`` (3) runs.

Usage: ``python bench/mqtt.py [--runs 3] [--devices 50] [--seconds 10] [--interval 1.0]``
(needs the mqtt extra and /usr/sbin/mosquitto).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil
import uvloop
from gpiozero.pins.mock import MockFactory, MockPWMPin

ROOT = Path(__file__).resolve().parents[1]
# run as a script, bench/ is sys.path[0] and bench/bus.py, bench/serial.py would shadow packages
sys.path[0] = str(ROOT)

from bus import Bus, ModuleRegistry, ModuleStatus  # noqa: E402
from bus.messages import AnalysisComplete, FocusState, StateChange  # noqa: E402
from modules.figurine import CuteFigurine, FigurineConfig, GpioConfig  # noqa: E402
from modules.mqtt_bridge import MqttBridge, MqttConfig  # noqa: E402

GPIO = GpioConfig(pulse=False)
SUBSCRIBER = textwrap.dedent(
    """
    import asyncio, json, sys, time
    import aiomqtt
    async def main(port, want):
        got = []
        async with aiomqtt.Client("127.0.0.1", port, identifier="bench-sub") as c:
            await c.subscribe("skelly/+/state", qos=1)
            print("ready", flush=True)
            async def read():
                async for m in c.messages:
                    t = time.time()
                    if m.retain:
                        continue
                    dev = str(m.topic).split("/")[1]
                    got.append((dev, json.loads(m.payload)["time_in_state_s"], t))
            task = asyncio.create_task(read())
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            task.cancel()
        json.dump(got, sys.stdout)
    asyncio.run(main(int(sys.argv[1]), 0))
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def p99(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def start_broker(d: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = d / "mosquitto.conf"
    conf.write_text(
        f"user {os.environ.get('USER') or 'root'}\nallow_anonymous true\npersistence false\n"
        f"max_queued_messages 10000\nlistener {port} 127.0.0.1\n"
    )
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen(
        [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    for _ in range(200):
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return proc, port
        time.sleep(0.05)
    raise SystemExit("mosquitto did not start")


def config(port: int, device: str, **kw: Any) -> MqttConfig:
    return MqttConfig(
        enabled=True, host="127.0.0.1", port=port, device_id=device, discovery=False, **kw
    )


async def wait_healthy(bridges: list[MqttBridge], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(b.status is ModuleStatus.HEALTHY for b in bridges):
        if time.monotonic() > deadline:
            bad = [b.detail for b in bridges if b.status is not ModuleStatus.HEALTHY]
            raise SystemExit(f"bridges not healthy: {bad[:3]}")
        await asyncio.sleep(0.05)


def rgb_changed_at(pins: Any, cleared_at: float) -> float | None:
    times = []
    for p in (GPIO.red, GPIO.green, GPIO.blue):
        states = pins.pin(p).states
        if len(states) > 1:
            times.append(cleared_at + states[1].timestamp)
    return min(times) if times else None


async def one_run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        broker, port = start_broker(Path(tmp))
        sub = await asyncio.create_subprocess_exec(
            sys.executable, "-c", SUBSCRIBER, str(port),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert sub.stdout is not None and sub.stdin is not None
        assert (await sub.stdout.readline()).strip() == b"ready"
        buses: list[Bus] = []
        bridges: list[MqttBridge] = []
        try:
            for i in range(args.devices):
                bus = Bus(ModuleRegistry())
                bridge = MqttBridge(config(port, f"dev{i:02d}"))
                await bridge.start(bus)
                buses.append(bus)
                bridges.append(bridge)
            await wait_healthy(bridges)
            # --- fan-out phase ---------------------------------------------------------------
            sent: dict[tuple[str, int], float] = {}
            me, mosq = psutil.Process(), psutil.Process(broker.pid)
            cpu0, mcpu0, t0 = me.cpu_times(), mosq.cpu_times(), time.monotonic()
            seq = 1000
            ticks = int(args.seconds / args.interval)
            for _ in range(ticks):
                start = time.monotonic()
                for i, bus in enumerate(buses):
                    seq += 1
                    sent[(f"dev{i:02d}", seq)] = time.time()
                    bus.publish(
                        AnalysisComplete(0.0, 1.0, FocusState.FLOW, 0.9, FocusState.FLOW, seq),
                        source="AnalysisEngine",
                    )
                    if i % 10 == 9:
                        await asyncio.sleep(0)
                await asyncio.sleep(max(0.0, args.interval - (time.monotonic() - start)))
            await asyncio.sleep(0.5)  # the last ones arrive
            cpu1, mcpu1, t1 = me.cpu_times(), mosq.cpu_times(), time.monotonic()
            sub.stdin.write(b"stop\n")
            await sub.stdin.drain()
            got = json.loads(await sub.stdout.read())
            await sub.wait()
            lat = [(t - sent[(dev, s)]) * 1000 for dev, s, t in got if (dev, s) in sent]
            wall = t1 - t0
            own = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
            mos = (mcpu1.user + mcpu1.system) - (mcpu0.user + mcpu0.system)
            dropped = sum(b.buffer.dropped for b in bridges)
            for bridge in bridges:
                await bridge.stop()
            for bus in buses:
                await bus.aclose()
            bridges, buses = [], []
            # --- mirror phase ----------------------------------------------------------------
            src_bus, dst_bus = Bus(ModuleRegistry()), Bus(ModuleRegistry())
            pins = MockFactory(pin_class=MockPWMPin)
            fig = CuteFigurine(
                FigurineConfig(serial_enabled=False, gpio_enabled=True, gpio=GPIO),
                pin_factory=lambda: pins,
            )
            src = MqttBridge(config(port, "src"))
            dst = MqttBridge(config(port, "dst", mirror="src"))
            await src.start(src_bus)
            await fig.start(dst_bus)
            await dst.start(dst_bus)
            bridges = [src, dst]
            await wait_healthy(bridges)
            mirror: list[float] = []
            states = [FocusState.FLOW, FocusState.DISTRACTED]
            for n in range(args.mirror_samples):
                to = states[n % 2]
                cleared = time.monotonic()
                for p in (GPIO.red, GPIO.green, GPIO.blue):
                    pins.pin(p).clear_states()
                t_pub = time.monotonic()
                src_bus.publish(
                    StateChange(states[(n + 1) % 2], to, 0.9, 0.0, 1.0, "laptop"), source="A"
                )
                changed = None
                deadline = t_pub + 2.0
                while changed is None and time.monotonic() < deadline:
                    await asyncio.sleep(0.001)
                    changed = rgb_changed_at(pins, cleared)
                if changed is not None and n > 0:  # the first one may find the look already set
                    mirror.append((changed - t_pub) * 1000)
                await asyncio.sleep(0.3)
            for m in (dst, fig, src):
                await m.stop()
            pins.reset()
            await src_bus.aclose()
            await dst_bus.aclose()
            bridges = []
        finally:
            for bridge in bridges:
                await bridge.stop()
            broker.terminate()
            broker.wait(10)
            if sub.returncode is None:
                sub.kill()
        return {
            "messages": len(got),
            "expected": len(sent),
            "publish_to_subscriber_p50_ms": round(statistics.median(lat), 2) if lat else None,
            "publish_to_subscriber_p99_ms": round(p99(lat), 2),
            "broker_cpu_percent": round(100 * mos / wall, 2),
            "bridge_cpu_ms_per_device_s": round(1000 * own / wall / args.devices, 3),
            "dropped": dropped,
            "mirror_samples": len(mirror),
            "mirror_output_p50_ms": round(statistics.median(mirror), 2) if mirror else None,
            "mirror_output_p99_ms": round(p99(mirror), 2),
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--devices", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--mirror-samples", type=int, default=41)
    args = ap.parse_args()
    runs = [uvloop.run(one_run(args)) for _ in range(args.runs)]
    keys = [k for k, v in runs[0].items() if isinstance(v, int | float)]
    out: dict[str, Any] = {
        "devices": args.devices,
        "interval_s": args.interval,
        "seconds": args.seconds,
        "runs": args.runs,
        "loop": "uvloop",
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}",
    }
    for k in keys:
        vals = [r[k] for r in runs if isinstance(r[k], int | float)]
        out[k] = round(statistics.median(vals), 3) if vals else None
    out["per_run"] = runs
    print(json.dumps(out))


if __name__ == "__main__":
    main()
