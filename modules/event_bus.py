"""EventBus as a module: the bus registers itself so its health is part of the roll-up."""

from __future__ import annotations

from bus import ModuleId, ModuleStatus
from modules.base import Module


class EventBusModule(Module):
    name = ModuleId.EVENT_BUS

    def health(self) -> tuple[ModuleStatus, str]:
        bus = self.bus
        pending = bus.pending()
        return self.status, f"{len(bus.subscriptions)} subscribers, {pending} pending"
