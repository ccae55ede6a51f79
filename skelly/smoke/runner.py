"""The smoke test's order of items (docs/SMOKE.md §1), on real hardware or the ``--sim`` rig."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware_bridge.core.messages import Message
from firmware_bridge.core.protocol import CommandReceived, Event
from hw_sim.gpio import VirtualButton, mock_factory
from hw_sim.mcu import SimulatedMcu
from modules.figurine.config import FigurineConfig
from modules.figurine.gpio import GpioBackend
from skelly.config import Config
from skelly.errors import SkellyError
from skelly.smoke import checks
from skelly.smoke.checklist import Checklist
from skelly.smoke.outputs import (
    UNCONFIRMED,
    Console,
    McuSession,
    StepFailed,
    describe_capabilities,
    gpio_buzzer,
    gpio_eyes,
    gpio_glow,
    gpio_off,
    gpio_pins_detail,
    gpio_servo,
    mcu_buzzer,
    mcu_display,
    mcu_glow,
    mcu_servo,
    open_gpio,
)

SIM_FAULTS = ("mcu-unplugged", "mcu-silent", "no-press")
GPIO_PINS = "gpio pins"
MCU_LINK = "MCU link"
BUTTON = "button"
ACK_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class SmokeOptions:
    yes: bool = False
    sim: bool = False
    button_timeout: float = 10.0
    handshake_timeout: float = 5.0
    step: float = 1.0
    ack_timeout: float = ACK_TIMEOUT_S


@dataclass
class Rig:
    """What the items drive: the pin factory, and (``--sim``) who presses the button."""

    pin_factory: Callable[[], Any]
    press: Callable[[str], Coroutine[Any, Any, None]] | None = None
    """``--sim`` only: press the simulated button on ``"gpio"`` or ``"mcu"``."""


class SimRig:
    """``--sim``: gpiozero's MockFactory pins and a simulated MCU on a pty, with faults.

    ``received`` is every command the simulated MCU executed (from its own protocol core).
    """

    def __init__(self, faults: frozenset[str] = frozenset(), gpio: Any = None) -> None:
        unknown = sorted(set(faults) - set(SIM_FAULTS))
        if unknown:
            raise SkellyError(
                f"unknown --sim-fault {unknown[0]!r}; choose from {', '.join(SIM_FAULTS)}"
            )
        self.faults = faults
        self.factory = mock_factory()
        self.received: list[Message] = []
        self.mcu = SimulatedMcu(on_change=self._on_change)
        self.gpio = gpio
        self.presses: list[str] = []

    def _on_change(self, _mcu: SimulatedMcu, event: Event | None) -> None:
        if isinstance(event, CommandReceived):
            self.received.append(event.msg)

    @property
    def path(self) -> Path:
        return self.mcu.path

    async def __aenter__(self) -> SimRig:
        self.mcu.start()
        if "mcu-unplugged" in self.faults:
            self.mcu.unplug()
        if "mcu-silent" in self.faults:
            self.mcu.stall()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.mcu.close()
        self.factory.close()

    async def press(self, where: str) -> None:
        if "no-press" in self.faults:
            return
        self.presses.append(where)
        if where == "gpio":
            await VirtualButton(self.factory, self.gpio).press("short")
        else:
            self.mcu.press("short")

    def rig(self) -> Rig:
        return Rig(pin_factory=lambda: self.factory, press=self.press)


@dataclass
class _Presses:
    future: asyncio.Future[str] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    seen: list[str] = field(default_factory=list)

    def __call__(self, source: str) -> None:
        """From gpiozero's thread or the loop: one press from ``source``."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._on_loop, source)

    def _on_loop(self, source: str) -> None:
        self.seen.append(source)
        if self.future is not None and not self.future.done():
            self.future.set_result(source)


@dataclass
class _Opened:
    """What the run opened, registered as soon as it is open, so that a failure or Ctrl-C at
    any point still turns it off and closes it."""

    gpio: GpioBackend | None = None
    mcu: McuSession | None = None

    async def close(self, ack_timeout: float) -> None:
        gpio, self.gpio = self.gpio, None
        mcu, self.mcu = self.mcu, None
        if gpio is not None:
            gpio_off(gpio)
            gpio.close()
        if mcu is not None:
            try:
                with contextlib.suppress(Exception):
                    await mcu.off(ack_timeout)
            finally:
                await mcu.close()


