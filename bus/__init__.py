"""Skelly-Jelly message bus: typed envelopes, priority lanes, delivery modes, health registry."""

from bus.envelope import Envelope, Priority
from bus.errors import BusClosedError, BusError, BusNotBoundError
from bus.messages import FocusState, Message, ModuleId, ModuleStatus
from bus.registry import ModuleRegistry, SystemHealth, aggregate
from bus.router import Bus, DeadLetter, Delivery, Subscription

__all__ = [
    "Bus",
    "BusClosedError",
    "BusError",
    "BusNotBoundError",
    "DeadLetter",
    "Delivery",
    "Envelope",
    "FocusState",
    "Message",
    "ModuleId",
    "ModuleRegistry",
    "ModuleStatus",
    "Priority",
    "Subscription",
    "SystemHealth",
    "aggregate",
]
