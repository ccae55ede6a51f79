"""Messages of the figurine protocol (docs/PROTOCOL.md §3-§4) and their byte layout.

One frozen, slotted dataclass per message; fields hold the wire values (integers and enums), checked
on construction, so anything that can be built can be encoded.  ``encode_message(msg, seq)`` gives
the frame payload (header + body, ready for ``framing.encode_frame``) and ``decode_packet(payload)``
/ ``decode_message(payload)`` turn one back into a message.  Heartbeat, Ack and Nack exist in both
directions; their type byte depends on the sender, so encoding them needs ``sender=``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import Enum, IntEnum, IntFlag
from typing import NamedTuple, TypeVar

from firmware_bridge.core.errors import DecodeError, MessageError
from firmware_bridge.core.framing import HEADER_SIZE, MAX_PAYLOAD

E = TypeVar("E", bound=IntEnum)

PROTOCOL_VERSION = 1
MAX_TEXT = 160
MAX_LOG_TEXT = 200
DIRECTION_BIT = 0x80


class Role(Enum):
    HOST = "host"
    MCU = "mcu"

    @property
    def peer(self) -> Role:
        return Role.MCU if self is Role.HOST else Role.HOST


class MsgType(IntEnum):
    HELLO = 0x01
    HEARTBEAT = 0x02
    ACK = 0x03
    NACK = 0x04
    SET_GLOW = 0x10
    SET_POSE = 0x11
    SHOW_TEXT = 0x12
    SET_BRIGHTNESS = 0x13
    SLEEP = 0x14
    PLAY_ANIMATION = 0x20
    TONE = 0x21
    HELLO_REPLY = 0x81
    MCU_HEARTBEAT = 0x82
    MCU_ACK = 0x83
    MCU_NACK = 0x84
    BOOT = 0x88
    INPUT_EVENT = 0x90
    STATUS = 0x91
    LOG = 0x92


class Flag(IntFlag):
    ACK_REQ = 0x01
    RETX = 0x02


class NackReason(IntEnum):
    UNKNOWN_TYPE = 1
    BAD_LENGTH = 2
    BAD_VALUE = 3
    UNSUPPORTED = 4
    NOT_READY = 5
    BUSY = 6
    VERSION = 7


_NACK_REASONS: dict[int, NackReason] = {int(r): r for r in NackReason}


class Face(IntEnum):
    NEUTRAL = 0
    HAPPY = 1
    SLEEPY = 2
    FOCUSED = 3
    CONCERNED = 4
    CELEBRATE = 5
    MELTED = 6
    SURPRISED = 7


class Easing(IntEnum):
    LINEAR = 0
    EASE_IN_OUT = 1
    EASE_OUT = 2
    BOUNCE = 3


class Animation(IntEnum):
    STOP = 0
    WAVE = 1
    NOD = 2
    SHAKE = 3
    MELT_DRIP = 4
    CELEBRATE = 5
    WIGGLE = 6
    YAWN = 7


class InputKind(IntEnum):
    SHORT_PRESS = 1
    LONG_PRESS = 2
    DOUBLE_PRESS = 3
    TOUCH = 4


class LogLevel(IntEnum):
    DEBUG = 0
    INFO = 1
    WARN = 2
    ERROR = 3


class BootCause(IntEnum):
    UNKNOWN = 0
    POWER_ON = 1
    WATCHDOG = 2
    SOFTWARE = 3
    BROWNOUT = 4


class CapFlag(IntFlag):
    SERVO = 0x01
    BUZZER = 0x02
    BUTTON = 0x04
    TOUCH = 0x08
    DISPLAY = 0x10


class StatusFlag(IntFlag):
    NONE = 0
    ASLEEP = 0x01
    SERVO_FAULT = 0x02
    DISPLAY_FAULT = 0x04
    LOW_SUPPLY = 0x08


def _uint(owner: object, name: str, value: int, bits: int, low: int = 0) -> None:
    high = (1 << bits) - 1
    # ``type(...) is int`` also refuses bool; IntEnum/IntFlag values are checked by their value
    if (type(value) is not int and not isinstance(value, Enum)) or not low <= value <= high:
        raise MessageError(
            f"{type(owner).__name__}.{name} must be an integer in {low}..{high}, got {value!r}"
        )


def _enum(owner: object, name: str, value: object, kind: type[IntEnum]) -> None:
    if not isinstance(value, kind):
        names = ", ".join(m.name for m in kind)
        raise MessageError(
            f"{type(owner).__name__}.{name} must be a {kind.__name__} ({names}), got {value!r}"
        )


def _text(owner: object, name: str, value: str, limit: int) -> None:
    if not isinstance(value, str):
        raise MessageError(f"{type(owner).__name__}.{name} must be a str, got {value!r}")
    size = len(value.encode("utf-8"))
    if size > limit:
        raise MessageError(
            f"{type(owner).__name__}.{name} is {size} bytes of UTF-8; at most {limit} fit "
            "(shorten it)"
        )


@dataclass(frozen=True, slots=True)
class Message:
    """Base class of every protocol message."""


# --------------------------------------------------------------------------- both directions


@dataclass(frozen=True, slots=True)
class Heartbeat(Message):
    """Sent by either side when it has sent nothing for one heartbeat interval."""


@dataclass(frozen=True, slots=True)
class Ack(Message):
    acked_seq: int

    def __post_init__(self) -> None:
        _uint(self, "acked_seq", self.acked_seq, 16)


@dataclass(frozen=True, slots=True)
class Nack(Message):
    """``reason`` is a :class:`NackReason`, or the plain ``int`` code for a reason this side does
    not know (a newer peer, docs/PROTOCOL.md §4.2: such a NACK is final)."""

    nacked_seq: int
    reason: NackReason | int

    def __post_init__(self) -> None:
        _uint(self, "nacked_seq", self.nacked_seq, 16)
        if isinstance(self.reason, NackReason):
            return
        _uint(self, "reason", self.reason, 8)
        known = _NACK_REASONS.get(self.reason)
        if known is not None:  # Nack(5, 3) is Nack(5, NackReason.BAD_VALUE)
            object.__setattr__(self, "reason", known)


# --------------------------------------------------------------------------- host -> MCU


@dataclass(frozen=True, slots=True)
class Hello(Message):
    proto_min: int = PROTOCOL_VERSION
    proto_max: int = PROTOCOL_VERSION
    heartbeat_ms: int = 1000

    def __post_init__(self) -> None:
        _uint(self, "proto_min", self.proto_min, 8, 1)
        _uint(self, "proto_max", self.proto_max, 8, self.proto_min)
        _uint(self, "heartbeat_ms", self.heartbeat_ms, 16, 50)


@dataclass(frozen=True, slots=True)
class SetGlow(Message):
    r: int
    g: int
    b: int
    intensity: int = 255
    pulse_ms: int = 0
    pulse_depth: int = 0
    fade_ms: int = 0

    def __post_init__(self) -> None:
        for name in ("r", "g", "b", "intensity", "pulse_depth"):
            _uint(self, name, getattr(self, name), 8)
        _uint(self, "pulse_ms", self.pulse_ms, 16)
        _uint(self, "fade_ms", self.fade_ms, 16)


@dataclass(frozen=True, slots=True)
class SetPose(Message):
    melt: int
    ease_ms: int = 0
    easing: Easing = Easing.EASE_IN_OUT

    def __post_init__(self) -> None:
        _uint(self, "melt", self.melt, 8)
        _uint(self, "ease_ms", self.ease_ms, 16)
        _enum(self, "easing", self.easing, Easing)


@dataclass(frozen=True, slots=True)
class ShowText(Message):
    face: Face = Face.NEUTRAL
    text: str = ""
    duration_ms: int = 0

    def __post_init__(self) -> None:
        _enum(self, "face", self.face, Face)
        _text(self, "text", self.text, MAX_TEXT)
        _uint(self, "duration_ms", self.duration_ms, 16)


@dataclass(frozen=True, slots=True)
class SetBrightness(Message):
    level: int

    def __post_init__(self) -> None:
        _uint(self, "level", self.level, 8)


@dataclass(frozen=True, slots=True)
class Sleep(Message):
    asleep: bool
    fade_ms: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.asleep, bool):
            raise MessageError(f"Sleep.asleep must be True or False, got {self.asleep!r}")
        _uint(self, "fade_ms", self.fade_ms, 16)


@dataclass(frozen=True, slots=True)
class PlayAnimation(Message):
    animation: Animation
    repeat: int = 1
    speed_pct: int = 100

    def __post_init__(self) -> None:
        _enum(self, "animation", self.animation, Animation)
        _uint(self, "repeat", self.repeat, 8)
        _uint(self, "speed_pct", self.speed_pct, 8, 1)


@dataclass(frozen=True, slots=True)
class Tone(Message):
    freq_hz: int
    duration_ms: int
    volume: int = 128

    def __post_init__(self) -> None:
        # one check with one message for every caller (console, API, decoder): PROTOCOL.md §4.1
        f = self.freq_hz
        if type(f) is not int or not (f == 0 or 20 <= f <= 20000):
            raise MessageError(f"Tone.freq_hz must be 0 (silence) or 20..20000 Hz, got {f!r}")
        _uint(self, "duration_ms", self.duration_ms, 16)
        if self.duration_ms > 5000:
            raise MessageError(f"Tone.duration_ms must be at most 5000, got {self.duration_ms}")
        if self.duration_ms == 0 and f != 0:
            raise MessageError("Tone.duration_ms must be 1..5000 for a tone (0 only with 0 Hz)")
        _uint(self, "volume", self.volume, 8)


# --------------------------------------------------------------------------- MCU -> host


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the figurine has, as announced in HELLO_REPLY."""

    led_count: int = 12
    servo: bool = True
    display_w: int = 128
    display_h: int = 64
    buzzer: bool = True
    button: bool = True
    touch: bool = False
    max_text: int = MAX_TEXT

    def __post_init__(self) -> None:
        _uint(self, "led_count", self.led_count, 16)
        _uint(self, "display_w", self.display_w, 16)
        _uint(self, "display_h", self.display_h, 16)
        _uint(self, "max_text", self.max_text, 8)
        if self.max_text > MAX_TEXT:
            raise MessageError(f"Capabilities.max_text must be at most {MAX_TEXT}")

    @property
    def display(self) -> bool:
        return self.display_w > 0 and self.display_h > 0

    @property
    def flags(self) -> CapFlag:
        f = CapFlag(0)
        for flag, present in (
            (CapFlag.SERVO, self.servo),
            (CapFlag.BUZZER, self.buzzer),
            (CapFlag.BUTTON, self.button),
            (CapFlag.TOUCH, self.touch),
            (CapFlag.DISPLAY, self.display),
        ):
            if present:
                f |= flag
        return f


