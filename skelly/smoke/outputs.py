"""The visible steps (GPIO back end and MCU link), the person who confirms them, the button.

The GPIO steps drive the figurine's own :class:`~modules.figurine.gpio.GpioBackend` devices (the
same gpiozero construction as the service, lgpio or MockFactory pins); the MCU steps send the
protocol's commands through a :class:`~firmware_bridge.link.SerialLink` and wait for the MCU's
ACK.  "Accepted by the hardware" means: the pins read back what was written / the MCU ACKed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable
from typing import Any, TextIO

import serial

from firmware_bridge.core.messages import Capabilities, Face, Message, SetGlow, SetPose, ShowText
from firmware_bridge.core.messages import Tone as ToneMsg
from firmware_bridge.core.protocol import (
    SLOT_OF,
    Acked,
    Connected,
    Event,
    HostProtocol,
    Incompatible,
    InputReceived,
    Nacked,
    Timing,
)
from firmware_bridge.link import (
    PortUnsupportedError,
    SerialLink,
    SerialLinkConfig,
    open_port,
)
from modules.figurine.config import FigurineConfig
from modules.figurine.gpio import GpioBackend
from skelly.errors import describe_device_error

COLOURS = (("RED", (1.0, 0.0, 0.0)), ("GREEN", (0.0, 1.0, 0.0)), ("BLUE", (0.0, 0.0, 1.0)))
CHIRP_HZ = (660, 880)
SERVO_ANGLES = (0, 45, 90, 0)
MCU_MELT = (0, 128, 255, 0)
BLINKS = 3
UNCONFIRMED = "not confirmed by a person: --yes"


class Console:
    """Lines for the person, and their answers from standard input (read on the event loop,
    no thread: Ctrl-C never waits for a blocked read)."""

    def __init__(self, out: TextIO, *, yes: bool, stdin_fd: int | None = None) -> None:
        self.out = out
        self.yes = yes
        self.stdin_fd = sys.stdin.fileno() if stdin_fd is None and not yes else stdin_fd
        self._buffer = b""
        self._eof = False

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    async def read_line(self, timeout: float | None) -> str | None:
        """The next line typed (without its newline), or None at end of input / timeout."""
        fd = self.stdin_fd
        if fd is None:
            return None
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while b"\n" not in self._buffer and not self._eof:
                ready: asyncio.Future[None] = loop.create_future()

                def on_ready(fut: asyncio.Future[None] = ready) -> None:
                    if not fut.done():
                        fut.set_result(None)

                loop.add_reader(fd, on_ready)
                try:
                    await ready
                finally:
                    loop.remove_reader(fd)
                try:
                    chunk = os.read(fd, 4096)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if not chunk:
                    self._eof = True
                self._buffer += chunk
        if b"\n" in self._buffer:
            line, _, self._buffer = self._buffer.partition(b"\n")
        elif self._buffer:
            line, self._buffer = self._buffer, b""
        else:
            return None
        return line.decode(errors="replace").strip()

    async def confirm(self, question: str) -> bool | None:
        """None with --yes (nobody asked); else True for Enter/y, False for n or no answer."""
        if self.yes:
            return None
        print(f"  {question} [Y/n] ", end="", file=self.out, flush=True)
        answer = await self.read_line(None)
        if answer is None:
            self.say("(no answer: standard input closed)")
            return False
        return not answer.lower().startswith("n")


class StepFailed(Exception):
    """A visible step could not be done; ``detail`` and ``hint`` go on the checklist."""

    def __init__(self, detail: str, hint: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.hint = hint


def _close(a: float, b: float) -> bool:
    return abs(a - b) < 0.02


# --------------------------------------------------------------------------- GPIO


def open_gpio(
    config: FigurineConfig, pin_factory: Callable[[], Any], on_press: Callable[[str], None]
) -> GpioBackend:
    """The service's GPIO back end on ``pin_factory()``; the button's press edges go to
    ``on_press("GPIO<n>")`` (from gpiozero's thread).  Raises :class:`StepFailed` with a hint."""
    pins = config.gpio
    button = f"GPIO{pins.button}"

    def on_edge(kind: str, _t: float) -> None:
        if kind == "pressed":
            on_press(button)

    try:
        return GpioBackend(config, pin_factory(), on_edge)
    except Exception as exc:  # lgpio missing, not a Pi, no permission, pin busy
        raise StepFailed(
            f"cannot open the GPIO pins: {type(exc).__name__}: {exc}",
            describe_device_error(exc, _gpiochip(exc), serial=False),
        ) from exc


def _gpiochip(exc: BaseException) -> str:
    name = getattr(exc, "filename", None)
    return str(name) if name else "/dev/gpiochip0"


def gpio_pins_detail(config: FigurineConfig) -> str:
    p = config.gpio
    parts = [
        f"glow GPIO{p.red}/{p.green}/{p.blue}",
        f"eyes GPIO{p.eyes}",
        f"servo GPIO{p.servo}",
        f"button GPIO{p.button}",
    ]
    if p.buzzer_enabled:
        parts.insert(3, f"buzzer GPIO{p.buzzer}")
    return ", ".join(parts)


async def gpio_glow(gpio: GpioBackend, say: Callable[[str], None], step: float) -> None:
    p = gpio.pins
    say(
        f"glow: the body LED (GPIO{p.red} red, GPIO{p.green} green, GPIO{p.blue} blue) "
        "should now be"
    )
    try:
        for name, colour in COLOURS:
            gpio.led.color = colour
            got = tuple(gpio.led.value)
            if not all(_close(a, b) for a, b in zip(got, colour, strict=True)):
                raise StepFailed(
                    f"the pins read back {got} after {name} {colour}",
                    "a GPIO pin did not take its value: another program may drive it",
                )
            say(f"  … {name}")
            await asyncio.sleep(step)
    finally:
        gpio.led.off()


async def gpio_eyes(gpio: GpioBackend, say: Callable[[str], None], step: float) -> None:
    say(f"eyes: the eye LED (GPIO{gpio.pins.eyes}) should now blink {BLINKS} times")
    try:
        for _ in range(BLINKS):
            gpio.eyes.value = 1.0
            if not _close(gpio.eyes.value, 1.0):
                raise StepFailed(
                    f"GPIO{gpio.pins.eyes} read back {gpio.eyes.value} after on",
                    "a GPIO pin did not take its value: another program may drive it",
                )
            await asyncio.sleep(step / 2)
            gpio.eyes.value = 0.0
            await asyncio.sleep(step / 2)
    finally:
        gpio.eyes.off()


async def gpio_servo(gpio: GpioBackend, say: Callable[[str], None], step: float) -> None:
    say(f"servo: the posture servo (GPIO{gpio.pins.servo}) should now sweep")
    try:
        for angle in SERVO_ANGLES:
            gpio.servo.angle = angle
            got = gpio.servo.angle
            if got is None or abs(got - angle) > 1:
                raise StepFailed(
                    f"GPIO{gpio.pins.servo} read back {got}° after {angle}°",
                    "a GPIO pin did not take its value: another program may drive it",
                )
            say(f"  … {angle}°")
            await asyncio.sleep(step)
    finally:
        gpio.servo.detach()


async def gpio_buzzer(gpio: GpioBackend, say: Callable[[str], None], step: float) -> None:
    buzzer = gpio.buzzer
    assert buzzer is not None
    say(f"buzzer: the buzzer (GPIO{gpio.pins.buzzer}) should now chirp twice, low then high")
    try:
        for hz in CHIRP_HZ:
            buzzer.play(hz)
            if not buzzer.is_active:
                raise StepFailed(
                    f"GPIO{gpio.pins.buzzer} is silent after play({hz})",
                    "a GPIO pin did not take its value: another program may drive it",
                )
            say(f"  … {hz} Hz")
            await asyncio.sleep(step / 2)
            buzzer.stop()
            await asyncio.sleep(step / 4)
    finally:
        buzzer.stop()


def gpio_off(gpio: GpioBackend) -> None:
    """Every output off (before the devices are closed)."""
    with contextlib.suppress(Exception):
        gpio.led.off()
    with contextlib.suppress(Exception):
        gpio.eyes.off()
    with contextlib.suppress(Exception):
        gpio.servo.detach()
    if gpio.buzzer is not None:
        with contextlib.suppress(Exception):
            gpio.buzzer.stop()


# --------------------------------------------------------------------------- MCU


def describe_capabilities(caps: Capabilities) -> str:
    words = [f"{caps.led_count} LEDs"]
    words.append("servo" if caps.servo else "no servo")
    words.append(f"display {caps.display_w}x{caps.display_h}" if caps.display else "no display")
    words.append("buzzer" if caps.buzzer else "no buzzer")
    words.append("button" if caps.button else "no button")
    if caps.touch:
        words.append("touch")
    words.append(f"text up to {caps.max_text} bytes")
    return ", ".join(words) + f" (flags 0x{int(caps.flags):02x})"


class McuSession:
    """One serial link to the MCU for the smoke test: the handshake, commands until ACKed, the
    button's INPUT_EVENTs."""

    def __init__(self, config: SerialLinkConfig, on_press: Callable[[str], None]) -> None:
        self.config = config
        self.on_press = on_press
        self.protocol = HostProtocol(Timing.for_baud(config.baud))
        self.link: SerialLink | None = None
        self.events: list[Event] = []
        self._changed = asyncio.Event()
        self.connected: Connected | None = None

    def _on_event(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()
        if isinstance(event, InputReceived):
            self.on_press(f"MCU {event.event.kind.name.lower().replace('_', ' ')}")

    async def _wait(self, found: Callable[[Event], bool], start: int, timeout: float) -> Event:
        async with asyncio.timeout(timeout):
            while True:
                for event in self.events[start:]:
                    if found(event):
                        return event
                start = len(self.events)
                self._changed.clear()
                await self._changed.wait()

    async def open(self, timeout: float) -> Connected:
        """Open the port (exclusively) and do the HELLO handshake within ``timeout`` seconds."""
        url = self.config.url
        try:
            port = open_port(url, self.config.baud)
        except PortUnsupportedError as exc:
            raise StepFailed(str(exc), "set [figurine.serial] url to a device path") from exc
        except (OSError, serial.SerialException) as exc:
            detail = getattr(exc, "strerror", None) or str(exc)
            raise StepFailed(detail, describe_device_error(exc, url, serial=True)) from exc
        with contextlib.suppress(OSError, serial.SerialException):
            port.close()
        self.link = SerialLink.from_config(self.config, self.protocol, on_event=self._on_event)
        await self.link.__aenter__()
        try:
            event = await self._wait(lambda e: isinstance(e, Connected | Incompatible), 0, timeout)
        except TimeoutError:
            link = self.link
            if link.counters.port_opens == 0 and link.last_error:
                hint = describe_device_error(OSError(link.last_error), url, serial=True)
                raise StepFailed(link.last_error, hint) from None
            raise StepFailed(
                f"{url}: no HELLO reply within {timeout:g} s",
                f"wrong baud rate ([figurine.serial] baud = {self.config.baud}) or the firmware "
                "is not running / does not speak docs/PROTOCOL.md (`skelly console` shows the "
                "frames; docs/FIRMWARE.md §4)",
            ) from None
        if isinstance(event, Incompatible):
            fw = ".".join(map(str, event.fw_version))
            raise StepFailed(
                f"{url}: firmware {fw} speaks protocol {event.mcu_min}..{event.mcu_max}, this "
                f"host {event.host_min}..{event.host_max}",
                "flash matching firmware (docs/FIRMWARE.md) or update skelly",
            )
        assert isinstance(event, Connected)
        self.connected = event
        return event

    async def command(self, msg: Message, timeout: float) -> None:
        """Send ``msg`` and wait for the MCU's ACK (a NACK or no answer raises StepFailed)."""
        assert self.link is not None
        slot = SLOT_OF[type(msg)]
        start = len(self.events)
        self.link.command(msg)
        try:
            event = await self._wait(
                lambda e: isinstance(e, Acked | Nacked) and e.slot is slot, start, timeout
            )
        except TimeoutError:
            raise StepFailed(
                f"the MCU did not acknowledge {type(msg).__name__} within {timeout:g} s",
                "the link is unstable: check the cable and `skelly console` (docs/CONSOLE.md)",
            ) from None
        if isinstance(event, Nacked):
            reason = getattr(event.reason, "name", str(event.reason))
            raise StepFailed(
                f"the MCU refused {type(msg).__name__}: NACK {reason}",
                "the firmware does not support it or the value: check its capabilities "
                "(docs/PROTOCOL.md §6)",
            )

    async def off(self, timeout: float) -> None:
        """Glow off, text cleared, upright: waits briefly for the ACKs."""
        if self.link is None or self.connected is None:
            return
        caps = self.connected.capabilities
        msgs: list[Message] = [SetGlow(0, 0, 0, 0)]
        if caps.display:
            msgs.append(ShowText(Face.NEUTRAL, ""))
        if caps.servo:
            msgs.append(SetPose(0))
        for msg in msgs:
            with contextlib.suppress(StepFailed, TimeoutError):
                await self.command(msg, timeout)

    async def close(self) -> None:
        if self.link is not None:
            await self.link.aclose()


async def mcu_glow(mcu: McuSession, say: Callable[[str], None], step: float, ack: float) -> None:
    say("MCU glow: the LED ring should now be")
    for name, colour in COLOURS:
        r, g, b = (round(c * 255) for c in colour)
        await mcu.command(SetGlow(r, g, b), ack)
        say(f"  … {name}")
        await asyncio.sleep(step)
    await mcu.command(SetGlow(0, 0, 0, 0), ack)


async def mcu_display(mcu: McuSession, say: Callable[[str], None], step: float, ack: float) -> None:
    say('MCU display: the display should now show a happy face and "smoke test"')
    await mcu.command(ShowText(Face.HAPPY, "smoke test"), ack)
    await asyncio.sleep(step)


async def mcu_servo(mcu: McuSession, say: Callable[[str], None], step: float, ack: float) -> None:
    say("MCU servo: the figurine should now slump and straighten up")
    for melt in MCU_MELT:
        await mcu.command(SetPose(melt), ack)
        say(f"  … melt {round(melt * 100 / 255)} %")
        await asyncio.sleep(step)


async def mcu_buzzer(mcu: McuSession, say: Callable[[str], None], step: float, ack: float) -> None:
    say("MCU buzzer: the buzzer should now chirp twice, low then high")
    ms = max(20, round(step * 500))
    for hz in CHIRP_HZ:
        await mcu.command(ToneMsg(hz, ms, 128), ack)
        say(f"  … {hz} Hz")
        await asyncio.sleep(step / 2)
