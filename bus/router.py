"""The asyncio message bus.

Theory of operation
-------------------
``publish()`` runs on the event loop.  It wraps the payload in an :class:`Envelope` (one clock
read), looks up the subscriptions for the payload's type (a cached route per type, rebuilt when a
subscription comes or goes), applies each one's source filter and *offers* the envelope to it.

Each subscription keeps four FIFO lanes, one per priority.  Offering never runs a handler; it
appends to a lane and, if the subscription is idle, schedules its drain with ``loop.call_soon``
(sync handlers) or wakes its worker task (async handlers).  A drain always takes from the highest
non-empty lane, so a Critical/High message overtakes Normal/Low ones already queued, while order
inside one priority stays FIFO.  A sync drain handles at most ``SLICE`` messages per loop turn and
then yields, so one busy subscriber cannot starve the loop or inflate others' latency.  It takes
the front of the top lane as one chunk and delivers it in a tight loop; a chunk it had to stop
(a higher priority arrived) goes back to the front of its lane.  While a chunk is out of its lane
it is still counted in the depth and is still first in line to be dropped (see ``_settle``).

Delivery modes (bounded by ``maxsize`` across all lanes):

* best effort — when full, the oldest message of the lowest priority not above the new one is
  dropped (if every queued message outranks the new one, the new one is dropped); counted.
* latest only — one pending message per key (``key(envelope)``, default the payload type); a newer
  one replaces the pending one (counted as coalesced) and takes the newer priority.
* reliable — nothing is dropped.  ``await bus.send(...)`` waits for room (up to ``send_timeout``);
  on timeout the envelope goes to the dead-letter store with the reason.  The non-blocking
  ``publish()`` cannot wait, so a full reliable queue dead-letters at once with a reason saying so.

A handler that raises is counted, logged, reported as an :class:`Error` message and noted in the
module registry; the drain goes on with the next message.  Async handlers run under a timeout; a
hang is cancelled, counted and reported the same way.  A *sync* handler that blocks would block the
loop itself: keep sync handlers short (the orchestrator's watchdog notices a blocked loop).

``publish_threadsafe()`` may be called from any thread (gpiozero fires callbacks on its own); it
takes the publish time on the calling thread and hands the rest to the loop with
``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator
from enum import Enum
from itertools import islice, repeat
from operator import length_hint
from typing import NamedTuple, cast

from bus.envelope import Envelope, Priority
from bus.errors import BusClosedError, BusError, BusNotBoundError
from bus.messages import Error, Message, ModuleId
from bus.metrics import BusSnapshot, LatencyHistogram, SubscriberStats, TypeStats, bucket_of
from bus.registry import ModuleRegistry

log = logging.getLogger("skelly.bus")

SyncHandler = Callable[[Envelope], None]
AsyncHandler = Callable[[Envelope], Awaitable[None]]
Handler = SyncHandler | AsyncHandler
KeyFunc = Callable[[Envelope], Hashable]

SLICE = 256
"""Messages one sync drain handles before yielding to the loop."""

_new_envelope = tuple.__new__
_perf_ns = time.perf_counter_ns
_PRIORITIES = (Priority.CRITICAL, Priority.HIGH, Priority.NORMAL, Priority.LOW)


class Delivery(Enum):
    BEST_EFFORT = "best_effort"
    LATEST_ONLY = "latest_only"
    RELIABLE = "reliable"


class DeadLetter(NamedTuple):
    envelope: Envelope
    subscriber: str
    reason: str
    at_ns: int


class DeadLetterStore:
    """Bounded in-memory store of undeliverable envelopes, with a total that never wraps.

    ``listener`` (optional) sees every dead letter, e.g. to persist it.
    """

    def __init__(self, maxlen: int = 1000) -> None:
        self._items: deque[DeadLetter] = deque(maxlen=maxlen)
        self.total = 0
        self.listener: Callable[[DeadLetter], None] | None = None

    def add(self, envelope: Envelope, subscriber: str, reason: str) -> None:
        letter = DeadLetter(envelope, subscriber, reason, _perf_ns())
        self._items.append(letter)
        self.total += 1
        log.warning("dead letter for %s: %s (%s)", subscriber, envelope.type.__name__, reason)
        if self.listener is not None:
            self.listener(letter)

    def items(self) -> list[DeadLetter]:
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)


class _Route:
    __slots__ = ("published", "subs")

    def __init__(self, subs: tuple[Subscription, ...]) -> None:
        self.subs = subs
        self.published = 0


class Subscription:
    """A handler attached to the bus.  Calling it unsubscribes."""

    __slots__ = (
        "_depth",
        "_desc",
        "_latest_desc",
        "_wake",
        "active",
        "bus",
        "coalesced",
        "dead_lettered",
        "delivered",
        "dropped",
        "errors",
        "floor",
        "handler",
        "hangs",
        "held",
        "held_drops",
        "held_n",
        "high_water",
        "is_async",
        "key",
        "lanes",
        "latest",
        "maxsize",
        "mode",
        "module",
        "name",
        "offer",
        "preempt",
        "room_waiters",
        "scheduled",
        "single_type",
        "sources",
        "task",
        "timeout",
        "types",
    )

    def __init__(
        self,
        bus: Bus,
        handler: Handler,
        *,
        name: str,
        module: str,
        types: frozenset[type[Message]] | None,
        sources: frozenset[str] | None,
        mode: Delivery,
        maxsize: int,
        key: KeyFunc | None,
        timeout: float,
        is_async: bool,
    ) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.bus = bus
        self.handler = handler
        self.name = name
        self.module = module
        self.types = types
        self.sources = sources
        self.mode = mode
        self.maxsize = maxsize
        self.key: KeyFunc = key if key is not None else _type_key
        self.timeout = timeout
        self.is_async = is_async
        self.single_type = next(iter(types)) if types is not None and len(types) == 1 else None
        self.active = True
        # lanes[p] for p in Priority (index = priority value)
        self.lanes: list[deque[Envelope]] = [deque() for _ in _PRIORITIES]
        self._desc = [self.lanes[p] for p in _PRIORITIES]
        self.latest: list[dict[Hashable, Envelope]] = [{} for _ in _PRIORITIES]
        self._latest_desc = [self.latest[p] for p in _PRIORITIES]
        self._depth = 0
        """Messages not yet handed to the handler; during a drain pass it may still count
        messages of the held chunk delivered since, until ``_settle`` (read ``depth``)."""
        self.high_water = 0
        self.delivered = 0
        self.dropped = 0
        self.coalesced = 0
        self.dead_lettered = 0
        self.errors = 0
        self.hangs = 0
        self.scheduled = False
        # priority of the lane a running drain is on; an offer above it raises ``preempt``
        self.floor = Priority.CRITICAL
        self.preempt = False
        # the chunk a sync drain pass is delivering (its not yet delivered rest; None between
        # passes), how many of its messages ``_depth`` still counts, how many were dropped
        self.held: Iterator[Envelope] | None = None
        self.held_n = 0
        self.held_drops = 0
        self.room_waiters: deque[asyncio.Future[None]] = deque()
        self._wake: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None
        if mode is Delivery.LATEST_ONLY:
            self.offer = self._offer_latest
        elif mode is Delivery.RELIABLE:
            self.offer = self._offer_reliable
        else:
            self.offer = self._offer_best_effort

    def __call__(self) -> None:
        self.bus.unsubscribe(self)

    def __repr__(self) -> str:
        return f"<Subscription {self.name} {self.mode.value} depth={self.depth}>"

    @property
    def depth(self) -> int:
        """Messages queued and not yet handed to the handler (exact at any time)."""
        self._settle()
        return self._depth

    def _settle(self) -> None:
        """Bring ``_depth`` up to date while a drain pass holds a chunk.

        The pass does not count each delivery as it goes (that is its speed); whoever needs the
        exact depth meanwhile (an offer into a full queue or past the high-water mark, ``depth``)
        settles it from what is left of the chunk.
        """
        held = self.held
        if held is not None:
            left = length_hint(held)
            self._depth -= self.held_n - left
            self.held_n = left

    def _take_oldest(self, prio: int) -> Envelope | None:
        """Remove and return the oldest queued message of priority ``prio``, if any.

        The held chunk came from the front of its lane, so it is older than the lane's rest.
        """
        held = self.held
        if held is not None and prio == self.floor:
            victim = next(held, None)
            if victim is not None:
                self.held_n -= 1
                self.held_drops += 1
                self._depth -= 1
                return victim
        lane = self.lanes[prio]
        if lane:
            self._depth -= 1
            return lane.popleft()
        return None

    def _raise_high_water(self) -> None:
        self._settle()
        if self._depth > self.high_water:
            self.high_water = self._depth

    # -- offering (publish side) ------------------------------------------------------------
    def _kick(self) -> None:
        if self.is_async:
            if self.task is None:
                self.bus._start_worker(self)
            wake = self._wake
            if wake is not None and not wake.done():
                wake.set_result(None)
        elif not self.scheduled:
            self.scheduled = True
            self.bus._loop_call_soon(self._run)

    def _offer_best_effort(self, env: Envelope) -> None:
        if self._depth >= self.maxsize:
            self._settle()
        if self._depth >= self.maxsize:
            prio = env.priority
            for p in range(0, prio + 1):
                victim = self._take_oldest(p)
                if victim is not None:
                    self._count_drop(victim)
                    break
            else:
                self._count_drop(env)
                return
        prio = env.priority
        self.lanes[prio].append(env)
        depth = self._depth = self._depth + 1
        if depth > self.high_water:
            self._raise_high_water()
        if prio > self.floor:
            self.preempt = True
        if not self.scheduled:
            self._kick()

    def offer_many(self, envs: list[Envelope], priority: Priority) -> None:
        """Offer a batch of one priority: one ``extend`` when it fits, else one by one."""
        n = len(envs)
        if self.mode is not Delivery.BEST_EFFORT or self._depth + n > self.maxsize:
            for env in envs:
                self.offer(env)
            return
        self.lanes[priority].extend(envs)
        depth = self._depth = self._depth + n
        if depth > self.high_water:
            self._raise_high_water()
        if priority > self.floor:
            self.preempt = True
        if not self.scheduled:
            self._kick()

    def _offer_reliable(self, env: Envelope) -> None:
        if self._depth >= self.maxsize:
            self._settle()
        if self._depth >= self.maxsize:
            self.dead_lettered += 1
            self.bus.dead_letters.add(
                env,
                self.name,
                f"reliable queue full ({self.maxsize}) and publish() cannot wait; "
                "publish with 'await bus.send(...)' to wait for room",
            )
            return
        prio = env.priority
        self.lanes[prio].append(env)
        depth = self._depth = self._depth + 1
        if depth > self.high_water:
            self._raise_high_water()
        if prio > self.floor:
            self.preempt = True
        if not self.scheduled:
            self._kick()

    def _offer_latest(self, env: Envelope) -> None:
        k = self.key(env)
        for pending in self.latest:
            if k in pending:
                del pending[k]
                self._depth -= 1
                self.coalesced += 1
                break
        if self._depth >= self.maxsize:
            self._settle()
        if self._depth >= self.maxsize:
            # too many distinct keys pending: drop the oldest of the lowest priority
            for pending in reversed(self._latest_desc):
                if pending:
                    victim = pending.pop(next(iter(pending)))
                    self._depth -= 1
                    self._count_drop(victim)
                    break
        self.latest[env.priority][k] = env
        depth = self._depth = self._depth + 1
        if depth > self.high_water:
            self._raise_high_water()
        if env.priority > self.floor:
            self.preempt = True
        if not self.scheduled:
            self._kick()

    def _count_drop(self, env: Envelope) -> None:
        self.dropped += 1
        self.bus._type_dropped[env.type] = self.bus._type_dropped.get(env.type, 0) + 1

    def room(self) -> bool:
        return self.depth < self.maxsize

    async def wait_room(self, timeout: float) -> bool:
        """Wait until the queue has room; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.depth >= self.maxsize and self.active:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            fut: asyncio.Future[None] = loop.create_future()
            self.room_waiters.append(fut)
            try:
                await asyncio.wait_for(fut, remaining)
            except TimeoutError:
                return self.depth < self.maxsize
            finally:
                if fut in self.room_waiters:
                    self.room_waiters.remove(fut)
        return self.active

    def _wake_room_waiters(self) -> None:
        free = self.maxsize - self.depth
        waiters = self.room_waiters
        while waiters and free > 0:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                free -= 1

    # -- draining (delivery side) ---------------------------------------------------------------
    def _pop(self) -> Envelope | None:
        if self.mode is Delivery.LATEST_ONLY:
            for pending in self._latest_desc:
                if pending:
                    env = pending.pop(next(iter(pending)))
                    self._depth -= 1
                    return env
            return None
        for lane in self._desc:
            if lane:
                self._depth -= 1
                return lane.popleft()
        return None

    def _run(self) -> None:
        """Sync drain: handle up to SLICE messages, highest priority first.

        Each pass takes the front of the highest non-empty lane as one chunk (``held``) and
        delivers it until it is done or ``preempt`` is raised by an offer of a higher priority (a
        handler may publish to its own subscriber); what it did not deliver goes back to the
        front of the lane, and the lanes are scanned again.  The chunk stays counted in the depth
        and first in line to be dropped (``_settle``, ``_take_oldest``), so offers, depth and
        drops behave as if each message left its lane just before its handler ran.
        """
        self.scheduled = False
        if not self.active:
            return
        handler = cast(SyncHandler, self.handler)
        bus = self.bus
        hists = bus._latency_counts
        delivered_by_type = bus._type_delivered
        single_type = self.single_type
        desc = self._desc
        perf_ns = _perf_ns
        n = 0
        try:
            while n < SLICE and self.active:
                if self.mode is Delivery.LATEST_ONLY:
                    # one pending message per key: deliver one, then look again
                    env_or_none = self._pop()
                    if env_or_none is None:
                        break
                    chunk = [env_or_none]
                    self._depth += 1  # counted until handed over, as in a lane
                else:
                    for lane in desc:
                        if lane:
                            break
                    else:
                        break
                    room = SLICE - n
                    if len(lane) <= room:
                        chunk = list(lane)
                        lane.clear()
                    else:
                        chunk = list(islice(lane, room))
                        rest = list(islice(lane, room, None))
                        lane.clear()
                        lane.extend(rest)
                prio = self.floor = chunk[0].priority
                self.preempt = False
                counts = hists[prio]
                self.held = it = iter(chunk)
                self.held_n = size = len(chunk)
                self.held_drops = 0
                try:
                    if single_type is not None:
                        for env in it:
                            us = (perf_ns() - env.t_ns) // 1000
                            counts[us if us < 1024 else bucket_of(us)] += 1
                            try:
                                handler(env)
                            except Exception as exc:
                                self._failed(env, exc, hang=False)
                            if self.preempt:
                                break
                    else:
                        for env in it:
                            us = (perf_ns() - env.t_ns) // 1000
                            counts[us if us < 1024 else bucket_of(us)] += 1
                            try:
                                handler(env)
                            except Exception as exc:
                                self._failed(env, exc, hang=False)
                            delivered_by_type[env.type] = delivered_by_type.get(env.type, 0) + 1
                            if self.preempt:
                                break
                finally:
                    self._settle()
                    left = self.held_n
                    n += size - left - self.held_drops
                    self.held = None
                    self.held_n = 0
                    if left and self.active:  # stopped early: the rest waits at the front
                        self.lanes[prio].extendleft(reversed(chunk[size - left :]))
        finally:
            self.floor = Priority.CRITICAL
            self.delivered += n
            if single_type is not None:
                delivered_by_type[single_type] = delivered_by_type.get(single_type, 0) + n
            if self._depth and not self.scheduled and self.active:
                self.scheduled = True
                bus._loop_call_soon(self._run)
            if self.room_waiters:
                self._wake_room_waiters()

    async def _work(self) -> None:
        """Async drain: one message at a time, each under the hang timeout."""
        loop = asyncio.get_running_loop()
        handler = cast(AsyncHandler, self.handler)
        bus = self.bus
        while self.active:
            env = self._pop()
            if env is None:
                self._wake = loop.create_future()
                await self._wake
                self._wake = None
                continue
            us = (_perf_ns() - env.t_ns) // 1000
            bus._latency_counts[env.priority][bucket_of(us)] += 1
            try:
                async with asyncio.timeout(self.timeout):
                    await handler(env)
            except TimeoutError as exc:
                self._failed(env, exc, hang=True)
            except Exception as exc:
                self._failed(env, exc, hang=False)
            self.delivered += 1
            bus._type_delivered[env.type] = bus._type_delivered.get(env.type, 0) + 1
            if self.room_waiters:
                self._wake_room_waiters()

    def _failed(self, env: Envelope, exc: BaseException, *, hang: bool) -> None:
        if hang:
            self.hangs += 1
            what = f"handler hung for more than {self.timeout:g} s; cancelled"
        else:
            self.errors += 1
            what = f"{type(exc).__name__}: {exc}"
        bus = self.bus
        bus.errors_reported += 1
        bus.registry.note_error(self.module)
        if self.errors + self.hangs <= 10:
            log.warning(
                "subscriber %s (%s) failed on %s: %s",
                self.name,
                self.module,
                env.type.__name__,
                what,
                exc_info=None if hang else exc,
            )
        if env.type is not Error:
            bus.publish(
                Error(self.module, self.name, what, env.type.__name__),
                source=ModuleId.EVENT_BUS,
                priority=Priority.HIGH,
                correlation_id=env.id,
            )

    def stats(self) -> SubscriberStats:
        return SubscriberStats(
            self.name,
            self.module,
            self.mode.value,
            self.depth,
            self.high_water,
            self.maxsize,
            self.delivered,
            self.dropped,
            self.coalesced,
            self.dead_lettered,
            self.errors,
            self.hangs,
        )


