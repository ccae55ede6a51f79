"""GPIO for the simulator and tests: gpiozero's own mock pins, a virtual button, a pin summary.

* :func:`mock_factory` — ``MockFactory(pin_class=MockPWMPin)``: the PWM-capable mock pins the
  figurine's GPIO back end (RGBLED, PWMLED, AngularServo, TonalBuzzer, Button) needs.  It is
  injected into ``CuteFigurine(pin_factory=...)`` exactly where a Pi gets lgpio's factory, so the
  simulator runs the same device code as a Pi;
* :class:`VirtualButton` — presses the mock button pin (pulled up, pressed = driven low) with
  real timing: ``short``, ``long`` (held past gpiozero's ``hold_time``) and ``double``;
* :func:`describe_pins` — one line for people from the pins' current states.

MockFactory keeps every state a pin ever had (``pin.states``); :func:`trim_history` bounds that for
long simulator runs.
"""

from __future__ import annotations

import asyncio
from typing import Any

from gpiozero.pins.mock import MockFactory, MockPWMPin

from modules.figurine.config import GpioConfig

SHORT_S = 0.05
DOUBLE_GAP_S = 0.08
LONG_MARGIN_S = 0.3
KEEP_STATES = 200
GESTURES = ("short", "long", "double")


def mock_factory() -> MockFactory:
    return MockFactory(pin_class=MockPWMPin)


class VirtualButton:
    """The figurine's button on a mock pin (to GND, pulled up: pressed = low)."""

    def __init__(self, factory: MockFactory, gpio: GpioConfig | None = None) -> None:
        self.gpio = gpio or GpioConfig()
        self.factory = factory
        self.presses = 0

    @property
    def pin(self) -> Any:
        return self.factory.pin(self.gpio.button)

    def down(self) -> None:
        self.pin.drive_low()

    def up(self) -> None:
        self.pin.drive_high()

    async def press(self, gesture: str) -> None:
        """Press like a person: ``short``, ``long`` or ``double`` (ValueError otherwise)."""
        if gesture not in GESTURES:
            raise ValueError(f"unknown press {gesture!r}; one of {', '.join(GESTURES)}")
        self.presses += 1
        self.down()
        if gesture == "long":
            await asyncio.sleep(self.gpio.hold_s + LONG_MARGIN_S)
        else:
            await asyncio.sleep(SHORT_S)
        self.up()
        if gesture == "double":
            await asyncio.sleep(DOUBLE_GAP_S)
            self.down()
            await asyncio.sleep(SHORT_S)
            self.up()


def _level(factory: MockFactory, pin: int) -> float:
    state = factory.pin(pin).state
    return float(state) if state is not None else 0.0


def describe_pins(factory: MockFactory, gpio: GpioConfig | None = None) -> str:
    """``gpio: rgb #rrggbb | eyes 48% | servo 9°`` from the pins' current states."""
    gpio = gpio or GpioConfig()
    r, g, b = (round(_level(factory, p) * 255) for p in (gpio.red, gpio.green, gpio.blue))
    eyes = round(_level(factory, gpio.eyes) * 100)
    duty = _level(factory, gpio.servo)
    servo = f"{round((duty * 20 - 1) * 90)}°" if duty else "off"
    return f"gpio: rgb #{r:02x}{g:02x}{b:02x} | eyes {eyes}% | servo {servo}"


def trim_history(factory: MockFactory, gpio: GpioConfig | None = None) -> None:
    """Keep only the last ``KEEP_STATES`` states of each output pin (long simulator runs)."""
    gpio = gpio or GpioConfig()
    for pin in (gpio.red, gpio.green, gpio.blue, gpio.eyes, gpio.servo, gpio.buzzer):
        states = factory.pin(pin).states
        if len(states) > KEEP_STATES:
            del states[:-KEEP_STATES]
