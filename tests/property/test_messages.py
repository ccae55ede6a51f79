"""Every message survives encode, frame, decode; any payload decodes or raises DecodeError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.core.errors import DecodeError, MessageError
from firmware_bridge.core.framing import FrameDecoder, encode_frame
from firmware_bridge.core.messages import (
    MAX_TEXT,
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

u8 = st.integers(0, 255)
u16 = st.integers(0, 0xFFFF)


def _short_text(limit: int) -> st.SearchStrategy[str]:
    return st.text(max_size=limit).filter(lambda t: len(t.encode("utf-8")) <= limit)


host_messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(Hello, st.just(1), st.integers(1, 255), st.integers(50, 0xFFFF)),
    st.builds(Heartbeat),
    st.builds(Ack, u16),
    st.builds(Nack, u16, st.sampled_from(NackReason)),
    st.builds(SetGlow, u8, u8, u8, u8, u16, u8, u16),
    st.builds(SetPose, u8, u16, st.sampled_from(Easing)),
    st.builds(ShowText, st.sampled_from(Face), _short_text(MAX_TEXT), u16),
    st.builds(SetBrightness, u8),
    st.builds(Sleep, st.booleans(), u16),
    st.builds(PlayAnimation, st.sampled_from(Animation), u8, st.integers(1, 255)),
    st.builds(Tone, st.integers(20, 20000), st.integers(1, 5000), u8),
    st.builds(Tone, st.just(0), st.integers(0, 5000), u8),
)
caps = st.builds(
    Capabilities,
    u16,
    st.booleans(),
    u16,
    u16,
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.integers(0, MAX_TEXT),
).filter(lambda c: c.display or (c.display_w, c.display_h) == (0, 0))
mcu_messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(HelloReply, u16, u8, u8, u8, st.tuples(u8, u8, u8), caps),
    st.builds(Heartbeat),
    st.builds(Ack, u16),
    st.builds(Nack, u16, st.sampled_from(NackReason)),
    st.builds(Boot, st.sampled_from(BootCause)),
    st.builds(InputEvent, st.sampled_from(InputKind), u8, st.integers(0, 2**32 - 1), u16),
    st.builds(
        Status,
        st.integers(0, 2**32 - 1),
        u16,
        st.integers(0, 15).map(StatusFlag),
        u8,
        st.integers(-32768, 32767),
    ),
    st.builds(LogLine, st.sampled_from(LogLevel), _short_text(200)),
)


@settings(max_examples=300, deadline=None)
@given(msg=host_messages, seq=u16, retx=st.booleans())
def test_host_messages_round_trip_through_a_frame(msg: Message, seq: int, retx: bool) -> None:
    payload = encode_message(msg, seq, sender=Role.HOST, retransmit=retx)
    (back,) = FrameDecoder().feed(encode_frame(payload))
    packet = decode_packet(back)
    assert (packet.seq, packet.msg, packet.sender) == (seq, msg, Role.HOST)
    assert (Flag.RETX in packet.flags) is retx


@settings(max_examples=300, deadline=None)
@given(msg=mcu_messages, seq=u16)
def test_mcu_messages_round_trip_through_a_frame(msg: Message, seq: int) -> None:
    packet = decode_packet(encode_message(msg, seq, sender=Role.MCU))
    assert (packet.seq, packet.msg, packet.sender) == (seq, msg, Role.MCU)


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=260))
def test_arbitrary_payloads_decode_or_raise_decode_error(payload: bytes) -> None:
    try:
        decode_packet(payload)
    except DecodeError as exc:
        assert 1 <= exc.reason <= 7


@settings(max_examples=100, deadline=None)
@given(msg=host_messages, extra=st.binary(min_size=1, max_size=20))
def test_longer_bodies_are_accepted_for_forward_compatibility(msg: Message, extra: bytes) -> None:
    if isinstance(msg, ShowText):
        return  # text is length-prefixed; trailing bytes are covered by the other types
    packet = decode_packet(encode_message(msg, 7, sender=Role.HOST) + extra)
    assert packet.msg == msg


def test_short_body_is_bad_length_and_unknown_type_is_reported() -> None:
    full = encode_message(SetGlow(1, 2, 3), 9)
    with pytest.raises(DecodeError) as info:
        decode_packet(full[:-1])
    assert (info.value.reason, info.value.seq) == (NackReason.BAD_LENGTH, 9)
    with pytest.raises(DecodeError) as info:
        decode_packet(bytes([0x3F, Flag.ACK_REQ, 5, 0]))
    assert info.value.reason == NackReason.UNKNOWN_TYPE
    assert info.value.flags & Flag.ACK_REQ


def test_bad_enum_and_bad_utf8_are_bad_value() -> None:
    with pytest.raises(DecodeError) as info:
        decode_packet(bytes([MsgType.SHOW_TEXT, 1, 0, 0, 99, 0, 0, 0]))
    assert info.value.reason == NackReason.BAD_VALUE
    with pytest.raises(DecodeError) as info:
        decode_packet(bytes([MsgType.SHOW_TEXT, 1, 0, 0, 1, 0, 0, 2, 0xC3, 0x28]))
    assert info.value.reason == NackReason.BAD_VALUE


def test_out_of_range_fields_say_which_field_and_what_fits() -> None:
    with pytest.raises(MessageError, match=r"SetGlow.r must be an integer in 0..255, got 256"):
        SetGlow(256, 0, 0)
    with pytest.raises(MessageError, match="at most 160"):
        ShowText(Face.HAPPY, "x" * 161)
    with pytest.raises(MessageError, match="Face"):
        ShowText(3, "hi")  # type: ignore[arg-type]
    with pytest.raises(MessageError, match="sent by both sides"):
        encode_message(Heartbeat(), 1)
    with pytest.raises(MessageError, match="only sent by the mcu"):
        encode_message(Boot(), 1, sender=Role.HOST)
