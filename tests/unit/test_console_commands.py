"""The debug console's command lines and frame display (firmware_bridge.debug)."""

from __future__ import annotations

import argparse
import io

import pytest

from firmware_bridge.core.errors import MessageError
from firmware_bridge.core.framing import encode_frame
from firmware_bridge.core.messages import (
    Ack,
    Animation,
    Easing,
    Face,
    HelloReply,
    Message,
    PlayAnimation,
    Role,
    SetBrightness,
    SetGlow,
    SetPose,
    ShowText,
    Sleep,
    Tone,
    encode_message,
)
from firmware_bridge.debug import FrameView, parse_command
from skelly.commands.console import Session, check_baud
from skelly.errors import SkellyError


@pytest.mark.parametrize(
    ("line", "msg"),
    [
        ("glow 255 0 0 intensity=0.5", SetGlow(255, 0, 0, 128)),
        ("GLOW 1 2 3 pulse=1.5 depth=0.5 fade=0.2", SetGlow(1, 2, 3, 255, 1500, 128, 200)),
        ("glow 0x10 0 0", SetGlow(16, 0, 0)),
        ("pose 0.8 ease=1.5 easing=bounce", SetPose(204, 1500, Easing.BOUNCE)),
        ("pose 0", SetPose(0)),
        (
            'text "time for a break?" face=concerned duration=4',
            ShowText(Face.CONCERNED, "time for a break?", 4000),
        ),
        ("text ''", ShowText()),
        ("face sleepy", ShowText(Face.SLEEPY)),
        ("brightness 1", SetBrightness(255)),
        ("sleep fade=2", Sleep(True, 2000)),
        ("wake", Sleep(False)),
        ("anim wave repeat=3 speed=1.5", PlayAnimation(Animation.WAVE, 3, 150)),
        ("animation yawn", PlayAnimation(Animation.YAWN)),
        ("tone 880 0.12 volume=1", Tone(880, 120, 255)),
        ("tone 0 0", Tone(0, 0, 128)),
    ],
)
def test_command_lines_become_the_same_messages_as_the_host_api(line: str, msg: Message) -> None:
    assert parse_command(line) == msg


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", "empty command"),
        ("dance", "unknown command 'dance'"),
        ("glow 1 2", "glow takes 3 value(s)"),
        ("glow 1 2 3 hue=3", "glow has no option hue"),
        ("glow 256 0 0", "SetGlow.r must be an integer in 0..255, got 256"),
        ("glow red 0 0", "r must be a whole number, got 'red'"),
        ("glow 1 2 3 intensity=1.5", "intensity must be a number from 0.0 to 1.0"),
        ("pose 0.5 easing=wobbly", "unknown easing 'wobbly'; choose one of: linear"),
        ("face grumpy", "unknown face 'grumpy'"),
        ('text "open', "check the quotes"),
        # one range, one message, whichever side of it (typed and --send used to differ)
        ("tone 5 1", "Tone.freq_hz must be 0 (silence) or 20..20000 Hz, got 5"),
        ("tone 30000 1", "Tone.freq_hz must be 0 (silence) or 20..20000 Hz, got 30000"),
        ("anim spin", "unknown animation 'spin'"),
        ("anim wave speed=inf", "speed must be within 0.01..2.55"),
        ("anim wave speed=nan", "speed must be within 0.01..2.55"),
        ("anim wave speed=1e400", "speed must be within 0.01..2.55"),
        ("brightness", "brightness takes 1 value(s)"),
        ("text " + "x" * 161, "at most 160"),
    ],
)
def test_bad_command_lines_say_what_was_wrong(line: str, message: str) -> None:
    with pytest.raises(MessageError) as info:
        parse_command(line)
    assert message in str(info.value)


def test_frame_view_shows_seq_type_fields_flags_and_hex() -> None:
    view = FrameView(hex_mode=True)
    wire = encode_frame(encode_message(SetGlow(9, 8, 7), 42, retransmit=True))
    lines = view.feed("tx", 0.0, wire[:5]) + view.feed("tx", 0.0, wire[5:])
    assert len(lines) == 2
    assert "host→mcu #00042 SET_GLOW" in lines[0]
    assert "r=9 g=8 b=7" in lines[0] and lines[0].endswith("[ACK_REQ] [RETX]")
    assert lines[1].strip() == "wire: " + wire.hex(" ")
    assert view.counts.tx == 1


def test_raw_mode_shows_every_chunk_even_without_a_frame() -> None:
    view = FrameView(raw_mode=True)
    lines = view.feed("rx", 0.0, b"U-Boot 2024\r\n")
    assert len(lines) == 1 and "raw   13 B: 55 2d 42" in lines[0]


def test_frame_view_reports_damage_and_hides_what_it_is_told() -> None:
    view = FrameView(hide=["heartbeat"])
    from firmware_bridge.core.messages import Heartbeat

    beat = encode_frame(encode_message(Heartbeat(), 1, sender=Role.MCU))
    reply = encode_frame(encode_message(HelloReply(3), 2, sender=Role.MCU))
    damaged = bytearray(reply)
    damaged[6] ^= 0x01
    lines = view.feed("rx", 0.0, beat + bytes(damaged) + reply)
    assert len(lines) == 2
    assert "!! 1 damaged frame(s) dropped" in lines[0]
    assert "mcu→host #00002 HELLO_REPLY" in lines[1] and "led_count=12" in lines[1]
    assert (view.counts.rx, view.counts.rx_bad) == (2, 1)


def console_args(**kw: object) -> argparse.Namespace:
    values: dict[str, object] = {
        "hide": "", "hex": False, "raw": False, "count": None, "duration": None, "no_input": True
    }  # fmt: skip
    values.update(kw)
    return argparse.Namespace(**values)


@pytest.mark.parametrize("hex_mode", [False, True])
def test_count_shows_exactly_that_many_frames_when_a_chunk_carries_more(hex_mode: bool) -> None:
    out = io.StringIO()
    session = Session(console_args(count=2, hex=hex_mode), out)
    acks = b"".join(encode_frame(encode_message(Ack(i), i, sender=Role.MCU)) for i in range(3))
    session.on_bytes("rx", 0.0, acks)  # three frames in one read
    session.on_bytes("rx", 0.0, acks)  # and more arriving before the console exits
    frames = [ln for ln in out.getvalue().splitlines() if "mcu→host" in ln]
    assert [ln.split()[2] for ln in frames] == ["#00000", "#00001"]
    wires = [ln for ln in out.getvalue().splitlines() if "wire:" in ln]
    assert len(wires) == (2 if hex_mode else 0)  # each shown frame keeps its wire line
    assert session.done.is_set()


def test_help_is_a_console_word_for_send_too() -> None:
    out = io.StringIO()
    session = Session(console_args(), out)
    sent: list[str] = []
    session.send = sent.append
    session.command("help")
    session.command("glow 1 2 3")
    assert "tone HZ SECONDS" in out.getvalue() and "counters" in out.getvalue()
    assert sent == ["glow 1 2 3"]


@pytest.mark.parametrize("baud", [0, -9600])
def test_a_bad_baud_rate_is_named(baud: int) -> None:
    with pytest.raises(
        SkellyError, match=rf"^--baud must be a positive whole number .*, got {baud}$"
    ):
        check_baud(baud)
    assert check_baud(9600) == 9600
