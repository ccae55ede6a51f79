"""docs/PROTOCOL.md is enough to write firmware from: a C firmware written from the document alone
(tests/sim/cleanroom_mcu.c, no code shared with the Python core) is compiled, run as its own
process on a real pty, and driven by the real host link (SerialLink + HostProtocol)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tty
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from firmware_bridge.core.framing import FrameDecoder, encode_frame
from firmware_bridge.core.messages import (
    Animation,
    Capabilities,
    Easing,
    Face,
    Flag,
    Heartbeat,
    Hello,
    HelloReply,
    Message,
    MsgType,
    Nack,
    NackReason,
    Role,
    SetGlow,
    Tone,
    decode_packet,
    encode_message,
)
from firmware_bridge.core.protocol import (
    Connected,
    Disconnected,
    Event,
    HostProtocol,
    Incompatible,
    Nacked,
    Slot,
)
from firmware_bridge.link import SerialLink

SOURCE = Path(__file__).with_name("cleanroom_mcu.c")
Run = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.fixture(scope="module")
def firmware(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler on this machine to build the clean-room firmware")
    out = tmp_path_factory.mktemp("fw") / "cleanroom_mcu"
    subprocess.run(
        [cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out), str(SOURCE)],
        check=True,
        capture_output=True,
    )
    return out


class Bench:
    """The firmware on a pty's master, the host link on its slave, and one change signal."""

    def __init__(self, binary: Path) -> None:
        self.binary = binary
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.lines: list[str] = []
        self.events: list[Event] = []
        self.changed = asyncio.Event()
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def boot(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            str(self.binary), stdin=self.master, stdout=self.master, stderr=subprocess.PIPE
        )
        self._reader = asyncio.create_task(self._read(self.proc), name="firmware-stderr")

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            self.lines.append(line.decode().rstrip("\n"))
            self.changed.set()

    async def power_off(self) -> None:
        assert self.proc is not None and self._reader is not None
        self.proc.kill()
        await self.proc.wait()
        await self._reader

    def on_event(self, event: Event) -> None:
        self.events.append(event)
        self.changed.set()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)


def test_host_drives_the_cleanroom_firmware(run: Run, firmware: Path) -> None:
    async def main() -> None:
        bench = Bench(firmware)
        await bench.boot()
        host = HostProtocol()
        link = SerialLink(bench.path, 115200, host, on_event=bench.on_event)
        try:
            async with link:
                await link.wait_up(timeout=5)
                (connected,) = [e for e in bench.events if isinstance(e, Connected)]
                assert connected.fw_version == (0, 9, 0)
                assert connected.capabilities == Capabilities(
                    led_count=8, servo=True, display_w=64, display_h=32, buzzer=True,
                    button=True, touch=False, max_text=40,
                )  # fmt: skip
                host.set_glow(255, 0, 0, 0.5, pulse_s=1.0, pulse_depth=0.25, fade_s=0.2)
                host.set_pose(0.8, ease_s=1.5, easing=Easing.BOUNCE)
                host.show_text("héllo!", Face.HAPPY, duration_s=3.0)
                host.set_brightness(0.25)
                host.sleep(True, fade_s=2.0)
                host.play_animation(Animation.WAVE, repeat=2)
                host.tone(880, 0.12)
                link.wakeup()
                await bench.wait_until(lambda: host.in_sync)
                await bench.wait_until(lambda: any(ln.startswith("TONE") for ln in bench.lines))
                # a text longer than the display's max_text is refused with BAD_VALUE
                host.show_text("x" * 41)
                link.wakeup()
                await bench.wait_until(lambda: any(isinstance(e, Nacked) for e in bench.events))
        finally:
            await bench.power_off()
            bench.close()
        assert bench.lines[:2] == ["BOOT", "SESSION 1"]
        assert "GLOW 255 0 0 128 1000 64 200" in bench.lines
        assert "POSE 204 1500 3" in bench.lines
        assert "TEXT 1 3000 héllo!" in bench.lines
        assert "BRIGHTNESS 64" in bench.lines
        assert "SLEEP 1 2000" in bench.lines
        assert "ANIM 1 2 100" in bench.lines
        assert bench.lines.count("TONE 880 120 128") == 1
        nack = next(e for e in bench.events if isinstance(e, Nacked))
        assert (nack.slot, nack.reason) == (Slot.TEXT, NackReason.BAD_VALUE)

    run(main())


