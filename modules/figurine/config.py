"""``[figurine]`` and ``[figurine.gpio]`` settings (docs/FIGURINE.md §6)."""

from __future__ import annotations

from dataclasses import dataclass, field

from firmware_bridge.link import SerialLinkConfig


@dataclass(frozen=True)
class GpioConfig:
    """Parts wired to the Pi header (BCM pin numbers; docs/HARDWARE.md has the wiring)."""

    red: int = 17
    green: int = 27
    blue: int = 22
    """Body RGB LED, common cathode."""
    eyes: int = 23
    """Eye LED (PWMLED)."""
    servo: int = 12
    """Posture servo on hardware PWM0 (AngularServo): melt 0 … 100 → 0° … 90°."""
    buzzer: int = 13
    """TonalBuzzer on hardware PWM1 (only with ``buzzer_enabled``)."""
    button: int = 26
    """Button to GND, internal pull-up."""
    buzzer_enabled: bool = False
    hold_s: float = 1.0
    """A press held this long is a long press (gpiozero ``hold_time`` / ``when_held``)."""
    double_press_s: float = 0.4
    """A second press within this long after a release is a double press; 0 turns it off."""
    pulse: bool = True
    """Breathing glow on the RGB LED with gpiozero's own fade thread (25 fps)."""

    def __post_init__(self) -> None:
        pins = {
            "red": self.red,
            "green": self.green,
            "blue": self.blue,
            "eyes": self.eyes,
            "servo": self.servo,
            "button": self.button,
        }
        if self.buzzer_enabled:
            pins["buzzer"] = self.buzzer
        for name, pin in pins.items():
            if not 0 <= pin <= 27:
                raise ValueError(f"gpio.{name} must be a BCM pin number 0..27, got {pin}")
        seen: dict[int, str] = {}
        for name, pin in pins.items():
            if pin in seen:
                raise ValueError(f"gpio.{name} and gpio.{seen[pin]} both use GPIO{pin}")
            seen[pin] = name
        if self.hold_s <= 0:
            raise ValueError(f"gpio.hold_s must be positive, got {self.hold_s}")
        if not 0 <= self.double_press_s < self.hold_s:
            raise ValueError(
                f"gpio.double_press_s must be 0 (off) or positive and below hold_s, "
                f"got {self.double_press_s}"
            )


@dataclass(frozen=True)
class FigurineConfig:
    serial_enabled: bool = True
    """Drive a figurine MCU over serial (``[figurine.serial]``)."""
    serial: SerialLinkConfig = field(default_factory=SerialLinkConfig)
    gpio_enabled: bool = False
    """Drive parts on the Pi header with gpiozero (``[figurine.gpio]``); needs the ``pi`` extra
    (lgpio) on a Pi.  ``skelly sim`` turns it on with mock pins."""
    gpio: GpioConfig = field(default_factory=GpioConfig)
    quick_dismiss_s: float = 5.0
    """A short press sooner than this after an intervention was delivered is 'dismissed'."""
    sleepy_after_s: float = 300.0
    """No host connected for this long: the sleepy look."""
    stale_after_s: float = 120.0
    """An overlay that could not show for this long is dropped."""
    default_overlay_s: float = 20.0
    """How long an overlay shows when its AnimationCommand gives no duration."""
    quiet_dim: float = 0.3
    """Glow and eyes factor in quiet hours."""
    led_max_hz: float = 30.0
    servo_max_hz: float = 10.0

    def __post_init__(self) -> None:
        for name in ("quick_dismiss_s", "sleepy_after_s", "stale_after_s", "default_overlay_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 <= self.quiet_dim <= 1:
            raise ValueError(f"quiet_dim must be between 0 and 1, got {self.quiet_dim}")
        if not 0 < self.led_max_hz <= 30 or not 0 < self.servo_max_hz <= 10:
            raise ValueError(
                f"led_max_hz must be in (0, 30] and servo_max_hz in (0, 10], got "
                f"{self.led_max_hz} and {self.servo_max_hz}"
            )
