"""Host and MCU state machines of the figurine protocol (docs/PROTOCOL.md §5-§8), sans-I/O.

Theory of operation
-------------------
Both roles are driven the same way by a thin shell that owns the port and the clock:

* ``receive_data(data, now)`` feeds received bytes (any chunking) and returns events;
* ``data_to_send(budget, now=None)`` *pulls* whole frames, at most ``budget`` bytes: frames are
  produced lazily from what is pending right now, so when the link is slow nothing piles up — the
  host's commands live in *slots* where a newer value simply replaces an older one;
* ``next_deadline()`` says when ``handle_timeout(now)`` must be called next (heartbeat due,
  retransmission, handshake retry, dead-link check); ``wants_write`` says whether
  ``data_to_send`` has something to give right now.

Time is always passed in (``now``, monotonic seconds) and never read, so tests drive the machines
with fake time and no sleeping.

The connection state of each role is an explicit table: ``HOST_TRANSITIONS`` and
``MCU_TRANSITIONS`` map ``(state, trigger)`` to the next state, and firing a trigger the table does
not list raises :class:`ProtocolStateError` (a bug in this module, never a reaction to line noise:
frames that make no sense in the current state are counted and dropped before a trigger is fired).

Host: DISCONNECTED --open--> HANDSHAKING --hello_ok--> CONNECTED.  A dead link (no valid frame for
3.5 heartbeats), a BOOT frame or ``NACK NOT_READY`` (the MCU reset) sends it back to HANDSHAKING; a
HELLO_REPLY without a common version to INCOMPATIBLE, where it asks again every 5 s.  Entering
CONNECTED marks every state slot that was ever set DIRTY, so the MCU is re-sent the full desired
state after every (re)connect.

MCU: OFFLINE --boot--> NO_SESSION --hello_ok--> SESSION --host_silent--> NO_SESSION.  Without a
session it answers every host frame but HELLO with ``NACK NOT_READY`` — that is how a host learns
of a reset whose BOOT frame was lost.  A *repeated* HELLO (RETX set, the seq of the HELLO that
started the session, no command executed in it yet: the host retransmitting while it waits for
the reply) is answered again and fires no trigger, so pending input events keep their seqs.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, fields
from enum import Enum, StrEnum
from typing import Generic, TypeVar

from firmware_bridge.core.errors import (
    BaudRateError,
    DecodeError,
    MessageError,
    ProtocolStateError,
)
from firmware_bridge.core.framing import FrameDecoder, encode_frame
from firmware_bridge.core.messages import (
    PROTOCOL_VERSION,
    RELIABLE,
    Ack,
    Animation,
    Boot,
    BootCause,
    Capabilities,
    Easing,
    Face,
    Flag,
    Heartbeat,
    Hello,
    HelloReply,
    InputEvent,
    InputKind,
    LogLevel,
    LogLine,
    Message,
    MsgType,
    Nack,
    NackReason,
    Packet,
    PlayAnimation,
    Role,
    SetBrightness,
    SetGlow,
    SetPose,
    ShowText,
    Sleep,
    Status,
    Tone,
    decode_packet,
    encode_message,
)

# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True, slots=True)
class Timing:
    """Protocol timers in seconds (docs/PROTOCOL.md §5.2, §6.2).  The host's ``heartbeat_s`` is
    announced in HELLO and adopted by the MCU for the session."""

    heartbeat_s: float = 1.0
    dead_after_heartbeats: float = 3.5
    rto_s: float = 0.3
    rto_max_s: float = 2.0
    hello_retry_s: float = 0.25
    hello_retry_max_s: float = 2.0
    incompatible_retry_s: float = 5.0
    oneshot_ttl_s: float = 2.0
    input_ttl_s: float = 5.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int | float) or not value > 0:
                raise MessageError(f"Timing.{f.name} must be a positive number, got {value!r}")
        if not 0.05 <= self.heartbeat_s <= 65.535:
            raise MessageError("Timing.heartbeat_s must be within 0.05..65.535 s (u16 ms on wire)")
        if self.dead_after_heartbeats <= 1:
            raise MessageError("Timing.dead_after_heartbeats must be more than 1")

    @property
    def dead_s(self) -> float:
        return self.heartbeat_s * self.dead_after_heartbeats

    @classmethod
    def for_baud(cls, baud: int, **overrides: float) -> Timing:
        """Timers suited to a link speed: the RTO covers a round trip of two maximum-size frames
        at ``baud`` (8N1) plus 100 ms of scheduling slack, and never goes below 0.3 s.

        Raises :class:`BaudRateError` (a ``ValueError``) unless ``baud`` is a positive integer."""
        if isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0:
            raise BaudRateError(f"baud rate must be a positive whole number, got {baud!r}")
        wire_s = 2 * 255 * 10 / baud
        rto = max(0.3, round(wire_s + 0.1, 3))
        values: dict[str, float] = {"rto_s": rto, "rto_max_s": max(2.0, 4 * rto)}
        values.update(overrides)
        return cls(**values)


# --------------------------------------------------------------------------- visible state


_GLOW_OFF = SetGlow(0, 0, 0, 0)
_UPRIGHT = SetPose(0)
_NO_TEXT = ShowText()
_FULL = SetBrightness(255)
_AWAKE = Sleep(False)


@dataclass(frozen=True, slots=True)
class FigurineState:
    """What the figurine shows, as the commands that set it (power-on values by default)."""

    glow: SetGlow = _GLOW_OFF
    pose: SetPose = _UPRIGHT
    text: ShowText = _NO_TEXT
    brightness: SetBrightness = _FULL
    sleep: Sleep = _AWAKE


POWER_ON = FigurineState()
#: shown by the MCU while it has no session (host silent or never greeted)
SLEEPY_IDLE = FigurineState(
    glow=SetGlow(60, 40, 120, 50, pulse_ms=4000, pulse_depth=200),
    pose=SetPose(96, 2000),
    text=ShowText(Face.SLEEPY),
    brightness=SetBrightness(128),
    sleep=Sleep(False),
)


class Slot(StrEnum):
    """Host command slots, in sending order (docs/PROTOCOL.md §6.2)."""

    SLEEP = "sleep"
    BRIGHTNESS = "brightness"
    GLOW = "glow"
    POSE = "pose"
    TEXT = "text"
    ANIMATION = "animation"
    TONE = "tone"

    @property
    def oneshot(self) -> bool:
        return self in (Slot.ANIMATION, Slot.TONE)


SLOT_OF: dict[type[Message], Slot] = {
    Sleep: Slot.SLEEP,
    SetBrightness: Slot.BRIGHTNESS,
    SetGlow: Slot.GLOW,
    SetPose: Slot.POSE,
    ShowText: Slot.TEXT,
    PlayAnimation: Slot.ANIMATION,
    Tone: Slot.TONE,
}


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Event:
    """Base class of everything ``receive_data`` / ``handle_timeout`` return."""


@dataclass(frozen=True, slots=True)
class Connected(Event):
    capabilities: Capabilities
    fw_version: tuple[int, int, int]
    protocol_version: int


@dataclass(frozen=True, slots=True)
class Disconnected(Event):
    reason: str


@dataclass(frozen=True, slots=True)
class Incompatible(Event):
    """The MCU speaks no protocol version the host speaks."""

    mcu_min: int
    mcu_max: int
    host_min: int
    host_max: int
    fw_version: tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Acked(Event):
    seq: int
    slot: Slot


@dataclass(frozen=True, slots=True)
class Nacked(Event):
    """``reason`` is the plain ``int`` code when this host does not know it (a newer firmware)."""

    seq: int
    slot: Slot | None
    reason: NackReason | int


@dataclass(frozen=True, slots=True)
class InputReceived(Event):
    event: InputEvent
    seq: int


@dataclass(frozen=True, slots=True)
class StatusReceived(Event):
    status: Status


@dataclass(frozen=True, slots=True)
class LogReceived(Event):
    line: LogLine


@dataclass(frozen=True, slots=True)
class SessionStarted(Event):
    """MCU side: a host greeted us; ``heartbeat_s`` is the interval it asked for."""

    heartbeat_s: float
    protocol_version: int


@dataclass(frozen=True, slots=True)
class SessionEnded(Event):
    """MCU side: the host went silent (or greeted us with no common version)."""

    reason: str


@dataclass(frozen=True, slots=True)
class CommandReceived(Event):
    """MCU side: a command was executed (duplicates are not reported again)."""

    msg: Message
    seq: int


@dataclass(frozen=True, slots=True)
class InputDelivered(Event):
    """MCU side: the host acknowledged an input event."""

    seq: int


# --------------------------------------------------------------------------- state tables


class HostState(Enum):
    DISCONNECTED = "disconnected"
    HANDSHAKING = "handshaking"
    CONNECTED = "connected"
    INCOMPATIBLE = "incompatible"


class HostTrigger(Enum):
    OPEN = "open"  # reset(): port (re)opened, start a handshake
    HELLO_OK = "hello_ok"
    HELLO_REJECTED = "hello_rejected"
    PEER_RESET = "peer_reset"  # BOOT or NACK NOT_READY
    PEER_SILENT = "peer_silent"
    CLOSE = "close"


_H, _HT = HostState, HostTrigger
HOST_TRANSITIONS: dict[tuple[HostState, HostTrigger], HostState] = {
    (_H.DISCONNECTED, _HT.OPEN): _H.HANDSHAKING,
    (_H.HANDSHAKING, _HT.OPEN): _H.HANDSHAKING,
    (_H.CONNECTED, _HT.OPEN): _H.HANDSHAKING,
    (_H.INCOMPATIBLE, _HT.OPEN): _H.HANDSHAKING,
    (_H.HANDSHAKING, _HT.HELLO_OK): _H.CONNECTED,
    (_H.INCOMPATIBLE, _HT.HELLO_OK): _H.CONNECTED,
    (_H.HANDSHAKING, _HT.HELLO_REJECTED): _H.INCOMPATIBLE,
    (_H.INCOMPATIBLE, _HT.HELLO_REJECTED): _H.INCOMPATIBLE,
    (_H.CONNECTED, _HT.PEER_RESET): _H.HANDSHAKING,
    (_H.HANDSHAKING, _HT.PEER_RESET): _H.HANDSHAKING,
    (_H.INCOMPATIBLE, _HT.PEER_RESET): _H.HANDSHAKING,
    (_H.CONNECTED, _HT.PEER_SILENT): _H.HANDSHAKING,
    (_H.DISCONNECTED, _HT.CLOSE): _H.DISCONNECTED,
    (_H.HANDSHAKING, _HT.CLOSE): _H.DISCONNECTED,
    (_H.CONNECTED, _HT.CLOSE): _H.DISCONNECTED,
    (_H.INCOMPATIBLE, _HT.CLOSE): _H.DISCONNECTED,
}


class McuState(Enum):
    OFFLINE = "offline"
    NO_SESSION = "no_session"
    SESSION = "session"


class McuTrigger(Enum):
    BOOT = "boot"  # reset(): power-on or reboot
    HELLO_OK = "hello_ok"
    HELLO_REJECTED = "hello_rejected"
    HOST_SILENT = "host_silent"


_M, _MT = McuState, McuTrigger
MCU_TRANSITIONS: dict[tuple[McuState, McuTrigger], McuState] = {
    (_M.OFFLINE, _MT.BOOT): _M.NO_SESSION,
    (_M.NO_SESSION, _MT.BOOT): _M.NO_SESSION,
    (_M.SESSION, _MT.BOOT): _M.NO_SESSION,
    (_M.NO_SESSION, _MT.HELLO_OK): _M.SESSION,
    (_M.SESSION, _MT.HELLO_OK): _M.SESSION,
    (_M.NO_SESSION, _MT.HELLO_REJECTED): _M.NO_SESSION,
    (_M.SESSION, _MT.HELLO_REJECTED): _M.NO_SESSION,
    (_M.SESSION, _MT.HOST_SILENT): _M.NO_SESSION,
}

S = TypeVar("S", bound=Enum)
T = TypeVar("T", bound=Enum)


class StateMachine(Generic[S, T]):
    """A state and its transition table; a trigger the table lacks is a ProtocolStateError."""

    __slots__ = ("state", "table")

    def __init__(self, table: dict[tuple[S, T], S], initial: S) -> None:
        self.table = table
        self.state = initial

    def can(self, trigger: T) -> bool:
        return (self.state, trigger) in self.table

    def fire(self, trigger: T) -> S:
        try:
            self.state = self.table[(self.state, trigger)]
        except KeyError:
            raise ProtocolStateError(
                f"trigger {trigger.name} is not allowed in state {self.state.name}"
            ) from None
        return self.state


# --------------------------------------------------------------------------- shared machinery


@dataclass(slots=True)
class Counters:
    """Everything a shell or the debug console may want to show; all monotonic."""

    frames_in: int = 0
    frames_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    crc_errors: int = 0
    oversize_frames: int = 0
    garbage_bytes: int = 0
    decode_errors: int = 0
    wrong_direction: int = 0
    unexpected: int = 0
    retransmits: int = 0
    duplicates: int = 0
    superseded: int = 0
    acks_in: int = 0
    acks_out: int = 0
    nacks_in: int = 0
    nacks_out: int = 0
    stale_acks: int = 0
    heartbeats_out: int = 0
    hellos_out: int = 0
    sessions: int = 0
    peer_resets: int = 0
    dead_links: int = 0
    oneshots_expired: int = 0
    inputs_dropped: int = 0
    inputs_expired: int = 0
    logs_dropped: int = 0
    control_dropped: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


SEQ_MOD = 0x10000
SEQ_HALF = 0x8000  # serial-number arithmetic (RFC 1982): ahead means 1..32767 in front
DUPLICATE_WINDOW = 32
DUPLICATE_TTL_S = 6.0


class _SeqWindow:
    """Duplicate detection of the peer's ``ACK_REQ`` frames, bounded (docs/PROTOCOL.md §5.0).

    Two memories of (type, seq) acted on — the last ``size`` and the last one per type — each
    entry with the time it was acted on and where ``newest`` stood then.  ``newest`` is the
    newest seq received in the session, kept as an unwrapped count (``_ahead``: how far it has
    advanced since the session started) so an entry's distance behind it never wraps.  An entry
    counts only while it is recent (< ``ttl`` s) and near (< 32768 behind the newest), so a new
    frame whose 16-bit seq equals an old one after the counter wrapped is never taken for a
    retransmission.
    """

    __slots__ = ("_ahead", "_by_type", "_entries", "_newest", "_order", "size", "ttl")

    def __init__(self, size: int = DUPLICATE_WINDOW, ttl: float = DUPLICATE_TTL_S) -> None:
        self.size = size
        self.ttl = ttl
        self._order: deque[tuple[int, int]] = deque()
        self._entries: dict[tuple[int, int], tuple[float, int]] = {}
        self._by_type: dict[int, tuple[int, float, int]] = {}
        self._newest: int | None = None
        self._ahead = 0

    @property
    def acted_on(self) -> bool:
        """Has a frame been remembered (:meth:`add`) since the last :meth:`clear`?"""
        return bool(self._by_type)

    def clear(self) -> None:
        self._order.clear()
        self._entries.clear()
        self._by_type.clear()
        self._newest = None
        self._ahead = 0

    def note(self, seq: int) -> None:
        """Every valid frame from the peer: move ``newest`` if ``seq`` is ahead of it."""
        if self._newest is None:
            self._newest = seq
            return
        step = (seq - self._newest) % SEQ_MOD
        if 0 < step < SEQ_HALF:
            self._newest = seq
            self._ahead += step

    def _stamp(self, seq: int) -> int:
        """The unwrapped position of ``seq``, which is at or behind ``newest``."""
        newest = seq if self._newest is None else self._newest
        return self._ahead - (newest - seq) % SEQ_MOD

    def seen(self, msg_type: int, seq: int, now: float) -> bool:
        """Is this (type, seq) a frame acted on less than ``ttl`` ago, at most 32767 behind the
        newest seq?  (The same 16-bit number one or more wraps earlier is another frame.)
        The receiver has :meth:`note`-d the frame's seq already."""
        where = self._stamp(seq)
        if self._ahead - where >= SEQ_HALF:
            return False
        entry = self._entries.get((msg_type, seq))
        if entry is not None and entry[1] == where and now - entry[0] < self.ttl:
            return True
        last = self._by_type.get(msg_type)
        return last is not None and last[0] == seq and last[2] == where and now - last[1] < self.ttl

    def add(self, msg_type: int, seq: int, now: float) -> None:
        """Remember a frame acted on (its seq has been :meth:`note`-d already)."""
        where = self._stamp(seq)
        self._by_type[msg_type] = (seq, now, where)
        key = (msg_type, seq)
        if key not in self._entries:
            self._order.append(key)
            if len(self._order) > self.size:
                del self._entries[self._order.popleft()]
        self._entries[key] = (now, where)