@dataclass(frozen=True, slots=True)
class HelloReply(Message):
    reply_to: int
    proto_version: int = PROTOCOL_VERSION
    proto_min: int = PROTOCOL_VERSION
    proto_max: int = PROTOCOL_VERSION
    fw_version: tuple[int, int, int] = (1, 0, 0)
    capabilities: Capabilities = field(default_factory=Capabilities)

    def __post_init__(self) -> None:
        _uint(self, "reply_to", self.reply_to, 16)
        _uint(self, "proto_version", self.proto_version, 8)
        _uint(self, "proto_min", self.proto_min, 8)
        _uint(self, "proto_max", self.proto_max, 8)
        if len(self.fw_version) != 3:
            raise MessageError("HelloReply.fw_version must be (major, minor, patch)")
        for part in self.fw_version:
            _uint(self, "fw_version", part, 8)

    @property
    def fw_version_str(self) -> str:
        return ".".join(str(p) for p in self.fw_version)


@dataclass(frozen=True, slots=True)
class Boot(Message):
    cause: BootCause = BootCause.POWER_ON

    def __post_init__(self) -> None:
        _enum(self, "cause", self.cause, BootCause)


@dataclass(frozen=True, slots=True)
class InputEvent(Message):
    kind: InputKind
    source: int = 0
    at_ms: int = 0
    duration_ms: int = 0

    def __post_init__(self) -> None:
        _enum(self, "kind", self.kind, InputKind)
        _uint(self, "source", self.source, 8)
        _uint(self, "at_ms", self.at_ms, 32)
        _uint(self, "duration_ms", self.duration_ms, 16)


