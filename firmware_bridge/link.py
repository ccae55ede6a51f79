"""The asyncio shell around the sans-I/O host protocol: one serial port, kept alive.

Theory of operation
-------------------
``SerialLink`` owns nothing but I/O and time; every protocol decision lives in
:class:`firmware_bridge.core.protocol.HostProtocol`.

* **Port by URL.** The port is opened with ``serial.serial_for_url(url, ...)`` so one ``serial.url``
  setting covers ``/dev/serial/by-id/...`` on the Pi and the simulator's pty symlink. The link then
  reads and writes the port's file descriptor with ``loop.add_reader`` / ``loop.add_writer``
  (no pyserial-asyncio: this works the same under uvloop and the stock loop). URLs without a file
  descriptor (``loop://``) are refused with :class:`PortUnsupportedError`.
* **Pull, never push.** Bytes are taken from the core with ``data_to_send(budget)`` only when the
  descriptor is writable, and ``budget`` is what the wire carries right now: a token bucket refilled
  at ``baud / 10`` bytes per second (8N1), capped by what the driver still holds (``TIOCOUTQ``).
  When the application produces state faster than that, the core coalesces; the link itself never
  holds more than one budget of bytes (:attr:`SerialLink.buffered_bytes`).
* **Time.** The core's clock is ``loop.time()``. One timer handle is kept at
  ``next_deadline()``; when it fires, ``handle_timeout(now)`` drives heartbeats, retransmits,
  handshake retries and dead-link detection.
* **Sessions.** A session is one open port. It ends when the descriptor reports EOF/EIO (cable
  pulled, MCU rebooting its USB) or when the core has not reached ``CONNECTED`` for
  ``reopen_after`` seconds (a wedged adapter). Between sessions the link waits a jittered, capped
  exponential delay (:class:`firmware_bridge.link_pacing.Backoff`) and reopens the same path. On
  every new session ``protocol.reset(now)`` starts a fresh handshake and the core re-sends the whole
  desired state, so the figurine converges to what it should show.

Callbacks run on the event loop and must be short: ``on_status(LinkStatus)`` on every up/down
change (publish it on the bus), ``on_event(event)`` for every other core event (input from the
button, log lines, status), ``tap(direction, wall_time, seq, message_or_raw_bytes)`` for every frame
in each direction (the debug console's live view).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import struct
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from types import TracebackType
from typing import Any, Final

import serial

from bus.messages import LinkStatus
from firmware_bridge.core.errors import BridgeError
from firmware_bridge.core.framing import MAX_ENCODED_FRAME, FrameDecoder
from firmware_bridge.core.messages import Message, decode_message
from firmware_bridge.core.protocol import (
    Connected,
    Disconnected,
    Event,
    HostProtocol,
    HostState,
    Incompatible,
)
from firmware_bridge.link_pacing import Backoff, TokenBucket, bytes_per_second

log = logging.getLogger(__name__)

Direction = str  # "tx" (host -> MCU) or "rx" (MCU -> host)
Tap = Callable[[Direction, float, "int | None", object], None]
"""``tap(direction, wall_time, seq, message)``; ``seq`` is None and ``message`` the raw frame
payload (bytes) when a frame does not decode."""
RawTap = Callable[[Direction, float, bytes], None]

READ_CHUNK: Final = 65536
UNPACED_WRITE_CHUNK: Final = 16384
MIN_WAKE_BYTES: Final = 32  # a paced writer waits for at least this much line time
_TIOCOUTQ: Final = getattr(termios, "TIOCOUTQ", None)


class PortMissingError(BridgeError, FileNotFoundError):
    """The serial device path does not exist (unplugged, renumbered or a typo)."""


class PortBusyError(BridgeError, OSError):
    """Another program holds the serial port."""


class PortPermissionError(BridgeError, PermissionError):
    """The port exists but this user may not open it."""


class PortUnsupportedError(BridgeError, ValueError):
    """The URL names a transport without a file descriptor, which asyncio cannot watch."""


def open_port(url: str, baud: int) -> serial.SerialBase:
    """Open ``url`` exclusively, non-blocking; translate failures into errors that say what to do.

    Raises :class:`PortMissingError`, :class:`PortBusyError`, :class:`PortPermissionError` or
    :class:`PortUnsupportedError`.
    """
    try:
        port = serial.serial_for_url(
            url, baudrate=baud, timeout=0, write_timeout=0, exclusive=True, do_not_open=True
        )
    except ValueError as exc:  # unknown URL scheme / bad settings
        raise PortUnsupportedError(
            f"cannot use serial url {url!r}: {exc}; use a device path such as "
            "/dev/serial/by-id/usb-... or the simulator's pty path"
        ) from exc
    if not hasattr(port, "fileno"):
        raise PortUnsupportedError(
            f"serial url {url!r} has no file descriptor, which the asyncio link needs; "
            "use a device path or the simulator's pty (python -m hw_sim.mcu --link PATH)"
        )
    try:
        port.open()
    except serial.SerialException as exc:
        code = exc.errno
        if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
            raise PortMissingError(
                code,
                f"serial port {url} does not exist: plug the figurine in, check `ls "
                "/dev/serial/by-id/`, or set serial.url to the right path",
            ) from exc
        if code in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK):
            raise PortBusyError(
                code,
                f"serial port {url} is in use by another program: stop it (if the skelly "
                "service is running, attach with `skelly console` instead of opening the port), "
                "and make sure ModemManager ignores the device",
            ) from exc
        if code in (errno.EACCES, errno.EPERM):
            raise PortPermissionError(
                code,
                f"no permission to open serial port {url}: add the user to the dialout group "
                "(sudo usermod -aG dialout $USER, then log in again)",
            ) from exc
        raise
    try:
        port.fileno()
    except (AttributeError, NotImplementedError, OSError) as exc:
        port.close()
        raise PortUnsupportedError(
            f"serial url {url!r} has no file descriptor, which the asyncio link needs; "
            "use a device path or the simulator's pty"
        ) from exc
    return port


@dataclass(frozen=True)
class SerialLinkConfig:
    """The ``serial`` settings of the MCU link (nest it in the figurine's config section)."""

    url: str = "/dev/serial/by-id/usb-skelly-figurine-if00"
    """Device path or pyserial URL with a file descriptor; prefer /dev/serial/by-id/ or a udev
    symlink (a replugged USB device may get a new ttyACM number)."""
    baud: int = 115200
    reopen_after_s: float = 5.0
    """Close and reopen the port when the MCU has not completed a handshake for this long."""
    backoff_base_s: float = 0.05
    backoff_cap_s: float = 1.0
    """Longest wait between reopen attempts; bounds how long a returned device waits."""

    def __post_init__(self) -> None:
        if not self.url:
            raise ValueError("serial.url is empty: set it to the MCU's device path")
        bytes_per_second(self.baud)
        if self.reopen_after_s <= 0:
            raise ValueError(f"serial.reopen_after_s must be positive, got {self.reopen_after_s}")
        Backoff(self.backoff_base_s, self.backoff_cap_s)  # validates


class LinkState(Enum):
    CLOSED = "closed"  # not started, or stopped
    OPENING = "opening"  # trying to open the port
    HANDSHAKING = "handshaking"  # port open, no (or no longer a) handshake with the MCU
    UP = "up"  # handshake done, heartbeats flowing
    BACKOFF = "backoff"  # waiting before the next open attempt


@dataclass
class LinkCounters:
    """Counters of the shell; the core's frame counters are merged in :meth:`SerialLink.stats`."""

    bytes_in: int = 0
    bytes_out: int = 0
    port_opens: int = 0  # successful opens of the port (the core's `sessions` are handshakes)
    reconnects: int = 0  # successful handshakes after the first one
    open_failures: int = 0
    port_losses: int = 0  # EOF / EIO on an open port
    reopens: int = 0  # port closed because the MCU stayed silent for reopen_after
    write_stalls: int = 0  # writes the driver took only partly (EAGAIN)
    max_buffered_bytes: int = 0


class _SessionEnded(Exception):
    pass


class SerialLink:
    """Keep a :class:`HostProtocol` connected over the serial port at ``url``.

    Use as ``async with SerialLink(url, baud, protocol) as link:`` (runs :meth:`run` in a named
    task) or run :meth:`run` in your own TaskGroup. After changing the protocol's desired state
    (``protocol.set_glow(...)``), call :meth:`wakeup` so the link pulls the new frames.
    """

    def __init__(
        self,
        url: str,
        baud: int,
        protocol: HostProtocol,
        *,
        pace: bool = True,
        backoff: Backoff | None = None,
        reopen_after: float = 5.0,
        on_status: Callable[[LinkStatus], None] | None = None,
        on_event: Callable[[Event], None] | None = None,
        tap: Tap | None = None,
        raw_tap: RawTap | None = None,
        name: str = "mcu",
    ) -> None:
        if not url:
            raise ValueError("serial url is empty: set serial.url to the MCU's device path")
        bytes_per_second(baud)  # validates baud
        if reopen_after <= 0:
            raise ValueError(f"reopen_after must be positive seconds, got {reopen_after}")
        self.url = url
        self.baud = baud
        self.protocol = protocol
        self.pace = pace
        self.backoff = backoff or Backoff()
        self.reopen_after = reopen_after
        self.on_status = on_status
        self.on_event = on_event
        self.tap = tap
        self.raw_tap = raw_tap
        self.name = name
        self.state = LinkState.CLOSED
        self.counters = LinkCounters()
        self.last_error = ""
        rate = bytes_per_second(baud)
        # burst: enough for two of the largest frames, or 20 ms of line time if that is more
        self._burst = max(2 * MAX_ENCODED_FRAME, int(rate * 0.02))
        self._rate = rate
        self._bucket: TokenBucket | None = None
        self._port: serial.SerialBase | None = None
        self._fd = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending = b""
        self._writer_on = False
        self._flush_soon = False
        self._running = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._pace_timer: asyncio.TimerHandle | None = None
        self._lost: asyncio.Future[str] | None = None
        self._down_since = 0.0
        self._connected_once = False
        self._up_event: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._tap_decoders = {"tx": FrameDecoder(), "rx": FrameDecoder()}

    @classmethod
    def from_config(
        cls, config: SerialLinkConfig, protocol: HostProtocol, **callbacks: Any
    ) -> SerialLink:
        """A link built from settings; ``callbacks`` are ``on_status``, ``on_event``, ``tap``..."""
        return cls(
            config.url,
            config.baud,
            protocol,
            backoff=Backoff(config.backoff_base_s, config.backoff_cap_s),
            reopen_after=config.reopen_after_s,
            **callbacks,
        )

    # ------------------------------------------------------------------ public API

    @property
    def is_up(self) -> bool:
        return self.state is LinkState.UP

    @property
    def buffered_bytes(self) -> int:
        """Bytes the link took from the core but the driver has not accepted yet."""
        return len(self._pending)

    def stats(self) -> dict[str, Any]:
        """Shell and core counters in one flat dict (frames_in/out, crc_errors, retransmits...)."""
        out: dict[str, Any] = {"state": self.state.value, "url": self.url, "baud": self.baud}
        out.update(self.protocol.counters.as_dict())
        out.update(vars(self.counters))  # the shell's bytes_in/out: what really crossed the fd
        out["buffered_bytes"] = self.buffered_bytes
        return out

    def command(self, msg: Message) -> None:
        """Make ``msg`` the desired value of its slot and send it when the link can.

        The request is stamped with the link's clock now, so a one-shot (tone, animation) asked
        for while the port is closed is dropped 2 s later as docs/PROTOCOL.md §6.2 says, instead
        of being timed from the reconnect and played late.
        """
        self.protocol.command(msg, self._clock())
        self.wakeup()

    def _clock(self) -> float:
        """The core's clock: the loop's time (the link's loop once it runs)."""
        if self._loop is not None:
            return self._loop.time()
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:  # not on a loop: the stock loop's clock is time.monotonic()
            return time.monotonic()

    def wakeup(self) -> None:
        """Tell the link the desired state changed; it pulls frames when the port can take them.

        Cheap and idempotent: all wake-ups of one loop iteration are served by one flush. Call it
        on the event loop (from another thread: ``loop.call_soon_threadsafe(link.wakeup)``).
        """
        if not self._flush_soon and self._fd >= 0 and self._loop is not None:
            self._flush_soon = True
            self._loop.call_soon(self._flush)

    async def wait_up(self, timeout: float | None = None) -> None:
        """Wait until the handshake is done (raises TimeoutError after ``timeout`` seconds)."""
        if self._up_event is None:
            self._up_event = asyncio.Event()
            if self.is_up:
                self._up_event.set()
        async with asyncio.timeout(timeout):
            await self._up_event.wait()

    async def __aenter__(self) -> SerialLink:
        self._task = asyncio.get_running_loop().create_task(
            self.run(), name=f"serial-link[{self.name}] {self.url}"
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        """Open, serve, and reopen the port until cancelled."""
        if self._running:
            raise RuntimeError(f"SerialLink for {self.url} is already running; run it once")
        self._running = True
        self._loop = asyncio.get_running_loop()
        try:
            while True:
                self._set_state(LinkState.OPENING)
                try:
                    port = open_port(self.url, self.baud)
                except PortUnsupportedError:
                    raise
                except (BridgeError, OSError, serial.SerialException) as exc:
                    self.counters.open_failures += 1
                    self._note_error(str(exc))
                else:
                    self.counters.port_opens += 1
                    reason = await self._session(port)
                    self._note_error(reason)
                delay = self.backoff.next_delay()
                self._set_state(LinkState.BACKOFF)
                await asyncio.sleep(delay)
        finally:
            self._teardown()
            self._set_state(LinkState.CLOSED)
            self._running = False

    # ------------------------------------------------------------------ session

    async def _session(self, port: serial.SerialBase) -> str:
        loop = self._loop
        assert loop is not None
        self._port = port
        self._fd = port.fileno()
        self._pending = b""
        self._lost = loop.create_future()
        now = loop.time()
        self._bucket = TokenBucket(self._rate, self._burst, now) if self.pace else None
        self._down_since = now
        for d in self._tap_decoders.values():
            d.feed(b"\x00")  # resynchronise the tap's decoders at a session boundary
        self._set_state(LinkState.HANDSHAKING)
        self._dispatch(self.protocol.reset(now))
        loop.add_reader(self._fd, self._on_readable)
        self.wakeup()
        reason = "link stopped"
        try:
            reason = await self._lost
            return reason
        finally:
            self._teardown()
            self._dispatch(self.protocol.close(loop.time(), reason))

    def _teardown(self) -> None:
        loop = self._loop
        if self._fd >= 0 and loop is not None:
            loop.remove_reader(self._fd)
            if self._writer_on:
                loop.remove_writer(self._fd)
        self._writer_on = False
        for handle in (self._timer, self._pace_timer):
            if handle is not None:
                handle.cancel()
        self._timer = self._pace_timer = None
        self._timer_at = None
        if self._port is not None:
            with contextlib.suppress(OSError, serial.SerialException):
                self._port.close()
        self._port = None
        self._fd = -1
        self._pending = b""

    def _lose(self, reason: str) -> None:
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(reason)
            # stop watching right away: a hung-up fd stays readable forever
            if self._loop is not None and self._fd >= 0:
                self._loop.remove_reader(self._fd)
                if self._writer_on:
                    self._loop.remove_writer(self._fd)
                    self._writer_on = False

    # ------------------------------------------------------------------ reading

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.counters.port_losses += 1
            self._lose(f"serial port {self.url} failed: {exc.strerror} (unplugged?)")
            return
        if not data:
            self.counters.port_losses += 1
            self._lose(f"serial port {self.url} closed (unplugged?)")
            return
        assert self._loop is not None
        now = self._loop.time()
        self.counters.bytes_in += len(data)
        if self.raw_tap is not None:
            self._call(self.raw_tap, "rx", time.time(), data)
        if self.tap is not None:
            self._tap_frames("rx", data)
        self._dispatch(self.protocol.receive_data(data, now))
        self.wakeup()

    # ------------------------------------------------------------------ writing

    def _flush(self) -> None:
        """Once per loop iteration after a wake-up: write eagerly, then rearm the timer."""
        self._flush_soon = False
        if self._fd < 0 or self._lost is None or self._lost.done():
            return
        if not self._writer_on and self._pace_timer is None:
            self._send()
        self._reschedule()

    def _on_writable(self) -> None:
        self._send()
        self._reschedule()

    def _send(self) -> None:
        """Pull what the wire can carry now and write it. The writer callback is registered only
        while the driver refuses bytes (its buffer is full); pacing uses a timer instead."""
        loop = self._loop
        assert loop is not None
        if self._pending and not self._write(self._pending):
            self._start_writer()
            return
        while self.protocol.wants_write and not self._lost_done():
            now = loop.time()
            budget = self._budget(now)
            if self._lost_done():  # asking the driver found the port gone
                break
            data = self.protocol.data_to_send(budget, now) if budget > 0 else b""
            if not data:
                if self._bucket is not None and budget < MAX_ENCODED_FRAME:
                    # the next frame does not fit yet: look again when the wire has carried
                    # enough for a frame twice the budget (at most a maximum frame), so a small
                    # frame waits little and a large one costs a few wake-ups at most
                    want = min(MAX_ENCODED_FRAME, max(2 * budget, MIN_WAKE_BYTES))
                    delay = (want - budget) / self._rate
                    self._pace_timer = loop.call_later(delay, self._on_pace_timer)
                break
            if self._bucket is not None:
                self._bucket.consume(len(data), now)
            if self.raw_tap is not None:
                self._call(self.raw_tap, "tx", time.time(), data)
            if self.tap is not None:
                self._tap_frames("tx", data)
            if not self._write(data):
                self._start_writer()
                return
        self._stop_writer()

    def _start_writer(self) -> None:
        if not self._writer_on and self._fd >= 0 and not self._lost_done():
            assert self._loop is not None
            self._loop.add_writer(self._fd, self._on_writable)
            self._writer_on = True

    def _stop_writer(self) -> None:
        if self._writer_on:
            assert self._loop is not None
            self._loop.remove_writer(self._fd)
            self._writer_on = False

    def _lost_done(self) -> bool:
        return self._lost is None or self._lost.done()

    def _budget(self, now: float) -> int:
        if self._bucket is None:
            return UNPACED_WRITE_CHUNK
        budget = self._bucket.available(now)
        if _TIOCOUTQ is not None:
            # bytes still queued in a real UART driver count against the budget (a pty says 0)
            try:
                buf = fcntl.ioctl(self._fd, _TIOCOUTQ, b"\0\0\0\0")
            except OSError as exc:  # EIO: unplugged before the reader saw it
                self.counters.port_losses += 1
                self._lose(f"serial port {self.url} failed: {exc.strerror} (unplugged?)")
                return 0
            budget -= struct.unpack("i", buf)[0]
        return budget

    def _on_pace_timer(self) -> None:
        self._pace_timer = None
        self.wakeup()

    def _write(self, data: bytes) -> bool:
        """Write ``data``; keep the unwritten rest. True if everything was written."""
        try:
            n = os.write(self._fd, data)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError as exc:
            self.counters.port_losses += 1
            self._pending = b""
            self._lose(f"writing to serial port {self.url} failed: {exc.strerror} (unplugged?)")
            return False
        self.counters.bytes_out += n
        self._pending = data[n:]
        if self._pending:
            self.counters.write_stalls += 1
            self.counters.max_buffered_bytes = max(
                self.counters.max_buffered_bytes, len(self._pending)
            )
            return False
        return True

    # ------------------------------------------------------------------ time

    def _reschedule(self) -> None:
        loop = self._loop
        if loop is None or self._lost is None or self._lost.done():
            return
        deadline = self.protocol.next_deadline()
        if self._may_reopen():
            reopen_at = self._down_since + self.reopen_after
            deadline = reopen_at if deadline is None else min(deadline, reopen_at)
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = None if deadline is None else loop.call_at(deadline, self._on_timer)

    def _may_reopen(self) -> bool:
        # a silent MCU gets its port reopened; one that answered with the wrong protocol version
        # is alive, and reopening would not change its firmware
        return self.state is not LinkState.UP and self.protocol.state is not HostState.INCOMPATIBLE

    def _on_timer(self) -> None:
        assert self._loop is not None
        self._timer = None
        self._timer_at = None
        now = self._loop.time()
        if self._may_reopen() and now >= self._down_since + self.reopen_after:
            self.counters.reopens += 1
            self._lose(
                f"no answer from the MCU on {self.url} for {self.reopen_after:g} s; reopening the "
                "port (check the firmware is running and speaks this protocol at this baud rate)"
            )
            return
        self._dispatch(self.protocol.handle_timeout(now))
        self.wakeup()

    # ------------------------------------------------------------------ events

    def _dispatch(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, Connected):
                if self._connected_once:
                    self.counters.reconnects += 1
                self._connected_once = True
                self.backoff.reset()
                self.last_error = ""
                self._set_state(LinkState.UP)
                self._emit_status(True, "")
            elif isinstance(event, Incompatible):
                self._note_error(
                    f"the MCU on {self.url} runs firmware "
                    f"{'.'.join(map(str, event.fw_version))} speaking protocol "
                    f"{event.mcu_min}..{event.mcu_max}, but this host speaks "
                    f"{event.host_min}..{event.host_max}: flash matching firmware or update skelly"
                )
                self._emit_status(False, self.last_error)
            elif isinstance(event, Disconnected):
                if self.is_up:
                    assert self._loop is not None
                    self._down_since = self._loop.time()
                    self._set_state(LinkState.HANDSHAKING)
                    self._emit_status(False, str(getattr(event, "reason", "")))
            if self.on_event is not None:
                self._call(self.on_event, event)

    def _tap_frames(self, direction: Direction, data: bytes) -> None:
        assert self.tap is not None
        wall = time.time()
        for payload in self._tap_decoders[direction].feed(data):
            try:
                seq, msg = decode_message(payload)
            except BridgeError:
                self._call(self.tap, direction, wall, None, payload)
            else:
                self._call(self.tap, direction, wall, seq, msg)

    def _set_state(self, state: LinkState) -> None:
        if state is self.state:
            return
        log.debug("link %s: %s -> %s", self.url, self.state.value, state.value)
        self.state = state
        if self._up_event is not None:
            if state is LinkState.UP:
                self._up_event.set()
            else:
                self._up_event.clear()

    def _emit_status(self, up: bool, detail: str) -> None:
        if up:
            log.info("link %s up", self.url)
        elif detail == "link stopped":
            log.info("link %s stopped", self.url)
        elif detail != self.last_error:  # the same reason is noted next: log it once
            log.warning("link %s down: %s", self.url, detail)
            self.last_error = detail
        if self.on_status is not None:
            status = LinkStatus(link=self.name, up=up, peer=self.url, detail=detail)
            self._call(self.on_status, status)

    def _call(self, callback: Callable[..., None], *args: Any) -> None:
        """Run an application callback; one that raises is logged, never allowed to abort the
        read, write or timer callback it runs in (that would lose bytes or the next timer)."""
        try:
            callback(*args)
        except Exception:
            log.exception("link %s: callback %r failed", self.url, callback)

    def _note_error(self, message: str) -> None:
        if message != self.last_error:
            log.warning("link %s: %s", self.url, message)
        self.last_error = message