MAX_CONTROL = 64  # pending ACK/NACK/HELLO_REPLY frames; more means the peer floods us
_KNOWN_TYPES = frozenset(int(t) for t in MsgType)


def _wants_answer(exc: DecodeError) -> bool:
    """Must an undecodable frame be NACKed?  A known type decides by itself (§3: ACK_REQ types
    are answered even with the flag clear, others never); only an unknown type goes by the flag."""
    if exc.msg_type in _KNOWN_TYPES:
        return exc.msg_type in RELIABLE
    return bool(exc.flags & Flag.ACK_REQ)


class _Endpoint:
    """What both roles share: decoder, sequence counter, control queue, counters, clock."""

    role: Role

    def __init__(self, timing: Timing) -> None:
        self.timing = timing
        self.counters = Counters()
        self._decoder = FrameDecoder()
        self._seq = 0
        self._now = 0.0
        self._last_rx = 0.0
        self._last_tx = 0.0
        self._heartbeat_s = timing.heartbeat_s
        self._control: deque[Message] = deque()
        self._window = _SeqWindow()  # duplicate detection of the peer's frames (§5.0)

    @property
    def rx_pending_bytes(self) -> int:
        """Bytes of an unfinished received frame (bounded by the maximum frame size)."""
        return self._decoder.pending

    @property
    def control_queue_len(self) -> int:
        """ACK/NACK/HELLO_REPLY/BOOT frames waiting to be sent (at most ``MAX_CONTROL``)."""
        return len(self._control)

    # -- helpers -------------------------------------------------------------------------
    def _next_seq(self) -> int:
        seq = self._seq
        self._seq = (seq + 1) & 0xFFFF
        return seq

    def _frame(self, msg: Message, seq: int, retransmit: bool = False) -> bytes:
        return encode_frame(encode_message(msg, seq, sender=self.role, retransmit=retransmit))

    def _queue_control(self, msg: Message) -> None:
        if len(self._control) >= MAX_CONTROL:
            self._control.popleft()
            self.counters.control_dropped += 1
        self._control.append(msg)

    def _advance(self, now: float | None) -> None:
        if now is not None and now > self._now:
            self._now = now

    def _packets(self, data: bytes, now: float) -> list[Packet]:
        """Decode ``data`` into packets from the peer; NACK what cannot be decoded."""
        self._advance(now)
        c = self.counters
        c.bytes_in += len(data)
        payloads = self._decoder.feed(data)
        fc = self._decoder.counters
        c.crc_errors, c.oversize_frames, c.garbage_bytes = (
            fc.crc_errors,
            fc.oversize_frames,
            fc.garbage_bytes,
        )
        out: list[Packet] = []
        for payload in payloads:
            try:
                packet = decode_packet(payload)
            except DecodeError as exc:
                c.decode_errors += 1
                if exc.msg_type is not None and (exc.msg_type & 0x80) != (
                    0x80 if self.role is Role.HOST else 0
                ):
                    c.wrong_direction += 1
                    continue
                self._last_rx = self._now
                c.frames_in += 1
                if exc.seq is not None:
                    self._window.note(exc.seq)
                self._on_undecodable(exc)
                continue
            if packet.sender is self.role:
                c.wrong_direction += 1
                continue
            c.frames_in += 1
            self._last_rx = self._now
            out.append(packet)
        return out

    def _on_undecodable(self, exc: DecodeError) -> None:
        if exc.seq is not None and _wants_answer(exc):
            self._queue_control(Nack(exc.seq, NackReason(exc.reason)))

    def _take_control(self, out: bytearray, budget: int | None) -> bool:
        """Append queued control frames; False if the budget ran out."""
        while self._control:
            msg = self._control[0]
            frame = self._frame(msg, self._next_seq_peek())
            if not self._fits(out, frame, budget):
                return False
            self._control.popleft()
            self._next_seq()
            self._commit(out, frame)
            if isinstance(msg, Ack):
                self.counters.acks_out += 1
            elif isinstance(msg, Nack):
                self.counters.nacks_out += 1
        return True

    def _next_seq_peek(self) -> int:
        return self._seq

    @staticmethod
    def _fits(out: bytearray, frame: bytes, budget: int | None) -> bool:
        return budget is None or len(out) + len(frame) <= budget

    def _commit(self, out: bytearray, frame: bytes) -> None:
        out += frame
        self.counters.frames_out += 1
        self.counters.bytes_out += len(frame)
        self._last_tx = self._now

    def _heartbeat_due(self) -> bool:
        # the very sum next_deadline() names: due exactly at that deadline, whatever the rounding
        return self._now >= self._last_tx + self._heartbeat_s

    def _take_heartbeat(self, out: bytearray, budget: int | None) -> None:
        if not out and self._heartbeat_due():
            frame = self._frame(Heartbeat(), self._seq)
            if self._fits(out, frame, budget):
                self._next_seq()
                self._commit(out, frame)
                self.counters.heartbeats_out += 1