@dataclass(frozen=True, slots=True)
class Status(Message):
    uptime_ms: int
    rx_errors: int = 0
    flags: StatusFlag = StatusFlag.NONE
    melt_now: int = 0
    temp_dc: int = -32768

    def __post_init__(self) -> None:
        _uint(self, "uptime_ms", self.uptime_ms, 32)
        _uint(self, "rx_errors", self.rx_errors, 16)
        _uint(self, "flags", int(self.flags), 8)
        _uint(self, "melt_now", self.melt_now, 8)
        if not -32768 <= self.temp_dc <= 32767:
            raise MessageError(f"Status.temp_dc must fit an i16, got {self.temp_dc}")


@dataclass(frozen=True, slots=True)
class LogLine(Message):
    level: LogLevel
    text: str

    def __post_init__(self) -> None:
        _enum(self, "level", self.level, LogLevel)
        _text(self, "text", self.text, MAX_LOG_TEXT)


# --------------------------------------------------------------------------- codec

_SHARED: dict[type[Message], tuple[MsgType, MsgType]] = {
    Heartbeat: (MsgType.HEARTBEAT, MsgType.MCU_HEARTBEAT),
    Ack: (MsgType.ACK, MsgType.MCU_ACK),
    Nack: (MsgType.NACK, MsgType.MCU_NACK),
}
_TYPE_OF: dict[type[Message], MsgType] = {
    Hello: MsgType.HELLO,
    SetGlow: MsgType.SET_GLOW,
    SetPose: MsgType.SET_POSE,
    ShowText: MsgType.SHOW_TEXT,
    SetBrightness: MsgType.SET_BRIGHTNESS,
    Sleep: MsgType.SLEEP,
    PlayAnimation: MsgType.PLAY_ANIMATION,
    Tone: MsgType.TONE,
    HelloReply: MsgType.HELLO_REPLY,
    Boot: MsgType.BOOT,
    InputEvent: MsgType.INPUT_EVENT,
    Status: MsgType.STATUS,
    LogLine: MsgType.LOG,
}
#: message types whose receiver must ACK or NACK them
RELIABLE = frozenset(
    {
        MsgType.SET_GLOW,
        MsgType.SET_POSE,
        MsgType.SHOW_TEXT,
        MsgType.SET_BRIGHTNESS,
        MsgType.SLEEP,
        MsgType.PLAY_ANIMATION,
        MsgType.TONE,
        MsgType.INPUT_EVENT,
    }
)

