"""Line framing with a hard length limit that never buffers an overlong line (sans-I/O).

``LineSplitter.feed(chunk)`` returns the complete lines found so far (without ``\\n``; a trailing
``\\r`` is kept, the caller strips it) and ``None`` once for every line that exceeded ``limit``
bytes.  An overlong line is reported as soon as it is detected and its remaining bytes are thrown
away as they arrive, until the next ``\\n``: memory held is at most ``limit`` bytes plus the chunk
being fed, however long the line (a 50 MiB line costs nothing more than a 64 KiB one).
"""

from __future__ import annotations


class LineSplitter:
    __slots__ = ("_buf", "_skipping", "limit")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("line limit must be at least 1 byte")
        self.limit = limit
        self._buf = bytearray()
        self._skipping = False

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete line held (always <= limit)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes | None]:
        out: list[bytes | None] = []
        limit = self.limit
        if self._skipping:
            i = data.find(b"\n")
            if i < 0:
                return out
            data = data[i + 1 :]
            self._skipping = False
        if self._buf:
            i = data.find(b"\n")
            if i < 0:
                if len(self._buf) + len(data) > limit:
                    self._buf.clear()
                    self._skipping = True
                    out.append(None)
                else:
                    self._buf += data
                return out
            if len(self._buf) + i > limit:
                out.append(None)
            else:
                self._buf += data[:i]
                out.append(bytes(self._buf))
            self._buf.clear()
            data = data[i + 1 :]
        lines: list[bytes] = data.split(b"\n")
        tail = lines.pop()
        for line in lines:
            out.append(line if len(line) <= limit else None)
        if tail:
            if len(tail) > limit:
                self._skipping = True
                out.append(None)
            else:
                self._buf += tail
        return out