# --------------------------------------------------------------------------- host


@dataclass(slots=True)
class _SlotEntry:
    slot: Slot
    value: Message | None = None
    phase: str = "clean"  # clean | dirty | in_flight | retry
    seq: int = -1
    sent_at: float = 0.0
    set_at: float | None = None  # None: set since the clock last advanced (stamped then)
    rto: float = 0.0


class HostProtocol(_Endpoint):
    """The Raspberry Pi's side.  Set desired state with the ``set_*`` methods (or ``command``);
    the protocol delivers the newest value of each slot and re-sends everything after a
    reconnect or an MCU reset."""

    role = Role.HOST

    def __init__(
        self,
        timing: Timing | None = None,
        *,
        proto_min: int = PROTOCOL_VERSION,
        proto_max: int = PROTOCOL_VERSION,
    ) -> None:
        super().__init__(timing or Timing())
        self._hello = Hello(proto_min, proto_max, round(self.timing.heartbeat_s * 1000))
        self._machine: StateMachine[HostState, HostTrigger] = StateMachine(
            HOST_TRANSITIONS, HostState.DISCONNECTED
        )
        self._slots = {slot: _SlotEntry(slot) for slot in Slot}
        self._unstamped = False
        self._in_flight: dict[int, _SlotEntry] = {}
        self._hello_seq = 0
        self._hello_due = False
        self._hello_sent_once = False
        self._hello_next = 0.0
        self._hello_interval = self.timing.hello_retry_s
        self.capabilities: Capabilities | None = None
        self.fw_version: tuple[int, int, int] | None = None
        self.protocol_version = 0

    # -- state --------------------------------------------------------------------------
    @property
    def state(self) -> HostState:
        return self._machine.state

    @property
    def connected(self) -> bool:
        return self._machine.state is HostState.CONNECTED

    @property
    def desired(self) -> FigurineState:
        """The state the figurine should converge to (power-on values for unset slots)."""
        s = self._slots
        glow, pose, text = s[Slot.GLOW].value, s[Slot.POSE].value, s[Slot.TEXT].value
        level, sleep = s[Slot.BRIGHTNESS].value, s[Slot.SLEEP].value
        return FigurineState(
            glow=glow if isinstance(glow, SetGlow) else POWER_ON.glow,
            pose=pose if isinstance(pose, SetPose) else POWER_ON.pose,
            text=text if isinstance(text, ShowText) else POWER_ON.text,
            brightness=level if isinstance(level, SetBrightness) else POWER_ON.brightness,
            sleep=sleep if isinstance(sleep, Sleep) else POWER_ON.sleep,
        )

    @property
    def in_sync(self) -> bool:
        """Connected and every slot acknowledged."""
        return self.connected and all(e.phase == "clean" for e in self._slots.values())

    def slot_phase(self, slot: Slot) -> str:
        return self._slots[slot].phase

    def _advance(self, now: float | None) -> None:
        super()._advance(now)
        if self._unstamped and now is not None:
            for entry in self._slots.values():
                if entry.set_at is None:
                    entry.set_at = self._now
            self._unstamped = False

    def _expires_at(self, entry: _SlotEntry) -> float:
        """When a one-shot is given up (§6.2): ``oneshot_ttl_s`` after it was requested."""
        set_at = self._now if entry.set_at is None else entry.set_at
        return set_at + self.timing.oneshot_ttl_s

    def _oneshot_stale(self, entry: _SlotEntry) -> bool:
        return self._now >= self._expires_at(entry)

    # -- lifecycle ----------------------------------------------------------------------
    def reset(self, now: float) -> list[Event]:
        """The port was (re)opened: forget partial input and start a handshake."""
        self._advance(now)
        events = self._leave_connected("link reset")
        self._decoder.reset()
        self._machine.fire(HostTrigger.OPEN)
        self._start_handshake()
        self._last_rx = self._now
        return events

    def close(self, now: float, reason: str = "port closed") -> list[Event]:
        """The port went away; nothing is sent until :meth:`reset`."""
        self._advance(now)
        events = self._leave_connected(reason)
        self._machine.fire(HostTrigger.CLOSE)
        self._control.clear()
        self._hello_due = False
        return events

    def _leave_connected(self, reason: str) -> list[Event]:
        return [Disconnected(reason)] if self.connected else []

    def _start_handshake(self) -> None:
        self._hello_seq = self._next_seq()
        self._hello_due = True
        self._hello_sent_once = False
        self._hello_interval = self.timing.hello_retry_s
        self._control.clear()

    # -- desired state --------------------------------------------------------------------
    def command(self, msg: Message, now: float | None = None) -> None:
        """Make ``msg`` the desired value of its slot (superseding anything older).

        ``now`` matters for one-shots (animation, tone), which expire 2 s after being requested;
        without it the request is timed from the next ``now`` the shell passes in.
        """
        try:
            entry = self._slots[SLOT_OF[type(msg)]]
        except KeyError:
            names = ", ".join(c.__name__ for c in SLOT_OF)
            raise MessageError(
                f"{type(msg).__name__} is not a host command; commands are: {names}"
            ) from None
        if entry.phase in ("in_flight", "retry"):
            self._in_flight.pop(entry.seq, None)
            self.counters.superseded += 1
        elif entry.phase == "dirty":
            self.counters.superseded += 1
        entry.value = msg
        entry.phase = "dirty"
        entry.set_at = None  # stamped with the next ``now`` the shell passes in
        self._unstamped = True
        entry.rto = self.timing.rto_s
        if now is not None:
            self._advance(now)

    def set_glow(
        self,
        r: int,
        g: int,
        b: int,
        intensity: float = 1.0,
        *,
        pulse_s: float = 0.0,
        pulse_depth: float = 0.0,
        fade_s: float = 0.0,
    ) -> None:
        self.command(
            SetGlow(
                r,
                g,
                b,
                unit_to_u8("intensity", intensity),
                seconds_to_ms("pulse_s", pulse_s),
                unit_to_u8("pulse_depth", pulse_depth),
                seconds_to_ms("fade_s", fade_s),
            )
        )

    def set_pose(
        self, melt: float, ease_s: float = 0.0, easing: Easing = Easing.EASE_IN_OUT
    ) -> None:
        """``melt`` 0.0 upright … 1.0 fully slumped."""
        self.command(SetPose(unit_to_u8("melt", melt), seconds_to_ms("ease_s", ease_s), easing))

    def show_text(self, text: str, face: Face = Face.NEUTRAL, duration_s: float = 0.0) -> None:
        self.command(ShowText(face, text, seconds_to_ms("duration_s", duration_s)))

    def set_brightness(self, level: float) -> None:
        self.command(SetBrightness(unit_to_u8("level", level)))

    def sleep(self, asleep: bool = True, fade_s: float = 0.0) -> None:
        self.command(Sleep(asleep, seconds_to_ms("fade_s", fade_s)))

    def play_animation(
        self,
        animation: Animation,
        repeat: int = 1,
        speed: float = 1.0,
        *,
        now: float | None = None,
    ) -> None:
        self.command(PlayAnimation(animation, repeat, factor_to_pct("speed", speed)), now)

    def tone(
        self, freq_hz: int, duration_s: float, volume: float = 0.5, *, now: float | None = None
    ) -> None:
        msg = Tone(freq_hz, seconds_to_ms("duration_s", duration_s), unit_to_u8("volume", volume))
        self.command(msg, now)

    # -- receiving ------------------------------------------------------------------------
    def receive_data(self, data: bytes, now: float) -> list[Event]:
        events: list[Event] = []
        for packet in self._packets(data, now):
            self._window.note(packet.seq)
            events += self._on_packet(packet)
        return events

    def _on_packet(self, p: Packet) -> list[Event]:
        c = self.counters
        state = self.state
        if state is HostState.DISCONNECTED:
            c.unexpected += 1
            return []
        match p.msg:
            case HelloReply():
                return self._on_hello_reply(p.msg, p.seq)
            case Boot():
                return self._peer_reset(f"MCU reset ({p.msg.cause.name.lower()})")
            case Nack(nacked_seq=seq, reason=reason):
                c.nacks_in += 1
                if reason is NackReason.NOT_READY:
                    if state is HostState.CONNECTED:
                        return self._peer_reset("MCU has no session (it reset)")
                    return []
                return self._on_nack(seq, reason)
            case Ack(acked_seq=seq):
                c.acks_in += 1
                entry = self._in_flight.pop(seq, None)
                if entry is None:
                    c.stale_acks += 1
                    return []
                entry.phase = "clean"
                entry.rto = self.timing.rto_s
                if entry.slot.oneshot:
                    entry.value = None
                return [Acked(seq, entry.slot)]
            case InputEvent():
                self._queue_control(Ack(p.seq))
                if self._window.seen(p.msg_type, p.seq, self._now):
                    c.duplicates += 1
                    return []
                self._window.add(p.msg_type, p.seq, self._now)
                return [InputReceived(p.msg, p.seq)]
            case Status():
                return [StatusReceived(p.msg)]
            case LogLine():
                return [LogReceived(p.msg)]
            case Heartbeat():
                return []
        c.unexpected += 1
        return []

    def _on_hello_reply(self, reply: HelloReply, seq: int) -> list[Event]:
        if self.state not in (HostState.HANDSHAKING, HostState.INCOMPATIBLE) or (
            reply.reply_to != self._hello_seq
        ):
            self.counters.unexpected += 1
            return []
        lo, hi = self._hello.proto_min, self._hello.proto_max
        self.fw_version = reply.fw_version
        if reply.proto_version == 0 or not lo <= reply.proto_version <= hi:
            already = self.state is HostState.INCOMPATIBLE
            self._machine.fire(HostTrigger.HELLO_REJECTED)
            self._hello_due = False
            self._hello_next = self._now + self.timing.incompatible_retry_s
            if already:
                return []
            return [Incompatible(reply.proto_min, reply.proto_max, lo, hi, reply.fw_version)]
        self._machine.fire(HostTrigger.HELLO_OK)
        self._hello_due = False
        self.capabilities = reply.capabilities
        self.protocol_version = reply.proto_version
        self.counters.sessions += 1
        self._window.clear()
        self._window.note(seq)  # the session's first frame sets `newest` (§5.0)
        self._in_flight.clear()
        for entry in self._slots.values():
            if entry.value is None:
                entry.phase = "clean"
            elif not entry.slot.oneshot:
                entry.phase = "dirty"  # full state to the (possibly reset) MCU
                entry.rto = self.timing.rto_s
            elif entry.phase != "dirty" or self._oneshot_stale(entry):
                # a one-shot already sent may have played: never play it twice; a stale one
                # would surprise the user
                entry.value = None
                entry.phase = "clean"
        return [Connected(reply.capabilities, reply.fw_version, reply.proto_version)]

    def _peer_reset(self, reason: str) -> list[Event]:
        if not self._machine.can(HostTrigger.PEER_RESET):
            self.counters.unexpected += 1
            return []
        events = self._leave_connected(reason)
        self.counters.peer_resets += 1
        was = self._machine.state
        self._machine.fire(HostTrigger.PEER_RESET)
        if was is HostState.CONNECTED:
            self._start_handshake()
        else:  # our HELLO may have died in the reset: repeat it now (same seq)
            self._hello_due = True
            self._hello_interval = self.timing.hello_retry_s
        return events

    def _on_nack(self, seq: int, reason: NackReason | int) -> list[Event]:
        """BUSY: retransmit after the RTO; every other reason, known or not, is final (§6.2)."""
        entry = self._in_flight.get(seq)
        if entry is None:
            self.counters.stale_acks += 1
            return [Nacked(seq, None, reason)]
        if reason is NackReason.BUSY:
            return [Nacked(seq, entry.slot, reason)]  # retransmitted when the RTO expires
        del self._in_flight[seq]
        entry.phase = "clean"
        if entry.slot.oneshot:
            entry.value = None
        return [Nacked(seq, entry.slot, reason)]

    # -- time -----------------------------------------------------------------------------
    def handle_timeout(self, now: float) -> list[Event]:
        self._advance(now)
        now = self._now
        t = self.timing
        events: list[Event] = []
        state = self.state
        if state in (HostState.HANDSHAKING, HostState.INCOMPATIBLE):
            if not self._hello_due and now >= self._hello_next:
                self._hello_due = True
        elif state is HostState.CONNECTED:
            if now >= self._last_rx + t.dead_s:  # the sum next_deadline() names
                self.counters.dead_links += 1
                events += self._leave_connected(
                    f"no frame from the MCU for {now - self._last_rx:.1f} s"
                )
                self._machine.fire(HostTrigger.PEER_SILENT)
                self._start_handshake()
                return events
            for entry in self._slots.values():
                if entry.phase == "in_flight" and now >= entry.sent_at + entry.rto:
                    entry.phase = "retry"
                    entry.rto = min(entry.rto * 2, t.rto_max_s)
        for entry in self._slots.values():
            if (
                entry.slot.oneshot
                and entry.value is not None
                and entry.phase != "clean"
                and self._oneshot_stale(entry)
            ):
                self._in_flight.pop(entry.seq, None)
                entry.value = None
                entry.phase = "clean"
                self.counters.oneshots_expired += 1
        return events

    def next_deadline(self) -> float | None:
        t = self.timing
        candidates: list[float] = []
        state = self.state
        if state in (HostState.HANDSHAKING, HostState.INCOMPATIBLE):
            if not self._hello_due:
                candidates.append(self._hello_next)
        elif state is HostState.CONNECTED:
            candidates.append(self._last_rx + t.dead_s)
            beat = self._last_tx + self._heartbeat_s
            if beat > self._now:
                candidates.append(beat)
            for entry in self._slots.values():
                if entry.phase == "in_flight":
                    candidates.append(entry.sent_at + entry.rto)
        for entry in self._slots.values():
            if entry.slot.oneshot and entry.value is not None and entry.phase != "clean":
                candidates.append(self._expires_at(entry))
        return min(candidates) if candidates else None

    # -- sending --------------------------------------------------------------------------
    @property
    def wants_write(self) -> bool:
        state = self.state
        if state is HostState.DISCONNECTED:
            return False
        if self._control:
            return True
        if state is not HostState.CONNECTED:
            return self._hello_due
        if any(e.phase in ("dirty", "retry") for e in self._slots.values()):
            return True
        return self._heartbeat_due()

    def data_to_send(self, budget: int | None = None, now: float | None = None) -> bytes:
        """Whole frames, at most ``budget`` bytes (``None``: no limit), highest priority first."""
        self._advance(now)
        out = bytearray()
        state = self.state
        if state is HostState.DISCONNECTED or not self._take_control(out, budget):
            return bytes(out)
        if state is not HostState.CONNECTED:
            if self._hello_due:
                frame = self._frame(self._hello, self._hello_seq, retransmit=self._hello_sent_once)
                if self._fits(out, frame, budget):
                    self._commit(out, frame)
                    self.counters.hellos_out += 1
                    if self._hello_sent_once:
                        self.counters.retransmits += 1
                    self._hello_sent_once = True
                    self._hello_due = False
                    if state is HostState.INCOMPATIBLE:
                        self._hello_next = self._now + self.timing.incompatible_retry_s
                    else:
                        self._hello_next = self._now + self._hello_interval
                        self._hello_interval = min(
                            self._hello_interval * 2, self.timing.hello_retry_max_s
                        )
            return bytes(out)
        for entry in self._slots.values():
            if entry.phase not in ("dirty", "retry") or entry.value is None:
                continue
            retransmit = entry.phase == "retry"
            seq = entry.seq if retransmit else self._seq
            frame = self._frame(entry.value, seq, retransmit=retransmit)
            if not self._fits(out, frame, budget):
                return bytes(out)
            if retransmit:
                self.counters.retransmits += 1
            else:
                seq = self._next_seq()
                entry.seq = seq
            self._commit(out, frame)
            entry.phase = "in_flight"
            entry.sent_at = self._now
            self._in_flight[seq] = entry
        self._take_heartbeat(out, budget)
        return bytes(out)


