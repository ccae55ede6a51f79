"""What every module shares: registration, lifecycle, health replies.

A module is started by the orchestrator with ``await module.start(bus)`` and stopped with
``await module.stop()``.  ``Module.start`` registers the module with the bus registry (status
Starting), subscribes it to HealthCheck requests, runs the subclass's ``on_start`` and then reports
Healthy and publishes ModuleReady.  Subclasses report trouble with ``self.set_status(...)``.

Subclasses override ``on_start`` / ``on_stop``; they keep their unsubscribe callables in
``self.subscriptions`` (or use ``self.subscribe``) so ``stop`` detaches everything.

A module never crashes its process: one that cannot do its job reports Unhealthy (or Degraded)
and stays registered.  Unhealthy at the end of ``on_start`` (or an ``OSError`` out of it, which
``start`` reports as Unhealthy) is a *start-up fault*, kept in ``start_fault``: something in the
environment is wrong (port in use, unreadable file, locked database).  ``skelly run`` exits on
one (docs/CLI.md §2); faults that heal at run time are reported as Degraded instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from bus import Bus, Delivery, Envelope, ModuleStatus, Priority
from bus.messages import HealthCheck, HealthReply, Message, ModuleReady


class Module:
    name: str = "Module"
    placeholder: bool = False

    def __init__(self) -> None:
        self._bus: Bus | None = None
        self.subscriptions: list[Callable[[], None]] = []
        self.status = ModuleStatus.STOPPED
        self.detail = ""
        self.start_fault = ""
        """Why the last start left this module Unhealthy ('' if it did not)."""

    @property
    def bus(self) -> Bus:
        if self._bus is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._bus

    def subscribe(
        self,
        handler: Callable[[Envelope], Any],
        *,
        types: type[Message] | Iterable[type[Message]] | None = None,
        sources: str | Iterable[str] | None = None,
        mode: Delivery = Delivery.BEST_EFFORT,
        maxsize: int = 1024,
        timeout: float = 5.0,
    ) -> None:
        sub = self.bus.subscribe(
            handler,
            types=types,
            sources=sources,
            mode=mode,
            maxsize=maxsize,
            timeout=timeout,
            module=self.name,
            name=f"{self.name}.{getattr(handler, '__name__', 'handler')}",
        )
        self.subscriptions.append(sub)

    def publish(
        self,
        payload: Message,
        *,
        priority: Priority = Priority.NORMAL,
        correlation_id: int | None = None,
    ) -> Envelope:
        return self.bus.publish(
            payload, source=self.name, priority=priority, correlation_id=correlation_id
        )

    def set_status(self, status: ModuleStatus, detail: str = "") -> None:
        self.status = status
        self.detail = detail
        if self._bus is not None and self.name in self._bus.registry.names():
            self._bus.registry.set_status(self.name, status, detail)

    async def start(self, bus: Bus) -> None:
        self._bus = bus
        bus.registry.register(self.name)
        self.set_status(ModuleStatus.STARTING, "starting")
        self.subscribe(self._on_health_check, types=HealthCheck, maxsize=8)
        self.start_fault = ""
        try:
            await self.on_start()
        except OSError as exc:  # a file, socket or device of the environment: report, no crash
            self.set_status(ModuleStatus.UNHEALTHY, str(exc))
        if self.status is ModuleStatus.UNHEALTHY:
            self.start_fault = self.detail
        if self.status is ModuleStatus.STARTING:
            detail = "placeholder: does nothing yet" if self.placeholder else "running"
            self.set_status(ModuleStatus.HEALTHY, detail)
        self.publish(ModuleReady(self.name, self.detail))

    async def stop(self) -> None:
        if self._bus is None:
            return
        self.set_status(ModuleStatus.SHUTTING_DOWN, "stopping")
        try:
            await self.on_stop()
        finally:
            for unsubscribe in self.subscriptions:
                unsubscribe()
            self.subscriptions.clear()
            self.set_status(ModuleStatus.STOPPED, "stopped")

    def health(self) -> tuple[ModuleStatus, str]:
        """Current status and a short detail; override to add live checks."""
        return self.status, self.detail

    def _on_health_check(self, env: Envelope) -> None:
        payload = env.payload
        assert isinstance(payload, HealthCheck)
        status, detail = self.health()
        self.bus.registry.heartbeat(self.name)
        self.publish(
            HealthReply(payload.request_id, self.name, status, detail),
            priority=Priority.HIGH,
            correlation_id=env.id,
        )

    async def on_start(self) -> None:
        """Subclass hook: acquire resources, subscribe."""

    async def on_stop(self) -> None:
        """Subclass hook: flush and release resources."""
