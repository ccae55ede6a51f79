"""Properties of the frame layer (docs/PROTOCOL.md §2): chunking, garbage, recovery, bit flips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.core.errors import FramingError
from firmware_bridge.core.framing import (
    MAX_ENCODED,
    MAX_FRAME,
    MAX_PAYLOAD,
    FrameDecoder,
    cobs_decode,
    cobs_encode,
    encode_frame,
)

payloads = st.binary(min_size=4, max_size=MAX_PAYLOAD)
streams = st.lists(payloads, min_size=1, max_size=8)
FAST = settings(max_examples=150, deadline=None)


def _feed_in_chunks(decoder: FrameDecoder, data: bytes, cuts: list[int]) -> list[bytes]:
    out: list[bytes] = []
    start = 0
    for cut in [*sorted({c % (len(data) + 1) for c in cuts}), len(data)]:
        out += decoder.feed(data[start:cut])
        start = cut
    return out


@FAST
@given(data=st.binary(max_size=1200))
def test_cobs_round_trips_and_never_emits_a_zero(data: bytes) -> None:
    encoded = cobs_encode(data)
    assert 0 not in encoded
    assert cobs_decode(encoded) == data
    assert len(encoded) <= len(data) + len(data) // 254 + 1


@FAST
@given(frames=streams, cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=40))
def test_round_trip_under_arbitrary_chunking(frames: list[bytes], cuts: list[int]) -> None:
    wire = b"".join(encode_frame(p) for p in frames)
    decoder = FrameDecoder()
    assert _feed_in_chunks(decoder, wire, cuts) == frames
    assert (decoder.crc_errors, decoder.oversize_frames, decoder.garbage_bytes) == (0, 0, 0)


@FAST
@given(frames=streams)
def test_round_trip_one_byte_at_a_time(frames: list[bytes]) -> None:
    wire = b"".join(encode_frame(p) for p in frames)
    decoder = FrameDecoder()
    out: list[bytes] = []
    for i in range(len(wire)):
        out += decoder.feed(wire[i : i + 1])
    assert out == frames


@FAST
@given(frames=streams)
def test_every_frame_fits_the_documented_wire_limit(frames: list[bytes]) -> None:
    for p in frames:
        wire = encode_frame(p)
        assert wire[0] == 0 and wire[-1] == 0 and 0 not in wire[1:-1]
        assert len(wire) <= MAX_FRAME


@FAST
@given(garbage=st.lists(st.binary(max_size=400), max_size=6))
def test_garbage_never_raises_and_memory_stays_bounded(garbage: list[bytes]) -> None:
    decoder = FrameDecoder()
    for chunk in garbage:
        for payload in decoder.feed(chunk):
            assert isinstance(payload, bytes)
        assert decoder.pending <= MAX_ENCODED


@FAST
@given(garbage=st.binary(max_size=600), frames=streams, cuts=st.lists(st.integers(0, 5000)))
def test_after_garbage_every_following_frame_decodes(
    garbage: bytes, frames: list[bytes], cuts: list[int]
) -> None:
    wire = garbage + b"".join(encode_frame(p) for p in frames)
    out = _feed_in_chunks(FrameDecoder(), wire, cuts)
    assert out[len(out) - len(frames) :] == frames


@FAST
@given(
    frames=st.lists(payloads, min_size=1, max_size=5),
    position=st.integers(min_value=0),
    bit=st.integers(min_value=0, max_value=7),
)
def test_a_single_bit_flip_never_yields_a_wrong_payload(
    frames: list[bytes], position: int, bit: int
) -> None:
    wire = bytearray(b"".join(encode_frame(p) for p in frames))
    wire[position % len(wire)] ^= 1 << bit
    decoder = FrameDecoder()
    out = decoder.feed(bytes(wire) + b"\x00")  # the extra delimiter ends a frame left open
    # only whole, original frames come out, in order; the flip costs at most the two frames
    # around it (a flipped delimiter joins two frames into one that fails its CRC)
    remaining = iter(frames)
    assert all(any(p == q for q in remaining) for p in out), "a damaged payload came out"
    assert len(out) >= len(frames) - 2
    assert len(out) == len(frames) or decoder.crc_errors + decoder.oversize_frames >= 1


def test_an_oversize_block_is_dropped_and_the_next_frame_survives() -> None:
    decoder = FrameDecoder()
    good = b"\x10\x01\x00\x00hello"
    out = decoder.feed(b"\x00" + b"\x41" * 1000 + encode_frame(good))
    assert out == [good]
    assert decoder.oversize_frames == 1
    assert decoder.garbage_bytes == 1000


def test_truncated_frame_costs_only_itself() -> None:
    first, second = b"\x10\x01\x00\x00first", b"\x10\x01\x01\x00second"
    cut = encode_frame(first)[:-5]
    decoder = FrameDecoder()
    assert decoder.feed(cut + encode_frame(second)) == [second]
    assert decoder.crc_errors == 1


def test_too_long_payload_is_refused_with_a_clear_error() -> None:
    with pytest.raises(FramingError, match="248"):
        encode_frame(bytes(MAX_PAYLOAD + 1))
    assert isinstance(FramingError("x"), ValueError)


def test_a_runt_frame_is_counted_not_returned() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"\x00\x02\x01\x00") == []
    assert decoder.crc_errors == 1
