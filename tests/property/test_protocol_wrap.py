"""The 16-bit sequence counters wrap: a long session must not mistake new frames for old ones.

docs/PROTOCOL.md §5.0. The host core and the MCU core run back to back in memory on a fake clock
for more than three wraps of *both* counters (≈ 200,000 frames each way), with state changes,
tones and button presses at random times, plus, once per wrap, a tone and a press aimed exactly
at the seq of the last tone / press seen before the wrap: that is the frame a duplicate memory
without bounds takes for a retransmission (ACKed, never played / never reported). Checks:

* after every step the figurine shows exactly the host's desired state (every command applied);
* every tone requested is played exactly once, in order;
* every press is reported exactly once, in order.

The link is lossless, so nothing is retransmitted, the seq a side gives its next frame is simply
its count of frames sent (mod 65,536), and the aim can be exact.
"""

from __future__ import annotations

import random

import pytest

from firmware_bridge.core.messages import Face, InputEvent, InputKind, Tone
from firmware_bridge.core.protocol import (
    CommandReceived,
    Event,
    HostProtocol,
    InputReceived,
    McuProtocol,
    Slot,
)

WRAPS = 3
NEAR = 24  # a churning step moves a counter by fewer frames than this
RANDOM_SPAN = 5_000  # random tones/presses in the first frames after each aimed one, then quiet


class Bench:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.now = 0.0
        self.host = HostProtocol()
        self.mcu = McuProtocol()
        self.tones_requested: list[Tone] = []
        self.tones_played: list[Tone] = []
        self.pressed: list[InputEvent] = []
        self.reported: list[InputEvent] = []
        self.last_tone_seq: int | None = None
        self.last_press_seq: int | None = None
        self.aimed_tones = 0
        self.aimed_presses = 0
        self.tone_phase_start = 0  # host frames_out at the last aimed tone
        self.press_phase_start = 0  # MCU frames_out at the last aimed press
        self.mcu.reset(self.now)
        self.host.reset(self.now)
        self.exchange()
        assert self.host.connected

    # -- driving ---------------------------------------------------------------------------
    def observe(self, events: list[Event]) -> None:
        for e in events:
            if isinstance(e, CommandReceived) and isinstance(e.msg, Tone):
                self.tones_played.append(e.msg)
                self.last_tone_seq = e.seq
            elif isinstance(e, InputReceived):
                self.reported.append(e.event)
                self.last_press_seq = e.seq

    def exchange(self) -> None:
        now = self.now
        while True:
            a = self.host.data_to_send(now=now)
            if a:
                self.observe(self.mcu.receive_data(a, now))
            b = self.mcu.data_to_send(now=now)
            if b:
                self.observe(self.host.receive_data(b, now))
            if not a and not b:
                return

    def advance_to(self, now: float) -> None:
        self.now = max(now, self.now)
        for proto in (self.host, self.mcu):
            deadline = proto.next_deadline()
            if deadline is not None and deadline <= self.now:
                self.observe(proto.handle_timeout(self.now))
        self.exchange()
        assert self.mcu.figurine == self.host.desired, "a command was not applied"

    def idle(self) -> None:
        """Let time run to the next timer: one heartbeat moves a counter by one."""
        deadlines = [d for d in (self.host.next_deadline(), self.mcu.next_deadline()) if d]
        self.advance_to(min(deadlines))

    # -- the seq each side gives its next frame ---------------------------------------------
    def next_seq(self, proto: HostProtocol | McuProtocol) -> int:
        assert proto.counters.retransmits == 0
        return proto.counters.frames_out & 0xFFFF

    @staticmethod
    def distance(target: int | None, seq: int) -> int | None:
        return None if target is None else (target - seq) & 0xFFFF

    # -- the application -------------------------------------------------------------------
    def tone(self) -> None:
        assert self.host.slot_phase(Slot.TONE) == "clean"
        tone = Tone(200 + len(self.tones_requested) % 19000, 50)  # told apart by frequency
        self.tones_requested.append(tone)
        self.host.command(tone, self.now)

    def press(self) -> None:
        event = self.mcu.send_input(
            self.rng.choice(list(InputKind)), self.now, duration_ms=len(self.pressed) % 65536
        )
        self.pressed.append(event)

    def churn(self) -> None:
        rng, host = self.rng, self.host
        host.set_glow(rng.randrange(256), rng.randrange(256), rng.randrange(256))
        host.set_brightness(rng.random())
        host.set_pose(rng.random())
        if rng.random() < 0.05:
            host.show_text(rng.choice(["focus", "break?", ""]), rng.choice(list(Face)))
        # the last random tone / press before the quiet part is what the next wrap aims at
        host_frames, mcu_frames = host.counters.frames_out, self.mcu.counters.frames_out
        if host_frames - self.tone_phase_start < RANDOM_SPAN and rng.random() < 0.01:
            self.tone()
        if mcu_frames - self.press_phase_start < RANDOM_SPAN and rng.random() < 0.01:
            self.press()

    def step(self) -> None:
        tone_gap = self.distance(self.last_tone_seq, self.next_seq(self.host))
        press_gap = self.distance(self.last_press_seq, self.next_seq(self.mcu))
        if tone_gap == 0:  # the host's next frame takes the seq of the last tone played
            self.tone()
            self.aimed_tones += 1
            self.tone_phase_start = self.host.counters.frames_out
            self.advance_to(self.now + 0.001)
        elif press_gap == 0:  # the MCU's next frame takes the seq of the last press reported
            self.press()
            self.aimed_presses += 1
            self.press_phase_start = self.mcu.counters.frames_out
            self.advance_to(self.now + 0.001)
        elif (tone_gap is not None and tone_gap < NEAR) or (
            press_gap is not None and press_gap < NEAR
        ):
            self.idle()
        else:
            self.churn()
            self.advance_to(round(self.now + 0.01, 6))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [20260701])
def test_no_command_or_press_is_lost_across_three_wraps(seed: int) -> None:
    bench = Bench(seed)
    bench.tone()  # a first tone and press to aim at
    bench.press()
    bench.advance_to(0.01)
    target = WRAPS * 0x10000 + 1000
    while (
        min(bench.host.counters.frames_out, bench.mcu.counters.frames_out) < target
        or min(bench.aimed_tones, bench.aimed_presses) < WRAPS
    ):
        bench.step()
    assert bench.host.connected and bench.mcu.in_session
    assert bench.aimed_tones >= WRAPS and bench.aimed_presses >= WRAPS
    assert bench.tones_played == bench.tones_requested
    assert bench.reported == bench.pressed
    assert bench.host.counters.retransmits == bench.mcu.counters.retransmits == 0
