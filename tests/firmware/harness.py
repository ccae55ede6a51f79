"""The MicroPython firmware on a real interpreter, wired to the host like a USB serial figurine.

Two pseudo-terminals and a relay: the firmware (``hw_unix.py`` on the MicroPython unix port)
opens the slave of the first pty as its serial line; the host opens the second at a stable
symlink path (:class:`hw_sim.pty.VirtualSerialPort`, the way it opens ``/dev/serial/by-id/...``);
the relay in the test's event loop copies bytes between the two masters and applies the
simulator's fault injection (:class:`hw_sim.mcu.Faults`) on the way. Powering the firmware off
and on is killing and restarting its process; a replug also unplugs the host's pty.

What the figurine does comes back as lines on the firmware's stderr (``APPLY GLOW ...``,
``BUZZ ...``, ``SHOWS ...``); the test drives its button and asks for snapshots through a
control pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import tty
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from firmware_bridge.core.framing import FrameDecoder, encode_frame
from firmware_bridge.core.messages import (
    Easing,
    Face,
    Message,
    Role,
    decode_packet,
    encode_message,
)
from firmware_bridge.core.protocol import Event, HostProtocol, Timing
from firmware_bridge.link import SerialLink
from hw_sim.mcu import FaultCounters, Faults, _FaultyStream
from hw_sim.pty import VirtualSerialPort
from tests.firmware.micropython import HEAP_BUDGET, compiled_firmware, micropython_binary
from tests.slowness import allow

E = TypeVar("E", bound=Event)
M = TypeVar("M", bound=Message)


class _Pipe:
    """One direction of the relay: bytes read from ``src`` are written to ``dst``."""

    def __init__(self, relay: Relay, src: int, dst: int, stream: _FaultyStream) -> None:
        self.relay, self.src, self.dst, self.stream = relay, src, dst, stream
        self.pending = bytearray()
        self.writing = False
        self.bytes = 0

    def on_readable(self) -> None:
        try:
            data = os.read(self.src, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # no slave open on that side right now: look again shortly
            self.relay.pause(self)
            return
        self.bytes += len(data)
        self.pending += self.stream.apply(data)
        self.flush()

    def flush(self) -> None:
        while self.pending:
            try:
                n = os.write(self.dst, self.pending)
            except BlockingIOError:
                break
            except OSError:
                self.pending.clear()  # nobody on the other side: the bytes fall on the floor
                break
            del self.pending[:n]
        loop = asyncio.get_running_loop()
        if self.pending and not self.writing:
            loop.add_writer(self.dst, self.flush)
            self.writing = True
        elif not self.pending and self.writing:
            loop.remove_writer(self.dst)
            self.writing = False
        if len(self.pending) > 1 << 20:  # a stuck reader: stop reading until it drains
            self.relay.pause(self)


class Relay:
    """Copies bytes between two pty masters, with the simulator's faults."""

    def __init__(self, mcu_master: int, host_master: int, faults: Faults, seed: int) -> None:
        rng = random.Random(seed)
        self.counters = FaultCounters()
        tx = _FaultyStream("tx", faults, rng, self.counters)
        rx = _FaultyStream("rx", faults, rng, self.counters)
        self.up = _Pipe(self, mcu_master, host_master, tx)
        self.down = _Pipe(self, host_master, mcu_master, rx)
        self._loop = asyncio.get_running_loop()
        self._paused: dict[_Pipe, asyncio.TimerHandle] = {}
        for pipe in (self.up, self.down):
            self._loop.add_reader(pipe.src, pipe.on_readable)

    def pause(self, pipe: _Pipe) -> None:
        if pipe not in self._paused:
            self._loop.remove_reader(pipe.src)
            self._paused[pipe] = self._loop.call_later(0.05, self._resume, pipe)

    def _resume(self, pipe: _Pipe) -> None:
        del self._paused[pipe]
        self._loop.add_reader(pipe.src, pipe.on_readable)

    def close(self) -> None:
        for pipe in (self.up, self.down):
            if pipe in self._paused:
                self._paused.pop(pipe).cancel()
            else:
                self._loop.remove_reader(pipe.src)
            if pipe.writing:
                self._loop.remove_writer(pipe.dst)
                pipe.writing = False


