"""The figurine end to end, headless: real ingest → storage → analysis → CuteFigurine → frames at
the simulated MCU (real pty) and states on gpiozero's MockFactory pins; presses on the mock
button pin and on the MCU come back as UserInput and InterventionResponse; an MCU unplug leaves
GPIO working and the module Degraded until the link returns.

Every wait is for the event itself (a StateChange, an MCU state, a bus message), never a fixed
sleep, so a loaded machine only makes it slower.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from gpiozero.pins.mock import MockFactory

from bus import Bus, Envelope, ModuleStatus
from bus.messages import (
    AnimationCommand,
    FocusState,
    InterventionRequest,
    InterventionResponse,
    Message,
    StateChange,
    UserInput,
)
from firmware_bridge.core.messages import InputKind
from hw_sim.clock import SimClock
from hw_sim.gpio import VirtualButton, describe_pins, mock_factory
from hw_sim.host import compressed_storage_config, stream_scenario
from hw_sim.mcu import SimulatedMcu
from hw_sim.scenarios import Segment, generate, scenario
from modules.base import Module
from modules.figurine import CuteFigurine, GpioConfig
from modules.figurine.look import STATE_LOOKS
from modules.gamification import Gamification, GamificationConfig
from skelly import app
from skelly.config import Config
from tests.slowness import allow

Run = Callable[[Coroutine[Any, Any, Any]], Any]
ROOT = Path(__file__).resolve().parents[2]
SPEED = 120.0
GPIO = GpioConfig(pulse=False)  # steady glow: the pins hold exactly what was written


class Seen:
    def __init__(self, bus: Bus) -> None:
        self.items: list[Message] = []
        self.changed = asyncio.Event()
        bus.subscribe(
            self._on,
            types=(StateChange, UserInput, InterventionRequest, InterventionResponse),
            name="test.seen",
        )

    def _on(self, env: Envelope) -> None:
        self.items.append(env.payload)
        self.changed.set()

    def of(self, kind: type[Message]) -> list[Any]:
        return [m for m in self.items if isinstance(m, kind)]

    async def wait_for(self, pred: Callable[[], bool], timeout: float = 60) -> None:
        async with asyncio.timeout(timeout):
            while not pred():
                self.changed.clear()
                await self.changed.wait()


@dataclasses.dataclass
class Rig:
    bus: Bus
    modules: list[Module]
    mcu: SimulatedMcu
    clock: SimClock
    token: str
    port: int

    @property
    def figurine(self) -> CuteFigurine:
        return next(m for m in self.modules if isinstance(m, CuteFigurine))


@asynccontextmanager
async def pipeline(tmp_path: Path, pins: MockFactory, **sections: Any) -> AsyncIterator[Rig]:
    clock = SimClock(SPEED)
    # the compressed clock starts at the real time of day (and runs 2 h per real minute): without
    # this, quiet hours (22:00-08:00 by default) dim the glow to quiet_dim whenever the suite
    # happens to run in the evening, and the levels the tests expect depend on the time of day
    sections.setdefault("gamification", GamificationConfig(quiet_start="12:00", quiet_end="12:00"))
    async with SimulatedMcu(tmp_path / "mcu") as mcu:
        base = dataclasses.replace(Config(), **sections)
        cfg = dataclasses.replace(
            base,
            data_dir=str(tmp_path),
            storage=compressed_storage_config(base.storage, SPEED),
            ingest=dataclasses.replace(base.ingest, host="127.0.0.1", port=0, unix_path=""),
            figurine=dataclasses.replace(
                base.figurine,
                gpio_enabled=True,
                gpio=GPIO,
                serial=dataclasses.replace(base.figurine.serial, url=str(mcu.path)),
            ),
        )
        token = secrets.token_urlsafe(32)
        bus = app.make_bus(cfg)
        modules = app.build_modules(
            cfg,
            event_clock=clock.now,
            event_sleep=clock.sleep,
            token=token,
            pin_factory=lambda: pins,
        )
        await app.start_all(bus, modules)
        try:
            capture: Any = next(m for m in modules if m.name == "DataCapture")
            yield Rig(bus, modules, mcu, clock, token, int(capture.port))
        finally:
            await app.stop_all(modules)
            await bus.aclose()


async def eventually(pred: Callable[[], bool], timeout: float = 30) -> None:
    """Wait for a condition that no event announces (a pin state, a module's health): checked
    every 10 ms until ``timeout`` — a slow machine only waits longer."""
    async with asyncio.timeout(timeout):
        while True:
            if pred():
                return
            await asyncio.sleep(0.01)


def level(pins: MockFactory, pin: int) -> float:
    return float([s.state for s in pins.pin(pin).states][-1])


def test_a_compressed_scenario_reaches_the_mcu_and_the_pins(run: Run, tmp_path: Path) -> None:
    pins = mock_factory()

    async def main() -> None:
        async with pipeline(tmp_path, pins) as rig:
            bus, mcu = rig.bus, rig.mcu
            seen = Seen(bus)
            await mcu.wait_until(lambda: mcu.in_session, timeout=30)
            sc = scenario("distraction", seed=3, start=rig.clock.now() + 1.0)
            host = asyncio.create_task(
                stream_scenario(sc, rig.clock, f"127.0.0.1:{rig.port}", rig.token, session_id="f-1")
            )

            def distracted() -> bool:
                return any(c.current is FocusState.DISTRACTED for c in seen.of(StateChange))

            await seen.wait_for(distracted, timeout=120)
            orange = STATE_LOOKS[FocusState.DISTRACTED].rgb
            # frames at the simulated MCU: the distracted glow and face
            await mcu.wait_until(
                lambda: (mcu.visible.glow.r, mcu.visible.glow.g, mcu.visible.glow.b) == orange,
                timeout=30,
            )
            assert mcu.visible.text.face.name == "CONCERNED"
            # the same look on the mock pins, written by gpiozero's RGBLED and AngularServo
            r, g, b = (level(pins, p) for p in (GPIO.red, GPIO.green, GPIO.blue))
            assert (round(g / r * 255), round(b / r * 255)) == (120, 40)
            servo = [s.state for s in pins.pin(GPIO.servo).states]
            assert servo[-1] >= (1 + 40 * 0.9 / 90) / 20 - 1e-9  # melt >= 40 -> >= 36 degrees
            # while still distracted the posture melts further (blip-tolerant time in state)
            fig = rig.figurine

            def melting() -> bool:
                angle = ([s.state for s in pins.pin(GPIO.servo).states][-1] * 20 - 1) * 90
                still = fig.core.state is FocusState.DISTRACTED
                return still and angle > 36.5 and mcu.visible.pose.melt > round(40 * 255 / 100)

            await eventually(melting, timeout=60)
            assert "gpio: rgb #" in describe_pins(pins, GPIO)
            host.cancel()
            await asyncio.gather(host, return_exceptions=True)

    try:
        run(main())
    finally:
        pins.reset()


def test_presses_on_the_mock_pin_and_the_mcu_answer_an_intervention(
    run: Run, tmp_path: Path
) -> None:
    pins = mock_factory()

    async def main() -> None:
        async with pipeline(tmp_path, pins) as rig:
            bus, mcu = rig.bus, rig.mcu
            seen = Seen(bus)
            await mcu.wait_until(lambda: mcu.in_session, timeout=30)
            button = VirtualButton(pins, GPIO)

            def responses() -> list[tuple[str, str]]:
                return [(r.intervention_id, r.response) for r in seen.of(InterventionResponse)]

            # an intervention as AI sends it: delivered when it starts showing
            bus.publish(
                AnimationCommand("nudge", 60.0, "back to it?", intervention_id="n-1"), source="AI"
            )
            await seen.wait_for(lambda: ("n-1", "delivered") in responses())
            await mcu.wait_until(lambda: mcu.visible.text.text == "back to it?", timeout=30)
            await button.press("short")  # the mock button pin, gpiozero's Button
            await seen.wait_for(lambda: ("n-1", "dismissed") in responses())
            assert [(u.gesture, u.origin) for u in seen.of(UserInput)] == [("short", "gpio")]
            await mcu.wait_until(lambda: mcu.visible.text.text == "", timeout=30)
            # the MCU's own button: a double press engages and pets
            bus.publish(
                AnimationCommand("break", 60.0, "stretch?", intervention_id="b-1"), source="AI"
            )
            await seen.wait_for(lambda: ("b-1", "delivered") in responses())
            mcu.press(InputKind.DOUBLE_PRESS)
            await seen.wait_for(lambda: ("b-1", "engaged") in responses())
            assert (seen.of(UserInput)[-1].gesture, seen.of(UserInput)[-1].origin) == (
                "double",
                "mcu",
            )
            await mcu.wait_until(
                lambda: any(a.animation.name == "WIGGLE" for a in mcu.animations), timeout=30
            )
            # long press on the pin: snoozed, and the snooze face
            bus.publish(AnimationCommand("nudge", 60.0, "hey", intervention_id="n-2"), source="AI")
            await seen.wait_for(lambda: ("n-2", "delivered") in responses())
            await button.press("long")
            await seen.wait_for(lambda: ("n-2", "snoozed") in responses())
            await mcu.wait_until(lambda: mcu.visible.text.face.name == "SLEEPY", timeout=30)

    try:
        run(main())
    finally:
        pins.reset()


def test_mcu_unplugged_gpio_keeps_working_and_degraded_until_it_returns(
    run: Run, tmp_path: Path
) -> None:
    pins = mock_factory()

    async def main() -> None:
        async with pipeline(tmp_path, pins) as rig:
            bus, mcu = rig.bus, rig.mcu
            fig = rig.figurine
            await eventually(lambda: fig.status is ModuleStatus.HEALTHY)
            mcu.unplug()
            await eventually(lambda: fig.status is ModuleStatus.DEGRADED)
            assert "GPIO outputs still driven" in fig.detail
            # something new to show while the MCU is away: the pins show it at once
            before = len(pins.pin(GPIO.red).states)
            bus.publish(AnimationCommand("celebrate", 600.0, glow=(255, 0, 0)), source="AI")
            await eventually(lambda: len(pins.pin(GPIO.red).states) > before)
            assert level(pins, GPIO.red) == 0.7 and level(pins, GPIO.green) == 0.0
            mcu.replug()
            await eventually(lambda: fig.status is ModuleStatus.HEALTHY, timeout=60)
            await mcu.wait_until(
                lambda: (mcu.visible.glow.r, mcu.visible.glow.g, mcu.visible.glow.b) == (255, 0, 0),
                timeout=30,
            )

    try:
        run(main())
    finally:
        pins.reset()


def test_full_loop_nudge_shown_dismissed_on_the_mock_pin_and_the_cooldown_adapts(
    run: Run, tmp_path: Path
) -> None:
    """Real ingest -> analysis -> Gamification's nudge after 10 min DISTRACTED -> AI's message ->
    the figurine shows it (delivered) -> a short press on the mock button pin -> dismissed ->
    Gamification lengthens the nudge cooldown (docs/COMPANION.md)."""
    pins = mock_factory()
    no_quiet = GamificationConfig(quiet_start="12:00", quiet_end="12:00")

    async def main() -> None:
        async with pipeline(tmp_path, pins, gamification=no_quiet) as rig:
            bus, mcu = rig.bus, rig.mcu
            seen = Seen(bus)
            game = next(m for m in rig.modules if isinstance(m, Gamification))
            await mcu.wait_until(lambda: mcu.in_session, timeout=allow(30))
            N, D = FocusState.NEUTRAL, FocusState.DISTRACTED
            sc = generate("spiral", [Segment(N, 3), Segment(D, 25)], seed=5, start=rig.clock.now())
            host = asyncio.create_task(
                stream_scenario(sc, rig.clock, f"127.0.0.1:{rig.port}", rig.token, session_id="s")
            )

            def nudges() -> list[InterventionRequest]:
                return [r for r in seen.of(InterventionRequest) if r.kind == "nudge"]

            await seen.wait_for(lambda: bool(nudges()), timeout=allow(180))
            nudge = nudges()[0]
            assert nudge.time_in_state_s >= 600
            iid = nudge.intervention_id

            def answered(response: str) -> bool:
                return any(
                    r.intervention_id == iid and r.response == response
                    for r in seen.of(InterventionResponse)
                )

            await seen.wait_for(lambda: answered("delivered"), timeout=allow(60))
            await mcu.wait_until(lambda: mcu.visible.text.text != "", timeout=allow(30))
            assert game.core is not None
            before = game.core.progress.cooldown_s["nudge"]
            await VirtualButton(pins, GPIO).press("short")
            await seen.wait_for(lambda: answered("dismissed"), timeout=allow(30))
            assert [(u.gesture, u.origin) for u in seen.of(UserInput)] == [("short", "gpio")]
            await eventually(
                lambda: game.core is not None and game.core.progress.cooldown_s["nudge"] > before,
                timeout=allow(30),
            )
            assert game.core.progress.cooldown_s["nudge"] == before * no_quiet.dismissed_factor
            host.cancel()
            await asyncio.gather(host, return_exceptions=True)

    try:
        run(main())
    finally:
        pins.reset()


def test_skelly_sim_presses_the_virtual_button_typed_on_stdin(tmp_path: Path) -> None:
    """A laptop user types ``press double`` into ``skelly sim``: the mock button pin is pressed
    twice with real timing, gpiozero's Button fires, the figurine decides a double press."""
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    env = {
        k: v for k, v in env.items() if not k.startswith("SKELLY_") or k == "SKELLY_TEST_SLOWNESS"
    }
    sim = subprocess.Popen(
        [sys.executable, "-m", "skelly.cli", "sim", "--state-dir", str(tmp_path / "state")],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert sim.stdout is not None and sim.stdin is not None
    out = sim.stdout
    threading.Thread(target=lambda: [lines.put(line) for line in out], daemon=True).start()

    transcript: list[str] = []

    def read_until(text: str, since: int = 0) -> int:
        """Wait until ``text`` is in what the sim printed after line ``since``; the line count."""
        deadline = time.monotonic() + allow(60)
        while not any(text in line for line in transcript[since:]):
            transcript.append(lines.get(timeout=max(0.0, deadline - time.monotonic())))
        return len(transcript)

    try:
        read_until("type press short|long|double")
        read_until("mcu link up")
        mark = len(transcript)
        sim.stdin.write("press double\n")
        sim.stdin.flush()
        mark = read_until("button: double press (gpio)", mark)
        read_until("gpio: rgb #", mark)  # the narration shows the pins after the press
        sim.stdin.write("press sideways\n")
        sim.stdin.flush()
        read_until("unknown input 'press sideways'; type press short|long|double", mark)
        sim.send_signal(signal.SIGINT)
        sim.wait(timeout=allow(30))
    finally:
        if sim.poll() is None:
            sim.kill()
            sim.wait()
    assert sim.returncode == 0, "".join(transcript)
