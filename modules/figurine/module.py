"""CuteFigurine's shell: the bus, one timer, the back ends and the MCU link around the pure core.

What it does (docs/FIGURINE.md): subscribes to StateChange, AnalysisComplete, LinkStatus,
CompanionMode and AnimationCommand; feeds them to the :class:`Compositor` with the monotonic
``clock``; applies the composed look to every back end (GPIO and/or serial) whenever it may have
changed, and once more at the earliest deadline any of them names (overlay expiry, sleepy time, a
rate-capped change held back, a tone to stop, a short press to decide) — one timer, no polling.
Button gestures from either back end become ``UserInput`` and, through the compositor,
``InterventionResponse``.

It keeps what the MCU link did before: ``LinkStatus(link="mcu")`` published and folded into the
module's health (Degraded while the MCU is away, GPIO still driven), MCU button/touch frames as
``UserInput(origin="mcu")``, and the debug socket for ``skelly console``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bus import Envelope, ModuleId, ModuleStatus, Priority
from bus.messages import (
    AnalysisComplete,
    AnimationCommand,
    CompanionMode,
    ConfigUpdate,
    InterventionResponse,
    LinkStatus,
    StateChange,
    UserInput,
)
from firmware_bridge.core.messages import InputKind
from firmware_bridge.core.protocol import Event, HostProtocol, InputReceived, Timing
from firmware_bridge.debug import DebugServer
from firmware_bridge.link import SerialLink
from modules.base import Module
from modules.figurine.backends import Backend, earliest
from modules.figurine.buttons import GestureDetector
from modules.figurine.compositor import Compositor
from modules.figurine.config import FigurineConfig
from modules.figurine.gpio import GpioBackend
from modules.figurine.look import Look
from modules.figurine.serial import SerialBackend

GESTURES = {
    InputKind.SHORT_PRESS: "short",
    InputKind.LONG_PRESS: "long",
    InputKind.DOUBLE_PRESS: "double",
    InputKind.TOUCH: "touch",
}

PinFactory = Callable[[], Any]
"""Returns the gpiozero pin factory to use (called once at start; may raise OSError/ImportError
when the pins cannot be opened)."""


class CuteFigurine(Module):
    name = ModuleId.FIGURINE

    def __init__(
        self,
        config: FigurineConfig | None = None,
        *,
        debug_socket: Path | None = None,
        pin_factory: PinFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.config = config or FigurineConfig()
        self.debug_socket = debug_socket
        self.pin_factory = pin_factory
        self.clock = clock
        self.wall = wall
        self.protocol: HostProtocol | None = None
        self.link: SerialLink | None = None
        self.gpio: GpioBackend | None = None
        self.backends: list[Backend] = []
        self.core = Compositor(self.config, now=clock())
        self.buttons = GestureDetector(self.config.gpio.double_press_s)
        self.look: Look | None = None
        self.applied = 0
        """How many times the look was applied to the back ends (for tests and benchmarks)."""
        self._debug: DebugServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._mcu_up = False
        self._backends_due: float | None = None

    @property
    def state(self) -> Any:
        return self.core.state

    async def on_start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.core = Compositor(self.config, now=self.clock())
        self.subscribe(self._on_state_change, types=StateChange)
        self.subscribe(self._on_analysis, types=AnalysisComplete)
        self.subscribe(self._on_link, types=LinkStatus)
        self.subscribe(self._on_mode, types=CompanionMode)
        self.subscribe(self._on_animation, types=AnimationCommand)
        # remote gestures and brightness (the MQTT bridge, docs/MQTT.md §3)
        self.subscribe(self._on_remote_input, types=UserInput)
        self.subscribe(self._on_config, types=ConfigUpdate)
        if self.config.gpio_enabled and not self._start_gpio():
            return
        if self.config.serial_enabled:
            serial = self.config.serial
            self.protocol = HostProtocol(Timing.for_baud(serial.baud))
            self.link = SerialLink.from_config(
                serial, self.protocol, on_status=self._on_link_status, on_event=self._on_link_event
            )
            self.backends.append(SerialBackend(self.config, self.link))
            self.set_status(ModuleStatus.DEGRADED, f"MCU link to {serial.url} not up yet")
        self.refresh()
        if self.link is not None:
            await self.link.__aenter__()
            if self.debug_socket is not None:
                self._debug = DebugServer(self.link, self.debug_socket)
                await self._debug.start()
        else:
            self.set_status(ModuleStatus.HEALTHY, self._outputs())

    def _start_gpio(self) -> bool:
        if self.pin_factory is None:
            self.set_status(
                ModuleStatus.UNHEALTHY,
                "[figurine] gpio_enabled is set but no pin factory was given",
            )
            return False
        try:
            factory = self.pin_factory()
            self.gpio = GpioBackend(self.config, factory, self._on_edge_threadsafe)
        except Exception as exc:  # lgpio missing, not a Pi, pin busy: say which and what to do
            self.set_status(
                ModuleStatus.UNHEALTHY,
                f"cannot open the GPIO pins ({type(exc).__name__}: {exc}); install the pi extra "
                "on a Raspberry Pi or set [figurine] gpio_enabled = false",
            )
            return False
        self.backends.append(self.gpio)
        return True

    def _outputs(self) -> str:
        names = [b.name for b in self.backends] or ["none"]
        return "outputs: " + ", ".join(names)

    async def on_stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._debug is not None:
            with contextlib.suppress(OSError):
                await self._debug.aclose()
            self._debug = None
        if self.link is not None:
            await self.link.aclose()
            self.link = None
        for backend in self.backends:
            backend.close()
        self.backends.clear()
        self.gpio = None

    # -- bus inputs -------------------------------------------------------------------------
    def _on_state_change(self, env: Envelope) -> None:
        change = env.payload
        assert isinstance(change, StateChange)
        self._publish_responses(self.core.on_state_change(change, self.clock()))
        self.refresh()

    def _on_analysis(self, env: Envelope) -> None:
        result = env.payload
        assert isinstance(result, AnalysisComplete)
        self._publish_responses(self.core.on_analysis(result, self.clock()))
        self.refresh()

    def _on_link(self, env: Envelope) -> None:
        status = env.payload
        assert isinstance(status, LinkStatus)
        if status.link == "host":
            self._publish_responses(self.core.on_host_link(status, self.clock()))
            self.refresh()

    def _on_mode(self, env: Envelope) -> None:
        mode = env.payload
        assert isinstance(mode, CompanionMode)
        self._publish_responses(self.core.on_mode(mode, self.clock()))
        self.refresh()

    def _on_animation(self, env: Envelope) -> None:
        cmd = env.payload
        assert isinstance(cmd, AnimationCommand)
        self._publish_responses(self.core.on_animation(cmd, self.clock()))
        self.refresh()

    def _on_remote_input(self, env: Envelope) -> None:
        """A gesture made elsewhere (``UserInput`` not published by this module) acts as if it
        were pressed here; this module's own gestures were acted on already."""
        gesture = env.payload
        assert isinstance(gesture, UserInput)
        if env.source == self.name:
            return
        self._publish_responses(self.core.on_gesture(gesture.gesture, self.clock()))
        self.refresh()

    def _on_config(self, env: Envelope) -> None:
        update = env.payload
        assert isinstance(update, ConfigUpdate)
        if update.section != "figurine":
            return
        for key, value in update.values:
            if key == "brightness" and isinstance(value, int | float):
                self._publish_responses(self.core.on_brightness(float(value), self.clock()))
        self.refresh()

    # -- button -----------------------------------------------------------------------------
    def _on_edge_threadsafe(self, kind: str, t: float) -> None:
        """Called by gpiozero on its threads: hand the edge to the loop."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._on_edge, kind, t)

    def _on_edge(self, kind: str, t: float) -> None:
        if self.gpio is None:
            return
        if kind == "pressed":
            gestures = self.buttons.pressed(t)
        elif kind == "released":
            gestures = self.buttons.released(t)
        else:
            gestures = self.buttons.held(t)
        for gesture in gestures:
            self.gesture(gesture, "gpio")
        if not gestures:
            self._schedule()

    def gesture(self, gesture: str, origin: str) -> None:
        """A gesture from either back end: published as UserInput, then acted on."""
        self.publish(UserInput(gesture, origin, self.wall()), priority=Priority.HIGH)
        self._publish_responses(self.core.on_gesture(gesture, self.clock()))
        self.refresh()

    # -- output -----------------------------------------------------------------------------
    def refresh(self) -> None:
        """Compose the look now, apply it to every back end, and set the one timer."""
        if self.status in (ModuleStatus.SHUTTING_DOWN, ModuleStatus.STOPPED):
            return
        now = self.clock()
        self._publish_responses(self.core.update(now))
        look = self.core.look(now)
        self.look = look
        self._backends_due = earliest(*(b.apply(look, now) for b in self.backends))
        self.applied += 1
        self._schedule()

    def _schedule(self) -> None:
        if self._loop is None:
            return
        now = self.clock()
        when = earliest(
            self.core.next_deadline(now), self._backends_due, self.buttons.next_deadline()
        )
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if when is not None:
            self._timer = self._loop.call_later(max(0.0, when - now), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        for gesture in self.buttons.poll(self.clock()):
            self.gesture(gesture, "gpio")
        self.refresh()

    def _publish_responses(self, responses: list[InterventionResponse]) -> None:
        for response in responses:
            self.publish(response, priority=Priority.HIGH)

    # -- MCU link ---------------------------------------------------------------------------
    def _on_link_status(self, status: LinkStatus) -> None:
        if self.status in (ModuleStatus.SHUTTING_DOWN, ModuleStatus.STOPPED):
            return
        self.publish(status, priority=Priority.HIGH)
        self._mcu_up = status.up
        if status.up:
            self.set_status(ModuleStatus.HEALTHY, f"MCU link up; {self._outputs()}")
        else:
            still = "; GPIO outputs still driven" if self.gpio is not None else ""
            self.set_status(ModuleStatus.DEGRADED, f"MCU link down: {status.detail}{still}")

    def _on_link_event(self, event: Event) -> None:
        if isinstance(event, InputReceived):
            gesture = GESTURES.get(event.event.kind)
            if gesture is not None:
                self.gesture(gesture, "mcu")