def _type_key(env: Envelope) -> Hashable:
    key: Hashable = env.type.__qualname__
    return key


class Bus:
    """Publish/subscribe bus bound to one asyncio event loop (uvloop or the stock loop)."""

    def __init__(
        self,
        registry: ModuleRegistry | None = None,
        *,
        send_timeout: float = 2.0,
        dead_letter_maxlen: int = 1000,
    ) -> None:
        self.registry = registry if registry is not None else ModuleRegistry()
        self.send_timeout = send_timeout
        self.dead_letters = DeadLetterStore(dead_letter_maxlen)
        self.errors_reported = 0
        self._subs: list[Subscription] = []
        self._routes: dict[type[Message], _Route] = {}
        self._published_archive: dict[type[Message], int] = {}
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._call_soon: Callable[..., object] | None = None
        self._type_delivered: dict[type[Message], int] = {}
        self._type_dropped: dict[type[Message], int] = {}
        self._latency = {p: LatencyHistogram() for p in Priority}
        # direct references to the count lists for the hot path
        self._latency_counts = [self._latency[p].counts for p in Priority]
        self._closed = False

    # -- loop binding -------------------------------------------------------------------------
    def bind(self, loop: asyncio.AbstractEventLoop | None = None) -> asyncio.AbstractEventLoop:
        """Attach to ``loop`` (default: the running loop).  Done implicitly by the first publish."""
        if loop is None:
            loop = asyncio.get_running_loop()
        if self._loop is not None and self._loop is not loop:
            raise BusError("this bus is already bound to another event loop")
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._call_soon = loop.call_soon
        for sub in self._subs:
            self._start_worker(sub)
        return loop

    def _loop_call_soon(self, callback: Callable[[], None]) -> None:
        call_soon = self._call_soon
        if call_soon is None:
            self.bind()
            call_soon = self._call_soon
            assert call_soon is not None
        call_soon(callback)

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    # -- subscribing ------------------------------------------------------------------------------
    def subscribe(
        self,
        handler: Handler,
        *,
        types: type[Message] | Iterable[type[Message]] | None = None,
        sources: str | Iterable[str] | None = None,
        mode: Delivery = Delivery.BEST_EFFORT,
        maxsize: int = 1024,
        key: KeyFunc | None = None,
        name: str | None = None,
        module: str = "",
        timeout: float = 5.0,
    ) -> Subscription:
        """Attach ``handler`` to messages of ``types`` (default all) from ``sources`` (default all).

        ``handler`` may be a plain function (called on the loop; keep it short) or an ``async``
        function (awaited by a worker task, under ``timeout`` seconds per message).
        Returns the :class:`Subscription`; calling it unsubscribes.
        """
        if self._closed:
            raise BusClosedError("the bus is closed; no new subscriptions")
        if types is None:
            type_set = None
        elif isinstance(types, type):
            type_set = frozenset((types,))
        else:
            type_set = frozenset(types)
        for t in type_set or ():
            if not (isinstance(t, type) and issubclass(t, Message)):
                raise TypeError(f"types must be Message subclasses, got {t!r}")
        if sources is None:
            source_set = None
        elif isinstance(sources, str):
            source_set = frozenset((sources,))
        else:
            source_set = frozenset(str(s) for s in sources)
        sub = Subscription(
            self,
            handler,
            name=name or str(getattr(handler, "__qualname__", None) or repr(handler)),
            module=module,
            types=type_set,
            sources=source_set,
            mode=mode,
            maxsize=maxsize,
            key=key,
            timeout=timeout,
            is_async=inspect.iscoroutinefunction(handler),
        )
        self._subs.append(sub)
        self._invalidate_routes()
        if self._loop is None:
            # subscribed outside a running loop: bound by the first publish instead
            with contextlib.suppress(RuntimeError):
                self.bind()
        if self._loop is not None:
            self._start_worker(sub)
        return sub

    def _start_worker(self, sub: Subscription) -> None:
        if not sub.is_async or sub.task is not None or not sub.active:
            return
        loop = self._loop if self._loop is not None else self.bind()
        sub.task = loop.create_task(sub._work(), name=f"bus-subscriber:{sub.name}")

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
            self._invalidate_routes()
        sub.active = False
        sub.preempt = True  # a drain pass in one of its own handlers stops after that handler
        for lane in sub.lanes:
            lane.clear()
        for pending in sub.latest:
            pending.clear()
        sub._depth = 0
        sub.held_n = length_hint(sub.held) if sub.held is not None else 0
        sub._wake_room_waiters()
        for fut in sub.room_waiters:
            if not fut.done():
                fut.set_result(None)
        if sub.task is not None:
            sub.task.cancel()

    def _route(self, tp: type[Message]) -> _Route:
        route = self._routes.get(tp)
        if route is None:
            subs = tuple(s for s in self._subs if s.types is None or tp in s.types)
            route = self._routes[tp] = _Route(subs)
            route.published = self._published_archive.pop(tp, 0)
        return route

    def _invalidate_routes(self) -> None:
        # routes are rebuilt after (un)subscribe; their published counts live on
        for tp, route in self._routes.items():
            self._published_archive[tp] = route.published
        self._routes.clear()

    def _published_counts(self) -> dict[type[Message], int]:
        counts = dict(self._published_archive)
        for tp, route in self._routes.items():
            counts[tp] = route.published
        return counts

    # -- publishing -------------------------------------------------------------------------------
    def publish(
        self,
        payload: Message,
        *,
        source: str,
        priority: Priority = Priority.NORMAL,
        correlation_id: int | None = None,
        t_ns: int | None = None,
    ) -> Envelope:
        """Publish on the loop without waiting.  Returns the envelope.

        ``t_ns`` is the publish time when it was taken elsewhere (the thread-side publish does).
        """
        if self._closed:
            raise BusClosedError("the bus is closed")
        tp = type(payload)
        route = self._routes.get(tp) or self._route(tp)
        route.published += 1
        env: Envelope = _new_envelope(
            Envelope,
            (
                next(self._ids),
                source,
                tp,
                priority,
                correlation_id,
                t_ns or _perf_ns(),
                payload,
            ),
        )
        for sub in route.subs:
            if sub.sources is None or source in sub.sources:
                sub.offer(env)
        return env

    def publish_many(
        self,
        payloads: Iterable[Message],
        *,
        source: str,
        priority: Priority = Priority.NORMAL,
    ) -> int:
        """Publish a burst from one source at one priority; returns how many were published.

        Each payload still gets its own envelope and is delivered, counted and timed exactly as
        with :meth:`publish`; the burst shares one publish timestamp (taken before the first
        envelope, so latency is never understated) and one pass over the routes.
        """
        if self._closed:
            raise BusClosedError("the bus is closed")
        t_ns = _perf_ns()
        ids = self._ids
        if not isinstance(payloads, list | tuple):
            payloads = list(payloads)
        n = len(payloads)
        if n == 0:
            return 0
        tp = type(payloads[0])
        by_type: dict[type[Message], list[Envelope]]
        if list(map(type, payloads)).count(tp) == n:
            # one type (a DataCapture batch): build the envelopes without a Python-level loop
            envs: list[Envelope] = list(
                map(
                    _new_envelope,
                    repeat(Envelope, n),
                    zip(
                        islice(ids, n),
                        repeat(source, n),
                        repeat(tp, n),
                        repeat(priority, n),
                        repeat(None, n),
                        repeat(t_ns, n),
                        payloads,
                        strict=True,
                    ),
                )
            )
            by_type = {tp: envs}
        else:
            by_type = self._group_envelopes(payloads, source, priority, t_ns)
        total = 0
        for tp, envs in by_type.items():
            route = self._routes.get(tp) or self._route(tp)
            route.published += len(envs)
            total += len(envs)
            for sub in route.subs:
                if sub.sources is None or source in sub.sources:
                    sub.offer_many(envs, priority)
        return total

    def _group_envelopes(
        self, payloads: Iterable[Message], source: str, priority: Priority, t_ns: int
    ) -> dict[type[Message], list[Envelope]]:
        ids = self._ids
        by_type: dict[type[Message], list[Envelope]] = {}
        for payload in payloads:
            tp = type(payload)
            group = by_type.get(tp)
            if group is None:
                group = by_type[tp] = []
            group.append(
                _new_envelope(Envelope, (next(ids), source, tp, priority, None, t_ns, payload))
            )
        return by_type

    async def send(
        self,
        payload: Message,
        *,
        source: str,
        priority: Priority = Priority.NORMAL,
        correlation_id: int | None = None,
        timeout: float | None = None,
    ) -> Envelope:
        """Publish, waiting for room in full *reliable* queues (up to ``timeout`` seconds).

        A reliable subscriber still full after the timeout gets nothing; the envelope goes to the
        dead-letter store with the reason.  Other modes behave exactly as in :meth:`publish`.
        """
        if self._closed:
            raise BusClosedError("the bus is closed")
        wait = self.send_timeout if timeout is None else timeout
        tp = type(payload)
        route = self._routes.get(tp) or self._route(tp)
        route.published += 1
        env: Envelope = _new_envelope(
            Envelope,
            (next(self._ids), source, tp, priority, correlation_id, _perf_ns(), payload),
        )
        for sub in route.subs:
            if sub.sources is not None and source not in sub.sources:
                continue
            if sub.mode is Delivery.RELIABLE and not sub.room():
                if not await sub.wait_room(wait):
                    if sub.active:
                        sub.dead_lettered += 1
                        self.dead_letters.add(
                            env,
                            sub.name,
                            f"timed out after {wait:g} s waiting for room in reliable queue "
                            f"({sub.maxsize} messages) of a subscriber that is not keeping up",
                        )
                    continue
            if sub.active:
                sub.offer(env)
        return env

    def publish_threadsafe(
        self,
        payload: Message,
        *,
        source: str,
        priority: Priority = Priority.NORMAL,
        correlation_id: int | None = None,
    ) -> None:
        """Publish from any thread.  Never blocks the caller; reliable subscribers are waited for
        on the loop side (as :meth:`send` does)."""
        loop = self._loop
        if loop is None:
            raise BusNotBoundError(
                "the bus has no event loop yet; publish once on the loop (or call bus.bind()) "
                "before publishing from other threads"
            )
        if self._closed or loop.is_closed():
            raise BusClosedError("the bus is closed")
        t_ns = _perf_ns()
        if threading.get_ident() == self._loop_thread:
            self.publish(
                payload, source=source, priority=priority, correlation_id=correlation_id, t_ns=t_ns
            )
            return
        try:
            loop.call_soon_threadsafe(
                self._from_thread, payload, source, priority, correlation_id, t_ns
            )
        except RuntimeError as exc:  # loop closed between the check and the call
            raise BusClosedError(f"the bus loop is closed: {exc}") from exc

    def _from_thread(
        self,
        payload: Message,
        source: str,
        priority: Priority,
        correlation_id: int | None,
        t_ns: int,
    ) -> None:
        if self._closed:
            return
        tp = type(payload)
        route = self._routes.get(tp) or self._route(tp)
        needs_wait = any(s.mode is Delivery.RELIABLE and not s.room() for s in route.subs)
        if not needs_wait:
            self.publish(
                payload, source=source, priority=priority, correlation_id=correlation_id, t_ns=t_ns
            )
            return
        assert self._loop is not None
        self._loop.create_task(
            self.send(payload, source=source, priority=priority, correlation_id=correlation_id),
            name="bus-threadsafe-send",
        )

    # -- waiting, closing, metrics ------------------------------------------------------------
    def pending(self) -> int:
        return sum(s.depth for s in self._subs)

    async def join(self, timeout: float = 5.0) -> None:
        """Wait until every subscriber queue is empty (for tests and orderly shutdown)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.pending() or any(s.scheduled for s in self._subs):
            if loop.time() > deadline:
                raise TimeoutError(f"bus still has {self.pending()} pending after {timeout:g} s")
            await asyncio.sleep(0)
        # give async workers a turn to finish the handler they are in
        await asyncio.sleep(0)

    async def aclose(self) -> None:
        self._closed = True
        tasks = [s.task for s in self._subs if s.task is not None]
        for sub in list(self._subs):
            self.unsubscribe(sub)
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def subscriptions(self) -> list[Subscription]:
        return list(self._subs)

    def latency(self, priority: Priority) -> LatencyHistogram:
        return self._latency[priority]

    def reset_latency(self) -> None:
        for p in Priority:
            self._latency[p].reset()

    def snapshot(self) -> BusSnapshot:
        published = self._published_counts()
        names = set(published) | set(self._type_delivered) | set(self._type_dropped)
        types = {
            tp.__name__: TypeStats(
                published.get(tp, 0),
                self._type_delivered.get(tp, 0),
                self._type_dropped.get(tp, 0),
            )
            for tp in sorted(names, key=lambda t: t.__name__)
        }
        latency = {}
        for p in Priority:
            latency[p.name] = self._latency[p].summary()
        return BusSnapshot(
            types,
            [s.stats() for s in self._subs],
            latency,
            self.dead_letters.total,
            self.errors_reported,
        )
