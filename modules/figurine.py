"""CuteFigurine: owns the figurine's MCU link and shows the focus state as a base glow.

What is here now: the serial link to the figurine MCU (``firmware_bridge.SerialLink`` over the
sans-I/O ``HostProtocol``) with its debug socket for ``skelly console``; link up/down published as
``LinkStatus(link="mcu")`` and folded into this module's health (Degraded while the MCU is away);
button and touch gestures from the MCU published as ``UserInput``; and a base look per focus state
(glow colour, breathing pulse and melt) sent on every ``StateChange``.

Not built yet (the figurine issue): mood and energy, animation overlays with a priority queue,
GPIO outputs through gpiozero, rate caps.  The module says so in its health detail.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from bus import Envelope, ModuleId, ModuleStatus, Priority
from bus.messages import FocusState, LinkStatus, StateChange, UserInput
from firmware_bridge.core.messages import InputKind
from firmware_bridge.core.protocol import Event, HostProtocol, InputReceived, Timing
from firmware_bridge.debug import DebugServer
from firmware_bridge.link import SerialLink, SerialLinkConfig
from modules.base import Module

GESTURES = {
    InputKind.SHORT_PRESS: "short",
    InputKind.LONG_PRESS: "long",
    InputKind.DOUBLE_PRESS: "double",
    InputKind.TOUCH: "touch",
}


@dataclass(frozen=True, slots=True)
class BaseLook:
    rgb: tuple[int, int, int]
    intensity: float
    pulse_s: float
    melt: float


BASE_LOOKS: dict[FocusState, BaseLook] = {
    # calm slow breathing teal; very still and dim; neutral lilac; amber sway; orange melting;
    # sleepy dim violet
    FocusState.FLOW: BaseLook((0, 190, 170), 0.6, 6.0, 0.0),
    FocusState.HYPERFOCUS: BaseLook((30, 60, 160), 0.25, 0.0, 0.0),
    FocusState.NEUTRAL: BaseLook((150, 130, 220), 0.5, 8.0, 0.1),
    FocusState.TRANSITIONING: BaseLook((230, 170, 60), 0.55, 4.0, 0.25),
    FocusState.DISTRACTED: BaseLook((255, 120, 40), 0.6, 3.0, 0.55),
    FocusState.IDLE: BaseLook((70, 40, 110), 0.15, 10.0, 0.8),
}

LINK_ONLY = "MCU link and base glow only; mood, overlays and GPIO outputs are not built yet"


@dataclass(frozen=True)
class FigurineConfig:
    serial_enabled: bool = True
    """Drive a figurine MCU over serial (``[figurine.serial]``)."""
    serial: SerialLinkConfig = field(default_factory=SerialLinkConfig)


class CuteFigurine(Module):
    name = ModuleId.FIGURINE

    def __init__(
        self, config: FigurineConfig | None = None, *, debug_socket: Path | None = None
    ) -> None:
        super().__init__()
        self.config = config or FigurineConfig()
        self.debug_socket = debug_socket
        self.protocol: HostProtocol | None = None
        self.link: SerialLink | None = None
        self._debug: DebugServer | None = None
        self.state = FocusState.NEUTRAL

    async def on_start(self) -> None:
        self.subscribe(self._on_state_change, types=StateChange)
        if not self.config.serial_enabled:
            self.set_status(ModuleStatus.HEALTHY, f"serial disabled; {LINK_ONLY}")
            return
        serial = self.config.serial
        self.protocol = HostProtocol(Timing.for_baud(serial.baud))
        self._apply_look(self.state)
        self.set_status(ModuleStatus.DEGRADED, f"MCU link to {serial.url} not up yet")
        self.link = SerialLink.from_config(
            serial, self.protocol, on_status=self._on_link_status, on_event=self._on_link_event
        )
        await self.link.__aenter__()
        if self.debug_socket is not None:
            self._debug = DebugServer(self.link, self.debug_socket)
            await self._debug.start()

    async def on_stop(self) -> None:
        if self._debug is not None:
            with contextlib.suppress(OSError):
                await self._debug.aclose()
            self._debug = None
        if self.link is not None:
            await self.link.aclose()
            self.link = None

    def _on_link_status(self, status: LinkStatus) -> None:
        if self.status in (ModuleStatus.SHUTTING_DOWN, ModuleStatus.STOPPED):
            return
        self.publish(status, priority=Priority.HIGH)
        if status.up:
            self.set_status(ModuleStatus.HEALTHY, f"MCU link up; {LINK_ONLY}")
        else:
            self.set_status(ModuleStatus.DEGRADED, f"MCU link down: {status.detail}")

    def _on_link_event(self, event: Event) -> None:
        if isinstance(event, InputReceived):
            gesture = GESTURES.get(event.event.kind)
            if gesture is not None:
                self.publish(UserInput(gesture, "serial", time.time()), priority=Priority.HIGH)

    def _on_state_change(self, env: Envelope) -> None:
        change = env.payload
        assert isinstance(change, StateChange)
        self.state = change.current
        self._apply_look(change.current)

    def _apply_look(self, state: FocusState) -> None:
        if self.protocol is None:
            return
        look = BASE_LOOKS[state]
        self.protocol.set_glow(
            *look.rgb,
            look.intensity,
            pulse_s=look.pulse_s,
            pulse_depth=0.3 if look.pulse_s else 0.0,
            fade_s=1.5,
        )
        self.protocol.set_pose(look.melt, ease_s=2.0)
        if self.link is not None:
            self.link.wakeup()