_HEADER = struct.Struct("<BBH")
_MSG_TYPES: dict[int, MsgType] = {int(t): t for t in MsgType}
_FLAGS = [Flag(i) for i in range(4)]
_FORMATS: dict[MsgType, struct.Struct] = {
    MsgType.HELLO: struct.Struct("<BBH"),
    MsgType.HEARTBEAT: struct.Struct(""),
    MsgType.ACK: struct.Struct("<H"),
    MsgType.NACK: struct.Struct("<HB"),
    MsgType.SET_GLOW: struct.Struct("<BBBBHBH"),
    MsgType.SET_POSE: struct.Struct("<BHB"),
    MsgType.SHOW_TEXT: struct.Struct("<BHB"),
    MsgType.SET_BRIGHTNESS: struct.Struct("<B"),
    MsgType.SLEEP: struct.Struct("<BH"),
    MsgType.PLAY_ANIMATION: struct.Struct("<BBB"),
    MsgType.TONE: struct.Struct("<HHB"),
    MsgType.HELLO_REPLY: struct.Struct("<HBBBBBBBHHHB"),
    MsgType.MCU_HEARTBEAT: struct.Struct(""),
    MsgType.MCU_ACK: struct.Struct("<H"),
    MsgType.MCU_NACK: struct.Struct("<HB"),
    MsgType.BOOT: struct.Struct("<B"),
    MsgType.INPUT_EVENT: struct.Struct("<BBIH"),
    MsgType.STATUS: struct.Struct("<IHBBh"),
    MsgType.LOG: struct.Struct("<B"),
}


def sender_of(msg_type: int) -> Role:
    return Role.MCU if msg_type & DIRECTION_BIT else Role.HOST


def type_of(msg: Message, sender: Role | None = None) -> MsgType:
    """The type byte of ``msg``; ``sender`` is required for Heartbeat/Ack/Nack and checked else."""
    cls = type(msg)
    shared = _SHARED.get(cls)
    if shared is not None:
        if sender is None:
            raise MessageError(
                f"{cls.__name__} is sent by both sides: pass sender=Role.HOST or Role.MCU"
            )
        return shared[0] if sender is Role.HOST else shared[1]
    try:
        t = _TYPE_OF[cls]
    except KeyError:
        raise MessageError(f"{cls.__name__} is not a protocol message") from None
    if sender is not None and sender_of(t) is not sender:
        raise MessageError(f"{cls.__name__} is only sent by the {sender_of(t).value}")
    return t


