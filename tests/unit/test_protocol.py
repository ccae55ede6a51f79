"""Unit tests of the host and MCU protocol machines, wired back to back with fake time."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from firmware_bridge.core.errors import BaudRateError, MessageError, ProtocolStateError
from firmware_bridge.core.framing import FrameDecoder, encode_frame
from firmware_bridge.core.messages import (
    Ack,
    Animation,
    Boot,
    Capabilities,
    Face,
    Flag,
    Heartbeat,
    Hello,
    HelloReply,
    InputEvent,
    InputKind,
    LogLevel,
    Message,
    MsgType,
    Nack,
    NackReason,
    Role,
    SetGlow,
    SetPose,
    ShowText,
    Status,
    Tone,
    decode_packet,
    encode_message,
)
from firmware_bridge.core.protocol import (
    HOST_TRANSITIONS,
    MAX_CONTROL,
    MAX_INPUTS,
    MCU_TRANSITIONS,
    SLEEPY_IDLE,
    Acked,
    CommandReceived,
    Connected,
    Disconnected,
    Event,
    HostProtocol,
    HostState,
    HostTrigger,
    Incompatible,
    InputDelivered,
    InputReceived,
    LogReceived,
    McuProtocol,
    McuState,
    Nacked,
    SessionEnded,
    SessionStarted,
    Slot,
    StateMachine,
    StatusReceived,
    Timing,
)

Filter = Callable[[Message], bool]


def frames(data: bytes) -> list[Message]:
    return [decode_packet(p).msg for p in FrameDecoder().feed(data)]


class Wire:
    """Host and MCU back to back; ``drop_to_mcu`` / ``drop_to_host`` decide per message."""

    def __init__(self, host: HostProtocol | None = None, mcu: McuProtocol | None = None) -> None:
        self.host = host or HostProtocol()
        self.mcu = mcu or McuProtocol()
        self.now = 0.0
        self.drop_to_mcu: Filter = lambda m: False
        self.drop_to_host: Filter = lambda m: False
        self.host_events: list[Event] = []
        self.mcu_events: list[Event] = []
        self.sent_to_mcu: list[Message] = []
        self.sent_to_host: list[Message] = []
        self.timed_to_mcu: list[tuple[float, Message]] = []

    def start(self) -> None:
        self.mcu.reset(self.now)
        self.host_events += self.host.reset(self.now)

    def _filter(self, data: bytes, drop: Filter, log: list[Message]) -> bytes:
        out = b""
        for payload in FrameDecoder().feed(data):
            msg = decode_packet(payload).msg
            log.append(msg)
            if log is self.sent_to_mcu:
                self.timed_to_mcu.append((self.now, msg))
            if not drop(msg):
                out += encode_frame(payload)
        return out

    def step(self, dt: float = 0.01) -> None:
        self.now = round(self.now + dt, 6)
        for proto, events in ((self.host, self.host_events), (self.mcu, self.mcu_events)):
            deadline = proto.next_deadline()
            if deadline is not None and deadline <= self.now:
                events += proto.handle_timeout(self.now)
        a = self._filter(self.host.data_to_send(now=self.now), self.drop_to_mcu, self.sent_to_mcu)
        self.mcu_events += self.mcu.receive_data(a, self.now)
        b = self._filter(self.mcu.data_to_send(now=self.now), self.drop_to_host, self.sent_to_host)
        self.host_events += self.host.receive_data(b, self.now)

    def run(self, seconds: float, dt: float = 0.01) -> None:
        for _ in range(round(seconds / dt)):
            self.step(dt)

    def run_until(self, cond: Callable[[], bool], limit: float = 10.0) -> float:
        start = self.now
        while not cond():
            assert self.now - start < limit, f"condition not met within {limit} s"
            self.step()
        return self.now - start


def connected_wire(**kw: object) -> Wire:
    w = Wire(**kw)  # type: ignore[arg-type]
    w.start()
    w.run_until(lambda: w.host.connected)
    return w


# --------------------------------------------------------------------------- handshake


def test_handshake_reports_capabilities_and_firmware() -> None:
    caps = Capabilities(led_count=24, servo=False, display_w=0, display_h=0, buzzer=True)
    w = Wire(mcu=McuProtocol(caps, fw_version=(2, 5, 1)))
    w.start()
    w.run_until(lambda: w.host.connected)
    (connected,) = [e for e in w.host_events if isinstance(e, Connected)]
    assert connected == Connected(caps, (2, 5, 1), 1)
    assert w.mcu.state is McuState.SESSION
    assert any(isinstance(e, SessionStarted) for e in w.mcu_events)


def test_version_mismatch_is_reported_and_nothing_is_commanded() -> None:
    w = Wire(host=HostProtocol(proto_min=2, proto_max=3))
    w.host.set_glow(255, 0, 0)
    w.start()
    w.run(1.0)
    incompatible = [e for e in w.host_events if isinstance(e, Incompatible)]
    assert incompatible == [Incompatible(1, 1, 2, 3, (1, 0, 0))]
    assert w.host.state is HostState.INCOMPATIBLE
    assert w.mcu.state is McuState.NO_SESSION
    assert not [m for m in w.sent_to_mcu if isinstance(m, SetGlow)]
    hellos = len([m for m in w.sent_to_mcu if isinstance(m, Hello)])
    w.run(5.0)  # asks again every 5 s (the firmware may be re-flashed), reports only once
    assert len([m for m in w.sent_to_mcu if isinstance(m, Hello)]) == hellos + 1
    assert len([e for e in w.host_events if isinstance(e, Incompatible)]) == 1


def test_a_reply_to_another_hello_is_ignored() -> None:
    host = HostProtocol()
    host.reset(0.0)
    (hello,) = [decode_packet(p) for p in FrameDecoder().feed(host.data_to_send(now=0.0))]
    stale = HelloReply(reply_to=(hello.seq + 5) & 0xFFFF)
    assert host.receive_data(encode_frame(encode_message(stale, 0, sender=Role.MCU)), 0.1) == []
    assert host.state is HostState.HANDSHAKING and host.counters.unexpected == 1


def test_a_boot_while_handshaking_repeats_the_hello_at_once() -> None:
    host = HostProtocol()
    host.reset(0.0)
    (hello,) = [decode_packet(p) for p in FrameDecoder().feed(host.data_to_send(now=0.0))]
    assert not host.wants_write  # the next try would be 0.25 s later
    host.receive_data(encode_frame(encode_message(Boot(), 0, sender=Role.MCU)), 0.05)
    assert host.wants_write
    (again,) = [decode_packet(p) for p in FrameDecoder().feed(host.data_to_send(now=0.05))]
    assert (again.msg, again.seq, Flag.RETX in again.flags) == (hello.msg, hello.seq, True)


def test_a_restarted_host_is_not_mistaken_for_duplicates() -> None:
    # a new host process counts from 0 again: its HELLO must clear the MCU's duplicate window
    mcu = McuProtocol()
    mcu.reset(0.0)
    for now, glow in ((0.0, SetGlow(1, 1, 1)), (1.0, SetGlow(2, 2, 2))):
        mcu.receive_data(encode_frame(encode_message(Hello(), 0)), now)
        mcu.receive_data(encode_frame(encode_message(glow, 1)), now)
        assert frames(mcu.data_to_send(now=now))[-1] == Ack(1)
        assert mcu.figurine.glow == glow


class LaggyWire(Wire):
    """Like :class:`Wire`, but every frame arrives ``latency`` s after it was sent (each direction
    in order, as on a serial line): frames of the two sides cross on the way."""

    def __init__(self, latency: float, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.latency = latency
        self._to_mcu: list[tuple[float, bytes]] = []
        self._to_host: list[tuple[float, bytes]] = []

    def step(self, dt: float = 0.01) -> None:
        self.now = round(self.now + dt, 6)
        for proto, events in ((self.host, self.host_events), (self.mcu, self.mcu_events)):
            deadline = proto.next_deadline()
            if deadline is not None and deadline <= self.now:
                events += proto.handle_timeout(self.now)
        while self._to_mcu and self._to_mcu[0][0] <= self.now:
            self.mcu_events += self.mcu.receive_data(self._to_mcu.pop(0)[1], self.now)
        while self._to_host and self._to_host[0][0] <= self.now:
            self.host_events += self.host.receive_data(self._to_host.pop(0)[1], self.now)
        a = self._filter(self.host.data_to_send(now=self.now), self.drop_to_mcu, self.sent_to_mcu)
        b = self._filter(self.mcu.data_to_send(now=self.now), self.drop_to_host, self.sent_to_host)
        arrive = round(self.now + self.latency, 6)
        if a:
            self._to_mcu.append((arrive, a))
        if b:
            self._to_host.append((arrive, b))


def drop_first(kind: type[Message]) -> Filter:
    """A filter losing the first frame of type ``kind`` only."""
    lost: list[Message] = []

    def drop(m: Message) -> bool:
        if isinstance(m, kind) and not lost:
            lost.append(m)
            return True
        return False

    return drop


def test_a_repeated_hello_does_not_report_a_pending_press_twice() -> None:
    # PROTOCOL.md §5.1: the MCU boots with a press waiting for a host; the host's HELLO gets a
    # HELLO_REPLY that is lost, and the host repeats its HELLO (at once for the BOOT it sees,
    # then on its retry timer) while the press is on its way to it. The repeat used to start a
    # new session on the MCU, which sent the press again under a fresh seq after the host had
    # reported and acknowledged it: the press was reported twice.
    w = LaggyWire(latency=0.15)
    w.mcu.reset(0.0)
    press = w.mcu.send_input(InputKind.SHORT_PRESS, 0.0, duration_ms=90)
    w.host.tone(880, 0.1, now=0.0)  # requested before the link is up, sent after the handshake
    w.host_events += w.host.reset(0.0)
    w.drop_to_host = drop_first(HelloReply)
    tone_acks = drop_first(Ack)  # the TONE's first ACK is lost: the host retransmits it
    w.run_until(lambda: w.host.connected)
    w.drop_to_host = tone_acks
    w.run(3.0)
    hellos = [m for m in w.sent_to_mcu if isinstance(m, Hello)]
    assert len(hellos) >= 2  # the HELLO was repeated (RETX, same seq) ...
    assert sum(isinstance(m, HelloReply) for m in w.sent_to_host) == len(hellos)  # ... answered
    assert [e.event for e in w.host_events if isinstance(e, InputReceived)] == [press]
    assert sum(isinstance(e, SessionStarted) for e in w.mcu_events) == 1
    assert w.mcu.counters.sessions == 1
    # the tone went out after the handshake, was retransmitted, and chirped once
    assert [m for m in w.sent_to_mcu if isinstance(m, Tone)] == [Tone(880, 100, 128)] * 2
    assert w.mcu.tones == [Tone(880, 100, 128)]
    assert w.host.in_sync and not w.mcu._inputs


def test_a_repeated_hello_is_answered_again_and_changes_nothing_else() -> None:
    mcu = mcu_in_session(heartbeat_ms=500)  # greeted by HELLO seq 0
    event = mcu.send_input(InputKind.LONG_PRESS, 0.1, duration_ms=800)
    (first,) = [decode_packet(p) for p in FrameDecoder().feed(mcu.data_to_send(now=0.1))]
    repeat = encode_frame(encode_message(Hello(heartbeat_ms=500), 0, retransmit=True))
    assert mcu.receive_data(repeat, 0.2) == []  # no SessionStarted
    (reply,) = frames(mcu.data_to_send(now=0.2))  # the input is not sent again
    assert reply == HelloReply(0, 1, 1, 1, (1, 0, 0), mcu.capabilities)
    assert mcu.counters.sessions == 1 and mcu.counters.duplicates == 1
    # the press keeps its seq and its retransmission timer (sent at 0.1, RTO 0.3 s)
    assert mcu.next_deadline() == pytest.approx(0.4)
    mcu.handle_timeout(0.4)
    (again,) = [decode_packet(p) for p in FrameDecoder().feed(mcu.data_to_send(now=0.4))]
    assert (again.msg, again.seq, Flag.RETX in again.flags) == (event, first.seq, True)
    ack = encode_frame(encode_message(Ack(first.seq), 1, sender=Role.HOST))
    assert mcu.receive_data(ack, 0.45) == [InputDelivered(first.seq)]


@pytest.mark.parametrize(
    ("seq", "retransmit"),
    [(0, False), (1, True)],  # RETX clear (a restarted host), another seq (a new handshake)
)
def test_a_hello_that_is_not_a_repeat_starts_a_new_session(seq: int, retransmit: bool) -> None:
    mcu = mcu_in_session()  # greeted by HELLO seq 0
    mcu.send_input(InputKind.SHORT_PRESS, 0.1)
    (first,) = [decode_packet(p) for p in FrameDecoder().feed(mcu.data_to_send(now=0.1))]
    hello = encode_frame(encode_message(Hello(), seq, retransmit=retransmit))
    assert mcu.receive_data(hello, 0.2) == [SessionStarted(1.0, 1)]
    reply, again = [decode_packet(p) for p in FrameDecoder().feed(mcu.data_to_send(now=0.2))]
    assert isinstance(reply.msg, HelloReply) and isinstance(again.msg, InputEvent)
    assert again.seq != first.seq and mcu.counters.sessions == 2


def test_a_restarted_host_whose_first_hello_was_lost_starts_a_new_session() -> None:
    # PROTOCOL.md §5.1 condition 4: a host program counts from 0, so the retransmission of its
    # lost first HELLO has the seq (0) of the HELLO that started the old program's session. The
    # old program had executed commands: a host still waiting for its HELLO_REPLY never sends
    # one, so this cannot be a repeat, and the new program's glow (seq 1, like the old one's)
    # must be executed, not taken for a retransmission of the old one
    mcu = mcu_in_session()
    mcu.receive_data(encode_frame(encode_message(SetGlow(1, 1, 1), 1)), 0.5)
    assert mcu.figurine.glow == SetGlow(1, 1, 1)
    retx = encode_frame(encode_message(Hello(), 0, retransmit=True))
    assert mcu.receive_data(retx, 1.0) == [SessionStarted(1.0, 1)]
    events = mcu.receive_data(encode_frame(encode_message(SetGlow(2, 2, 2), 1)), 1.0)
    assert events == [CommandReceived(SetGlow(2, 2, 2), 1)]
    assert mcu.figurine.glow == SetGlow(2, 2, 2)


def test_the_mcu_adopts_the_heartbeat_the_host_announces() -> None:
    mcu = McuProtocol()  # its own default would be 1 s
    mcu.reset(0.0)
    events = mcu.receive_data(encode_frame(encode_message(Hello(heartbeat_ms=200), 0)), 0.0)
    assert events == [SessionStarted(0.2, 1)]
    mcu.data_to_send(now=0.0)
    assert mcu.next_deadline() == pytest.approx(0.2)  # its own heartbeat
    mcu.handle_timeout(0.2)
    assert frames(mcu.data_to_send(now=0.2)) == [Heartbeat()]
    assert mcu.handle_timeout(0.71) == [SessionEnded("no frame from the host for 0.7 s")]


def test_reflashed_mcu_is_accepted_on_the_next_hello() -> None:
    w = Wire(host=HostProtocol(proto_min=2, proto_max=3))
    w.host.set_glow(1, 2, 3)
    w.start()
    w.run(0.5)
    w.mcu = McuProtocol(proto_min=1, proto_max=2)  # new firmware, same port
    w.mcu.reset(w.now)
    w.run_until(lambda: w.host.in_sync, limit=6.0)
    assert w.host.protocol_version == 2
    assert w.mcu.figurine.glow == SetGlow(1, 2, 3)


def test_hello_is_retried_with_backoff_until_answered() -> None:
    w = Wire()
    w.drop_to_host = lambda m: True  # the MCU's replies never arrive
    w.start()
    w.run(6.0)
    times = []
    h = HostProtocol()
    h.reset(0.0)
    now = 0.0
    while now < 6.0:
        if h.data_to_send(now=now):
            times.append(round(now, 2))
        now = h.next_deadline() or now
        h.handle_timeout(now)
    assert times[:6] == [0.0, 0.25, 0.75, 1.75, 3.75, 5.75]
    retx = [m for m in w.sent_to_mcu if isinstance(m, Hello)]
    assert len(retx) == 6
    assert w.host.counters.retransmits == 5


# --------------------------------------------------------------------------- supersede


def test_newer_state_supersedes_older_unacknowledged_state() -> None:
    w = connected_wire()
    w.drop_to_host = lambda m: isinstance(m, Ack)  # hold every glow unacknowledged
    w.host.set_glow(255, 0, 0)
    w.step()
    w.host.set_glow(0, 255, 0)
    w.step()
    w.drop_to_host = lambda m: False
    w.run_until(lambda: w.host.in_sync)
    glows = [m for m in w.sent_to_mcu if isinstance(m, SetGlow)]
    assert glows[:2] == [SetGlow(255, 0, 0), SetGlow(0, 255, 0)]
    assert all(g == SetGlow(0, 255, 0) for g in glows[1:]), "superseded value was retransmitted"
    assert w.mcu.figurine.glow == SetGlow(0, 255, 0)
    assert w.host.counters.superseded == 1


def test_a_late_ack_for_a_superseded_value_does_not_clean_the_slot() -> None:
    w = connected_wire()
    w.drop_to_host = lambda m: isinstance(m, Ack)
    w.host.set_glow(255, 0, 0)
    w.step()  # red is executed; its ACK is held up
    (red,) = [e for e in w.mcu_events if isinstance(e, CommandReceived)]
    w.drop_to_mcu = lambda m: isinstance(m, SetGlow)
    w.host.set_glow(0, 255, 0)
    w.step()  # green is sent and lost
    late = encode_frame(encode_message(Ack(red.seq), 900, sender=Role.MCU))
    assert w.host.receive_data(late, w.now) == []
    assert w.host.slot_phase(Slot.GLOW) == "in_flight"  # still waiting for green's ACK
    w.drop_to_host = w.drop_to_mcu = lambda m: False
    w.run_until(lambda: w.host.in_sync)
    assert w.mcu.figurine.glow == SetGlow(0, 255, 0)


def test_a_slow_link_coalesces_instead_of_queueing() -> None:
    w = connected_wire()
    for i in range(1000):
        w.host.set_glow(i % 256, 0, 0)
        w.host.set_pose(i / 999)
        assert w.host.data_to_send(0, now=w.now) == b""  # the link takes nothing now
    out = frames(w.host.data_to_send(now=w.now))
    assert out == [SetGlow(999 % 256, 0, 0), SetPose(255)]


def test_a_frame_is_never_split_by_the_budget() -> None:
    w = connected_wire()
    w.host.show_text("x" * 100, Face.HAPPY)
    w.host.set_glow(1, 1, 1)
    assert frames(w.host.data_to_send(30, now=w.now)) == [SetGlow(1, 1, 1)]
    assert w.host.data_to_send(50, now=w.now) == b""  # the text frame does not fit: nothing
    assert frames(w.host.data_to_send(None, now=w.now)) == [ShowText(Face.HAPPY, "x" * 100)]


def test_slot_order_and_one_frame_per_slot() -> None:
    w = connected_wire()
    w.host.tone(880, 0.1)
    w.host.show_text("hi")
    w.host.set_pose(0.5)
    w.host.set_glow(1, 2, 3)
    w.host.set_brightness(0.5)
    w.host.sleep(False)
    w.host.play_animation(Animation.WAVE)
    kinds = [type(m).__name__ for m in frames(w.host.data_to_send(now=w.now))]
    assert kinds == [
        "Sleep",
        "SetBrightness",
        "SetGlow",
        "SetPose",
        "ShowText",
        "PlayAnimation",
        "Tone",
    ]


# --------------------------------------------------------------------------- ack / retransmit


def test_lost_ack_leads_to_retransmit_with_same_seq_and_no_second_chirp() -> None:
    w = connected_wire()
    lost = {"n": 0}

    def lose_first_ack(m: Message) -> bool:
        if isinstance(m, Ack) and lost["n"] == 0:
            lost["n"] += 1
            return True
        return False

    w.drop_to_host = lose_first_ack
    w.host.tone(880, 0.1)
    w.run_until(lambda: w.host.in_sync)
    tones = [m for m in w.sent_to_mcu if isinstance(m, Tone)]
    assert len(tones) == 2  # original + one retransmission
    assert w.mcu.tones == [Tone(880, 100, 128)]  # played once
    assert w.mcu.counters.duplicates == 1
    assert w.host.counters.retransmits == 1


def test_a_retransmitted_tone_is_not_played_again_after_many_other_commands() -> None:
    # the 32-entry window has long forgotten seq 5; the last seq per type still knows it
    mcu = McuProtocol()
    mcu.reset(0.0)
    mcu.receive_data(encode_frame(encode_message(Hello(), 0)), 0.0)
    tone = encode_frame(encode_message(Tone(880, 100), 5))
    mcu.receive_data(tone, 0.1)
    for seq in range(6, 46):
        mcu.receive_data(encode_frame(encode_message(SetGlow(seq, 0, 0), seq)), 0.1)
    mcu.data_to_send(now=0.1)
    retx = encode_frame(encode_message(Tone(880, 100), 5, retransmit=True))
    assert mcu.receive_data(retx, 0.2) == []
    assert frames(mcu.data_to_send(now=0.2)) == [Ack(5)]
    assert mcu.tones == [Tone(880, 100)]


def test_retransmission_timeout_doubles_up_to_the_cap() -> None:
    w = connected_wire()
    w.drop_to_mcu = lambda m: isinstance(m, SetGlow)
    w.host.set_glow(9, 9, 9)
    w.run(7.0)
    times = [t for t, m in w.timed_to_mcu if isinstance(m, SetGlow)]
    gaps = [round(b - a, 2) for a, b in itertools.pairwise(times)]
    assert gaps == pytest.approx([0.3, 0.6, 1.2, 2.0, 2.0], abs=0.02)
    assert w.host.connected  # the MCU's heartbeats keep the link alive meanwhile


def test_nack_unsupported_marks_the_slot_clean_and_reports_it() -> None:
    caps = Capabilities(servo=False)
    w = connected_wire(mcu=McuProtocol(caps))
    w.host.set_pose(0.7)
    w.run(3.0)
    nacked = [e for e in w.host_events if isinstance(e, Nacked)]
    assert len(nacked) == 1
    assert (nacked[0].slot, nacked[0].reason) == (Slot.POSE, NackReason.UNSUPPORTED)
    assert len([m for m in w.sent_to_mcu if isinstance(m, SetPose)]) == 1, "retried after NACK"
    assert w.host.slot_phase(Slot.POSE) == "clean"


def test_nack_busy_is_retried() -> None:
    w = connected_wire()
    host = w.host
    host.set_glow(1, 2, 3)
    (glow,) = FrameDecoder().feed(host.data_to_send(now=w.now))
    seq = decode_packet(glow).seq
    nack = encode_frame(encode_message(Nack(seq, NackReason.BUSY), 50, sender=Role.MCU))
    events = host.receive_data(nack, w.now)
    assert events == [Nacked(seq, Slot.GLOW, NackReason.BUSY)]
    deadline = host.next_deadline()
    assert deadline is not None and deadline == pytest.approx(w.now + 0.3)
    host.handle_timeout(deadline)
    (again,) = FrameDecoder().feed(host.data_to_send(now=deadline))
    packet = decode_packet(again)
    assert (packet.seq, packet.msg, Flag.RETX in packet.flags) == (seq, SetGlow(1, 2, 3), True)


def test_mcu_nacks_bad_frames_with_the_right_reason() -> None:
    mcu = McuProtocol()
    mcu.reset(0.0)
    mcu.data_to_send(now=0.0)  # BOOT
    mcu.receive_data(encode_frame(encode_message(Hello(), 1)), 0.0)
    assert isinstance(frames(mcu.data_to_send(now=0.0))[0], HelloReply)
    cases = [
        (bytes([0x3E, Flag.ACK_REQ, 2, 0]), NackReason.UNKNOWN_TYPE),
        (bytes([MsgType.SET_GLOW, Flag.ACK_REQ, 3, 0, 1, 2]), NackReason.BAD_LENGTH),
        (bytes([MsgType.SHOW_TEXT, Flag.ACK_REQ, 4, 0, 42, 0, 0, 0]), NackReason.BAD_VALUE),
    ]
    for payload, reason in cases:
        mcu.receive_data(encode_frame(payload), 0.1)
        assert frames(mcu.data_to_send(now=0.1)) == [Nack(payload[2], reason)]
    # unknown type without ACK_REQ is ignored silently (forward compatibility)
    mcu.receive_data(encode_frame(bytes([0x3E, 0, 5, 0])), 0.1)
    assert mcu.data_to_send(now=0.1) == b""


def test_text_longer_than_the_display_takes_is_refused() -> None:
    w = connected_wire(mcu=McuProtocol(Capabilities(max_text=10)))
    w.host.show_text("this is far too long", Face.HAPPY)
    w.run(0.5)
    assert [e.reason for e in w.host_events if isinstance(e, Nacked)] == [NackReason.BAD_VALUE]
    assert w.mcu.figurine.text == ShowText()


# --------------------------------------------------------------------------- heartbeats, dead link


def test_idle_link_exchanges_heartbeats_both_ways() -> None:
    w = connected_wire()
    before_h, before_m = w.host.counters.heartbeats_out, w.mcu.counters.heartbeats_out
    w.run(5.0)
    assert w.host.counters.heartbeats_out - before_h in (4, 5, 6)
    assert w.mcu.counters.heartbeats_out - before_m in (4, 5, 6)
    assert w.host.connected and w.mcu.in_session


def test_dead_link_detected_after_three_and_a_half_heartbeats() -> None:
    w = connected_wire()
    w.drop_to_host = lambda m: True
    cut = w.now
    w.run_until(lambda: not w.host.connected, limit=5.0)
    assert w.now - cut == pytest.approx(3.5, abs=0.02)
    (gone,) = [e for e in w.host_events if isinstance(e, Disconnected)]
    assert "no frame from the MCU" in gone.reason
    assert w.host.state is HostState.HANDSHAKING


def test_mcu_falls_back_to_sleepy_idle_when_the_host_goes_silent() -> None:
    w = connected_wire()
    w.host.set_glow(255, 0, 0)
    w.run_until(lambda: w.host.in_sync)
    w.drop_to_mcu = lambda m: True
    w.run(3.6)
    assert w.mcu.state is McuState.NO_SESSION
    assert any(isinstance(e, SessionEnded) for e in w.mcu_events)
    assert w.mcu.visible == SLEEPY_IDLE
    assert w.mcu.figurine.glow == SetGlow(255, 0, 0)  # kept, not shown
    w.drop_to_mcu = lambda m: False
    w.run_until(lambda: w.host.in_sync and w.mcu.in_session, limit=5.0)
    assert w.mcu.visible.glow == SetGlow(255, 0, 0)


def test_next_deadline_is_exact_for_heartbeat_and_dead_link() -> None:
    host = HostProtocol(Timing(heartbeat_s=2.0))
    host.reset(10.0)
    assert host.next_deadline() is None  # HELLO due now: a write, not a timer
    assert host.wants_write
    host.data_to_send(now=10.0)
    assert host.next_deadline() == pytest.approx(10.25)
    reply = HelloReply(reply_to=0)
    host.receive_data(encode_frame(encode_message(reply, 0, sender=Role.MCU)), 10.1)
    assert host.connected
    # heartbeat 2 s after the last frame sent (10.0), dead link 7 s after the last one received
    assert host.next_deadline() == pytest.approx(12.0)
    host.handle_timeout(12.0)
    assert frames(host.data_to_send(now=12.0))[0].__class__.__name__ == "Heartbeat"
    assert host.next_deadline() == pytest.approx(14.0)
    host.handle_timeout(14.0)
    host.data_to_send(now=14.0)
    assert host.next_deadline() == pytest.approx(16.0)
    host.handle_timeout(16.0)
    host.data_to_send(now=16.0)
    assert host.next_deadline() == pytest.approx(17.1)
    assert host.handle_timeout(17.1) == [Disconnected("no frame from the MCU for 7.0 s")]


# --------------------------------------------------------------------------- resets


def test_mcu_reset_with_boot_lost_is_noticed_and_state_resent() -> None:
    w = connected_wire()
    w.host.set_glow(10, 20, 30)
    w.host.show_text("focus", Face.FOCUSED)
    w.run_until(lambda: w.host.in_sync)
    resets = w.host.counters.peer_resets
    w.mcu.reset(w.now)
    w.mcu.data_to_send(now=w.now)  # BOOT lost
    took = w.run_until(
        lambda: w.host.in_sync and w.mcu.in_session and w.mcu.figurine == w.host.desired
    )
    assert took <= 1.2  # at most one heartbeat interval plus a few round trips
    assert w.host.counters.peer_resets == resets + 1
    assert w.mcu.figurine.text == ShowText(Face.FOCUSED, "focus")


def test_mcu_reset_with_boot_received_resyncs_at_once() -> None:
    w = connected_wire()
    w.host.set_brightness(0.25)
    w.run_until(lambda: w.host.in_sync)
    w.run(0.3)
    w.mcu.reset(w.now)
    took = w.run_until(lambda: w.host.in_sync and w.mcu.figurine == w.host.desired)
    assert took <= 0.1
    reasons = [e.reason for e in w.host_events if isinstance(e, Disconnected)]
    assert reasons == ["MCU reset (power_on)"]


def test_state_set_while_disconnected_is_delivered_on_connect_but_stale_tones_are_not() -> None:
    w = Wire()
    w.host.set_glow(5, 5, 5)
    w.host.tone(440, 0.2, now=0.0)
    w.now = 3.0  # the port opens 3 s later: the chirp is stale
    w.start()
    w.run_until(lambda: w.host.in_sync)
    assert w.mcu.figurine.glow == SetGlow(5, 5, 5)
    assert w.mcu.tones == []
    assert w.host.counters.oneshots_expired == 1


def test_a_oneshot_sent_before_a_reconnect_is_not_played_again() -> None:
    w = connected_wire()
    w.drop_to_host = lambda m: isinstance(m, Ack)  # the tone plays, but its ACK is lost
    w.host.tone(880, 0.1, now=w.now)
    w.run(0.05)
    assert w.mcu.tones == [Tone(880, 100, 128)]
    w.host_events += w.host.reset(w.now)  # the port is reopened before any retransmission
    w.drop_to_host = lambda m: False
    w.run_until(lambda: w.host.in_sync)
    w.run(1.0)  # retransmission timeouts would have fired by now
    assert w.mcu.tones == [Tone(880, 100, 128)]  # the new session cleared the MCU's window
    assert w.host.slot_phase(Slot.TONE) == "clean"


def test_close_stops_all_traffic_until_reset() -> None:
    w = connected_wire()
    events = w.host.close(w.now)
    assert events == [Disconnected("port closed")]
    w.host.set_glow(1, 1, 1)
    assert w.host.data_to_send(now=w.now + 5) == b""
    assert not w.host.wants_write
    w.host.reset(w.now + 5)
    assert w.host.state is HostState.HANDSHAKING


# --------------------------------------------------------------------------- MCU -> host


def test_input_events_are_delivered_once_despite_lost_acks() -> None:
    w = connected_wire()
    lost = {"n": 0}

    def lose_two_acks(m: Message) -> bool:
        if isinstance(m, Ack) and lost["n"] < 2:
            lost["n"] += 1
            return True
        return False

    w.drop_to_mcu = lose_two_acks
    first = w.mcu.send_input(InputKind.LONG_PRESS, w.now, duration_ms=900)
    second = w.mcu.send_input(InputKind.DOUBLE_PRESS, w.now)
    w.run(2.0)
    got = [e.event for e in w.host_events if isinstance(e, InputReceived)]
    assert got == [first, second]
    assert w.host.counters.duplicates >= 1
    assert first.duration_ms == 900


def mcu_in_session(caps: Capabilities | None = None, heartbeat_ms: int = 1000) -> McuProtocol:
    mcu = McuProtocol(caps)
    mcu.reset(0.0)
    mcu.data_to_send(now=0.0)  # BOOT
    mcu.receive_data(encode_frame(encode_message(Hello(heartbeat_ms=heartbeat_ms), 0)), 0.0)
    mcu.data_to_send(now=0.0)  # HELLO_REPLY
    assert mcu.in_session
    return mcu


def test_unacknowledged_inputs_are_sent_again_with_fresh_seqs_in_a_new_session() -> None:
    mcu = mcu_in_session()
    event = mcu.send_input(InputKind.SHORT_PRESS, 0.1)
    (first,) = [decode_packet(p) for p in FrameDecoder().feed(mcu.data_to_send(now=0.1))]
    assert first.msg == event
    mcu.receive_data(encode_frame(encode_message(Hello(), 1)), 0.2)  # the host reconnects
    again = [decode_packet(p) for p in FrameDecoder().feed(mcu.data_to_send(now=0.2))]
    assert [type(p.msg) for p in again] == [HelloReply, InputEvent]
    assert again[1].msg == event and again[1].seq != first.seq
    assert Flag.RETX not in again[1].flags


def test_an_input_not_acknowledged_within_5_s_is_dropped() -> None:
    mcu = mcu_in_session(heartbeat_ms=10_000)  # no heartbeat or dead link in this window
    mcu.send_input(InputKind.LONG_PRESS, 0.0)
    assert [type(m) for m in frames(mcu.data_to_send(now=0.0))] == [InputEvent]
    deadline = mcu.next_deadline()
    assert deadline is not None and deadline <= 5.0 + 1e-3
    mcu.handle_timeout(5.01)
    assert mcu.counters.inputs_expired == 1
    assert frames(mcu.data_to_send(now=5.01)) == []  # no retransmission of the expired event
    mcu.receive_data(encode_frame(encode_message(Hello(), 1)), 5.1)  # nor in a new session
    assert [type(m) for m in frames(mcu.data_to_send(now=5.1))] == [HelloReply]


def test_the_mcu_keeps_only_the_newest_16_unacknowledged_inputs() -> None:
    mcu = McuProtocol()
    mcu.reset(0.0)
    for i in range(MAX_INPUTS + 4):  # pressed before any host is there
        mcu.send_input(InputKind.SHORT_PRESS, 0.0, duration_ms=i)
    assert mcu.counters.inputs_dropped == 4
    mcu.receive_data(encode_frame(encode_message(Hello(), 0)), 0.1)
    sent = [m for m in frames(mcu.data_to_send(now=0.1)) if isinstance(m, InputEvent)]
    assert [m.duration_ms for m in sent] == list(range(4, MAX_INPUTS + 4))


@pytest.mark.parametrize(
    ("caps", "msg"),
    [
        (Capabilities(servo=False), SetPose(100)),
        (Capabilities(buzzer=False), Tone(880, 100)),
        (Capabilities(display_w=0, display_h=0), ShowText(Face.HAPPY, "hi")),
    ],
)
def test_a_command_the_hardware_cannot_do_is_nacked_unsupported(
    caps: Capabilities, msg: Message
) -> None:
    mcu = mcu_in_session(caps)
    assert mcu.receive_data(encode_frame(encode_message(msg, 7)), 0.1) == []
    assert frames(mcu.data_to_send(now=0.1)) == [Nack(7, NackReason.UNSUPPORTED)]
    assert mcu.figurine == McuProtocol().figurine and mcu.tones == []


def test_a_flood_of_commands_keeps_only_the_newest_answers() -> None:
    mcu = mcu_in_session()
    for seq in range(1, 101):  # nothing is pulled from the MCU meanwhile
        mcu.receive_data(encode_frame(encode_message(SetGlow(seq % 256, 0, 0), seq)), 0.1)
    assert mcu.control_queue_len == MAX_CONTROL
    assert mcu.counters.control_dropped == 100 - MAX_CONTROL
    answers = frames(mcu.data_to_send(now=0.1))
    assert answers == [Ack(seq) for seq in range(101 - MAX_CONTROL, 101)]


def test_the_host_acknowledges_each_input_event() -> None:
    w = connected_wire()
    event = w.mcu.send_input(InputKind.TOUCH, w.now)
    w.run(0.05)
    (received,) = [e for e in w.host_events if isinstance(e, InputReceived)]
    assert received.event == event
    assert Ack(received.seq) in w.sent_to_mcu
    assert InputDelivered(received.seq) in w.mcu_events
    assert w.mcu.counters.retransmits == 0


def test_status_and_logs_reach_the_host() -> None:
    w = connected_wire()
    w.mcu.send_status(Status(1000, melt_now=40))
    w.mcu.send_log("servo calibrated", LogLevel.INFO)
    w.run(0.05)
    assert [e.status for e in w.host_events if isinstance(e, StatusReceived)] == [
        Status(1000, melt_now=40)
    ]
    assert [e.line.text for e in w.host_events if isinstance(e, LogReceived)] == [
        "servo calibrated"
    ]


def test_mcu_without_session_answers_not_ready_and_executes_nothing() -> None:
    mcu = McuProtocol()
    mcu.reset(0.0)
    mcu.data_to_send(now=0.0)
    events = mcu.receive_data(encode_frame(encode_message(SetGlow(9, 9, 9), 7)), 0.1)
    assert events == []
    assert frames(mcu.data_to_send(now=0.1)) == [Nack(7, NackReason.NOT_READY)]
    assert mcu.figurine.glow == SetGlow(0, 0, 0, 0)


def test_an_echoing_line_is_ignored() -> None:
    w = connected_wire()
    w.host.set_glow(1, 2, 3)
    own = w.host.data_to_send(now=w.now)
    assert w.host.receive_data(own, w.now) == []
    assert w.host.counters.wrong_direction == 1


def test_commands_executed_are_reported_with_their_seq() -> None:
    w = connected_wire()
    w.host.show_text("hello", Face.HAPPY, duration_s=2.5)
    w.run_until(lambda: w.host.in_sync)
    (cmd,) = [e for e in w.mcu_events if isinstance(e, CommandReceived)]
    (acked,) = [e for e in w.host_events if isinstance(e, Acked)]
    assert cmd.msg == ShowText(Face.HAPPY, "hello", 2500)
    assert cmd.seq == acked.seq and acked.slot is Slot.TEXT


# --------------------------------------------------------------------------- machinery


def test_state_tables_raise_on_a_missing_transition() -> None:
    m = StateMachine(HOST_TRANSITIONS, HostState.DISCONNECTED)
    with pytest.raises(ProtocolStateError, match="HELLO_OK is not allowed in state DISCONNECTED"):
        m.fire(HostTrigger.HELLO_OK)
    assert m.state is HostState.DISCONNECTED
    # every state is reachable and every target is a known state
    assert {s for (s, _t) in HOST_TRANSITIONS} == set(HostState)
    assert {s for (s, _t) in MCU_TRANSITIONS} == set(McuState)


def test_bad_arguments_say_what_fits() -> None:
    host = HostProtocol()
    with pytest.raises(MessageError, match=r"intensity must be a number from 0.0 to 1.0"):
        host.set_glow(1, 2, 3, intensity=2)
    with pytest.raises(MessageError, match="melt"):
        host.set_pose(-0.1)
    with pytest.raises(MessageError, match="not a host command"):
        host.command(Ack(1))
    for speed in (float("inf"), float("nan")):  # not OverflowError/ValueError from round()
        with pytest.raises(MessageError, match=r"speed must be within 0\.01\.\.2\.55"):
            host.play_animation(Animation.WAVE, speed=speed)
    with pytest.raises(MessageError, match="heartbeat_s"):
        Timing(heartbeat_s=0)


def test_timing_for_slow_links_stretches_the_rto() -> None:
    assert Timing.for_baud(115200).rto_s == 0.3
    slow = Timing.for_baud(9600)
    assert slow.rto_s == pytest.approx(2 * 255 * 10 / 9600 + 0.1, abs=0.001)
    assert slow.rto_max_s >= 4 * slow.rto_s - 1e-9


def test_a_oneshot_is_timed_from_the_first_clock_the_host_sees() -> None:
    # the shell may not pass ``now`` when it sets a tone: the next clock it passes starts the TTL
    w = connected_wire()
    w.run(5.0)  # the host's clock is well past 0 by now
    w.drop_to_mcu = lambda m: isinstance(m, Tone)
    w.host.tone(523, 0.1)  # no now
    w.run(1.9)
    assert w.host.slot_phase(Slot.ANIMATION) == "clean"
    assert w.host.slot_phase(Slot.TONE) != "clean"  # still trying: not expired yet
    w.run(0.3)
    assert w.host.slot_phase(Slot.TONE) == "clean"
    assert w.host.counters.oneshots_expired == 1


# --------------------------------------------------------------------------- PROTOCOL.md decisions


def raw_frame(msg_type: int, flags: int, seq: int, body: bytes = b"") -> bytes:
    return encode_frame(bytes([msg_type, flags]) + seq.to_bytes(2, "little") + body)


def host_connected(now: float = 0.0) -> HostProtocol:
    host = HostProtocol()
    host.reset(now)
    host.data_to_send(now=now)  # HELLO, seq 0
    host.receive_data(encode_frame(encode_message(HelloReply(0), 0, sender=Role.MCU)), now)
    assert host.connected
    return host


@pytest.mark.parametrize("t0", [4095.006, 4095.015, 1_000_000.1, 7.3])
def test_handle_timeout_at_the_named_deadline_always_finds_it_due(t0: float) -> None:
    # at large monotonic times (t0 + 3.5) - t0 < 3.5 in floats: a "now - start >= interval" check
    # missed the deadline next_deadline() named, which then stayed equal to now (a fake-clock
    # driver jumping to the deadline span there for ever, a real one busy-looped)
    host = host_connected(t0)
    host.data_to_send(now=t0)
    now, sent = t0, 0
    for _ in range(50):
        deadline = host.next_deadline()
        assert deadline is not None and deadline > now, f"deadline {deadline!r} at {now!r}"
        now = deadline
        host.handle_timeout(now)
        sent += bool(host.data_to_send(now=now))
    assert sent == 50  # every deadline gave a heartbeat, HELLO or handshake retry
    assert host.counters.dead_links == 1


def test_the_mcu_finds_its_deadlines_due_at_large_times_too() -> None:
    t0 = 4095.006
    mcu = McuProtocol()
    mcu.reset(t0)
    mcu.receive_data(encode_frame(encode_message(Hello(), 0)), t0)
    mcu.data_to_send(now=t0)
    mcu.send_input(InputKind.SHORT_PRESS, t0)
    now = t0
    for _ in range(20):
        deadline = mcu.next_deadline()
        if deadline is None:
            break
        assert deadline > now, f"deadline {deadline!r} at {now!r}"
        now = deadline
        mcu.handle_timeout(now)
        mcu.data_to_send(now=now)
    assert not mcu.in_session and mcu.counters.inputs_expired == 1


def test_an_unknown_nack_reason_is_final() -> None:
    # a newer firmware answers with a reason this host does not know: report it, slot CLEAN;
    # it used to be undecodable, so the slot was retransmitted (and NACKed) for ever
    host = host_connected()
    host.set_glow(1, 2, 3)
    (glow,) = [decode_packet(p) for p in FrameDecoder().feed(host.data_to_send(now=0.1))]
    events = host.receive_data(raw_frame(0x84, 0, 7, glow.seq.to_bytes(2, "little") + b"\x63"), 0.2)
    assert events == [Nacked(glow.seq, Slot.GLOW, 99)]
    assert host.slot_phase(Slot.GLOW) == "clean"
    for now in (1.0, 2.0, 3.0):
        host.receive_data(raw_frame(0x82, 0, 8 + round(now)), now)  # the MCU stays alive
        host.handle_timeout(now)
        assert SetGlow(1, 2, 3) not in frames(host.data_to_send(now=now))
    assert Nack(3, 3) == Nack(3, NackReason.BAD_VALUE)  # a known code is its enum member


def test_a_boot_with_an_unknown_cause_is_still_a_reset() -> None:
    host = host_connected()
    events = host.receive_data(raw_frame(0x88, 0, 0, b"\x2a"), 0.1)
    assert events == [Disconnected("MCU reset (unknown)")]
    assert host.state is HostState.HANDSHAKING


def test_a_log_with_an_unknown_level_is_shown_as_warn() -> None:
    host = host_connected()
    events = host.receive_data(raw_frame(0x92, 0, 1, b"\x09new level"), 0.1)
    assert [(e.line.level, e.line.text) for e in events if isinstance(e, LogReceived)] == [
        (LogLevel.WARN, "new level")
    ]


@pytest.mark.parametrize("flags", [Flag.ACK_REQ, 0])
def test_an_input_of_unknown_kind_is_nacked_bad_value(flags: int) -> None:
    # INPUT_EVENT is an ACK_REQ type: answered whether or not the flag is set (§3)
    host = host_connected()
    body = bytes([77, 0]) + (5).to_bytes(4, "little") + (0).to_bytes(2, "little")
    assert host.receive_data(raw_frame(0x90, flags, 3, body), 0.1) == []
    assert frames(host.data_to_send(now=0.1)) == [Nack(3, NackReason.BAD_VALUE)]


def test_show_text_with_a_bad_face_and_a_short_body_is_bad_length() -> None:
    # lengths are checked before values (§6.1)
    mcu = mcu_in_session()
    mcu.receive_data(
        raw_frame(MsgType.SHOW_TEXT, Flag.ACK_REQ, 4, bytes([42, 0, 0, 5]) + b"ab"), 0.1
    )
    assert frames(mcu.data_to_send(now=0.1)) == [Nack(4, NackReason.BAD_LENGTH)]


@pytest.mark.parametrize(
    ("freq", "ms", "answer"),
    [(0, 0, "ack"), (0, 300, "ack"), (0, 5000, "ack"), (0, 6000, "bad"), (880, 0, "bad"),
     (19, 100, "bad"), (20001, 100, "bad"), (20000, 5000, "ack")],
)  # fmt: skip
def test_tone_ranges_follow_the_doc(freq: int, ms: int, answer: str) -> None:
    mcu = mcu_in_session()
    body = freq.to_bytes(2, "little") + ms.to_bytes(2, "little") + b"\x80"
    mcu.receive_data(raw_frame(MsgType.TONE, Flag.ACK_REQ, 9, body), 0.1)
    expected = Ack(9) if answer == "ack" else Nack(9, NackReason.BAD_VALUE)
    assert frames(mcu.data_to_send(now=0.1)) == [expected]


def test_tone_has_one_range_message() -> None:
    for freq in (5, 30000):
        with pytest.raises(MessageError, match=r"^Tone.freq_hz must be 0 \(silence\) or 20..20000"):
            Tone(freq, 100)


def test_where_sequence_numbers_start() -> None:
    mcu = McuProtocol()
    mcu.reset(0.0)
    (boot,) = [decode_packet(p) for p in FrameDecoder().feed(mcu.data_to_send(now=0.0))]
    assert (boot.msg, boot.seq) == (Boot(), 0)  # the MCU counts from 0 at every boot
    host = host_connected()  # HELLO was seq 0
    host.set_glow(1, 1, 1)
    host.data_to_send(now=0.1)  # seq 1
    host.reset(0.2)  # reconnect: the host keeps counting
    (hello,) = [decode_packet(p) for p in FrameDecoder().feed(host.data_to_send(now=0.2))]
    assert isinstance(hello.msg, Hello) and hello.seq == 2


def test_a_command_without_ack_req_is_still_checked_and_answered() -> None:
    # the type decides (§3): SET_GLOW is reliable even with the flag clear
    mcu = mcu_in_session()
    mcu.receive_data(raw_frame(MsgType.SET_GLOW, 0, 3, b"\x01\x02"), 0.1)
    assert frames(mcu.data_to_send(now=0.1)) == [Nack(3, NackReason.BAD_LENGTH)]
    events = mcu.receive_data(raw_frame(MsgType.SET_GLOW, 0, 4, bytes(9)), 0.1)
    assert events == [CommandReceived(SetGlow(0, 0, 0, 0), 4)]
    assert frames(mcu.data_to_send(now=0.1)) == [Ack(4)]
    # a known type that is not reliable is never answered, flag or not
    mcu.receive_data(raw_frame(MsgType.HEARTBEAT, Flag.ACK_REQ, 5), 0.1)
    assert mcu.data_to_send(now=0.1) == b""


@pytest.mark.parametrize("heartbeat_ms", [0, 10, 49])
def test_a_hello_with_a_heartbeat_below_50_ms_is_taken_as_50(heartbeat_ms: int) -> None:
    mcu = McuProtocol()
    mcu.reset(0.0)
    mcu.data_to_send(now=0.0)
    body = bytes([1, 1]) + heartbeat_ms.to_bytes(2, "little")
    assert mcu.receive_data(raw_frame(MsgType.HELLO, 0, 0, body), 0.0) == [SessionStarted(0.05, 1)]
    assert isinstance(frames(mcu.data_to_send(now=0.0))[0], HelloReply)


def test_duplicates_match_type_and_seq() -> None:
    # the same seq on another type is another frame (e.g. from a restarted sender): executed
    mcu = mcu_in_session()
    mcu.receive_data(encode_frame(encode_message(SetGlow(1, 1, 1), 5)), 0.1)
    events = mcu.receive_data(encode_frame(encode_message(Tone(440, 100), 5)), 0.1)
    assert events == [CommandReceived(Tone(440, 100), 5)]
    assert mcu.tones == [Tone(440, 100)]


def test_a_duplicate_counts_only_for_6_s() -> None:
    mcu = mcu_in_session()
    glow = encode_frame(encode_message(SetGlow(1, 1, 1), 5))
    mcu.receive_data(glow, 0.1)
    for i, now in enumerate((2.0, 4.0)):  # the host's heartbeats keep the session
        mcu.receive_data(encode_frame(encode_message(Heartbeat(), 6 + i, sender=Role.HOST)), now)
    retx = encode_frame(encode_message(SetGlow(1, 1, 1), 5, retransmit=True))
    assert mcu.receive_data(retx, 6.0) == []  # 5.9 s later: still a duplicate
    assert mcu.receive_data(retx, 6.2) == [CommandReceived(SetGlow(1, 1, 1), 5)]


def heartbeats(first: int, count: int, sender: Role) -> bytes:
    return b"".join(
        encode_frame(encode_message(Heartbeat(), (first + i) & 0xFFFF, sender=sender))
        for i in range(count)
    )


def test_a_new_command_after_the_counter_wrapped_is_executed() -> None:
    # 65,536 frames after a TONE with seq 5 the host's next TONE has seq 5 again: it is a new
    # command (ahead of the newest seq), not a retransmission; it used to be ACKed and not played
    mcu = mcu_in_session()
    mcu.receive_data(encode_frame(encode_message(Tone(440, 100), 5)), 0.1)
    mcu.receive_data(encode_frame(encode_message(SetGlow(9, 0, 0), 6)), 0.1)
    mcu.receive_data(heartbeats(7, 0x10000 - 2, Role.HOST), 0.2)  # seqs 7 … 65535, 0 … 4
    mcu.data_to_send(now=0.2)
    events = mcu.receive_data(encode_frame(encode_message(Tone(880, 100), 5)), 0.3)
    assert events == [CommandReceived(Tone(880, 100), 5)]
    events = mcu.receive_data(encode_frame(encode_message(SetGlow(0, 9, 0), 6)), 0.3)
    assert events == [CommandReceived(SetGlow(0, 9, 0), 6)]
    # ... and its retransmission right after is a duplicate again
    retx = encode_frame(encode_message(Tone(880, 100), 5, retransmit=True))
    assert mcu.receive_data(retx, 0.4) == []
    assert mcu.tones == [Tone(440, 100), Tone(880, 100)]
    assert frames(mcu.data_to_send(now=0.4)) == [Ack(5), Ack(6), Ack(5)]


def test_a_new_press_after_the_mcu_counter_wrapped_is_reported() -> None:
    host = host_connected()
    press = InputEvent(InputKind.SHORT_PRESS, 0, 100, 80)
    assert host.receive_data(encode_frame(encode_message(press, 5, sender=Role.MCU)), 0.1)
    host.receive_data(heartbeats(6, 0x10000 - 1, Role.MCU), 0.2)  # seqs 6 … 65535, 0 … 4
    again = InputEvent(InputKind.LONG_PRESS, 0, 900, 700)
    events = host.receive_data(encode_frame(encode_message(again, 5, sender=Role.MCU)), 0.3)
    assert events == [InputReceived(again, 5)]


@pytest.mark.parametrize("baud", [0, -9600, True, 9600.0])
def test_timing_for_baud_refuses_what_is_not_a_positive_whole_number(baud: object) -> None:
    # --baud 0 used to end in a ZeroDivisionError deep inside the console
    with pytest.raises(BaudRateError, match=rf"positive whole number, got {baud!r}"):
        Timing.for_baud(baud)  # type: ignore[arg-type]
    assert issubclass(BaudRateError, ValueError)