def test_firmware_reset_is_noticed_and_the_state_is_resent(run: Run, firmware: Path) -> None:
    async def main() -> None:
        bench = Bench(firmware)
        await bench.boot()
        host = HostProtocol()
        link = SerialLink(bench.path, 115200, host, on_event=bench.on_event)
        try:
            async with link:
                await link.wait_up(timeout=5)
                host.set_glow(0, 0, 255)
                host.show_text("focus", Face.FOCUSED)
                link.wakeup()
                await bench.wait_until(lambda: host.in_sync)
                await bench.power_off()  # the MCU reboots: a new process on the same line
                bench.lines.clear()
                await bench.boot()
                await bench.wait_until(
                    lambda: (
                        "GLOW 0 0 255 255 0 0 0" in bench.lines
                        and "TEXT 3 0 focus" in bench.lines
                        and host.in_sync
                    )
                )
        finally:
            await bench.power_off()
            bench.close()
        reasons = [e.reason for e in bench.events if isinstance(e, Disconnected)]
        assert reasons[:1] == ["MCU reset (power_on)"]

    run(main())


def test_version_mismatch_with_the_cleanroom_firmware(run: Run, firmware: Path) -> None:
    async def main() -> None:
        bench = Bench(firmware)
        await bench.boot()
        host = HostProtocol(proto_min=2, proto_max=3)
        link = SerialLink(bench.path, 115200, host, on_event=bench.on_event)
        try:
            async with link:
                await bench.wait_until(
                    lambda: any(isinstance(e, Incompatible) for e in bench.events)
                )
        finally:
            await bench.power_off()
            bench.close()
        (bad,) = [e for e in bench.events if isinstance(e, Incompatible)]
        assert (bad.mcu_min, bad.mcu_max, bad.host_min, bad.host_max) == (1, 1, 2, 3)
        assert "SESSION 1" not in bench.lines

    run(main())


class RawHost:
    """The host side as plain bytes on the pty's slave: frames built by the Python codec, the
    firmware's answers drained (and kept) so its writes never block."""

    def __init__(self, bench: Bench) -> None:
        self.fd = os.open(bench.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self.received = bytearray()
        self.arrived = asyncio.Event()
        asyncio.get_running_loop().add_reader(self.fd, self._drain)

    def _drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            self.received += os.read(self.fd, 65536)
            self.arrived.set()

    async def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.fd, view) :]
            except BlockingIOError:
                await asyncio.sleep(0.001)  # the firmware is reading; its answers are drained

    def messages(self) -> list[Message]:
        return [decode_packet(p).msg for p in FrameDecoder().feed(bytes(self.received))]

    def frame(self, msg: Message, seq: int, retransmit: bool = False) -> bytes:
        return encode_frame(encode_message(msg, seq, sender=Role.HOST, retransmit=retransmit))

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.fd)
        os.close(self.fd)