def _body(t: MsgType, msg: Message) -> bytes:
    fmt = _FORMATS[t]
    match msg:
        case Heartbeat():
            return b""
        case Ack(acked_seq=s):
            return fmt.pack(s)
        case Nack(nacked_seq=s, reason=r):
            return fmt.pack(s, r)
        case Hello(proto_min=lo, proto_max=hi, heartbeat_ms=hb):
            return fmt.pack(lo, hi, hb)
        case SetGlow():
            return fmt.pack(
                msg.r, msg.g, msg.b, msg.intensity, msg.pulse_ms, msg.pulse_depth, msg.fade_ms
            )
        case SetPose(melt=m, ease_ms=e, easing=k):
            return fmt.pack(m, e, k)
        case ShowText(face=f, text=text, duration_ms=d):
            raw = text.encode("utf-8")
            return fmt.pack(f, d, len(raw)) + raw
        case SetBrightness(level=level):
            return fmt.pack(level)
        case Sleep(asleep=a, fade_ms=fd):
            return fmt.pack(int(a), fd)
        case PlayAnimation(animation=a, repeat=rp, speed_pct=sp):
            return fmt.pack(a, rp, sp)
        case Tone(freq_hz=fq, duration_ms=d, volume=v):
            return fmt.pack(fq, d, v)
        case HelloReply():
            c = msg.capabilities
            return fmt.pack(
                msg.reply_to,
                msg.proto_version,
                msg.proto_min,
                msg.proto_max,
                *msg.fw_version,
                c.flags,
                c.led_count,
                c.display_w,
                c.display_h,
                c.max_text,
            )
        case Boot(cause=cause):
            return fmt.pack(cause)
        case InputEvent(kind=k, source=src, at_ms=at, duration_ms=d):
            return fmt.pack(k, src, at, d)
        case Status():
            return fmt.pack(msg.uptime_ms, msg.rx_errors, msg.flags, msg.melt_now, msg.temp_dc)
        case LogLine(level=lv, text=text):
            return fmt.pack(lv) + text.encode("utf-8")
    raise MessageError(f"{type(msg).__name__} has no encoder")


def encode_message(
    msg: Message, seq: int, *, sender: Role | None = None, retransmit: bool = False
) -> bytes:
    """Header + body of ``msg`` with sequence number ``seq`` (ACK_REQ is set for reliable types)."""
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= 0xFFFF:
        raise MessageError(f"seq must be an integer in 0..65535, got {seq!r}")
    t = type_of(msg, sender)
    flags = (1 if t in RELIABLE else 0) | (2 if retransmit else 0)  # ACK_REQ, RETX
    payload = _HEADER.pack(t, flags, seq) + _body(t, msg)
    if len(payload) > MAX_PAYLOAD:
        raise MessageError(f"{type(msg).__name__} is {len(payload)} bytes; at most {MAX_PAYLOAD}")
    return payload


class Packet(NamedTuple):
    """A decoded payload: header fields and the message."""

    seq: int
    msg: Message
    msg_type: MsgType
    flags: Flag

    @property
    def sender(self) -> Role:
        return sender_of(self.msg_type)


_MEMBERS: dict[type[IntEnum], dict[int, IntEnum]] = {}
_BOOT_CAUSES = frozenset(int(c) for c in BootCause)
_LOG_LEVELS = frozenset(int(level) for level in LogLevel)


def _enum_value(kind: type[E], value: int, what: str, header: tuple[int, int, int]) -> E:
    members = _MEMBERS.get(kind)
    if members is None:
        members = _MEMBERS[kind] = {int(m): m for m in kind}
    try:
        return members[value]  # type: ignore[return-value]
    except KeyError:
        raise DecodeError(
            f"{what} {value} is not a known {kind.__name__}",
            NackReason.BAD_VALUE,
            *header,
        ) from None


def decode_packet(payload: bytes) -> Packet:
    """Decode a CRC-checked payload.  Raises :class:`DecodeError` carrying the NACK reason."""
    if len(payload) < HEADER_SIZE:
        raise DecodeError(
            f"payload of {len(payload)} bytes is shorter than the header", NackReason.BAD_LENGTH
        )
    raw_type, raw_flags, seq = _HEADER.unpack_from(payload)
    header = (raw_type, raw_flags, seq)
    try:
        t = _MSG_TYPES[raw_type]
    except KeyError:
        raise DecodeError(
            f"unknown message type 0x{raw_type:02x}", NackReason.UNKNOWN_TYPE, *header
        ) from None
    fmt = _FORMATS[t]
    body = payload[HEADER_SIZE:]
    if len(body) < fmt.size:
        raise DecodeError(
            f"{t.name} body is {len(body)} bytes, needs {fmt.size}", NackReason.BAD_LENGTH, *header
        )
    v = fmt.unpack_from(body)
    try:
        msg = _build(t, v, body[fmt.size :], header)
    except MessageError as exc:
        raise DecodeError(f"{t.name}: {exc}", NackReason.BAD_VALUE, *header) from None
    return Packet(seq, msg, t, _FLAGS[raw_flags & 3])


