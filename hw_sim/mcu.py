"""A simulated figurine MCU on a real pseudo-terminal, with fault injection.

The MCU runs the *same* protocol core as the firmware reference (``McuProtocol``), behind the same
kind of thin asyncio shell as the host: the pty master's file descriptor is watched with
``loop.add_reader`` / ``loop.add_writer`` (works under uvloop and the stock loop). The host opens
the pty's slave side through pyserial at a stable symlink path
(:class:`hw_sim.pty.VirtualSerialPort`), exactly as it opens ``/dev/serial/by-id/...`` on the Pi.

What it keeps: the figurine's visible state (:attr:`SimulatedMcu.visible`: glow, pose, text,
brightness, sleep — the sleepy idle look while no host session runs), the tones and animations it
was asked to play, and the button presses it reported.

Faults (all live-adjustable, seeded for reproducible runs):

* ``Faults.corrupt_rate`` / ``drop_rate``: per byte, in the directions chosen by ``directions``
  (``"rx"`` host→MCU, ``"tx"`` MCU→host, or both);
* ``Faults.duplicate_rate``: per frame, the frame is delivered twice;
* :meth:`SimulatedMcu.reset`: reboot (state back to power-on), optionally losing its BOOT frame;
* :meth:`SimulatedMcu.unplug` / :meth:`SimulatedMcu.replug`: the pty is closed (the host sees
  EOF/EIO, opening the path fails) and recreated at the same path;
* :meth:`SimulatedMcu.stall`: the MCU stops reading, writing and ticking for a while;
* ``baud``: both directions carry at most ``baud / 10`` bytes per second, like a real UART.

Run it on its own and point ``skelly console`` (or the service) at the printed path::

    python -m hw_sim.mcu --link /tmp/skelly-mcu --baud 115200

Then type ``short``/``long``/``double``/``touch`` (button), ``reset``, ``unplug 2``, ``stall 3``,
``state`` or ``quit`` on its standard input.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from firmware_bridge.core.messages import (
    PROTOCOL_VERSION,
    BootCause,
    Capabilities,
    InputKind,
    PlayAnimation,
    Tone,
)
from firmware_bridge.core.protocol import (
    CommandReceived,
    Event,
    FigurineState,
    McuProtocol,
    SessionEnded,
    SessionStarted,
    Timing,
)
from firmware_bridge.link_pacing import TokenBucket, bytes_per_second
from hw_sim.pty import VirtualSerialPort

READ_CHUNK = 4096
UNPACED_CHUNK = 16384


@dataclass
class Faults:
    """What goes wrong on the simulated wire. Rates are probabilities in 0..1."""

    corrupt_rate: float = 0.0  # per byte: one bit flipped
    drop_rate: float = 0.0  # per byte: lost
    duplicate_rate: float = 0.0  # per frame: delivered twice
    directions: str = "both"  # "rx" (host→MCU), "tx" (MCU→host) or "both"

    def __post_init__(self) -> None:
        for name in ("corrupt_rate", "drop_rate", "duplicate_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Faults.{name} must be a probability from 0 to 1, got {value}")
        if self.directions not in ("rx", "tx", "both"):
            raise ValueError(
                f"Faults.directions must be 'rx', 'tx' or 'both', got {self.directions!r}"
            )

    @property
    def active(self) -> bool:
        return bool(self.corrupt_rate or self.drop_rate or self.duplicate_rate)

    def applies_to(self, direction: str) -> bool:
        return self.active and self.directions in (direction, "both")


@dataclass
class FaultCounters:
    corrupted: int = 0
    dropped: int = 0
    duplicated: int = 0
    frames_lost_to_reset: int = 0


class _FaultyStream:
    """Applies :class:`Faults` to one direction of the byte stream."""

    def __init__(self, direction: str, faults: Faults, rng: random.Random, c: FaultCounters):
        self.direction = direction
        self.faults = faults
        self.rng = rng
        self.counters = c
        self._frame = bytearray()  # output bytes of the frame in progress (for duplicates)

    def apply(self, data: bytes) -> bytes:
        f = self.faults
        if not f.applies_to(self.direction):
            self._frame.clear()
            return data
        rnd = self.rng.random
        out = bytearray()
        frame = self._frame
        c = self.counters
        for byte in data:
            if f.drop_rate and rnd() < f.drop_rate:
                c.dropped += 1
                continue
            if f.corrupt_rate and rnd() < f.corrupt_rate:
                byte ^= 1 << self.rng.randrange(8)
                c.corrupted += 1
            out.append(byte)
            if byte == 0:
                if frame and f.duplicate_rate and rnd() < f.duplicate_rate:
                    out += b"\x00" + frame + b"\x00"
                    c.duplicated += 1
                frame.clear()
            elif len(frame) < 512:
                frame.append(byte)
        return bytes(out)


@dataclass
class ButtonPress:
    kind: InputKind
    at: float


@dataclass
class _Waiter:
    predicate: Callable[[], bool]
    future: asyncio.Future[None] = field(repr=False)


class SimulatedMcu:
    """The figurine's microcontroller, simulated on a pty at ``port.path``.

    ``async with SimulatedMcu(...) as mcu:`` plugs the port and starts serving; ``mcu.path`` is
    what the host opens.
    """

    def __init__(
        self,
        port: VirtualSerialPort | str | os.PathLike[str] | None = None,
        *,
        baud: int | None = None,
        faults: Faults | None = None,
        capabilities: Capabilities | None = None,
        fw_version: tuple[int, int, int] = (1, 0, 0),
        proto: tuple[int, int] = (PROTOCOL_VERSION, PROTOCOL_VERSION),
        timing: Timing | None = None,
        seed: int | None = None,
        on_change: Callable[[SimulatedMcu, Event | None], None] | None = None,
    ) -> None:
        self.port = port if isinstance(port, VirtualSerialPort) else VirtualSerialPort(port)
        self.protocol = McuProtocol(
            capabilities,
            fw_version=fw_version,
            proto_min=proto[0],
            proto_max=proto[1],
            timing=timing,
        )
        self.faults = faults or Faults()
        self.fault_counters = FaultCounters()
        self.rng = random.Random(seed)
        self._rx_faults = _FaultyStream("rx", self.faults, self.rng, self.fault_counters)
        self._tx_faults = _FaultyStream("tx", self.faults, self.rng, self.fault_counters)
        self.baud = baud
        if baud is not None:
            bytes_per_second(baud)  # validates
        self.on_change = on_change
        self.button_presses: list[ButtonPress] = []
        self.boots = 0
        self.stalled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd = -1
        self._reader_on = self._writer_on = False
        self._flush_soon = False
        self._pending = b""
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._rx_timer: asyncio.TimerHandle | None = None
        self._tx_timer: asyncio.TimerHandle | None = None
        self._stall_timer: asyncio.TimerHandle | None = None
        self._rx_bucket: TokenBucket | None = None
        self._tx_bucket: TokenBucket | None = None
        self._drop_tx_frames = 0
        self._waiters: list[_Waiter] = []

    # ------------------------------------------------------------------ what it shows

    @property
    def path(self) -> Path:
        return self.port.path

    @property
    def visible(self) -> FigurineState:
        """What the figurine shows now (the sleepy idle look without a host session)."""
        return self.protocol.visible

    @property
    def tones(self) -> list[Tone]:
        return self.protocol.tones

    @property
    def animations(self) -> list[PlayAnimation]:
        return self.protocol.animations

    @property
    def in_session(self) -> bool:
        return self.protocol.in_session

    @property
    def plugged(self) -> bool:
        return self.port.plugged

    @property
    def buffered_bytes(self) -> int:
        return len(self._pending)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait (event-driven, no polling) until ``predicate()`` holds after some MCU change."""
        if predicate():
            return
        assert self._loop is not None, "start the simulated MCU first"
        waiter = _Waiter(predicate, self._loop.create_future())
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter.future
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> SimulatedMcu:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Plug the port in and boot (must run on the event loop)."""
        self._loop = asyncio.get_running_loop()
        self.port.plug()
        self._boot(BootCause.POWER_ON, lose_boot_frame=False)

    def close(self) -> None:
        self._stop_io()
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
        self.port.close()
        for w in self._waiters:
            if not w.future.done():
                w.future.cancel()

    # ------------------------------------------------------------------ fault injection

    def reset(self, *, lose_boot_frame: bool = True, cause: BootCause = BootCause.WATCHDOG) -> None:
        """Reboot the MCU on a live port; by default its BOOT frame (its hello) is lost."""
        self._boot(cause, lose_boot_frame=lose_boot_frame)

    def unplug(self) -> None:
        """Pull the cable: the pty closes (host reads EOF/EIO), the path disappears."""
        self._stop_io()
        self.port.unplug()
        self._changed(None)

    def replug(self, *, reset: bool = True) -> None:
        """Plug back in at the same path; USB power-cycles the MCU unless ``reset=False``."""
        self.port.plug()
        if reset:
            self._boot(BootCause.POWER_ON, lose_boot_frame=False)
        elif not self.stalled:  # a stalled MCU starts reading when it resumes
            self._start_io()

    def stall(self, seconds: float | None = None) -> None:
        """Stop reading, writing and ticking (a hung MCU); resume after ``seconds`` if given."""
        self.stalled = True
        self._stop_io(keep_pending=True)
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
        if seconds is not None:
            assert self._loop is not None
            self._stall_timer = self._loop.call_later(seconds, self.resume)

    def resume(self) -> None:
        self._stall_timer = None
        if self.stalled:
            self.stalled = False
            if self.port.plugged:
                self._start_io()

    def press(self, kind: InputKind | str = InputKind.SHORT_PRESS, duration_ms: int = 0) -> None:
        """A gesture on the button/touch pad, reported to the host reliably."""
        if isinstance(kind, str):
            kind = _KIND_NAMES[kind]
        now = self._now()
        self.protocol.send_input(kind, now, duration_ms=duration_ms)
        self.button_presses.append(ButtonPress(kind, now))
        self._kick()
        self._changed(None)

    def log(self, text: str) -> None:
        self.protocol.send_log(text)
        self._kick()

    # ------------------------------------------------------------------ internals

    def _now(self) -> float:
        assert self._loop is not None, "start the simulated MCU first"
        return self._loop.time()

    def _boot(self, cause: BootCause, *, lose_boot_frame: bool) -> None:
        now = self._now()
        self._stop_io()
        self._pending = b""
        self.boots += 1
        self._dispatch(self.protocol.reset(now, cause))
        self._drop_tx_frames = 1 if lose_boot_frame else 0
        if self.port.plugged and not self.stalled:
            self._start_io()
        self._changed(None)

    def _start_io(self) -> None:
        loop = self._loop
        assert loop is not None
        self._fd = self.port.master_fd
        now = loop.time()
        if self.baud is not None:
            rate = bytes_per_second(self.baud)
            burst = max(512.0, rate * 0.02)
            self._rx_bucket = TokenBucket(rate, burst, now)
            self._tx_bucket = TokenBucket(rate, burst, now)
        else:
            self._rx_bucket = self._tx_bucket = None
        self._add_reader()
        self._kick()

    def _stop_io(self, keep_pending: bool = False) -> None:
        loop = self._loop
        if loop is not None and self._fd >= 0:
            if self._reader_on:
                loop.remove_reader(self._fd)
            if self._writer_on:
                loop.remove_writer(self._fd)
        self._reader_on = self._writer_on = False
        for handle in (self._timer, self._rx_timer, self._tx_timer):
            if handle is not None:
                handle.cancel()
        self._timer = self._rx_timer = self._tx_timer = None
        self._timer_at = None
        self._fd = -1
        if not keep_pending:
            self._pending = b""

    def _add_reader(self) -> None:
        if not self._reader_on and self._fd >= 0 and self._rx_timer is None:
            assert self._loop is not None
            self._loop.add_reader(self._fd, self._on_readable)
            self._reader_on = True

    def _on_readable(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        limit = READ_CHUNK
        if self._rx_bucket is not None:
            limit = min(limit, self._rx_bucket.available(now))
            if limit <= 0:
                # the UART has not clocked more bytes in yet: stop watching until it has
                self._loop.remove_reader(self._fd)
                self._reader_on = False
                chunk = max(1, int(self._rx_bucket.rate * 0.002))
                delay = self._rx_bucket.delay_until(chunk, now)
                self._rx_timer = self._loop.call_later(delay, self._on_rx_timer)
                return
        try:
            data = os.read(self._fd, limit)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            # EOF/EIO on the master: no slave side open (the port keeps one, so only briefly);
            # look again shortly instead of spinning on a descriptor that stays readable
            self._loop.remove_reader(self._fd)
            self._reader_on = False
            self._rx_timer = self._loop.call_later(0.05, self._on_rx_timer)
            return
        if self._rx_bucket is not None:
            self._rx_bucket.consume(len(data), now)
        data = self._rx_faults.apply(data)
        if data:
            self._dispatch(self.protocol.receive_data(data, now))
        self._kick()

    def _on_rx_timer(self) -> None:
        self._rx_timer = None
        self._add_reader()

    def _kick(self) -> None:
        """Something may be ready to send: flush once at the end of this loop iteration."""
        if not self._flush_soon and self._fd >= 0 and not self.stalled:
            assert self._loop is not None
            self._flush_soon = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_soon = False
        if self._fd < 0 or self.stalled:
            return
        assert self._loop is not None
        if not self._writer_on and self._tx_timer is None:
            self._send()
        deadline = self.protocol.next_deadline()
        if deadline != self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = None if deadline is None else self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        assert self._loop is not None
        self._timer = None
        self._timer_at = None
        self._dispatch(self.protocol.handle_timeout(self._loop.time()))
        self._kick()

    def _stop_writer(self) -> None:
        if self._writer_on:
            assert self._loop is not None
            self._loop.remove_writer(self._fd)
            self._writer_on = False

    def _on_writable(self) -> None:
        self._send()
        self._kick()

    def _send(self) -> None:
        """Write eagerly; watch for writability only while the pty refuses bytes."""
        assert self._loop is not None
        if self._pending and not self._write(self._pending):
            self._start_writer()
            return
        while self.protocol.wants_write:
            now = self._loop.time()
            budget = UNPACED_CHUNK
            if self._tx_bucket is not None:
                budget = self._tx_bucket.available(now)
            data = self.protocol.data_to_send(budget, now) if budget > 0 else b""
            if not data:
                if self._tx_bucket is not None and budget < 260:
                    # the next frame does not fit the line time saved up: come back later
                    want = min(260, max(2 * budget, 32))
                    delay = (want - budget) / self._tx_bucket.rate
                    self._tx_timer = self._loop.call_later(delay, self._on_tx_timer)
                break
            if self._tx_bucket is not None:
                self._tx_bucket.consume(len(data), now)
            if self._drop_tx_frames:
                data = self._drop_first_frames(data)
            data = self._tx_faults.apply(data)
            if data and not self._write(data):
                self._start_writer()
                return
        self._stop_writer()

    def _start_writer(self) -> None:
        if not self._writer_on and self._fd >= 0:
            assert self._loop is not None
            self._loop.add_writer(self._fd, self._on_writable)
            self._writer_on = True

    def _on_tx_timer(self) -> None:
        self._tx_timer = None
        self._kick()

    def _drop_first_frames(self, data: bytes) -> bytes:
        while self._drop_tx_frames and data:
            end = data.find(b"\x00", 1)  # frames are 00 ... 00; the first 00 opens the frame
            if end < 0:
                return b""
            data = data[end + 1 :]
            self._drop_tx_frames -= 1
            self.fault_counters.frames_lost_to_reset += 1
        return data

    def _write(self, data: bytes) -> bool:
        try:
            n = os.write(self._fd, data)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            n = len(data)  # nobody listening: the bytes fall on the floor, like a UART's
        self._pending = data[n:]
        return not self._pending

    def _dispatch(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, CommandReceived | SessionStarted | SessionEnded):
                self._changed(event)

    def _changed(self, event: Event | None) -> None:
        if self.on_change is not None:
            self.on_change(self, event)
        for w in list(self._waiters):
            if not w.future.done() and w.predicate():
                w.future.set_result(None)


_KIND_NAMES = {
    "short": InputKind.SHORT_PRESS,
    "long": InputKind.LONG_PRESS,
    "double": InputKind.DOUBLE_PRESS,
    "touch": InputKind.TOUCH,
}


def describe(state: FigurineState) -> str:
    """One line for people: what the figurine shows."""
    g, p, t = state.glow, state.pose, state.text
    bubble = f' "{t.text}"' if t.text else ""
    return (
        f"glow #{g.r:02x}{g.g:02x}{g.b:02x}@{g.intensity} pulse {g.pulse_ms}ms | "
        f"melt {p.melt} | face {t.face.name.lower()}{bubble} | "
        f"brightness {state.brightness.level}{' | asleep' if state.sleep.asleep else ''}"
    )


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m hw_sim.mcu",
        description="Simulated figurine MCU on a pseudo-terminal (protocol v1, MCU role).",
    )
    ap.add_argument("--link", default="/tmp/skelly-mcu", help="stable path for the host to open")
    ap.add_argument("--baud", type=int, default=None, help="pace both directions (8N1)")
    ap.add_argument("--corrupt", type=float, default=0.0, help="per-byte bit-flip probability")
    ap.add_argument("--drop", type=float, default=0.0, help="per-byte loss probability")
    ap.add_argument("--duplicate", type=float, default=0.0, help="per-frame duplicate probability")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--quiet", action="store_true", help="do not print every state change")
    ap.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    return ap.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    faults = Faults(args.corrupt, args.drop, args.duplicate)

    def show(mcu: SimulatedMcu, event: Event | None) -> None:
        what = type(event).__name__ if event is not None else "local"
        print(f"[{what}] {describe(mcu.visible)}", flush=True)

    mcu = SimulatedMcu(args.link, baud=args.baud, faults=faults, seed=args.seed)
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def on_stdin() -> None:
        line = sys.stdin.readline()
        if not line:
            loop.remove_reader(sys.stdin.fileno())
            return
        cmd, *rest = line.split() or [""]
        try:
            arg = float(rest[0]) if rest and cmd in ("unplug", "stall") else 1.0
        except ValueError:
            print(f"{cmd}: {rest[0]!r} is not a number of seconds (e.g. {cmd} 2.5)", flush=True)
            return
        if cmd in _KIND_NAMES:
            mcu.press(cmd)
        elif cmd == "reset":
            mcu.reset()
        elif cmd == "unplug":
            mcu.unplug()
            loop.call_later(arg, mcu.replug)
        elif cmd == "stall":
            mcu.stall(arg)
        elif cmd == "state":
            print(describe(mcu.visible), mcu.protocol.counters.as_dict(), flush=True)
        elif cmd in ("quit", "exit") and not done.done():
            done.set_result(None)
        elif cmd:
            print("commands: short long double touch reset unplug [s] stall [s] state quit")

    async with mcu:
        print(f"simulated MCU at {mcu.path} -> {mcu.port.slave_name}", flush=True)
        if not args.quiet:
            mcu.on_change = show
            show(mcu, None)
        with contextlib.suppress(OSError, ValueError):
            loop.add_reader(sys.stdin.fileno(), on_stdin)
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(
                signal.SIGTERM, lambda: None if done.done() else done.set_result(None)
            )
        await done


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    factory: Any = asyncio.new_event_loop
    if args.loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(_serve(args))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
