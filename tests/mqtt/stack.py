"""An in-process service stack for the bridge tests: a real bus, Gamification, the figurine on
gpiozero MockFactory pins and the MqttBridge talking to the real broker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from gpiozero.pins.mock import MockFactory

from bus import Bus, Envelope, ModuleRegistry, ModuleStatus
from bus.messages import Message
from modules.figurine import CuteFigurine, FigurineConfig, GpioConfig
from modules.gamification import Gamification, GamificationConfig
from modules.gamification.module import MemoryStore
from modules.mqtt_bridge import MqttBridge, MqttConfig
from tests.mqtt.broker import USERS, Broker
from tests.slowness import allow

GPIO = GpioConfig(pulse=False, hold_s=0.3, double_press_s=0.15)
FIGURINE = FigurineConfig(serial_enabled=False, gpio_enabled=True, gpio=GPIO)
NO_QUIET_HOURS = GamificationConfig(quiet_start="12:00", quiet_end="12:00")


def mqtt_config(broker: Broker, device: str, **kw: Any) -> MqttConfig:
    values: dict[str, Any] = {
        "enabled": True,
        "host": "127.0.0.1",
        "port": broker.port,
        "username": device,
        "password": USERS.get(device, ""),
        "device_id": device,
        "reconnect_initial_s": 0.2,
        "reconnect_max_s": 1.0,
    }
    values.update(kw)
    return MqttConfig(**values)


@dataclass
class Stack:
    bus: Bus
    gamification: Gamification
    figurine: CuteFigurine
    bridge: MqttBridge
    seen: list[Message] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on(self, env: Envelope) -> None:
        self.seen.append(env.payload)
        self.changed.set()

    async def until(self, what: Callable[[], Any], timeout: float = 10.0, why: str = "") -> Any:
        """Wait (on real time, scaled) for ``what()`` to be true."""
        deadline = asyncio.get_running_loop().time() + allow(timeout)
        while True:
            result = what()
            if result:
                return result
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(
                    f"timed out waiting for {why or what}; bridge {self.bridge.status.value}: "
                    f"{self.bridge.detail}"
                )
            await asyncio.sleep(0.02)

    async def healthy(self) -> None:
        await self.until(
            lambda: self.bridge.status is ModuleStatus.HEALTHY, why="the bridge to be Healthy"
        )


@contextlib.asynccontextmanager
async def stack(
    config: MqttConfig, factory: MockFactory, *, echo_timeout_s: float = 5.0
) -> AsyncIterator[Stack]:
    bus = Bus(ModuleRegistry())
    gamification = Gamification(NO_QUIET_HOURS, store=MemoryStore())
    figurine = CuteFigurine(FIGURINE, pin_factory=lambda: factory)
    bridge = MqttBridge(config, echo_timeout_s=echo_timeout_s)
    s = Stack(bus, gamification, figurine, bridge)
    bus.subscribe(s.on, name="test.seen", maxsize=10000)
    started: list[Any] = []
    try:
        for module in (gamification, figurine, bridge):
            await module.start(bus)
            started.append(module)
        yield s
    finally:
        for module in reversed(started):
            await module.stop()
        await bus.aclose()
