"""Sans-I/O protocol core benchmark: how fast the Python core frames, parses and runs the protocol.

Prints ONE JSON object; every figure is the median of ``--runs`` runs of ``--seconds`` seconds.

* ``encode_frames_per_s`` — ``encode_message`` + ``encode_frame`` of SET_GLOW frames;
* ``decode_frames_per_s`` — ``FrameDecoder.feed`` of a 4 KiB-chunked stream of those frames plus
  ``decode_packet`` of each payload;
* ``commands_acked_per_s`` — HostProtocol and McuProtocol back to back in memory: the host keeps
  all seven slots busy (each slot gets a new value as soon as its previous one is acknowledged),
  the MCU decodes, executes and ACKs, the host matches the ACKs. Every counted command crossed both
  state machines both ways; no I/O, so this is the core's ceiling on one core;
* ``limit_frames_per_s_921600`` / ``_115200`` — what a UART at that baud (8N1) can carry one way,
  for the mean size of the command frames actually produced in that run;
* ``ceiling_vs_921600`` — ``commands_acked_per_s / limit_frames_per_s_921600``.

Usage: ``python bench/core.py [--runs 5] [--seconds 0.5]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from firmware_bridge.core.framing import FrameDecoder, encode_frame
from firmware_bridge.core.messages import (
    Animation,
    Face,
    SetGlow,
    decode_packet,
    encode_message,
)
from firmware_bridge.core.protocol import Acked, HostProtocol, McuProtocol, Slot


def bench_encode(seconds: float) -> float:
    n = 0
    start = time.perf_counter()
    end = start + seconds
    while time.perf_counter() < end:
        for i in range(500):
            encode_frame(encode_message(SetGlow(i & 255, 2, 3, 200, 1000, 64, 100), i))
        n += 500
    return n / (time.perf_counter() - start)


def bench_decode(seconds: float) -> float:
    stream = b"".join(
        encode_frame(encode_message(SetGlow(i & 255, 2, 3, 200, 1000, 64, 100), i))
        for i in range(2000)
    )
    chunks = [stream[i : i + 4096] for i in range(0, len(stream), 4096)]
    n = 0
    start = time.perf_counter()
    end = start + seconds
    while time.perf_counter() < end:
        decoder = FrameDecoder()
        for chunk in chunks:
            for payload in decoder.feed(chunk):
                decode_packet(payload)
                n += 1
    return n / (time.perf_counter() - start)


def _set(host: HostProtocol, slot: Slot, i: int) -> None:
    match slot:
        case Slot.SLEEP:
            host.sleep(bool(i & 1))
        case Slot.BRIGHTNESS:
            host.set_brightness((i % 100) / 100)
        case Slot.GLOW:
            host.set_glow(i & 255, 40, 200, 0.8, pulse_s=1.0)
        case Slot.POSE:
            host.set_pose((i % 11) / 10, ease_s=0.5)
        case Slot.TEXT:
            host.show_text(f"focus {i}", Face.FOCUSED)
        case Slot.ANIMATION:
            host.play_animation(Animation.WAVE)
        case Slot.TONE:
            host.tone(440 + i % 400, 0.05)


def bench_pipeline(seconds: float) -> tuple[float, float]:
    host, mcu = HostProtocol(), McuProtocol()
    now = 0.0
    mcu.reset(now)
    host.reset(now)
    while not host.connected:
        mcu.receive_data(host.data_to_send(now=now), now)
        host.receive_data(mcu.data_to_send(now=now), now)
    i = 0
    for slot in Slot:
        _set(host, slot, i)
    acked = 0
    frames_before, bytes_before = host.counters.frames_out, host.counters.bytes_out
    start = time.perf_counter()
    end = start + seconds
    while time.perf_counter() < end:
        for _ in range(50):
            now += 0.0001  # fake time: far below every timer, so no heartbeats or retransmits
            mcu.receive_data(host.data_to_send(now=now), now)
            for event in host.receive_data(mcu.data_to_send(now=now), now):
                if isinstance(event, Acked):
                    acked += 1
                    i += 1
                    _set(host, event.slot, i)
    elapsed = time.perf_counter() - start
    frames = host.counters.frames_out - frames_before
    frame_bytes = (host.counters.bytes_out - bytes_before) / max(frames, 1)
    return acked / elapsed, frame_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.5)
    args = parser.parse_args()
    enc = [bench_encode(args.seconds) for _ in range(args.runs)]
    dec = [bench_decode(args.seconds) for _ in range(args.runs)]
    pipe = [bench_pipeline(args.seconds) for _ in range(args.runs)]
    acked = statistics.median(p[0] for p in pipe)
    frame_bytes = statistics.median(p[1] for p in pipe)
    limit_921600 = 921600 / 10 / frame_bytes
    limit_115200 = 115200 / 10 / frame_bytes
    print(
        json.dumps(
            {
                "runs": args.runs,
                "seconds_per_run": args.seconds,
                "encode_frames_per_s": round(statistics.median(enc)),
                "decode_frames_per_s": round(statistics.median(dec)),
                "commands_acked_per_s": round(acked),
                "command_frame_bytes": round(frame_bytes, 1),
                "limit_frames_per_s_115200": round(limit_115200),
                "limit_frames_per_s_921600": round(limit_921600),
                "ceiling_vs_921600": round(acked / limit_921600, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
