"""Whatever arrives on the line, neither protocol role raises, and memory stays bounded."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.core.framing import MAX_ENCODED, encode_frame
from firmware_bridge.core.messages import Hello, HelloReply, InputKind, Role, encode_message
from firmware_bridge.core.protocol import MAX_CONTROL, HostProtocol, McuProtocol

# frames with a valid CRC but arbitrary header and body: what a buggy peer could send
plausible = st.builds(
    lambda t, f, seq, body: encode_frame(bytes([t, f]) + seq.to_bytes(2, "little") + body),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 0xFFFF),
    st.binary(max_size=40),
)
chunks = st.lists(st.one_of(st.binary(max_size=80), plausible), max_size=30)


def _connected_host() -> HostProtocol:
    host = HostProtocol()
    host.reset(0.0)
    host.data_to_send(now=0.0)  # HELLO seq 0
    host.receive_data(encode_frame(encode_message(HelloReply(0), 0, sender=Role.MCU)), 0.0)
    assert host.connected
    host.set_glow(1, 2, 3)
    host.tone(440, 0.1)
    host.data_to_send(now=0.0)
    return host


def _mcu(in_session: bool) -> McuProtocol:
    mcu = McuProtocol()
    mcu.reset(0.0)
    if in_session:
        mcu.receive_data(encode_frame(encode_message(Hello(), 0)), 0.0)
        assert mcu.in_session
    mcu.send_input(InputKind.SHORT_PRESS, 0.0)
    return mcu


@settings(max_examples=150, deadline=None)
@given(data=chunks, connected=st.booleans())
def test_host_never_raises_on_anything_from_the_line(data: list[bytes], connected: bool) -> None:
    host = _connected_host() if connected else HostProtocol()
    if not connected:
        host.reset(0.0)
    now = 0.0
    for chunk in data:
        now += 0.05
        host.receive_data(chunk, now)
        host.handle_timeout(now)
        host.data_to_send(64, now=now)
        assert host.rx_pending_bytes <= MAX_ENCODED
        assert host.control_queue_len <= MAX_CONTROL
    deadline = host.next_deadline()
    assert deadline is None or deadline >= now - 5  # timers stay sane


@settings(max_examples=150, deadline=None)
@given(data=chunks, in_session=st.booleans())
def test_mcu_never_raises_on_anything_from_the_line(data: list[bytes], in_session: bool) -> None:
    mcu = _mcu(in_session)
    now = 0.0
    for chunk in data:
        now += 0.05
        mcu.receive_data(chunk, now)
        mcu.handle_timeout(now)
        mcu.data_to_send(64, now=now)
        assert mcu.rx_pending_bytes <= MAX_ENCODED
        assert mcu.control_queue_len <= MAX_CONTROL
