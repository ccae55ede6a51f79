"""docs/PROTOCOL.md §11 shows complete frames; this checks every one against the code.

Run this file as a script to print the section again after a deliberate wire-format change.
"""

from __future__ import annotations

from binascii import crc32
from pathlib import Path

from firmware_bridge.core.framing import FrameDecoder, encode_frame
from firmware_bridge.core.messages import (
    Ack,
    Animation,
    Boot,
    BootCause,
    Capabilities,
    Easing,
    Face,
    Heartbeat,
    Hello,
    HelloReply,
    InputEvent,
    InputKind,
    LogLevel,
    LogLine,
    Message,
    Nack,
    NackReason,
    PlayAnimation,
    Role,
    SetBrightness,
    SetGlow,
    SetPose,
    ShowText,
    Sleep,
    Status,
    StatusFlag,
    Tone,
    decode_packet,
    encode_message,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md"

# (title, message, seq, sender, retransmit)
EXAMPLES: list[tuple[str, Message, int, Role, bool]] = [
    ("HELLO (host, versions 1..1, heartbeat 1000 ms)", Hello(1, 1, 1000), 0x0001, Role.HOST, False),
    (
        "HELLO_REPLY (v1, firmware 1.2.3, servo+buzzer+button+display, 12 LEDs, 128x64, 160)",
        HelloReply(0x0001, 1, 1, 1, (1, 2, 3), Capabilities(12, True, 128, 64, True, True)),
        0x0001,
        Role.MCU,
        False,
    ),
    (
        "SET_GLOW red, intensity 128, 1 s pulse of depth 64, 200 ms fade",
        SetGlow(255, 0, 0, 128, 1000, 64, 200),
        0x0002,
        Role.HOST,
        False,
    ),
    (
        "the same SET_GLOW retransmitted (RETX flag, same seq)",
        SetGlow(255, 0, 0, 128, 1000, 64, 200),
        0x0002,
        Role.HOST,
        True,
    ),
    ("ACK of seq 2 (from the MCU)", Ack(0x0002), 0x0002, Role.MCU, False),
    (
        "SET_POSE melt 200 over 1500 ms, EASE_IN_OUT",
        SetPose(200, 1500, Easing.EASE_IN_OUT),
        0x0003,
        Role.HOST,
        False,
    ),
    (
        'SHOW_TEXT face HAPPY, "hi!" for 3000 ms',
        ShowText(Face.HAPPY, "hi!", 3000),
        0x0004,
        Role.HOST,
        False,
    ),
    ("SET_BRIGHTNESS 64", SetBrightness(64), 0x0005, Role.HOST, False),
    ("SLEEP asleep, 2000 ms fade", Sleep(True, 2000), 0x0006, Role.HOST, False),
    (
        "PLAY_ANIMATION WAVE twice at normal speed",
        PlayAnimation(Animation.WAVE, 2, 100),
        0x0007,
        Role.HOST,
        False,
    ),
    ("TONE 880 Hz for 120 ms, volume 128", Tone(880, 120, 128), 0x0008, Role.HOST, False),
    ("HEARTBEAT (host)", Heartbeat(), 0x0009, Role.HOST, False),
    ("HEARTBEAT (MCU)", Heartbeat(), 0x0003, Role.MCU, False),
    (
        "NACK of seq 8, UNSUPPORTED (no buzzer)",
        Nack(0x0008, NackReason.UNSUPPORTED),
        0x0004,
        Role.MCU,
        False,
    ),
    (
        "NACK of seq 9, NOT_READY (MCU without a session)",
        Nack(0x0009, NackReason.NOT_READY),
        0x0000,
        Role.MCU,
        False,
    ),
    ("BOOT, power-on", Boot(BootCause.POWER_ON), 0x0000, Role.MCU, False),
    (
        "INPUT_EVENT short press of button 0 at 12.345 s, held 90 ms",
        InputEvent(InputKind.SHORT_PRESS, 0, 12345, 90),
        0x0005,
        Role.MCU,
        False,
    ),
    ("ACK of the MCU's seq 5 (from the host)", Ack(0x0005), 0x000A, Role.HOST, False),
    (
        "STATUS uptime 60 s, asleep, melt 200, 23.5 °C",
        Status(60000, 0, StatusFlag.ASLEEP, 200, 235),
        0x0006,
        Role.MCU,
        False,
    ),
    ('LOG INFO "servo ok"', LogLine(LogLevel.INFO, "servo ok"), 0x0007, Role.MCU, False),
]


def _hex(data: bytes) -> str:
    return data.hex(" ")


def render() -> str:
    lines = [
        "Each example gives the payload (header + body), its CRC-32 as appended",
        "(little-endian) and the complete frame on the wire (both delimiters included).",
        "`tests/unit/test_protocol_doc.py` checks every line here against the code.",
        "",
    ]
    for title, msg, seq, sender, retx in EXAMPLES:
        payload = encode_message(msg, seq, sender=sender, retransmit=retx)
        crc = crc32(payload).to_bytes(4, "little")
        lines += [
            f"**{title}** — seq {seq}",
            "```",
            f"payload: {_hex(payload)}",
            f"crc32:   {_hex(crc)}",
            f"wire:    {_hex(encode_frame(payload))}",
            "```",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def test_every_example_in_the_doc_matches_the_code() -> None:
    doc = DOC.read_text(encoding="utf-8")
    missing = [line for line in render().splitlines() if line.strip() and line not in doc]
    assert not missing, "PROTOCOL.md §11 is out of date; regenerate it:\n" + "\n".join(missing)


def test_every_example_decodes_back_to_its_message() -> None:
    for _title, msg, seq, sender, retx in EXAMPLES:
        wire = encode_frame(encode_message(msg, seq, sender=sender, retransmit=retx))
        (payload,) = FrameDecoder().feed(wire)
        packet = decode_packet(payload)
        assert (packet.seq, packet.msg, packet.sender) == (seq, msg, sender)


def test_crc_is_the_documented_crc32() -> None:
    assert crc32(b"123456789") == 0xCBF43926


if __name__ == "__main__":
    print(render(), end="")


def test_the_duplicate_rule_in_the_doc_is_the_one_in_the_code() -> None:
    # PROTOCOL.md §5.0 numbers, which firmware authors copy, against the reference implementation
    from firmware_bridge.core.protocol import (
        DUPLICATE_TTL_S,
        DUPLICATE_WINDOW,
        SEQ_HALF,
        Timing,
    )

    doc = DOC.read_text(encoding="utf-8")
    section = doc[doc.index("### 5.0 Duplicate detection") : doc.index("### 5.1 Handshake")]
    assert f"the last **{DUPLICATE_WINDOW}** such frames" in section
    assert f"acted on less than **{DUPLICATE_TTL_S:g} s** ago" in section
    assert f"at most {SEQ_HALF - 1} behind `newest`" in section
    assert f"is 0 … {SEQ_HALF - 1}" in section and f"is 1 … {SEQ_HALF - 1}" in section
    # the bounds' reasoning: every retransmission happens within the duplicate lifetime
    timing = Timing()
    assert timing.oneshot_ttl_s < DUPLICATE_TTL_S and timing.input_ttl_s < DUPLICATE_TTL_S
    assert f"given up {timing.oneshot_ttl_s:g} s after being" in section
    assert f"given up {timing.input_ttl_s:g} s after the gesture" in section
    # ... and at 921600 baud (11-byte heartbeats) a whole wrap takes longer than that lifetime
    fastest = 921600 / 10 / len(encode_frame(encode_message(Heartbeat(), 0, sender=Role.HOST)))
    assert 0x10000 / fastest > DUPLICATE_TTL_S
    assert f"{round(fastest)} frames/s" in section