class FirmwareRig:
    """``async with FirmwareRig(...) as rig``: the firmware booted, ``rig.path`` for the host."""

    def __init__(
        self,
        *args: str,
        faults: Faults | None = None,
        seed: int = 1,
        heap: int = HEAP_BUDGET,
    ) -> None:
        self.binary = micropython_binary()
        self.modules = compiled_firmware()
        self.args = list(args)
        self.heap = heap
        self.faults = faults or Faults()
        self.seed = seed
        self.lines: list[str] = []
        self.changed = asyncio.Event()
        self.boots = 0
        self.host_port = VirtualSerialPort()
        self._mcu_master, self._mcu_slave = os.openpty()
        tty.setraw(self._mcu_slave)
        os.set_blocking(self._mcu_master, False)
        self.mcu_tty = os.ttyname(self._mcu_slave)
        self.proc: asyncio.subprocess.Process | None = None
        self._control = -1
        self._stderr_task: asyncio.Task[None] | None = None
        self.relay: Relay | None = None

    @property
    def path(self) -> Path:
        return self.host_port.path

    async def __aenter__(self) -> FirmwareRig:
        self.host_port.plug()
        self._start_relay()
        await self.boot()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.power_off()
        if self.relay is not None:
            self.relay.close()
        self.host_port.close()
        os.close(self._mcu_master)
        os.close(self._mcu_slave)

    def _start_relay(self) -> None:
        self.relay = Relay(self._mcu_master, self.host_port.master_fd, self.faults, self.seed)

    # ------------------------------------------------------------------ power

    async def boot(self, cause: int = 1) -> None:
        """Start the firmware (a power-on) and wait until it has sent its BOOT frame."""
        read_end, self._control = os.pipe()
        self.proc = await asyncio.create_subprocess_exec(
            str(self.binary), "-X", f"heapsize={self.heap}", "-m", "hw_unix",
            "--serial", self.mcu_tty, "--control", str(read_end), "--cause", str(cause),
            *self.args,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            pass_fds=(read_end,), env={**os.environ, "MICROPYPATH": str(self.modules)},
        )  # fmt: skip
        os.close(read_end)
        self.boots += 1
        self._stderr_task = asyncio.create_task(self._read(self.proc), name="firmware-stderr")
        start = len(self.lines)
        await self.wait_until(lambda: any(ln.startswith("BOOT") for ln in self.lines[start:]))

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            self.lines.append(line.decode(errors="replace").rstrip("\n"))
            self.changed.set()
        self.changed.set()

    async def power_off(self) -> None:
        """Kill the firmware (power cut): no goodbye on the line."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        await self.proc.wait()
        assert self._stderr_task is not None
        await self._stderr_task
        with contextlib.suppress(OSError):
            os.close(self._control)
        self.proc = None

    async def quit(self) -> int:
        """End the firmware cleanly (its last line is the HEAP summary); its exit code."""
        assert self.proc is not None
        self.control("quit")
        code = await self.proc.wait()
        assert self._stderr_task is not None
        await self._stderr_task
        os.close(self._control)
        self.proc = None
        return code

    async def replug(self) -> None:
        """USB cable out and in: the host's port disappears and comes back, the MCU power-cycles."""
        await self.power_off()
        assert self.relay is not None
        self.relay.close()
        self.host_port.unplug()
        await asyncio.sleep(0.1)  # the host notices the port is gone
        self.host_port.plug()
        self._start_relay()
        await self.boot()

    # ------------------------------------------------------------------ the test's hand

    def control(self, line: str) -> None:
        os.write(self._control, line.encode() + b"\n")

    async def ask(self, command: str, prefix: str, timeout: float | None = None) -> str:
        """Send a control command and return the next line starting with ``prefix``."""
        timeout = allow(10.0) if timeout is None else timeout
        start = len(self.lines)
        self.control(command)
        await self.wait_until(
            lambda: any(ln.startswith(prefix) for ln in self.lines[start:]), timeout
        )
        return next(ln for ln in self.lines[start:] if ln.startswith(prefix))

    async def shows(self) -> dict[str, str]:
        line = await self.ask("show", "SHOWS ")
        return dict(word.split("=", 1) for word in line.split()[1:] if "=" in word)

    async def shows_until(
        self, predicate: Callable[[dict[str, str]], bool], timeout: float | None = None
    ) -> dict[str, str]:
        """Ask for snapshots until one satisfies ``predicate`` (outputs are refreshed at 50 Hz,
        so a snapshot right after a command may still show the frame before it)."""
        timeout = allow(10.0) if timeout is None else timeout
        async with asyncio.timeout(timeout):
            while True:
                shows = await self.shows()
                if predicate(shows):
                    return shows

    async def wait_until(self, predicate: Callable[[], bool], timeout: float | None = None) -> None:
        """Wait for a change that makes ``predicate()`` true; on a timeout, say what the firmware
        printed last."""
        timeout = allow(10.0) if timeout is None else timeout
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"not within {timeout} s; the firmware's last lines:\n"
                + "\n".join(self.lines[-30:])
            ) from None

    def applied(self, kind: str) -> list[str]:
        """The APPLY lines of one command kind, e.g. ``applied("TONE")``."""
        return [ln for ln in self.lines if ln.startswith(f"APPLY {kind} ")]

    def errors(self) -> list[str]:
        return [ln for ln in self.lines if ln.startswith("ERROR") or "Error" in ln]


