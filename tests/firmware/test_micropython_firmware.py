"""The figurine's MicroPython firmware (firmware_bridge/mcu_firmware/), run on a real MicroPython
interpreter (the unix port, built from tools/micropython) with its heap capped at HEAP_BUDGET, and
driven over ptys by the real host link (SerialLink + HostProtocol) or by raw frames."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from firmware_bridge.core.framing import encode_frame
from firmware_bridge.core.messages import (
    Ack,
    Animation,
    Capabilities,
    Easing,
    Face,
    Flag,
    Heartbeat,
    Hello,
    HelloReply,
    InputEvent,
    InputKind,
    MsgType,
    Nack,
    NackReason,
    SetGlow,
    Tone,
)
from firmware_bridge.core.protocol import (
    Connected,
    Disconnected,
    InputReceived,
    Nacked,
    Slot,
    Timing,
)
from hw_sim.mcu import Faults
from tests.firmware.harness import FirmwareRig, Host, RawHost, noisy_session
from tests.firmware.micropython import HEAP_BUDGET
from tests.slowness import allow

Run = Callable[[Coroutine[Any, Any, Any]], Any]


def test_host_drives_the_micropython_firmware(run: Run) -> None:
    async def main() -> tuple[FirmwareRig, Host, dict[str, str]]:
        async with FirmwareRig() as rig:
            host = Host(rig)
            async with host.link:
                await host.link.wait_up(timeout=allow(10))
                p = host.protocol
                p.set_glow(255, 0, 0, 0.5, pulse_s=1.0, pulse_depth=0.25, fade_s=0.2)
                p.set_pose(0.8, ease_s=1.5, easing=Easing.BOUNCE)
                p.show_text("héllo!", Face.HAPPY, duration_s=3.0)
                p.set_brightness(0.25)
                p.sleep(True, fade_s=2.0)
                p.play_animation(Animation.WAVE, repeat=2)
                p.tone(880, 0.12)
                await host.sync()
                await rig.wait_until(lambda: "BUZZ 0 0" in rig.lines)  # the chirp ended
                p.sleep(False)
                p.set_glow(0, 0, 255)  # steady blue, no fade: what the ring shows is exact
                p.set_brightness(1.0)
                await host.sync()
                await rig.wait_until(lambda: "DISPLAY 1 héllo!" in rig.lines)
                shows = await rig.shows_until(lambda s: s["leds"] == "0,0,255")
                # a text longer than this display's max_text (80) is refused with BAD_VALUE
                p.show_text("x" * 81)
                host.link.wakeup()
                await rig.wait_until(lambda: bool(host.of(Nacked)))
            return rig, host, shows

    rig, host, shows = run(main())
    (connected,) = host.of(Connected)
    assert connected.fw_version == (1, 0, 0)
    assert connected.capabilities == Capabilities(
        led_count=12, servo=True, display_w=128, display_h=64, buzzer=True, button=True,
        touch=False, max_text=80,
    )  # fmt: skip
    # boot, then the session; only the sleepy idle face (§5.2) may come between: on a slow machine
    # (arm64 under emulation) the first frame is drawn before the handshake ends
    assert rig.lines[0] == "BOOT 1"
    assert set(rig.lines[1 : rig.lines.index("SESSION 1")]) <= {"DISPLAY 2 "}
    assert "APPLY GLOW 255 0 0 128 1000 64 200" in rig.lines
    assert "APPLY POSE 204 1500 3" in rig.lines
    assert "APPLY TEXT 1 3000 héllo!" in rig.lines
    assert "APPLY BRIGHTNESS 64" in rig.lines
    assert "APPLY SLEEP 1 2000" in rig.lines
    assert "APPLY ANIM 1 2 100" in rig.lines
    assert rig.applied("TONE") == ["APPLY TONE 880 120 128"]
    assert rig.lines.count("BUZZ 880 128") == 1
    assert shows["face"] == "1" and shows["text"] == "héllo!" and shows["session"] == "1"
    nack = host.of(Nacked)[0]
    assert (nack.slot, nack.reason) == (Slot.TEXT, NackReason.BAD_VALUE)
    assert not rig.errors()


def test_capabilities_come_from_the_configuration(run: Run) -> None:
    async def main() -> tuple[FirmwareRig, Host]:
        async with FirmwareRig(
            "--leds", "8", "--no-servo", "--no-buzzer", "--no-display", "--no-button"
        ) as rig:
            host = Host(rig)
            async with host.link:
                await host.link.wait_up(timeout=allow(10))
                host.protocol.set_pose(0.5)
                host.protocol.tone(440, 0.1)
                host.protocol.show_text("hi")
                host.protocol.set_glow(1, 2, 3)
                host.link.wakeup()
                await rig.wait_until(lambda: len(host.of(Nacked)) == 3 and host.protocol.in_sync)
            return rig, host

    rig, host = run(main())
    (connected,) = host.of(Connected)
    assert connected.capabilities == Capabilities(
        led_count=8, servo=False, display_w=0, display_h=0, buzzer=False, button=False,
        touch=False, max_text=0,
    )  # fmt: skip
    nacks = {(n.slot, n.reason) for n in host.of(Nacked)}
    assert nacks == {(s, NackReason.UNSUPPORTED) for s in (Slot.POSE, Slot.TONE, Slot.TEXT)}
    assert rig.applied("GLOW") == ["APPLY GLOW 1 2 3 255 0 0 0"]


def test_presses_are_reported_once_each(run: Run) -> None:
    async def main() -> list[InputReceived]:
        async with FirmwareRig() as rig:
            host = Host(rig)
            async with host.link:
                await host.link.wait_up(timeout=allow(10))
                for press in ("short 90", "long 1200", "double 110", "short 40"):
                    rig.control(f"press {press}")
                await rig.wait_until(
                    lambda: (
                        len(host.of(InputReceived)) >= 4
                        and sum(ln.startswith("ANSWERED") for ln in rig.lines) == 4
                    )
                )
            return host.of(InputReceived)

    got = run(main())
    assert [(e.event.kind, e.event.duration_ms) for e in got] == [
        (InputKind.SHORT_PRESS, 90),
        (InputKind.LONG_PRESS, 1200),
        (InputKind.DOUBLE_PRESS, 110),
        (InputKind.SHORT_PRESS, 40),
    ]
    assert len({e.seq for e in got}) == 4


def test_a_press_before_the_host_greets_is_delivered_in_the_session(run: Run) -> None:
    # PROTOCOL.md §6.3: events are only sent during a session; one made before it waits (up to
    # 5 s after the gesture) and goes out when the session starts
    async def main() -> tuple[FirmwareRig, list[InputReceived]]:
        async with FirmwareRig() as rig:
            rig.control("press long 800")
            await rig.wait_until(lambda: "PRESSED long 800" in rig.lines)
            host = Host(rig)
            async with host.link:
                # the firmware has its ACK: a second report, had there been one, came before
                await rig.wait_until(
                    lambda: (
                        bool(host.of(InputReceived))
                        and any(ln.startswith("ANSWERED") for ln in rig.lines)
                    ),
                    allow(10),
                )
            return rig, host.of(InputReceived)

    rig, got = run(main())
    # once: a HELLO the host repeats (it saw the BOOT, or the reply was slow) is answered again
    # and does not start a new session that would send the event again under a new seq (§5.1)
    assert [(e.event.kind, e.event.duration_ms) for e in got] == [(InputKind.LONG_PRESS, 800)]
    assert rig.lines.count("SESSION 1") == 1
    assert rig.lines.index("PRESSED long 800") < rig.lines.index("SESSION 1")


def test_reset_and_replug_bring_the_state_back(run: Run) -> None:
    async def main() -> tuple[FirmwareRig, Host]:
        async with FirmwareRig() as rig:
            host = Host(rig)
            async with host.link:
                await host.link.wait_up(timeout=allow(10))
                host.protocol.set_glow(0, 0, 255)
                host.protocol.show_text("focus", Face.FOCUSED)
                await host.sync()
                # the MCU resets (watchdog): a new process on the same line, the host stays open
                await rig.power_off()
                await rig.boot(cause=2)
                await rig.wait_until(
                    lambda: (
                        rig.applied("GLOW").count("APPLY GLOW 0 0 255 255 0 0 0") == 2
                        and rig.applied("TEXT").count("APPLY TEXT 3 0 focus") == 2
                        and host.protocol.in_sync
                    ),
                    allow(15),
                )
                # the USB cable is pulled and plugged back: the port goes away, the MCU reboots
                await rig.replug()
                await rig.wait_until(
                    lambda: (
                        rig.applied("GLOW").count("APPLY GLOW 0 0 255 255 0 0 0") == 3
                        and rig.applied("TEXT").count("APPLY TEXT 3 0 focus") == 3
                        and host.protocol.in_sync
                    ),
                    allow(20),
                )
            return rig, host

    rig, host = run(main())
    reasons = [e.reason for e in host.of(Disconnected)]
    assert reasons[0] == "MCU reset (watchdog)"
    assert len(host.of(Connected)) == 3
    assert rig.boots == 3 and not rig.errors()


def _dim(shows: dict[str, str]) -> bool:
    # the idle glow (60, 40, 120) at intensity 50 and brightness 128: at most 12 of 255
    return max(int(c) for c in shows["leds"].split(",")) <= 12


def test_a_silent_host_leaves_the_figurine_breathing_sleepily(run: Run) -> None:
    # PROTOCOL.md §5.2: no frame for 3.5 heartbeats -> the session ends and the MCU shows its
    # sleepy idle look (sleepy face, no bubble, a slow breathing glow) instead of freezing
    async def main() -> tuple[dict[str, str], list[dict[str, str]]]:
        async with FirmwareRig() as rig:
            host = Host(rig, Timing(heartbeat_s=0.2))
            async with host.link:
                await host.link.wait_up(timeout=allow(10))
                host.protocol.set_glow(255, 255, 255)
                host.protocol.show_text("working", Face.FOCUSED)
                await host.sync()
                await rig.wait_until(lambda: "DISPLAY 3 working" in rig.lines)
                during = await rig.shows()
            # the Pi dies: nothing more on the line
            await rig.wait_until(lambda: "HOST SILENT 0" in rig.lines, allow(10))
            await rig.wait_until(lambda: "DISPLAY 2 " in rig.lines)
            await rig.shows_until(_dim, allow(15))  # the fade to the idle glow is over
            seen: list[dict[str, str]] = []

            def breathing(shows: dict[str, str]) -> bool:
                seen.append(shows)
                return len({s["leds"] for s in seen}) >= 3

            await rig.shows_until(breathing, allow(15))
            return during, seen

    during, seen = run(main())
    assert during["leds"] == "255,255,255" and during["face"] == "3"
    assert all(s["session"] == "0" and s["face"] == "2" and s["text"] == "" for s in seen)
    # dim: the idle glow (60, 40, 120) at intensity 50 and brightness 128 stays far below full
    assert all(_dim(s) for s in seen)


def test_raw_frames_get_the_answers_the_document_gives() -> None:
    # PROTOCOL.md §5.1 (NOT_READY before a session, version 0), §3 (direction, unknown types),
    # §6.1 (checks in order: length before value), §5.0 (a retransmission is not executed again)
    async def main() -> tuple[FirmwareRig, list[tuple[int, Any]]]:
        async with FirmwareRig() as rig:
            raw = RawHost(rig)
            try:
                await raw.send(raw.frame(Heartbeat(), 40))
                await raw.wait_for(lambda: bool(raw.of(Nack)))
                await raw.send(raw.frame(Hello(2, 3), 41))
                await raw.wait_for(lambda: len(raw.of(HelloReply)) == 1)
                await raw.send(raw.frame(Hello(), 42))
                await raw.wait_for(lambda: "SESSION 1" in rig.lines)
                show_text_bad = bytes([MsgType.SHOW_TEXT, Flag.ACK_REQ, 43, 0, 42, 0, 0, 5])
                bad_utf8 = bytes([MsgType.SHOW_TEXT, Flag.ACK_REQ, 46, 0, 0, 0, 0, 2, 0xC3, 0x28])
                frames = [
                    encode_frame(show_text_bad + b"ab"),  # short text AND bad face
                    encode_frame(bytes([0x55, Flag.ACK_REQ, 44, 0])),  # unknown, ACK_REQ
                    encode_frame(bytes([0x56, 0, 45, 0])),  # unknown, best effort: silence
                    encode_frame(bad_utf8),
                    encode_frame(bytes([MsgType.TONE, Flag.ACK_REQ, 47, 0, 10, 0, 100, 0, 9])),
                    encode_frame(bytes([MsgType.TONE, Flag.ACK_REQ, 48, 0, 184, 1, 0, 0, 9])),
                    encode_frame(bytes([MsgType.SLEEP, Flag.ACK_REQ, 49, 0, 2, 0, 0])),
                    encode_frame(bytes([0x90, Flag.ACK_REQ, 50, 0, 1, 0, 0, 0, 0, 0, 0, 0])),
                    raw.frame(Tone(660, 100), 51),
                    raw.frame(Tone(660, 100), 51, retransmit=True),
                    raw.frame(SetGlow(9, 8, 7), 52),
                ]
                await raw.send(b"".join(frames))
                await raw.wait_for(
                    lambda: any(ln.startswith("APPLY GLOW 9 8 7") for ln in rig.lines)
                )
                await raw.wait_for(lambda: len(raw.of(Ack)) == 3)
                return rig, raw.messages()
            finally:
                raw.close()

    rig, got = asyncio.run(main())
    answers = [m for _, m in got if isinstance(m, Ack | Nack)]
    assert answers == [
        Nack(40, NackReason.NOT_READY),
        Nack(43, NackReason.BAD_LENGTH),
        Nack(44, NackReason.UNKNOWN_TYPE),
        Nack(46, NackReason.BAD_VALUE),
        Nack(47, NackReason.BAD_VALUE),
        Nack(48, NackReason.BAD_VALUE),
        Nack(49, NackReason.BAD_VALUE),
        Ack(51),
        Ack(51),
        Ack(52),
    ]
    replies = [m for _, m in got if isinstance(m, HelloReply)]
    assert [r.reply_to for r in replies] == [41, 42]
    assert [r.proto_version for r in replies] == [0, 1]
    assert rig.applied("TONE") == ["APPLY TONE 660 100 128"]


def test_a_repeated_hello_keeps_the_session_and_the_pending_press() -> None:
    # PROTOCOL.md §5.1: a HELLO with RETX and the seq of the HELLO that started the session,
    # before any command, is the host still waiting for its reply: answered again, and the press
    # waiting for its ACK keeps its seq (it used to start a new session that sent the press again
    # under a fresh seq: reported twice). After a command, the same frame comes from a restarted
    # host whose first HELLO was lost: a new session, in which its glow (seq 1, like the old
    # program's) is executed
    async def main() -> tuple[FirmwareRig, list[tuple[int, Any]]]:
        async with FirmwareRig() as rig:
            raw = RawHost(rig)
            try:
                rig.control("press short 90")
                await rig.wait_until(lambda: "PRESSED short 90" in rig.lines)
                await raw.send(raw.frame(Hello(), 0))
                await raw.wait_for(lambda: bool(raw.of(InputEvent)))
                await raw.send(raw.frame(Hello(), 0, retransmit=True))
                await raw.wait_for(lambda: len(raw.of(HelloReply)) == 2)
                (seq,) = {s for s, m in raw.messages() if isinstance(m, InputEvent)}
                await raw.send(raw.frame(Ack(seq), 1))
                await raw.wait_for(lambda: f"ANSWERED {seq}" in rig.lines)
                await raw.send(raw.frame(SetGlow(1, 1, 1), 2))
                await raw.wait_for(lambda: "APPLY GLOW 1 1 1 255 0 0 0" in rig.lines)
                inputs = {s for s, m in raw.messages() if isinstance(m, InputEvent)}
                assert inputs == {seq}  # never sent under another seq
                assert rig.lines.count("SESSION 1") == 1
                await raw.send(raw.frame(Hello(), 0, retransmit=True))
                await raw.send(raw.frame(SetGlow(2, 2, 2), 1))
                await raw.wait_for(lambda: "APPLY GLOW 2 2 2 255 0 0 0" in rig.lines)
                await raw.wait_for(lambda: len(raw.of(HelloReply)) == 3)
                stats = await rig.ask("stats", "STATS")
                assert " dup=1 " in stats, stats  # the repeat
                return rig, raw.messages()
            finally:
                raw.close()

    rig, got = asyncio.run(main())
    assert rig.lines.count("SESSION 1") == 2
    assert [m.reply_to for _, m in got if isinstance(m, HelloReply)] == [0, 0, 0]
    assert not rig.errors()


def test_a_command_after_the_host_counter_wrapped_is_executed() -> None:
    # PROTOCOL.md §5.0: 65,536 frames after a TONE with seq 5, a new TONE with seq 5 is a new
    # command (ahead of the newest seq), not a retransmission; its retransmission right after is
    async def main() -> FirmwareRig:
        async with FirmwareRig() as rig:
            raw = RawHost(rig)
            try:
                await raw.send(raw.frame(Hello(), 0))
                await raw.wait_for(lambda: "SESSION 1" in rig.lines)
                await raw.send(raw.frame(Tone(440, 100), 5))
                await raw.wait_for(lambda: "APPLY TONE 440 100 128" in rig.lines)
                beat = [raw.frame(Heartbeat(), seq & 0xFFFF) for seq in range(6, 0x10000 + 5)]
                for i in range(0, len(beat), 4096):  # seqs 6 … 65535, 0 … 4
                    await raw.send(b"".join(beat[i : i + 4096]))
                await raw.send(raw.frame(Tone(880, 100), 5))
                await raw.send(raw.frame(Tone(880, 100), 5, retransmit=True))
                await raw.send(raw.frame(SetGlow(1, 2, 3), 6))
                await raw.wait_for(
                    lambda: any(ln.startswith("APPLY GLOW 1 2 3") for ln in rig.lines), allow(60)
                )
                stats = await rig.ask("stats", "STATS")
            finally:
                raw.close()
            assert " dup=1 " in stats and " crc=0 " in stats, stats
            return rig

    rig = asyncio.run(main())
    assert rig.applied("TONE") == ["APPLY TONE 440 100 128", "APPLY TONE 880 100 128"]
    assert "HOST SILENT 0" not in rig.lines


def test_noisy_line_converges_and_reports_each_press_once() -> None:
    # the simulator's fault injection (hw_sim.mcu.Faults) on both directions of the wire
    faults = Faults(corrupt_rate=0.003, drop_rate=0.003, duplicate_rate=0.05)

    async def main() -> tuple[FirmwareRig, Host, int, str]:
        async with FirmwareRig(faults=faults, seed=7) as rig:
            host = Host(rig)
            async with host.link:
                await host.link.wait_up(timeout=allow(10))
                presses = await noisy_session(rig, host, 8.0, seed=3)
                await host.sync(allow(30))
                await rig.wait_until(
                    lambda: (
                        len(host.of(InputReceived)) >= presses
                        and sum(ln.startswith("ANSWERED") for ln in rig.lines) == presses
                    ),
                    allow(30),
                )
                stats = await rig.ask("stats", "STATS")
            return rig, host, presses, stats

    rig, host, presses, stats = asyncio.run(main())
    assert rig.relay is not None
    c = rig.relay.counters
    assert c.corrupted > 5 and c.dropped > 5 and c.duplicated > 5, c
    assert " crc=0 " not in stats and " dup=0 " not in stats, stats  # it really was noisy
    assert len(host.of(Connected)) == 1, host.of(Disconnected)  # one session throughout
    assert len(host.of(InputReceived)) == presses  # each press reported once
    # the figurine ends in the newest state of every slot
    desired = host.protocol.desired
    g = desired.glow
    assert rig.applied("GLOW")[-1] == (
        f"APPLY GLOW {g.r} {g.g} {g.b} {g.intensity} {g.pulse_ms} {g.pulse_depth} {g.fade_ms}"
    )
    t = desired.text
    assert rig.applied("TEXT")[-1] == f"APPLY TEXT {int(t.face)} {t.duration_ms} {t.text}"
    assert rig.applied("BRIGHTNESS")[-1] == f"APPLY BRIGHTNESS {desired.brightness.level}"
    assert not rig.errors()


@pytest.mark.slow
def test_a_long_noisy_run_stays_within_the_heap_budget() -> None:
    # the firmware runs with micropython -X heapsize=HEAP_BUDGET (64 KiB on the 64-bit unix port,
    # where objects are about twice their RP2040 size); commands, presses and noise for a while:
    # never a MemoryError (the loop would print ERROR and carry on), and the gc.mem_alloc()
    # high-water leaves room
    faults = Faults(corrupt_rate=0.003, drop_rate=0.003, duplicate_rate=0.05)

    async def main() -> tuple[FirmwareRig, str, str]:
        async with FirmwareRig(faults=faults, seed=11) as rig:
            host = Host(rig, Timing(heartbeat_s=0.05))  # 50 ms heartbeats fill every pause
            async with host.link:
                await host.link.wait_up(timeout=allow(10))
                for round_ in range(4):
                    await noisy_session(rig, host, 5.0, seed=round_)
                await host.sync(allow(30))
                stats = await rig.ask("stats", "STATS")
                heap = await rig.ask("heap", "HEAP")
            return rig, stats, heap

    rig, stats, heap = asyncio.run(main())
    values = dict(w.split("=") for w in heap.split()[1:])
    assert int(values["peak"]) <= 0.8 * HEAP_BUDGET, heap
    frames_in = int(stats.split(" in=")[1].split()[0])
    assert frames_in > 400, stats  # about 35 frames a second reach it through the noise
    assert not rig.errors(), rig.errors()
