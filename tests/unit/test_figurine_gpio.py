"""CuteFigurine on gpiozero's MockFactory pins: outputs, rate caps, the button, link down.

Real parts only: the bus, the module, gpiozero devices on ``MockFactory(pin_class=MockPWMPin)``
(reset after each test).  Pins are compared with ``[s.state for s in pin.states]`` (not
``assert_states``, which passes on a length mismatch).  Button presses drive the mock button pin
and wait for the bus messages they cause; nothing depends on machine speed.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from bus import Bus, Envelope, ModuleRegistry, ModuleStatus
from bus.messages import (
    AnimationCommand,
    CompanionMode,
    FocusState,
    InterventionResponse,
    LinkStatus,
    Message,
    StateChange,
    UserInput,
)
from firmware_bridge.link import SerialLinkConfig
from modules.figurine import CuteFigurine, FigurineConfig, GpioConfig

Run = Callable[[Coroutine[Any, Any, Any]], Any]
GPIO = GpioConfig(pulse=False, hold_s=0.3, double_press_s=0.15)
CONFIG = FigurineConfig(serial_enabled=False, gpio_enabled=True, gpio=GPIO)


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory(pin_class=MockPWMPin)
    yield f
    f.reset()


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Seen:
    def __init__(self, bus: Bus) -> None:
        self.items: list[Message] = []
        self.changed = asyncio.Event()
        bus.subscribe(self._on, types=(UserInput, InterventionResponse), name="test.seen")

    def _on(self, env: Envelope) -> None:
        self.items.append(env.payload)
        self.changed.set()

    async def wait_for(self, pred: Callable[[list[Message]], bool], timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while not pred(self.items):
                self.changed.clear()
                await self.changed.wait()


@asynccontextmanager
async def figurine(
    factory: MockFactory, config: FigurineConfig = CONFIG, **kw: Any
) -> AsyncIterator[tuple[Bus, CuteFigurine]]:
    bus = Bus(ModuleRegistry())
    module = CuteFigurine(config, pin_factory=lambda: factory, **kw)
    await module.start(bus)
    try:
        yield bus, module
    finally:
        await module.stop()
        await bus.aclose()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def states(factory: MockFactory, pin: int) -> list[float | bool]:
    return [s.state for s in factory.pin(pin).states]


def change(to: FocusState) -> StateChange:
    return StateChange(FocusState.NEUTRAL, to, 0.9, 0.0, 0.0)


def test_state_changes_set_the_pins(run: Run, factory: MockFactory) -> None:
    async def main() -> None:
        clock = Clock()
        async with figurine(factory, clock=clock) as (bus, module):
            assert module.status is ModuleStatus.HEALTHY and "gpio" in module.detail
            clock.t += 1
            bus.publish(change(FocusState.FLOW), source="test")
            await settle()
            clock.t += 1
            bus.publish(change(FocusState.IDLE), source="test")
            await settle()
            # NEUTRAL at start (energy 50 -> factor 0.8), then FLOW, then IDLE
            red = states(factory, 17)
            neutral, idle = 150 / 255 * 0.4, 70 / 255 * 0.12
            assert red == [False, pytest.approx(neutral), 0.0, pytest.approx(idle)]
            assert states(factory, 22) == [  # blue
                False,
                pytest.approx(220 / 255 * 0.4),
                pytest.approx(170 / 255 * 0.48),
                pytest.approx(110 / 255 * 0.12),
            ]
            assert states(factory, 27)[-1] == pytest.approx(40 / 255 * 0.12)
            assert states(factory, 23) == [False, 0.48, 0.56, pytest.approx(0.08)]
            # servo: melt 10 -> 9°, 0 -> 0°, 80 -> 72° as 1..2 ms pulses of a 20 ms period
            servo = states(factory, 12)
            assert servo[1:] == [
                pytest.approx((1 + 9 / 90) / 20),
                pytest.approx(1 / 20),
                pytest.approx((1 + 72 / 90) / 20),
            ]

    run(main())


def test_changes_only_and_rate_capped_to_the_newest(run: Run, factory: MockFactory) -> None:
    async def main() -> None:
        clock = Clock()
        async with figurine(factory, clock=clock) as (bus, module):
            before = len(factory.pin(17).states)
            bus.publish(change(FocusState.NEUTRAL), source="test")
            await settle()
            assert len(factory.pin(17).states) == before  # same look: nothing written
            clock.t += 0.01  # within 1/30 s of the first write and within 1/10 s for the servo
            for state in (FocusState.FLOW, FocusState.DISTRACTED, FocusState.IDLE):
                bus.publish(change(state), source="test")
                await settle()
            assert len(factory.pin(17).states) == before  # held back
            clock.t += 0.05  # LEDs may write again; the servo not yet
            module.refresh()
            assert states(factory, 17)[-1] == pytest.approx(70 / 255 * 0.12)
            assert len(factory.pin(17).states) == before + 1  # one write: the newest, IDLE
            assert len(factory.pin(12).states) == 2
            clock.t += 0.1
            module.refresh()
            assert states(factory, 12)[-1] == pytest.approx((1 + 72 / 90) / 20)
            assert len(factory.pin(12).states) == 3

    run(main())


def test_overlay_shows_on_the_pins_and_quiet_dims_them(run: Run, factory: MockFactory) -> None:
    async def main() -> None:
        clock = Clock()
        async with figurine(factory, clock=clock) as (bus, module):
            clock.t += 1
            bus.publish(AnimationCommand("nudge", 5.0, "hey", glow=(255, 0, 0)), source="test")
            await settle()
            assert states(factory, 17)[-1] == pytest.approx(0.7)
            assert states(factory, 27)[-1] == 0.0
            assert states(factory, 23)[-1] == 1.0
            clock.t += 1
            bus.publish(CompanionMode(True), source="test")
            await settle()
            assert states(factory, 17)[-1] == pytest.approx(0.7 * 0.3)
            assert states(factory, 23)[-1] == pytest.approx(0.3)
            clock.t += 5  # the overlay ended: the module's own timer would fire now
            module.refresh()
            assert states(factory, 17)[-1] == pytest.approx(150 / 255 * 0.4 * 0.3)

    run(main())


def test_the_buzzer_is_off_by_default_and_plays_a_cue_once_when_enabled(
    run: Run, factory: MockFactory
) -> None:
    async def main() -> None:
        clock = Clock()
        async with figurine(factory, clock=clock) as (bus, module):
            assert module.gpio is not None and module.gpio.buzzer is None
        config = dataclasses.replace(CONFIG, gpio=dataclasses.replace(GPIO, buzzer_enabled=True))
        async with figurine(factory, config, clock=clock) as (bus, module):
            bus.publish(AnimationCommand("celebrate", 5.0, sound="chime"), source="test")
            await settle()
            assert factory.pin(13).frequency == pytest.approx(880.0)
            assert states(factory, 13)[-1] == 0.5
            clock.t += 0.1
            module.refresh()  # nothing new: not played again
            assert states(factory, 13)[-1] == 0.5
            clock.t += 0.2
            module.refresh()
            assert states(factory, 13)[-1] == 0.0  # stopped after the tone

    run(main())


def press(factory: MockFactory, pin: int = 26) -> None:
    factory.pin(pin).drive_low()


def release(factory: MockFactory, pin: int = 26) -> None:
    factory.pin(pin).drive_high()


def inputs(items: list[Message]) -> list[tuple[str, str]]:
    return [(m.gesture, m.origin) for m in items if isinstance(m, UserInput)]


def responses(items: list[Message]) -> list[tuple[str, str]]:
    return [(m.intervention_id, m.response) for m in items if isinstance(m, InterventionResponse)]


def test_button_gestures_on_the_mock_pin_become_user_input_and_responses(
    run: Run, factory: MockFactory
) -> None:
    async def main() -> None:
        async with figurine(factory) as (bus, module):
            seen = Seen(bus)
            bus.publish(AnimationCommand("nudge", 60.0, "hey", intervention_id="n1"), source="t")
            await seen.wait_for(lambda s: responses(s) == [("n1", "delivered")])
            # short: decided double_press_s after the release, dismissed (within 5 s)
            press(factory)
            release(factory)
            await seen.wait_for(lambda s: len(responses(s)) == 2)
            assert inputs(seen.items) == [("short", "gpio")]
            assert responses(seen.items)[1] == ("n1", "dismissed")
            assert module.core.overlays.showing is None
            # double: decided on the second press edge; pets
            press(factory)
            release(factory)
            press(factory)
            await seen.wait_for(lambda s: len(inputs(s)) == 2)
            release(factory)
            assert inputs(seen.items)[1] == ("double", "gpio")
            assert module.look is not None and module.look.animation == "wiggle"
            # long: gpiozero's when_held after hold_time, on its own thread
            brk = AnimationCommand("break", 60.0, "stretch?", intervention_id="b1")
            bus.publish(brk, source="t")
            await seen.wait_for(lambda s: ("b1", "delivered") in responses(s))
            press(factory)
            await seen.wait_for(lambda s: len(inputs(s)) == 3)
            release(factory)
            assert inputs(seen.items)[2] == ("long", "gpio")
            await seen.wait_for(lambda s: ("b1", "snoozed") in responses(s))
            await asyncio.sleep(GPIO.double_press_s * 2)
            assert len(inputs(seen.items)) == 3  # the release of a long press is no short

    run(main())


def test_gpio_keeps_working_while_the_mcu_link_is_down(
    run: Run, factory: MockFactory, tmp_path: Any
) -> None:
    async def main() -> None:
        config = dataclasses.replace(
            CONFIG,
            serial_enabled=True,
            serial=SerialLinkConfig(url=str(tmp_path / "no-such-port")),
        )
        clock = Clock()
        async with figurine(factory, config, clock=clock) as (bus, module):
            assert module.status is ModuleStatus.DEGRADED
            module._on_link_status(LinkStatus("mcu", False, "", "port missing"))
            assert module.status is ModuleStatus.DEGRADED
            assert "GPIO outputs still driven" in module.detail
            clock.t += 1
            bus.publish(change(FocusState.FLOW), source="test")
            await settle()
            assert states(factory, 17)[-1] == 0.0 and states(factory, 27)[-1] > 0.3

    run(main())


def test_gpio_without_a_usable_factory_is_a_start_fault(run: Run) -> None:
    async def main() -> None:
        bus = Bus(ModuleRegistry())

        def broken() -> Any:
            raise ImportError("No module named 'lgpio'")

        module = CuteFigurine(CONFIG, pin_factory=broken)
        await module.start(bus)
        assert module.status is ModuleStatus.UNHEALTHY
        assert "lgpio" in module.start_fault and "gpio_enabled = false" in module.start_fault
        await module.stop()
        await bus.aclose()

    run(main())
