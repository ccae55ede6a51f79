"""Parts of the MicroPython firmware checked on the real interpreter without a pty: its framing
against the host's codec, the button's gestures with an injected clock, and the Pico's hardware
layer (hw_rp2.py) over stand-ins for `machine` and `neopixel` (tests/firmware/board/)."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

from firmware_bridge.core.framing import FrameDecoder, encode_frame
from firmware_bridge.core.messages import (
    Ack,
    Boot,
    BootCause,
    Capabilities,
    Face,
    Hello,
    HelloReply,
    Message,
    Role,
    SetBrightness,
    SetGlow,
    SetPose,
    ShowText,
    Tone,
    decode_packet,
    encode_message,
)
from tests.firmware.micropython import HEAP_BUDGET, compiled_firmware, micropython_binary

BOARD = Path(__file__).with_name("board")


def micropython(*args: str, stdin: str = "", path: list[Path] | None = None) -> str:
    """Run the interpreter at the firmware's heap budget with the firmware's modules importable."""
    dirs = [*(path or []), compiled_firmware()]
    result = subprocess.run(
        [str(micropython_binary()), "-X", f"heapsize={HEAP_BUDGET}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MICROPYPATH": ":".join(str(d) for d in dirs)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


FRAMING = """
import sys
from skelly_link import Link, cobs_frame
class Io:
    def write(self, mv):
        pass
class Show:
    def note(self, what, value):
        pass
link = Link(Io(), Show(), 0, 0, 0, 0, 0)
out = bytearray(260)
for line in sys.stdin:
    payload = bytes.fromhex(line.strip())
    n = len(payload)
    buf = bytearray(payload + b"\\0\\0\\0\\0")
    from skelly_link import crc32
    c = crc32(memoryview(buf), n)
    buf[n:n + 4] = bytes((c & 255, c >> 8 & 255, c >> 16 & 255, c >> 24 & 255))
    w = cobs_frame(buf, n + 4, out)
    print(bytes(out[:w]).hex())
"""


def test_framing_matches_the_host_codec_byte_for_byte() -> None:
    # PROTOCOL.md §2: the same payloads give the same frames (COBS, CRC-32 LE, delimiters)
    rnd = random.Random(14)
    payloads = [bytes(4), b"\x00" * 248, b"\xff" * 248, bytes(range(1, 249))]
    payloads += [
        bytes(rnd.choice((0, 0, 1, 255, rnd.randrange(256))) for _ in range(rnd.randrange(4, 249)))
        for _ in range(300)
    ]
    out = micropython("-c", FRAMING, stdin="".join(p.hex() + "\n" for p in payloads))
    assert out.split() == [encode_frame(p).hex() for p in payloads]


GESTURES = """
from skelly_show import Gestures
g = Gestures()
t = 0
def level(pressed, ms):
    # hold a raw level for ms, fed every 5 ms like the main loop; report gestures with times
    global t
    for _ in range(ms // 5):
        k = g.feed(pressed, t)
        if k:
            print(k, g.held_ms, t)
        t += 5
level(False, 100)
level(True, 100); level(False, 500)                      # short: held 100
level(True, 5); level(False, 5); level(True, 100); level(False, 5); level(True, 5)
level(False, 500)                                        # bouncing contacts: one short
level(True, 900); level(False, 500)                      # long: held 900
level(True, 80); level(False, 150); level(True, 120); level(False, 500)  # double
level(True, 15); level(False, 500)                       # a 15 ms glitch: nothing
"""


def test_button_gestures_with_an_injected_clock() -> None:
    lines = micropython("-c", GESTURES).split()
    got = [tuple(int(x) for x in lines[i : i + 3]) for i in range(0, len(lines), 3)]
    kinds = [(kind, held) for kind, held, _ in got]
    # 1 SHORT, 2 LONG, 3 DOUBLE (§4.2); a bounce inside a press does not split it in two;
    # a short press is only reported once the double-press gap (300 ms) has passed
    assert kinds == [(1, 100), (1, 110), (2, 900), (3, 120)]
    short_up = 100 + 100
    assert got[0][2] >= short_up + 300


def _frames(*msgs: tuple[Message, int]) -> str:
    return b"".join(encode_frame(encode_message(m, seq, sender=Role.HOST)) for m, seq in msgs).hex()


def _run_rp2(wire: str, *extra: str) -> tuple[list[list[str]], list[Message]]:
    # the loop ends 600 ms (firmware ticks) after the last byte is read: the tone has ended
    out = micropython(str(BOARD / "drive_rp2.py"), wire, "600", *extra, path=[BOARD])
    assert "NOTE ERROR" not in out, out
    log = [ln.split()[1:] for ln in out.splitlines() if ln.startswith("LOG ")]
    tx = next(ln.split()[1] for ln in out.splitlines() if ln.startswith("TX "))
    sent = [decode_packet(p).msg for p in FrameDecoder().feed(bytes.fromhex(tx))]
    return log, sent


def test_the_pico_layer_drives_ring_servo_buzzer_and_display() -> None:
    wire = _frames(
        (Hello(), 1),
        (SetGlow(255, 128, 0, 255), 2),
        (SetPose(255, 0), 3),
        (Tone(880, 200, 255), 4),
        (ShowText(Face.HAPPY, "hi"), 5),
        (SetBrightness(255), 6),
    )
    log, sent = _run_rp2(wire)
    assert sent[0] == Boot(BootCause.WATCHDOG)  # machine.reset_cause() read at boot
    (reply,) = [m for m in sent if isinstance(m, HelloReply)]
    assert reply.capabilities == Capabilities(
        led_count=12, servo=True, display_w=128, display_h=64, buzzer=True, button=True,
        touch=False, max_text=80,
    )  # fmt: skip
    assert [m.acked_seq for m in sent if isinstance(m, Ack)] == [2, 3, 4, 5, 6]
    assert ["uart", "0", "115200"] in log and ["wdt", "5000"] in log
    assert ["neopixel", "2", "12"] in log
    ring = [e[1:] for e in log if e[0] == "neopixel.write"]
    assert ring[-1] == ["(255,", "128,", "0)"]
    servo = [int(e[2]) for e in log if e[:2] == ["pwm.duty_ns", "3"]]
    assert servo[0] == 600_000 and servo[-1] == 2_400_000  # upright at boot, slumped at 255
    assert ["pwm.freq", "3", "50"] in log
    assert ["pwm.freq", "4", "880"] in log and ["pwm.duty_u16", "4", str(255 * 128)] in log
    assert log.index(["pwm.duty_u16", "4", "0"], log.index(["pwm.freq", "4", "880"]))  # it ends
    frames = [int(e[2]) for e in log if e[0] == "i2c.frame"]
    assert frames and frames[-1] > 0  # the display was drawn (a face and a bubble)


def test_the_pico_layer_reports_a_missing_display() -> None:
    log, sent = _run_rp2(_frames((Hello(), 1), (ShowText(Face.HAPPY, "hi"), 2)), "no-display")
    (reply,) = [m for m in sent if isinstance(m, HelloReply)]
    assert reply.capabilities.display_w == 0 and reply.capabilities.max_text == 0
    assert not [e for e in log if e[0].startswith("i2c")]