def test_cleanroom_firmware_executes_a_command_after_the_host_counter_wrapped(
    run: Run, firmware: Path
) -> None:
    # PROTOCOL.md §5.0: 65,536 frames after a TONE with seq 5, a new TONE with seq 5 is a new
    # command (ahead of the newest seq), not a retransmission; the firmware's unbounded
    # last-seq-per-type memory used to ACK it and stay silent
    async def main() -> None:
        bench = Bench(firmware)
        await bench.boot()
        host = RawHost(bench)
        try:
            await bench.wait_until(lambda: "BOOT" in bench.lines)
            await host.send(host.frame(Hello(), 0))
            await bench.wait_until(lambda: "SESSION 1" in bench.lines)
            await host.send(host.frame(Tone(440, 100), 5))
            await bench.wait_until(lambda: "TONE 440 100 128" in bench.lines)
            beat = [host.frame(Heartbeat(), seq & 0xFFFF) for seq in range(6, 0x10000 + 5)]
            for i in range(0, len(beat), 4096):  # seqs 6 … 65535, 0 … 4
                await host.send(b"".join(beat[i : i + 4096]))
            await host.send(host.frame(Tone(880, 100), 5))
            await bench.wait_until(lambda: "TONE 880 100 128" in bench.lines, timeout=15)
            # its retransmission right after is a duplicate again; the glow after it shows that
            # the firmware has read past it
            await host.send(host.frame(Tone(880, 100), 5, retransmit=True))
            await host.send(host.frame(SetGlow(1, 2, 3), 6))
            await bench.wait_until(lambda: any(ln.startswith("GLOW 1 2 3") for ln in bench.lines))
        finally:
            host.close()
            await bench.power_off()
            bench.close()
        assert [ln for ln in bench.lines if ln.startswith("TONE")] == [
            "TONE 440 100 128",
            "TONE 880 100 128",
        ]
        assert "HOST SILENT" not in bench.lines

    run(main())


def test_cleanroom_firmware_checks_lengths_before_values(run: Run, firmware: Path) -> None:
    # PROTOCOL.md §6.1: SHOW_TEXT with a bad face and a text shorter than text_len: BAD_LENGTH
    async def main() -> list[Message]:
        bench = Bench(firmware)
        await bench.boot()
        host = RawHost(bench)
        try:
            await bench.wait_until(lambda: "BOOT" in bench.lines)
            await host.send(host.frame(Hello(), 0))
            await bench.wait_until(lambda: "SESSION 1" in bench.lines)
            bad = bytes([MsgType.SHOW_TEXT, Flag.ACK_REQ, 7, 0, 42, 0, 0, 5]) + b"ab"
            await host.send(encode_frame(bad))
            async with asyncio.timeout(5):
                while not any(isinstance(m, Nack) for m in host.messages()):
                    host.arrived.clear()
                    await host.arrived.wait()
            return host.messages()
        finally:
            host.close()
            await bench.power_off()
            bench.close()

    nacks = [m for m in run(main()) if isinstance(m, Nack)]
    assert nacks == [Nack(7, NackReason.BAD_LENGTH)]


def test_cleanroom_firmware_answers_a_repeated_hello_without_a_new_session(
    run: Run, firmware: Path
) -> None:
    # PROTOCOL.md §5.1: a HELLO with RETX and the seq of the HELLO that started the session, before
    # any command, is the host still waiting for its reply: answered again, no new session. After
    # a command the same frame is a restarted host whose first HELLO was lost: a new session, in
    # which its first glow (seq 1 like the old program's) is executed
    async def main() -> tuple[list[str], list[Message]]:
        bench = Bench(firmware)
        await bench.boot()
        host = RawHost(bench)

        async def replies(n: int) -> None:
            async with asyncio.timeout(5):
                while sum(isinstance(m, HelloReply) for m in host.messages()) < n:
                    host.arrived.clear()
                    await host.arrived.wait()

        try:
            await bench.wait_until(lambda: "BOOT" in bench.lines)
            await host.send(host.frame(Hello(), 0))
            await host.send(host.frame(Hello(), 0, retransmit=True))
            await replies(2)
            await host.send(host.frame(SetGlow(1, 1, 1), 1))
            await bench.wait_until(lambda: "GLOW 1 1 1 255 0 0 0" in bench.lines)
            await host.send(host.frame(Hello(), 0, retransmit=True))
            await host.send(host.frame(SetGlow(2, 2, 2), 1))
            await bench.wait_until(lambda: "GLOW 2 2 2 255 0 0 0" in bench.lines)
            await replies(3)
            return list(bench.lines), host.messages()
        finally:
            host.close()
            await bench.power_off()
            bench.close()

    lines, got = run(main())
    assert lines == [
        "BOOT",
        "SESSION 1",  # one session for the HELLO and its repeat
        "GLOW 1 1 1 255 0 0 0",
        "SESSION 1",  # the restarted host
        "GLOW 2 2 2 255 0 0 0",
    ]
    assert [m.reply_to for m in got if isinstance(m, HelloReply)] == [0, 0, 0]