def _build(t: MsgType, v: tuple[int, ...], rest: bytes, header: tuple[int, int, int]) -> Message:
    match t:
        case MsgType.HEARTBEAT | MsgType.MCU_HEARTBEAT:
            return Heartbeat()
        case MsgType.ACK | MsgType.MCU_ACK:
            return Ack(v[0])
        case MsgType.NACK | MsgType.MCU_NACK:
            return Nack(v[0], v[1])  # an unknown reason stays its int code (§4.2)
        case MsgType.HELLO:
            return Hello(v[0], v[1], max(v[2], 50))  # below 50 ms is taken as 50 (§4.1)
        case MsgType.SET_GLOW:
            return SetGlow(*v)
        case MsgType.SET_POSE:
            return SetPose(v[0], v[1], _enum_value(Easing, v[2], "easing", header))
        case MsgType.SHOW_TEXT:
            # lengths before values (§6.1): a short text is BAD_LENGTH even with a bad face
            if v[2] > len(rest) or v[2] > MAX_TEXT:
                raise DecodeError(
                    f"SHOW_TEXT text_len {v[2]} but {len(rest)} bytes follow (limit {MAX_TEXT})",
                    NackReason.BAD_LENGTH if v[2] > len(rest) else NackReason.BAD_VALUE,
                    *header,
                )
            face = _enum_value(Face, v[0], "face", header)
            try:
                text = rest[: v[2]].decode("utf-8")
            except UnicodeDecodeError:
                raise DecodeError(
                    "SHOW_TEXT text is not valid UTF-8", NackReason.BAD_VALUE, *header
                ) from None
            return ShowText(face, text, v[1])
        case MsgType.SET_BRIGHTNESS:
            return SetBrightness(v[0])
        case MsgType.SLEEP:
            if v[0] > 1:
                raise DecodeError(f"SLEEP asleep={v[0]} (0 or 1)", NackReason.BAD_VALUE, *header)
            return Sleep(bool(v[0]), v[1])
        case MsgType.PLAY_ANIMATION:
            anim = _enum_value(Animation, v[0], "animation", header)
            return PlayAnimation(anim, v[1], v[2])
        case MsgType.TONE:
            return Tone(*v)
        case MsgType.HELLO_REPLY:
            caps_flags = CapFlag(v[7] & 0x1F)
            display = CapFlag.DISPLAY in caps_flags
            caps = Capabilities(
                led_count=v[8],
                servo=CapFlag.SERVO in caps_flags,
                display_w=v[9] if display else 0,
                display_h=v[10] if display else 0,
                buzzer=CapFlag.BUZZER in caps_flags,
                button=CapFlag.BUTTON in caps_flags,
                touch=CapFlag.TOUCH in caps_flags,
                max_text=min(v[11], MAX_TEXT),
            )
            return HelloReply(v[0], v[1], v[2], v[3], (v[4], v[5], v[6]), caps)
        case MsgType.BOOT:  # an unknown cause is still a reset (§4.2)
            return Boot(BootCause(v[0]) if v[0] in _BOOT_CAUSES else BootCause.UNKNOWN)
        case MsgType.INPUT_EVENT:
            kind = _enum_value(InputKind, v[0], "kind", header)
            return InputEvent(kind, v[1], v[2], v[3])
        case MsgType.STATUS:
            return Status(v[0], v[1], StatusFlag(v[2] & 0x0F), v[3], v[4])
        case MsgType.LOG:
            level = LogLevel(v[0]) if v[0] in _LOG_LEVELS else LogLevel.WARN  # §4.2
            return LogLine(level, _clip(rest[:MAX_LOG_TEXT].decode("utf-8", errors="replace")))
    raise DecodeError(f"no decoder for {t.name}", NackReason.UNKNOWN_TYPE, *header)


def _clip(text: str) -> str:
    while len(text.encode("utf-8")) > MAX_LOG_TEXT:
        text = text[:-1]
    return text


def decode_message(payload: bytes) -> tuple[int, Message]:
    """``(seq, message)`` of a CRC-checked payload; raises :class:`DecodeError`."""
    packet = decode_packet(payload)
    return packet.seq, packet.msg
