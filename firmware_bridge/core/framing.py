"""Frame layer of the figurine protocol (docs/PROTOCOL.md §2).

A frame on the wire is ``00 | COBS(payload || CRC-32 little-endian) | 00``.  The delimiter is on
*both* sides so that garbage before a frame is cut off by the frame's own first byte: noise costs at
most the damaged frame, never the next good one.  The decoder never raises on what it is fed; it
counts what it drops.
"""

from __future__ import annotations

from binascii import crc32
from dataclasses import dataclass

from firmware_bridge.core.errors import FramingError

DELIMITER = 0x00
CRC_SIZE = 4
HEADER_SIZE = 4
#: longest payload (header + body) a frame may carry
MAX_PAYLOAD = 248
#: longest COBS-encoded block between the two delimiters (payload + CRC + 1 COBS overhead byte)
MAX_ENCODED = MAX_PAYLOAD + CRC_SIZE + 1
#: longest frame on the wire, delimiters included
MAX_FRAME = MAX_ENCODED + 2
#: alias used by the serial shell: the most bytes one frame can take on the wire
MAX_ENCODED_FRAME = MAX_FRAME
#: shortest decoded frame: a header and a CRC
MIN_DECODED = HEADER_SIZE + CRC_SIZE


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing: the result contains no 0x00 byte."""
    out = bytearray()
    for block in data.split(b"\x00"):
        while len(block) >= 0xFE:
            out.append(0xFF)
            out += block[:0xFE]
            block = block[0xFE:]
        out.append(len(block) + 1)
        out += block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes | None:
    """Inverse of :func:`cobs_encode`; ``None`` if ``data`` is not valid COBS."""
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        end = i + code
        if code == 0 or end > n:
            return None
        out += data[i + 1 : end]
        i = end
        if code < 0xFF and i < n:
            out.append(0)
    return bytes(out)


def encode_frame(payload: bytes) -> bytes:
    """Frame ``payload`` (header + body) for the wire: CRC-32, COBS, a 0x00 on both sides."""
    if len(payload) > MAX_PAYLOAD:
        raise FramingError(
            f"payload of {len(payload)} bytes is too long for one frame; the limit is "
            f"{MAX_PAYLOAD} bytes (shorten the text or split the message)"
        )
    body = payload + crc32(payload).to_bytes(CRC_SIZE, "little")
    return b"\x00" + cobs_encode(body) + b"\x00"


def decode_frame(encoded: bytes) -> bytes | None:
    """Check one COBS block (without delimiters); the payload, or ``None`` if it is damaged."""
    if not encoded or len(encoded) > MAX_ENCODED:
        return None
    raw = cobs_decode(encoded)
    if raw is None or len(raw) < MIN_DECODED:
        return None
    payload = raw[:-CRC_SIZE]
    if crc32(payload) != int.from_bytes(raw[-CRC_SIZE:], "little"):
        return None
    return payload


@dataclass(slots=True)
class FrameCounters:
    frames: int = 0
    crc_errors: int = 0
    oversize_frames: int = 0
    garbage_bytes: int = 0


class FrameDecoder:
    """Incremental frame decoder: feed it any chunks, get whole CRC-checked payloads back.

    Never raises on input.  ``crc_errors`` counts blocks that failed COBS or CRC checks (or were too
    short to be a frame), ``oversize_frames`` blocks longer than :data:`MAX_ENCODED`, and
    ``garbage_bytes`` every byte that was dropped with them.  Memory is bounded by
    :data:`MAX_ENCODED` whatever is fed.
    """

    __slots__ = ("_buf", "_overflow", "counters")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._overflow = 0
        self.counters = FrameCounters()

    @property
    def crc_errors(self) -> int:
        return self.counters.crc_errors

    @property
    def oversize_frames(self) -> int:
        return self.counters.oversize_frames

    @property
    def garbage_bytes(self) -> int:
        return self.counters.garbage_bytes

    @property
    def pending(self) -> int:
        """Bytes held for an unfinished frame (for tests of the memory bound)."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget a partial frame (after the port was reopened)."""
        self._buf.clear()
        self._overflow = 0

    def feed(self, data: bytes) -> list[bytes]:
        parts = data.split(b"\x00")
        last = parts.pop()
        out: list[bytes] = []
        if parts:
            first = parts[0]
            if self._buf or self._overflow:  # the first part finishes a block begun earlier
                self._absorb(first)
                payload = self._end_of_block()
                if payload is not None:
                    out.append(payload)
                parts[0] = b""
            for block in parts:  # whole blocks: no copying through the buffer
                if block:
                    payload = self._check(block)
                    if payload is not None:
                        out.append(payload)
        self._absorb(last)
        return out

    def _check(self, block: bytes) -> bytes | None:
        c = self.counters
        if len(block) > MAX_ENCODED:
            c.oversize_frames += 1
            c.garbage_bytes += len(block)
            return None
        payload = decode_frame(block)
        if payload is None:
            c.crc_errors += 1
            c.garbage_bytes += len(block)
            return None
        c.frames += 1
        return payload

    def _absorb(self, part: bytes) -> None:
        if self._overflow:
            self._overflow += len(part)
            return
        if len(self._buf) + len(part) > MAX_ENCODED:
            self._overflow = len(self._buf) + len(part)
            self._buf.clear()
            return
        self._buf += part

    def _end_of_block(self) -> bytes | None:
        if self._overflow:
            self.counters.oversize_frames += 1
            self.counters.garbage_bytes += self._overflow
            self._overflow = 0
            return None
        if not self._buf:
            return None
        block = bytes(self._buf)
        self._buf.clear()
        return self._check(block)
