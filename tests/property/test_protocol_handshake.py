"""The start-up race of PROTOCOL.md §5.1, driven by Hypothesis: the MCU boots (BOOT maybe lost),
presses are made around the handshake, the host opens its port a little later, HELLO_REPLYs are
lost, a tone is requested before the link is up and its ACK may be lost, and every frame takes
the same latency on the way (each direction in order, as on a serial line), so the host's
repeated HELLOs cross the MCU's replies and input events.

Whatever the order, the host's repeated HELLOs are one session on the MCU: each press is
reported exactly once and the tone chirps at most once (once if it was acknowledged). The
latency stays within what the RTO is made for (§6.2: the RTO exceeds the round trip), so no input
is retransmitted only because its ACK is still on the way.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.core.framing import FrameDecoder, encode_frame
from firmware_bridge.core.messages import Ack, Boot, HelloReply, InputKind, Tone, decode_packet
from firmware_bridge.core.protocol import (
    Acked,
    Event,
    HostProtocol,
    InputReceived,
    McuProtocol,
    Slot,
)

TICK = 0.01


class Line:
    """One direction: frames arrive ``latency`` s after they were sent; ``lose`` picks frames."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.queue: list[tuple[float, bytes]] = []
        self.lose: dict[type, int] = {}  # message type -> how many of the next ones are lost

    def send(self, data: bytes, now: float) -> None:
        kept = b""
        for payload in FrameDecoder().feed(data):
            kind = type(decode_packet(payload).msg)
            if self.lose.get(kind, 0) > 0:
                self.lose[kind] -= 1
                continue
            kept += encode_frame(payload)
        if kept:
            self.queue.append((round(now + self.latency, 6), kept))

    def arrived(self, now: float) -> bytes:
        out = b""
        while self.queue and self.queue[0][0] <= now:
            out += self.queue.pop(0)[1]
        return out


@settings(max_examples=120, deadline=None)
@given(
    latency=st.integers(0, 10),
    host_opens=st.integers(0, 30),
    presses=st.lists(st.integers(0, 80), min_size=1, max_size=3),
    lost_replies=st.integers(0, 3),
    lose_boot=st.booleans(),
    tone=st.booleans(),
    lose_tone_ack=st.booleans(),
)
def test_repeated_hellos_around_start_up_report_each_press_once_and_chirp_once(
    latency: int,
    host_opens: int,
    presses: list[int],
    lost_replies: int,
    lose_boot: bool,
    tone: bool,
    lose_tone_ack: bool,
) -> None:
    host, mcu = HostProtocol(), McuProtocol()
    to_mcu, to_host = Line(latency * TICK), Line(latency * TICK)
    to_host.lose = {HelloReply: lost_replies, Boot: int(lose_boot)}
    host_events: list[Event] = []
    mcu.reset(0.0)
    made = []
    for tick in range(800):  # 8 s of fake time
        now = round(tick * TICK, 6)
        if tick == host_opens:
            if tone:
                host.tone(880, 0.1, now=now)
            host_events += host.reset(now)
        made += [mcu.send_input(InputKind.SHORT_PRESS, now) for at in presses if at == tick]
        for proto, events in ((host, host_events), (mcu, [])):
            deadline = proto.next_deadline()
            if deadline is not None and deadline <= now:
                events += proto.handle_timeout(now)
        mcu.receive_data(to_mcu.arrived(now), now)
        host_events += host.receive_data(to_host.arrived(now), now)
        if host.connected and lose_tone_ack:
            to_host.lose[Ack] = 1  # the next ACK from the MCU: the tone's, sent first
            lose_tone_ack = False
        if tick >= host_opens:
            to_mcu.send(host.data_to_send(now=now), now)
        to_host.send(mcu.data_to_send(now=now), now)

    assert host.in_sync
    assert [e.event for e in host_events if isinstance(e, InputReceived)] == made
    assert mcu.counters.sessions == 1
    assert len(mcu.tones) <= 1  # a one-shot may expire unsent (§6.2), never plays twice
    if any(isinstance(e, Acked) and e.slot is Slot.TONE for e in host_events):
        assert mcu.tones == [Tone(880, 100, 128)]
