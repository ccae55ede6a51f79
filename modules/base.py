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

Long-lived tasks are started with ``self.spawn(coro, name)``: ``stop`` cancels them (before
``on_stop``), and one that raises is a *crash*: the module reports Unhealthy and an
``Error(fatal=True)`` goes on the bus, on which the Orchestrator restarts it (docs/STATUS.md).
``depends_on`` names the modules that must run before this one (empty: the Orchestrator's table).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from bus import Bus, BusError, Delivery, Envelope, ModuleStatus, Priority
from bus.messages import Error, HealthCheck, HealthReply, Message, ModuleReady

log = logging.getLogger("skelly.modules")


class Module:
    name: str = "Module"
    placeholder: bool = False
    depends_on: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._bus: Bus | None = None
        self.subscriptions: list[Callable[[], None]] = []
        self.spawned: set[asyncio.Task[Any]] = set()
        """Tasks started with :meth:`spawn` that have not finished."""
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

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` as one of this module's tasks: cancelled by :meth:`stop`; an exception
        out of it is a crash (:meth:`crashed`)."""
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}.{name}")
        self.spawned.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.spawned.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        if self.status in (ModuleStatus.SHUTTING_DOWN, ModuleStatus.STOPPED):
            log.warning("%s: task %s failed while stopping: %r", self.name, task.get_name(), exc)
            return
        self.crashed(task.get_name(), exc)

    def crashed(self, where: str, exc: BaseException) -> None:
        """Report a crash: Unhealthy with what raised where, and ``Error(fatal=True)`` on the
        bus so the Orchestrator restarts this module."""
        what = f"{type(exc).__name__}: {exc}"
        log.error("%s crashed in %s: %s", self.name, where, what, exc_info=exc)
        self.set_status(ModuleStatus.UNHEALTHY, f"crashed in {where}: {what}")
        bus = self._bus
        if bus is not None:
            with contextlib.suppress(BusError):
                bus.publish(
                    Error(self.name, where, what, fatal=True),
                    source=self.name,
                    priority=Priority.CRITICAL,
                )

    async def _cancel_tasks(self) -> None:
        tasks = list(self.spawned)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.spawned.difference_update(tasks)

    async def stop(self) -> None:
        if self._bus is None:
            return
        self.set_status(ModuleStatus.SHUTTING_DOWN, "stopping")
        try:
            await self._cancel_tasks()
            await self.on_stop()
        finally:
            for unsubscribe in self.subscriptions:
                unsubscribe()
            self.subscriptions.clear()
            self.set_status(ModuleStatus.STOPPED, "stopped")

    def health(self) -> tuple[ModuleStatus, str]:
        """Current status and a short detail; override to add live checks."""
        return self.status, self.detail

    def facts(self) -> dict[str, Any]:
        """A few figures for ``skelly status`` (JSON values; override to add some)."""
        return {}

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