def ensure_not_running(config: Config, state: Path) -> checks.Service | None:
    """docs/SMOKE.md §5: with GPIO or serial configured, a running service ends the run (2)."""
    service = checks.running_service(state, config)
    fig = config.figurine
    if service is not None and (fig.gpio_enabled or fig.serial_enabled):
        raise SkellyError(
            f"the skelly service is running ({service}): it holds the GPIO pins and the serial "
            "port, so the outputs cannot be tested beside it; stop it first: `sudo systemctl "
            "stop skelly`, run skelly smoke again, then `sudo systemctl start skelly`"
        )
    return service


async def run_smoke(config: Config, opts: SmokeOptions, console: Console, rig: Rig) -> Checklist:
    """Every item of docs/SMOKE.md §1 in order; devices closed and outputs off at the end."""
    checklist = Checklist()
    state = config.state_dir()
    service = ensure_not_running(config, state)
    fig = config.figurine

    console.say(f"skelly smoke: data dir {state}")
    checks.check_data_dir(checklist, state)
    checks.check_database(checklist, state, config, service)
    checks.check_ingest(checklist, config.ingest, service)

    presses = _Presses(loop=asyncio.get_running_loop())
    opened = _Opened()
    try:
        await _gpio_items(checklist, console, fig, opts, rig, presses, opened)
        await _mcu_items(checklist, console, fig, opts, presses, opened)
        await _button(checklist, console, fig, opts, rig, presses, opened.gpio, opened.mcu)
    finally:
        await opened.close(min(opts.ack_timeout, 1.0))
    return checklist


async def _visible(
    checklist: Checklist,
    console: Console,
    name: str,
    step: Callable[[], Awaitable[None]],
    question: str,
    hint: str,
) -> None:
    try:
        await step()
    except StepFailed as exc:
        checklist.failed(name, exc.detail, exc.hint)
        return
    answer = await console.confirm(question)
    if answer is None:
        checklist.passed(name, f"done, the hardware accepted it ({UNCONFIRMED})")
    elif answer:
        checklist.passed(name, "seen by the person")
    else:
        checklist.failed(name, "the person did not see (or hear) it", hint)


async def _gpio_items(
    checklist: Checklist,
    console: Console,
    fig: FigurineConfig,
    opts: SmokeOptions,
    rig: Rig,
    presses: _Presses,
    opened: _Opened,
) -> None:
    names = ("glow", "eyes", "servo", "buzzer")
    if not fig.gpio_enabled:
        checklist.skipped(GPIO_PINS, "[figurine] gpio_enabled = false")
        for name in names:
            checklist.skipped(name, "GPIO off ([figurine] gpio_enabled = false)")
        return
    try:
        gpio = open_gpio(fig, rig.pin_factory, presses)
    except StepFailed as exc:
        checklist.failed(GPIO_PINS, exc.detail, exc.hint)
        for name in names:
            checklist.skipped(name, "needs the GPIO pins, which did not open")
        return
    opened.gpio = gpio
    checklist.passed(GPIO_PINS, gpio_pins_detail(fig))
    p = fig.gpio
    step = opts.step
    await _visible(
        checklist,
        console,
        "glow",
        lambda: gpio_glow(gpio, console.say, step),
        "did the body LED show red, green and blue?",
        f"check docs/HARDWARE.md §2: red GPIO{p.red} → 330 Ω, green GPIO{p.green} and blue "
        f"GPIO{p.blue} → 220 Ω to the anodes, the common cathode (longest leg) on GND; a "
        "common-anode LED shows inverted colours",
    )
    await _visible(
        checklist,
        console,
        "eyes",
        lambda: gpio_eyes(gpio, console.say, step),
        "did the eyes blink?",
        f"check docs/HARDWARE.md §2: GPIO{p.eyes} → 330 Ω → the eye LED's anode (long leg), "
        "its cathode on GND; one resistor per LED",
    )
    await _visible(
        checklist,
        console,
        "servo",
        lambda: gpio_servo(gpio, console.say, step),
        "did the servo sweep?",
        f"check docs/HARDWARE.md §2: signal (orange) on GPIO{p.servo}, power (red) on 5 V — "
        "never 3.3 V — with the 470 µF capacitor, ground (brown) shared with the Pi",
    )
    if gpio.buzzer is None:
        checklist.skipped("buzzer", "[figurine.gpio] buzzer_enabled = false")
    else:
        await _visible(
            checklist,
            console,
            "buzzer",
            lambda: gpio_buzzer(gpio, console.say, step),
            "did you hear two chirps?",
            f"check docs/HARDWARE.md §2: a passive piezo on GPIO{p.buzzer} through 100 Ω, its "
            "other leg on GND; a magnetic buzzer needs a transistor and a diode",
        )