def unit_to_u8(name: str, value: float) -> int:
    """0.0 … 1.0 to a wire byte 0 … 255 (MessageError naming ``name`` if out of range)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise MessageError(f"{name} must be a number from 0.0 to 1.0, got {value!r}")
    return round(value * 255)


def seconds_to_ms(name: str, seconds: float) -> int:
    """Seconds to a u16 of milliseconds (MessageError naming ``name`` if out of range)."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise MessageError(f"{name} must be a number of seconds, got {seconds!r}")
    if not 0.0 <= seconds <= 65.535:
        raise MessageError(f"{name} must be within 0..65.535 s, got {seconds!r}")
    return round(seconds * 1000)


def factor_to_pct(name: str, factor: float) -> int:
    """A speed factor (1.0 = normal) to a percentage byte 1 … 255."""
    if isinstance(factor, bool) or not isinstance(factor, int | float):
        raise MessageError(f"{name} must be a number, got {factor!r}")
    # compared before rounding: round() raises OverflowError/ValueError on inf and NaN
    pct = round(factor * 100) if 0 < factor < 3 else 0
    if not 1 <= pct <= 255:
        raise MessageError(f"{name} must be within 0.01..2.55 (1.0 = normal), got {factor!r}")
    return pct


# --------------------------------------------------------------------------- MCU