class Host:
    """The real host side: ``HostProtocol`` behind ``SerialLink`` on the rig's port; every event
    it reports is kept and wakes the rig's waiters."""

    def __init__(self, rig: FirmwareRig, timing: Timing | None = None, **kw: int) -> None:
        self.rig = rig
        self.protocol = HostProtocol(timing, **kw)
        self.events: list[Event] = []
        self.link = SerialLink(str(rig.path), 115200, self.protocol, on_event=self._on_event)

    def _on_event(self, event: Event) -> None:
        self.events.append(event)
        self.rig.changed.set()

    def of(self, cls: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, cls)]

    async def sync(self, timeout: float | None = None) -> None:
        """Push the desired state and wait until the firmware has acknowledged all of it."""
        timeout = allow(10.0) if timeout is None else timeout
        self.link.wakeup()
        await self.rig.wait_until(lambda: self.protocol.in_sync, timeout)


class RawHost:
    """The host side as plain bytes on the rig's port: frames built by the Python codec, the
    firmware's answers drained (and kept) so its writes never block."""

    def __init__(self, rig: FirmwareRig) -> None:
        self.rig = rig
        self.fd = os.open(rig.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        self.received = bytearray()
        asyncio.get_running_loop().add_reader(self.fd, self._drain)

    def _drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            self.received += os.read(self.fd, 65536)
            self.rig.changed.set()

    async def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.fd, view) :]
            except BlockingIOError:
                await asyncio.sleep(0.001)  # the relay is busy; the firmware's answers drain

    def messages(self) -> list[tuple[int, Message]]:
        """(seq, message) of every frame the firmware has sent so far."""
        out = []
        for payload in FrameDecoder().feed(bytes(self.received)):
            packet = decode_packet(payload)
            out.append((packet.seq, packet.msg))
        return out

    def of(self, cls: type[M]) -> list[M]:
        return [m for _, m in self.messages() if isinstance(m, cls)]

    @staticmethod
    def frame(msg: Message, seq: int, retransmit: bool = False) -> bytes:
        return encode_frame(encode_message(msg, seq, sender=Role.HOST, retransmit=retransmit))

    async def wait_for(self, predicate: Callable[[], bool], timeout: float | None = None) -> None:
        await self.rig.wait_until(predicate, timeout)

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.fd)
        os.close(self.fd)


def noisy_session(
    rig: FirmwareRig, host: Host, seconds: float, seed: int, max_presses: int = 30
) -> Coroutine[Any, Any, int]:
    """Random commands (a new value every 5-50 ms) and up to ``max_presses`` button presses for
    ``seconds``; the coroutine returns the number of presses made."""

    async def drive() -> int:
        rnd = random.Random(seed)
        p = host.protocol
        presses = 0
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while loop.time() < end:
            what = rnd.randrange(6)
            if what == 0:
                p.set_glow(rnd.randrange(256), rnd.randrange(256), rnd.randrange(256),
                           rnd.random(), pulse_s=rnd.choice((0, 1.5)), fade_s=0.1)  # fmt: skip
            elif what == 1:
                p.set_pose(rnd.random(), ease_s=0.3, easing=rnd.choice(list(Easing)))
            elif what == 2:
                # at most 26 characters of up to 3 bytes: within this display's 80 bytes
                text = "".join(rnd.choice("abcé ☃") for _ in range(rnd.randrange(27)))
                p.show_text(text, rnd.choice(list(Face)), duration_s=rnd.choice((0, 1)))
            elif what == 3:
                p.set_brightness(rnd.random())
            elif what == 4:
                p.tone(rnd.randrange(200, 2000), 0.05)
            elif presses < max_presses:
                rig.control(f"press short {rnd.randrange(20, 200)}")
                presses += 1
            host.link.wakeup()
            await asyncio.sleep(rnd.uniform(0.005, 0.05))
        return presses

    return drive()
