"""Companion benchmark (issue 9): how fast the figurine answers, while ingest is busy.

Prints ONE JSON object.  Each run builds the service's eight modules in this process exactly as
``skelly run`` does (``skelly.app.build_modules``, the real bus, SQLite in a temporary directory,
DataCapture on loopback TCP), with the figurine's two back ends live: GPIO on gpiozero's
``MockFactory(pin_class=MockPWMPin)`` (the same device code as on a Pi) and serial on a simulated
MCU in a child process (``python -m hw_sim.mcu``, separate hardware like the real one).  A second
child process streams ``--rate`` (1,000) ingest events/s to DataCapture during the whole run
(``load_events_per_s`` says what it achieved; every event is acknowledged).

* ``button_to_output_p99_ms`` — a double press on the mock button pin while an intervention
  shows: the second press edge (``MockPin.drive_low``, which makes gpiozero's Button fire) → the
  ``InterventionResponse("engaged")`` delivered to a bus subscriber (the same delivery
  Gamification's handler gets) *and* the mock RGB pins changed (the pet wiggle replaces the
  intervention's glow).  A double press is decided on that edge; a short press is decided
  ``double_press_s`` (0.4 s) after its release by design (docs/FIGURINE.md §4), so its latency is
  that window plus this figure.
* ``state_to_output_p99_ms`` — a ``StateChange`` published on the bus (as AnalysisEngine does) →
  both the mock RGB pins set and the SET_GLOW frame written to the MCU's port (the link's tx tap);
  ``state_to_pins_p99_ms`` and ``state_to_frame_p99_ms`` separately.  Changes are spaced 150 ms
  apart so the rate caps (LEDs 30 Hz, servo 10 Hz) never hold one back.
* Each figure is the median over ``--runs`` (5) runs of that run's p99.  Pin times come from the
  mock pins' own timestamps (``PinState`` deltas after ``clear_states``), frame times from the
  link's tap, response times from the subscriber; all ``time.monotonic``.
* ``interventions_per_day`` and the rest of ``bench/companion_day.py``'s ``measure()`` are merged
  in: Gamification's pure core over simulated 8-hour workdays (median and max over seeds).

Usage: ``python bench/companion.py [--runs 5] [--samples 30] [--rate 1000] [--stock-loop]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

# run as a script, bench/ is sys.path[0] and bench/bus.py would shadow the bus package
ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)

from bus import Envelope  # noqa: E402
from bus.messages import (  # noqa: E402
    AnimationCommand,
    FocusState,
    InterventionResponse,
    StateChange,
)
from firmware_bridge.core.messages import SetGlow  # noqa: E402
from hw_sim.gpio import mock_factory  # noqa: E402
from modules.figurine import CuteFigurine, GpioConfig  # noqa: E402
from modules.figurine.look import STATE_LOOKS  # noqa: E402
from skelly import app  # noqa: E402
from skelly.config import Config  # noqa: E402

GPIO = GpioConfig(pulse=False)  # steady glow: a pin changes only when the look does
TOKEN = "bench-companion-token-0123456789abcdef"
TARGETS = (FocusState.FLOW, FocusState.DISTRACTED, FocusState.HYPERFOCUS, FocusState.NEUTRAL)


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


# --------------------------------------------------------------------------- load child


def load_child(port: int, rate: float, seconds: float) -> None:
    """``--load-child``: stream ``rate`` events/s to 127.0.0.1:port; print what was acked."""
    from modules.ingest.client import IngestClient

    async def main() -> dict[str, Any]:
        client = IngestClient(
            f"127.0.0.1:{port}", TOKEN, host_id="bench-load", session_id=f"load-{os.getpid()}"
        )
        await client.start()
        await client.wait_connected(timeout=10)
        start = time.monotonic()
        i = 0
        while (due := start + i / rate) < start + seconds:
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            ts = time.time()
            r = i % 10
            if r < 7:
                event = {"kind": "key", "ts": ts, "correction": r == 3}
            elif r < 9:
                event = {"kind": "mouse", "ts": ts, "speed": 300.0, "clicks": 1, "span_ms": 100}
            else:
                event = {"kind": "focus", "ts": ts, "category": "code", "app_id": "c0ffee12"}
            await client.send(event)
            i += 1
        elapsed = time.monotonic() - start
        await client.flush(timeout=30)
        await client.close()
        return {"sent": i, "seconds": elapsed}

    print(json.dumps(asyncio.run(main())), flush=True)


# --------------------------------------------------------------------------- one run


@contextlib.asynccontextmanager
async def mcu_child() -> AsyncIterator[str]:
    folder = tempfile.mkdtemp(prefix="skelly-bench-")
    path = os.path.join(folder, "mcu")
    cmd = [sys.executable, "-m", "hw_sim.mcu", "--link", path, "--quiet", "--loop", "uvloop"]
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT
    )
    try:
        assert proc.stdout is not None
        line = (await proc.stdout.readline()).decode()
        if not line.startswith("simulated MCU at"):
            raise RuntimeError(f"simulated MCU did not start: {line!r}")
        yield path
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        with contextlib.suppress(OSError):
            os.rmdir(folder)


class Watch:
    """The bench's bus subscriber and the link's tx tap: when things happened."""

    def __init__(self) -> None:
        self.waiting: dict[tuple[str, str], asyncio.Future[float]] = {}
        self.glow_target: tuple[int, int, int] | None = None
        self.glow_future: asyncio.Future[float] | None = None

    def on_response(self, env: Envelope) -> None:
        msg = env.payload
        assert isinstance(msg, InterventionResponse)
        fut = self.waiting.pop((msg.intervention_id, msg.response), None)
        if fut is not None and not fut.done():
            fut.set_result(time.monotonic())

    def expect(self, iid: str, response: str) -> asyncio.Future[float]:
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[(iid, response)] = fut
        return fut

    def tap(self, direction: str, wall: float, seq: int | None, message: object) -> None:
        if direction != "tx" or not isinstance(message, SetGlow):
            return
        fut = self.glow_future
        if fut is not None and not fut.done() and self.glow_target is not None:
            if (message.r, message.g, message.b) == self.glow_target:
                fut.set_result(time.monotonic())


def pin_changed_at(pin: Any, cleared_at: float) -> float | None:
    """Absolute monotonic time of the first change after ``clear_states`` (None: no change)."""
    states = pin.states
    return cleared_at + states[1].timestamp if len(states) > 1 else None


def clear(pins: Any) -> float:
    t = time.monotonic()
    for p in (GPIO.red, GPIO.green, GPIO.blue):
        pins.pin(p).clear_states()
    return t


def rgb_changed_at(pins: Any, cleared_at: float) -> float | None:
    times = [pin_changed_at(pins.pin(p), cleared_at) for p in (GPIO.red, GPIO.green, GPIO.blue)]
    present = [t for t in times if t is not None]
    return min(present) if present else None


async def one_run(samples: int, rate: float, tmp: Path) -> dict[str, Any]:
    pins = mock_factory()
    watch = Watch()
    async with mcu_child() as mcu_path:
        base = Config()
        cfg = dataclasses.replace(
            base,
            data_dir=str(tmp),
            ingest=dataclasses.replace(base.ingest, host="127.0.0.1", port=0, unix_path=""),
            figurine=dataclasses.replace(
                base.figurine,
                gpio_enabled=True,
                gpio=GPIO,
                serial=dataclasses.replace(base.figurine.serial, url=mcu_path),
            ),
        )
        bus = app.make_bus(cfg)
        bus.subscribe(watch.on_response, types=InterventionResponse, name="bench.responses")
        modules = app.build_modules(cfg, token=TOKEN, pin_factory=lambda: pins)
        await app.start_all(bus, modules)
        fig = next(m for m in modules if isinstance(m, CuteFigurine))
        try:
            assert fig.link is not None
            fig.link.tap = watch.tap
            await fig.link.wait_up(timeout=30)
            capture: Any = next(m for m in modules if m.name == "DataCapture")
            seconds = 2.0 + samples * 0.9
            load = await asyncio.create_subprocess_exec(
                *[sys.executable, __file__, "--load-child", str(capture.port)],
                *["--rate", str(rate), "--seconds", str(seconds)],
                stdout=subprocess.PIPE,
                cwd=ROOT,
            )
            await asyncio.sleep(1.0)  # the load is running
            button, skipped_b = await measure_button(bus, pins, watch, samples)
            state, skipped_s = await measure_state(bus, pins, watch, fig, samples)
            out, _ = await load.communicate()
            achieved = json.loads(out.decode().strip().splitlines()[-1])
        finally:
            await app.stop_all(modules)
            await bus.aclose()
            pins.reset()
    return {
        "button_ms": button,
        "state_pins_ms": [s[0] for s in state],
        "state_frame_ms": [s[1] for s in state],
        "state_ms": [max(s) for s in state],
        "skipped": skipped_b + skipped_s,
        "load_events_per_s": achieved["sent"] / achieved["seconds"],
    }


async def measure_button(
    bus: Any, pins: Any, watch: Watch, samples: int
) -> tuple[list[float], int]:
    button = pins.pin(GPIO.button)
    out: list[float] = []
    skipped = 0
    for i in range(samples):
        iid = f"bench-{i}-{time.monotonic_ns()}"
        delivered = watch.expect(iid, "delivered")
        cmd = AnimationCommand("nudge", 60.0, "bench", glow=(255, 0, 255), intervention_id=iid)
        bus.publish(cmd, source="AI")
        try:
            await asyncio.wait_for(delivered, 5)
        except TimeoutError:
            skipped += 1
            continue
        await asyncio.sleep(0.1)  # past the LED rate cap of the intervention's own write
        button.drive_low()
        await asyncio.sleep(0.03)
        button.drive_high()
        await asyncio.sleep(0.05)
        engaged = watch.expect(iid, "engaged")
        cleared = clear(pins)
        t0 = time.monotonic()
        button.drive_low()  # the second press edge: a double press
        try:
            t_response = await asyncio.wait_for(engaged, 5)
        except TimeoutError:
            skipped += 1
            button.drive_high()
            await asyncio.sleep(GPIO.double_press_s + 0.1)
            continue
        t_pins = rgb_changed_at(pins, cleared)
        if t_pins is None:
            skipped += 1
        else:
            out.append((max(t_response, t_pins) - t0) * 1000)
        await asyncio.sleep(0.03)
        button.drive_high()
        await asyncio.sleep(GPIO.double_press_s + 0.1)  # the next press is a new gesture
    return out, skipped


async def measure_state(
    bus: Any, pins: Any, watch: Watch, fig: CuteFigurine, samples: int
) -> tuple[list[tuple[float, float]], int]:
    out: list[tuple[float, float]] = []
    skipped = 0
    await asyncio.sleep(3.0)  # the pet wiggle and any overlay from the button part are over
    for i in range(samples):
        current = fig.core.state
        target = next(s for s in TARGETS[i % 2 :] + TARGETS if s is not current)
        loop = asyncio.get_running_loop()
        watch.glow_target = STATE_LOOKS[target].rgb
        watch.glow_future = loop.create_future()
        cleared = clear(pins)
        t0 = time.monotonic()
        bus.publish(StateChange(current, target, 0.9, time.time(), 60.0), source="AnalysisEngine")
        try:
            t_frame = await asyncio.wait_for(watch.glow_future, 5)
        except TimeoutError:
            skipped += 1
            continue
        t_pins = rgb_changed_at(pins, cleared)
        if t_pins is None or fig.core.overlays.showing is not None:
            skipped += 1
        else:
            out.append(((t_pins - t0) * 1000, (t_frame - t0) * 1000))
        await asyncio.sleep(0.15)  # beyond both rate caps
    return out, skipped


# --------------------------------------------------------------------------- main


def merged_day_figures() -> dict[str, Any]:
    try:
        sys.path.insert(1, str(ROOT / "bench"))
        import companion_day
    except ImportError:
        return {"interventions_per_day": None, "companion_day": "bench/companion_day.py missing"}
    finally:
        sys.path.remove(str(ROOT / "bench"))
    figures: dict[str, Any] = companion_day.measure()
    return figures


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--stock-loop", action="store_true")
    ap.add_argument("--load-child", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.load_child:
        load_child(args.load_child, args.rate, args.seconds)
        return
    runs: list[dict[str, Any]] = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="skelly-bench-companion-") as tmp:
            coro = one_run(args.samples, args.rate, Path(tmp))
            if args.stock_loop:
                runs.append(asyncio.run(coro))
            else:
                import uvloop

                runs.append(uvloop.run(coro))

    def med(key: str, fn: Any = p99) -> float:
        return round(float(statistics.median(fn(r[key]) for r in runs)), 3)

    result: dict[str, Any] = {
        "button_to_output_p99_ms": med("button_ms"),
        "button_to_output_p50_ms": med("button_ms", statistics.median),
        "state_to_output_p99_ms": med("state_ms"),
        "state_to_output_p50_ms": med("state_ms", statistics.median),
        "state_to_pins_p99_ms": med("state_pins_ms"),
        "state_to_frame_p99_ms": med("state_frame_ms"),
        "load_events_per_s": round(statistics.median(r["load_events_per_s"] for r in runs), 1),
        "samples_per_run": args.samples,
        "skipped_samples": sum(r["skipped"] for r in runs),
        "runs": args.runs,
        "loop": "asyncio" if args.stock_loop else "uvloop",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    result.update(merged_day_figures())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