@dataclass(slots=True)
class _PendingInput:
    event: InputEvent
    created: float
    seq: int = -1
    sent_at: float = 0.0
    rto: float = 0.0
    sent: bool = False
    due: bool = True


MAX_INPUTS = 16
MAX_LOGS = 8


class McuProtocol(_Endpoint):
    """The figurine's side (runs in the simulator; the reference for firmware authors).

    It executes commands into :attr:`figurine`, answers with ACK/NACK, reports input events
    reliably and sends STATUS/LOG best effort.  :attr:`visible` is what the figurine shows: the
    commanded state during a session, the sleepy idle look without one.
    """

    role = Role.MCU

    def __init__(
        self,
        capabilities: Capabilities | None = None,
        *,
        fw_version: tuple[int, int, int] = (1, 0, 0),
        proto_min: int = PROTOCOL_VERSION,
        proto_max: int = PROTOCOL_VERSION,
        timing: Timing | None = None,
    ) -> None:
        super().__init__(timing or Timing())
        self.capabilities = capabilities or Capabilities()
        self.fw_version = fw_version
        self.proto_min = proto_min
        self.proto_max = proto_max
        self._machine: StateMachine[McuState, McuTrigger] = StateMachine(
            MCU_TRANSITIONS, McuState.OFFLINE
        )
        self._inputs: deque[_PendingInput] = deque()
        self._status: Status | None = None
        self._logs: deque[LogLine] = deque()
        self._boot_at = 0.0
        self.figurine = POWER_ON
        self.animations: list[PlayAnimation] = []
        self.tones: list[Tone] = []
        self.protocol_version = 0
        self._session_hello = -1  # seq of the HELLO that started the session (§5.1 repeats)

    @property
    def state(self) -> McuState:
        return self._machine.state

    @property
    def in_session(self) -> bool:
        return self._machine.state is McuState.SESSION

    @property
    def visible(self) -> FigurineState:
        return self.figurine if self.in_session else SLEEPY_IDLE

    def uptime_ms(self, now: float) -> int:
        return round((now - self._boot_at) * 1000) & 0xFFFFFFFF

    # -- lifecycle ----------------------------------------------------------------------
    def reset(self, now: float, cause: BootCause = BootCause.POWER_ON) -> list[Event]:
        """Power-on or reboot: everything volatile is forgotten; a BOOT frame is queued."""
        self._now = now
        self._boot_at = now
        self._last_rx = self._last_tx = now
        self._machine.fire(McuTrigger.BOOT)
        self._decoder.reset()
        self._window.clear()
        self._inputs.clear()
        self._logs.clear()
        self._status = None
        self._control.clear()
        self._seq = 0
        self._heartbeat_s = self.timing.heartbeat_s
        self.figurine = POWER_ON
        self.protocol_version = 0
        self._queue_control(Boot(cause))
        return []

    # -- outgoing application data ----------------------------------------------------------
    def send_input(
        self, kind: InputKind, now: float, *, source: int = 0, duration_ms: int = 0
    ) -> InputEvent:
        """Report a gesture; delivered reliably during a session (oldest dropped beyond 16)."""
        self._advance(now)
        event = InputEvent(kind, source, self.uptime_ms(self._now), duration_ms)
        if len(self._inputs) >= MAX_INPUTS:
            self._inputs.popleft()
            self.counters.inputs_dropped += 1
        self._inputs.append(_PendingInput(event, self._now, rto=self.timing.rto_s))
        return event

    def send_status(self, status: Status) -> None:
        """Best effort: replaces a STATUS not sent yet."""
        self._status = status

    def send_log(self, text: str, level: LogLevel = LogLevel.INFO) -> None:
        """Best effort: a queue of 8, oldest dropped.  Text is clipped to the 200-byte limit."""
        raw = text.encode("utf-8")[:200].decode("utf-8", errors="ignore")
        if len(self._logs) >= MAX_LOGS:
            self._logs.popleft()
            self.counters.logs_dropped += 1
        self._logs.append(LogLine(level, raw))

    # -- receiving ------------------------------------------------------------------------
    def receive_data(self, data: bytes, now: float) -> list[Event]:
        events: list[Event] = []
        if self.state is McuState.OFFLINE:
            return events
        for packet in self._packets(data, now):
            self._window.note(packet.seq)
            events += self._on_packet(packet)
        return events

    def _on_undecodable(self, exc: DecodeError) -> None:
        if exc.seq is None:
            return
        if not self.in_session:
            self._queue_control(Nack(exc.seq, NackReason.NOT_READY))
        elif _wants_answer(exc):
            self._queue_control(Nack(exc.seq, NackReason(exc.reason)))

    def _on_packet(self, p: Packet) -> list[Event]:
        if isinstance(p.msg, Hello):
            return self._on_hello(p.seq, p.msg, Flag.RETX in p.flags)
        if not self.in_session:
            self._queue_control(Nack(p.seq, NackReason.NOT_READY))
            return []
        c = self.counters
        match p.msg:
            case Heartbeat():
                return []
            case Ack(acked_seq=seq):
                c.acks_in += 1
                for pending in self._inputs:
                    if pending.sent and pending.seq == seq:
                        self._inputs.remove(pending)
                        return [InputDelivered(seq)]
                c.stale_acks += 1
                return []
            case Nack(nacked_seq=seq):
                c.nacks_in += 1
                for pending in self._inputs:
                    if pending.sent and pending.seq == seq:
                        self._inputs.remove(pending)
                        break
                return []
        if p.msg_type not in RELIABLE:
            c.unexpected += 1
            return []
        refusal = self._refusal(p.msg)
        if refusal is not None:
            self._queue_control(Nack(p.seq, refusal))
            return []
        self._queue_control(Ack(p.seq))
        if self._window.seen(p.msg_type, p.seq, self._now):
            c.duplicates += 1
            return []
        self._window.add(p.msg_type, p.seq, self._now)
        self._apply(p.msg)
        return [CommandReceived(p.msg, p.seq)]

    def _refusal(self, msg: Message) -> NackReason | None:
        caps = self.capabilities
        match msg:
            case SetPose() if not caps.servo:
                return NackReason.UNSUPPORTED
            case Tone() if not caps.buzzer:
                return NackReason.UNSUPPORTED
            case ShowText() if not caps.display:
                return NackReason.UNSUPPORTED
            case ShowText(text=text) if len(text.encode("utf-8")) > caps.max_text:
                return NackReason.BAD_VALUE
        return None

    def _apply(self, msg: Message) -> None:
        f = self.figurine
        match msg:
            case SetGlow():
                self.figurine = FigurineState(msg, f.pose, f.text, f.brightness, f.sleep)
            case SetPose():
                self.figurine = FigurineState(f.glow, msg, f.text, f.brightness, f.sleep)
            case ShowText():
                self.figurine = FigurineState(f.glow, f.pose, msg, f.brightness, f.sleep)
            case SetBrightness():
                self.figurine = FigurineState(f.glow, f.pose, f.text, msg, f.sleep)
            case Sleep():
                self.figurine = FigurineState(f.glow, f.pose, f.text, f.brightness, msg)
            case PlayAnimation():
                self.animations.append(msg)
                del self.animations[:-16]
            case Tone():
                self.tones.append(msg)
                del self.tones[:-16]

    def _on_hello(self, seq: int, hello: Hello, retransmit: bool) -> list[Event]:
        lo = max(hello.proto_min, self.proto_min)
        hi = min(hello.proto_max, self.proto_max)
        chosen = hi if lo <= hi else 0
        self._queue_control(
            HelloReply(
                seq, chosen, self.proto_min, self.proto_max, self.fw_version, self.capabilities
            )
        )
        was_in_session = self.in_session
        if (
            was_in_session
            and retransmit
            and seq == self._session_hello
            and not self._window.acted_on
        ):
            # a repeat (§5.1): the host is still waiting for the reply; nothing else changes
            self.counters.duplicates += 1
            return []
        if chosen == 0:
            self._machine.fire(McuTrigger.HELLO_REJECTED)
            reason = (
                f"host speaks protocol {hello.proto_min}..{hello.proto_max}, "
                f"we speak {self.proto_min}..{self.proto_max}"
            )
            return [SessionEnded(reason)] if was_in_session else []
        self._machine.fire(McuTrigger.HELLO_OK)
        self._session_hello = seq
        self._window.clear()
        self._window.note(seq)  # the session's first frame sets `newest` (§5.0)
        self._heartbeat_s = hello.heartbeat_ms / 1000
        self.protocol_version = chosen
        self.counters.sessions += 1
        for pending in self._inputs:  # a new session: send everything again, fresh seqs
            pending.sent = False
            pending.due = True
            pending.rto = self.timing.rto_s
        return [SessionStarted(self._heartbeat_s, chosen)]

    # -- time -----------------------------------------------------------------------------
    def handle_timeout(self, now: float) -> list[Event]:
        self._advance(now)
        now = self._now
        t = self.timing
        events: list[Event] = []
        for pending in list(self._inputs):
            if now >= pending.created + t.input_ttl_s:
                self._inputs.remove(pending)
                self.counters.inputs_expired += 1
        if self.in_session:
            dead = self._heartbeat_s * t.dead_after_heartbeats
            if now >= self._last_rx + dead:  # the sum next_deadline() names
                self.counters.dead_links += 1
                self._machine.fire(McuTrigger.HOST_SILENT)
                return [*events, SessionEnded(f"no frame from the host for {dead:.1f} s")]
            for pending in self._inputs:
                if pending.sent and not pending.due and now >= pending.sent_at + pending.rto:
                    pending.due = True
                    pending.rto = min(pending.rto * 2, t.rto_max_s)
        return events

    def next_deadline(self) -> float | None:
        t = self.timing
        candidates = [p.created + t.input_ttl_s for p in self._inputs]
        if self.in_session:
            candidates.append(self._last_rx + self._heartbeat_s * t.dead_after_heartbeats)
            beat = self._last_tx + self._heartbeat_s
            if beat > self._now:
                candidates.append(beat)
            candidates += [p.sent_at + p.rto for p in self._inputs if p.sent and not p.due]
        return min(candidates) if candidates else None

    # -- sending --------------------------------------------------------------------------
    @property
    def wants_write(self) -> bool:
        if self.state is McuState.OFFLINE:
            return False
        if self._control:
            return True
        if not self.in_session:
            return False
        if self._logs or self._status is not None:
            return True
        return any(p.due for p in self._inputs) or self._heartbeat_due()

    def data_to_send(self, budget: int | None = None, now: float | None = None) -> bytes:
        self._advance(now)
        out = bytearray()
        if self.state is McuState.OFFLINE or not self._take_control(out, budget):
            return bytes(out)
        if not self.in_session:
            return bytes(out)
        for pending in self._inputs:
            if not pending.due:
                continue
            retransmit = pending.sent
            seq = pending.seq if retransmit else self._seq
            frame = self._frame(pending.event, seq, retransmit=retransmit)
            if not self._fits(out, frame, budget):
                return bytes(out)
            if retransmit:
                self.counters.retransmits += 1
            else:
                seq = self._next_seq()
                pending.seq = seq
            self._commit(out, frame)
            pending.sent = True
            pending.due = False
            pending.sent_at = self._now
        if self._status is not None:
            frame = self._frame(self._status, self._seq)
            if not self._fits(out, frame, budget):
                return bytes(out)
            self._next_seq()
            self._commit(out, frame)
            self._status = None
        while self._logs:
            frame = self._frame(self._logs[0], self._seq)
            if not self._fits(out, frame, budget):
                return bytes(out)
            self._next_seq()
            self._commit(out, frame)
            self._logs.popleft()
        self._take_heartbeat(out, budget)
        return bytes(out)


__all__ = [
    "HOST_TRANSITIONS",
    "MCU_TRANSITIONS",
    "POWER_ON",
    "SLEEPY_IDLE",
    "Acked",
    "CommandReceived",
    "Connected",
    "Counters",
    "Disconnected",
    "Event",
    "FigurineState",
    "HostProtocol",
    "HostState",
    "HostTrigger",
    "Incompatible",
    "InputDelivered",
    "InputReceived",
    "LogReceived",
    "McuProtocol",
    "McuState",
    "McuTrigger",
    "Nacked",
    "SessionEnded",
    "SessionStarted",
    "Slot",
    "StateMachine",
    "StatusReceived",
    "Timing",
    "factor_to_pct",
    "seconds_to_ms",
    "unit_to_u8",
]
