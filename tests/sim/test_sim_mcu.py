"""The simulated figurine MCU: visible state, sleepy idle, faults, pacing, standalone process."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from firmware_bridge.core.framing import FrameDecoder, encode_frame
from firmware_bridge.core.messages import (
    Face,
    Heartbeat,
    Hello,
    InputKind,
    Message,
    Role,
    SetGlow,
    Tone,
    encode_message,
)
from firmware_bridge.core.protocol import (
    SLEEPY_IDLE,
    Acked,
    Event,
    HostProtocol,
    InputReceived,
    LogReceived,
    Timing,
)
from firmware_bridge.link import SerialLink, open_port
from hw_sim.mcu import FaultCounters, Faults, SimulatedMcu, _FaultyStream
from tests.slowness import allow

Run = Callable[[Coroutine[Any, Any, Any]], Any]
ROOT = Path(__file__).resolve().parents[2]


def test_sleepy_idle_when_the_host_goes_silent_and_the_state_returns_with_it(run: Run) -> None:
    async def main() -> None:
        timing = Timing(heartbeat_s=0.1)  # the MCU gives up after 0.35 s of silence
        async with SimulatedMcu(timing=timing) as mcu:
            host = HostProtocol(timing)
            async with SerialLink(str(mcu.path), 115200, host) as link:
                host.set_glow(255, 120, 0)
                host.show_text("hi", Face.HAPPY)
                link.wakeup()
                await mcu.wait_until(lambda: mcu.visible == host.desired, timeout=5)
            # the host process is gone: no heartbeats any more
            await mcu.wait_until(lambda: not mcu.in_session, timeout=3)
            assert mcu.visible == SLEEPY_IDLE
            assert mcu.protocol.figurine == host.desired  # kept, just not shown
            async with SerialLink(str(mcu.path), 115200, host):
                await mcu.wait_until(lambda: mcu.in_session, timeout=5)
                assert mcu.visible == host.desired

    run(main())


def test_button_presses_reach_the_host_once_each(run: Run) -> None:
    async def main() -> None:
        got: list[InputReceived] = []
        arrived = asyncio.Event()

        def on_event(event: Event) -> None:
            if isinstance(event, InputReceived):
                got.append(event)
                if len(got) == 3:
                    arrived.set()

        faults = Faults(duplicate_rate=1.0, directions="tx")
        async with (
            SimulatedMcu(faults=faults) as mcu,
            SerialLink(str(mcu.path), 115200, HostProtocol(), on_event=on_event) as link,
        ):
            await link.wait_up(timeout=5)
            for kind in ("short", "long", InputKind.DOUBLE_PRESS):
                mcu.press(kind)
            async with asyncio.timeout(5):
                await arrived.wait()
            await asyncio.sleep(0.2)  # duplicates would have arrived by now
        kinds = [e.event.kind for e in got]
        assert kinds == [InputKind.SHORT_PRESS, InputKind.LONG_PRESS, InputKind.DOUBLE_PRESS]
        assert [p.kind for p in mcu.button_presses] == kinds
        assert mcu.fault_counters.duplicated > 0

    run(main())


def test_baud_pacing_holds_the_mcu_to_a_tenth_of_the_baud_rate_in_bytes(run: Run) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        baud = 115200
        lines: list[str] = []
        progress = asyncio.Event()

        def on_event(event: Event) -> None:
            if isinstance(event, LogReceived):
                lines.append(event.line.text)
                progress.set()

        async def received(n: int) -> None:
            async with asyncio.timeout(10):
                while len(lines) < n:
                    progress.clear()
                    await progress.wait()

        async with (
            SimulatedMcu(baud=baud) as mcu,
            SerialLink(str(mcu.path), baud, HostProtocol(), on_event=on_event) as link,
        ):
            await link.wait_up(timeout=5)
            before = link.counters.bytes_in
            start = loop.time()
            for burst in range(5):  # the log queue holds 8: feed it as it drains
                for i in range(8):
                    mcu.log(f"{burst}-{i} " + "x" * 190)
                await received(8 * (burst + 1))
            elapsed = loop.time() - start
            carried = link.counters.bytes_in - before
        assert carried >= 40 * 190
        # never faster than the wire: 11520 B/s plus the saved-up burst (512 B)
        assert carried <= baud / 10 * elapsed + 512 + 260
        # and not much slower either: a paced writer comes back when line time is available,
        # it does not wait for the next heartbeat (0.75 s of wire time here; 5 s is generous)
        assert elapsed < allow(5.0)
        assert lines[0].startswith("0-0 ") and lines[-1].startswith("4-7 ")

    run(main())


def frames(n: int) -> bytes:
    return b"".join(encode_frame(bytes([0x90, 0, i, 0]) + b"abc") for i in range(n))


def test_fault_stream_drop_all_duplicate_all_and_single_bit_corruption() -> None:
    data = frames(5)
    c = FaultCounters()
    drop = _FaultyStream("tx", Faults(drop_rate=1.0), random.Random(1), c)
    assert drop.apply(data) == b"" and c.dropped == len(data)

    c = FaultCounters()
    dup = _FaultyStream("tx", Faults(duplicate_rate=1.0), random.Random(1), c)
    decoder = FrameDecoder()
    out = decoder.feed(dup.apply(data))
    assert len(out) == 10 and out[0] == out[1] and c.duplicated == 5

    c = FaultCounters()
    flip = _FaultyStream("rx", Faults(corrupt_rate=1.0), random.Random(1), c)
    bad = flip.apply(data)
    assert len(bad) == len(data) and c.corrupted == len(data)
    assert all(bin(a ^ b).count("1") == 1 for a, b in zip(bad, data, strict=True))
    assert FrameDecoder().feed(bad) == []  # nothing damaged gets through the CRC

    rx_only = _FaultyStream("tx", Faults(drop_rate=1.0, directions="rx"), random.Random(1), c)
    assert rx_only.apply(data) == data


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"corrupt_rate": 1.5}, "corrupt_rate must be a probability"),
        ({"drop_rate": -0.1}, "drop_rate must be a probability"),
        ({"directions": "up"}, "directions must be"),
    ],
)
def test_bad_fault_settings_say_what_fits(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Faults(**kwargs)


def test_standalone_simulator_prints_its_path_and_serves_a_host(
    run: Run, loop_name: str, tmp_path: Path
) -> None:
    link_path = tmp_path / "skelly-mcu"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hw_sim.mcu", "--link", str(link_path), "--loop", loop_name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        first = proc.stdout.readline()
        assert first.startswith(f"simulated MCU at {link_path}")

        async def main() -> None:
            host = HostProtocol()
            acked = asyncio.Event()
            link = SerialLink(
                str(link_path),
                115200,
                host,
                on_event=lambda e: acked.set() if isinstance(e, Acked) else None,
            )
            async with link:
                await link.wait_up(timeout=5)
                host.show_text("hello from the test")
                link.wakeup()
                async with asyncio.timeout(5):
                    await acked.wait()

        run(main())
        proc.stdin.write("stall soon\nstate\nquit\n")
        proc.stdin.flush()
        out, _ = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert '"hello from the test"' in out
        assert "stall: 'soon' is not a number of seconds" in out
        assert not link_path.exists()  # unplugged on exit
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_stalled_mcu_stays_stalled_across_a_replug_without_reset(run: Run) -> None:
    async def main() -> None:
        async with SimulatedMcu() as mcu:
            mcu.stall()
            mcu.unplug()
            mcu.replug(reset=False)
            assert mcu.stalled
            port = open_port(str(mcu.path), 115200)
            try:
                port.write(encode_frame(encode_message(Hello(), 0)))
                await asyncio.sleep(0.2)  # a reading MCU would have taken the HELLO by now
                assert mcu.protocol.counters.frames_in == 0 and not mcu.in_session
                mcu.resume()
                await mcu.wait_until(lambda: mcu.in_session, timeout=5)
            finally:
                port.close()

    run(main())


def test_the_simulated_mcu_plays_a_new_tone_after_the_host_counter_wrapped(run: Run) -> None:
    # PROTOCOL.md §5.0 on the real pty: 65,536 frames after a TONE with seq 5 the next TONE has
    # seq 5 again; it is new (ahead of the newest seq), not a retransmission to stay silent for
    async def main() -> None:
        async with SimulatedMcu() as mcu:
            fd = os.open(mcu.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            loop = asyncio.get_running_loop()
            loop.add_reader(fd, lambda: os.read(fd, 65536))  # drain the MCU's answers

            async def send(data: bytes) -> None:
                view = memoryview(data)
                while view:
                    try:
                        view = view[os.write(fd, view) :]
                    except BlockingIOError:
                        await asyncio.sleep(0.001)  # the MCU is reading

            def frame(msg: Message, seq: int, retransmit: bool = False) -> bytes:
                return encode_frame(
                    encode_message(msg, seq, sender=Role.HOST, retransmit=retransmit)
                )

            try:
                await send(frame(Hello(), 0))
                await mcu.wait_until(lambda: mcu.in_session, timeout=5)
                await send(frame(Tone(440, 100), 5))
                await mcu.wait_until(lambda: len(mcu.tones) == 1, timeout=5)
                beats = b"".join(frame(Heartbeat(), s & 0xFFFF) for s in range(6, 0x10000 + 5))
                await send(beats)  # seqs 6 … 65535, 0 … 4
                await send(frame(Tone(880, 100), 5))
                await send(frame(Tone(880, 100), 5, retransmit=True))  # a duplicate again
                await send(frame(SetGlow(1, 2, 3), 6))  # read past both
                await mcu.wait_until(lambda: mcu.visible.glow == SetGlow(1, 2, 3), timeout=30)
            finally:
                loop.remove_reader(fd)
                os.close(fd)
            assert mcu.tones == [Tone(440, 100), Tone(880, 100)]

    run(main())