async def _mcu_items(
    checklist: Checklist,
    console: Console,
    fig: FigurineConfig,
    opts: SmokeOptions,
    presses: _Presses,
    opened: _Opened,
) -> None:
    names = ("MCU glow", "MCU display", "MCU servo", "MCU buzzer")
    if not fig.serial_enabled:
        checklist.skipped(MCU_LINK, "[figurine] serial_enabled = false")
        for name in names:
            checklist.skipped(name, "no MCU ([figurine] serial_enabled = false)")
        return
    url = fig.serial.url
    console.say(f"MCU link: opening {url} at {fig.serial.baud} baud, waiting for its HELLO")
    mcu = opened.mcu = McuSession(fig.serial, presses)
    try:
        hello = await mcu.open(opts.handshake_timeout)
    except StepFailed as exc:
        opened.mcu = None
        await mcu.close()
        checklist.failed(MCU_LINK, exc.detail, exc.hint)
        for name in names:
            checklist.skipped(name, "needs the MCU link, which failed")
        return
    fw = ".".join(map(str, hello.fw_version))
    caps = hello.capabilities
    detail = (
        f"{url}: firmware {fw}, protocol {hello.protocol_version}; {describe_capabilities(caps)}"
    )
    console.say(f"  {detail}")
    checklist.passed(MCU_LINK, detail)
    step, ack = opts.step, opts.ack_timeout
    wiring = "check the MCU side's wiring of the {} (docs/FIRMWARE.md §2) and its config.py"
    # (item, fitted, what it does, the question, the part to check, what the MCU lacks)
    parts = (
        ("MCU glow", True, mcu_glow, "did the ring show red, green and blue?",
         "LED ring (data pin, 5 V, GND)", ""),
        ("MCU display", caps.display, mcu_display, 'did the display show "smoke test"?',
         "display (I²C SDA/SCL, address)", "display"),
        ("MCU servo", caps.servo, mcu_servo, "did the figurine slump and straighten up?",
         "servo (signal pin; 5 V power, not 3.3 V)", "servo"),
        ("MCU buzzer", caps.buzzer, mcu_buzzer, "did you hear two chirps?", "buzzer", "buzzer"),
    )  # fmt: skip
    for name, fitted, show, question, part, lacks in parts:
        if not fitted:
            checklist.skipped(name, f"the MCU reports no {lacks}")
            continue
        await _visible(
            checklist,
            console,
            name,
            functools.partial(show, mcu, console.say, step, ack),
            question,
            wiring.format(part),
        )


async def _button(
    checklist: Checklist,
    console: Console,
    fig: FigurineConfig,
    opts: SmokeOptions,
    rig: Rig,
    presses: _Presses,
    gpio: GpioBackend | None,
    mcu: McuSession | None,
) -> None:
    sources: list[str] = []
    if gpio is not None:
        sources.append(f"GPIO{fig.gpio.button}")
    caps = mcu.connected.capabilities if mcu is not None and mcu.connected else None
    if caps is not None and (caps.button or caps.touch):
        sources.append("the MCU's " + ("button" if caps.button else "touch pad"))
    if not sources:
        checklist.skipped(BUTTON, "no button: GPIO off or not opened, and no MCU button or touch")
        return
    if opts.yes and not opts.sim:
        checklist.skipped(BUTTON, "skipped (unattended: --yes, nobody to press it)")
        return
    loop = asyncio.get_running_loop()
    presses.future = loop.create_future()
    limit = opts.button_timeout
    console.say(f"button: press the button within {limit:g} s ({' or '.join(sources)})")
    helper: asyncio.Task[None] | None = None
    if rig.press is not None:
        where = "gpio" if gpio is not None else "mcu"
        press = rig.press
        if opts.yes:
            helper = loop.create_task(press(where))
        else:
            console.say("  (--sim: press Enter to press the simulated button)")

            async def enter_then_press() -> None:
                if await console.read_line(None) is not None:
                    await press(where)

            helper = loop.create_task(enter_then_press())
    try:
        async with asyncio.timeout(limit):
            source = await presses.future
    except TimeoutError:
        hints = []
        if gpio is not None:
            hints.append(
                f"GPIO{fig.gpio.button} → button → GND (internal pull-up, no resistor; "
                "docs/HARDWARE.md §2)"
            )
        if caps is not None and (caps.button or caps.touch):
            hints.append("the MCU's button pin (docs/FIRMWARE.md §2)")
        checklist.failed(
            BUTTON, f"no press within {limit:g} s", "check the wiring: " + "; ".join(hints)
        )
    else:
        checklist.passed(BUTTON, f"pressed ({source})")
        console.say(f"  … pressed ({source})")
    finally:
        presses.future = None
        if helper is not None:
            helper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await helper
