"""GPIO back end: gpiozero devices on the Pi header, with an injected pin factory.

Outputs: ``RGBLED`` body glow, ``PWMLED`` eyes, ``AngularServo`` posture (melt 0 … 100 → 0° … 90°),
``TonalBuzzer`` (only with ``buzzer_enabled``).  Input: ``Button`` (pull-up, to GND) whose
gpiozero events (``when_pressed``, ``when_released``, ``when_held`` after ``hold_time``) are
reported to ``on_edge(kind, t)`` with ``t = time.monotonic()`` taken at the edge.  gpiozero calls
them on its own threads (and, on mock pins, on the thread that drives the pin): ``on_edge`` must be
thread-safe — the module hands it to the loop with ``call_soon_threadsafe``.

The factory is chosen by the composition root (``skelly/``): lgpio on a Pi, gpiozero's
``MockFactory(pin_class=MockPWMPin)`` in the simulator and the tests.  Nothing here sets
gpiozero's global default factory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from gpiozero import PWMLED, RGBLED, AngularServo, Button, TonalBuzzer

from modules.figurine.backends import RateCap, earliest
from modules.figurine.config import FigurineConfig
from modules.figurine.look import DEFAULT_TONE, TONES, Look

MELT_TO_DEGREES = 0.9
PULSE_DEPTH = 0.4

Edge = Callable[[str, float], None]


class GpioBackend:
    name = "gpio"

    def __init__(
        self, config: FigurineConfig, pin_factory: Any, on_edge: Edge | None = None
    ) -> None:
        pins = config.gpio
        self.config = config
        self.pins = pins
        self._devices: list[Any] = []
        try:
            self.led = self._add(
                RGBLED(pins.red, pins.green, pins.blue, pwm=True, pin_factory=pin_factory)
            )
            self.eyes = self._add(PWMLED(pins.eyes, pin_factory=pin_factory))
            self.servo = self._add(
                AngularServo(
                    pins.servo,
                    initial_angle=None,
                    min_angle=0,
                    max_angle=90,
                    pin_factory=pin_factory,
                )
            )
            self.buzzer: TonalBuzzer | None = None
            if pins.buzzer_enabled:
                self.buzzer = self._add(TonalBuzzer(pins.buzzer, pin_factory=pin_factory))
            self.button = self._add(
                Button(pins.button, pull_up=True, hold_time=pins.hold_s, pin_factory=pin_factory)
            )
        except BaseException:
            self.close()
            raise
        self._glow: RateCap[tuple[tuple[int, int, int], float, float]] = RateCap(config.led_max_hz)
        self._eyes: RateCap[float] = RateCap(config.led_max_hz)
        self._pose: RateCap[int] = RateCap(config.servo_max_hz)
        self._cue = 0
        self._tone_until: float | None = None
        if on_edge is not None:
            edge = on_edge
            self.button.when_pressed = lambda: edge("pressed", time.monotonic())
            self.button.when_released = lambda: edge("released", time.monotonic())
            self.button.when_held = lambda: edge("held", time.monotonic())

    def _add(self, device: Any) -> Any:
        self._devices.append(device)
        return device

    def apply(self, look: Look, now: float) -> float | None:
        pulse = look.pulse_s if self.pins.pulse else 0.0
        write, glow_at = self._glow.offer((look.rgb, look.intensity, pulse), now)
        if write:
            color = tuple(max(0.0, min(1.0, c / 255 * look.intensity)) for c in look.rgb)
            if pulse > 0:
                self.led.pulse(
                    fade_in_time=pulse / 2,
                    fade_out_time=pulse / 2,
                    on_color=color,
                    off_color=tuple(c * (1 - PULSE_DEPTH) for c in color),
                    background=True,
                )
            else:
                self.led.color = color
        write, eyes_at = self._eyes.offer(look.eyes, now)
        if write:
            self.eyes.value = max(0.0, min(1.0, look.eyes))
        write, pose_at = self._pose.offer(look.melt, now)
        if write:
            self.servo.angle = max(0, min(100, look.melt)) * MELT_TO_DEGREES
        if look.cue_serial > self._cue:
            self._cue = look.cue_serial
            if look.sound and self.buzzer is not None:
                hz, seconds = TONES.get(look.sound, DEFAULT_TONE)
                self.buzzer.play(hz)
                self._tone_until = now + seconds
        if self._tone_until is not None and now >= self._tone_until:
            self._tone_until = None
            if self.buzzer is not None:
                self.buzzer.stop()
        return earliest(glow_at, eyes_at, pose_at, self._tone_until)

    def close(self) -> None:
        for device in reversed(self._devices):
            device.close()
        self._devices.clear()
