"""Hostile and broken peers against a real service process with real SQLite: a 50 MiB line costs
the service < 5 MiB of memory, and peers without the right token never get a row stored."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import orjson

from tests.sim.ingest_helpers import event_rows, make_token, rss_bytes, start_service

MiB = 1 << 20
TS = 1_764_212_345.0


async def _line(reader: asyncio.StreamReader, timeout: float = 10.0) -> dict[str, Any]:
    raw = await asyncio.wait_for(reader.readline(), timeout)
    assert raw.endswith(b"\n"), raw
    out: dict[str, Any] = orjson.loads(raw)
    return out


def _hello(token: str, session: str = "s1") -> bytes:
    hello = {"kind": "hello", "proto": 1, "token": token, "host_id": "h1", "session_id": session}
    return orjson.dumps(hello) + b"\n"


def _key(seq: int) -> bytes:
    return orjson.dumps({"kind": "key", "seq": seq, "ts": TS + seq, "correction": False}) + b"\n"


async def _stream_huge(writer: asyncio.StreamWriter, pid: int, total: int) -> int:
    """Write ``total`` bytes without a newline; return the service's peak RSS meanwhile."""
    chunk = b"x" * MiB
    peak = 0
    sent = 0
    try:
        while sent < total:
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)
            peak = max(peak, rss_bytes(pid))
    except ConnectionError:
        pass  # an unauthenticated peer is cut off long before the end
    return max(peak, rss_bytes(pid))


def test_fifty_mib_line_is_discarded_with_bounded_memory(tmp_path: Path) -> None:
    token_file, token = make_token(tmp_path)
    db = tmp_path / "data"

    async def main() -> None:
        service = await start_service(db, token_file, 0, "--uvloop")
        try:
            r, w = await asyncio.open_connection("127.0.0.1", service.port)
            w.write(_hello(token))
            assert (await _line(r))["welcome"] is True
            w.write(b"".join(_key(s) for s in range(1, 2001)))  # warm the service up
            while (await _line(r))["ack"] < 2000:
                pass
            base = rss_bytes(service.pid)
            w.write(b'{"kind":"key","seq":2001,"ts":1764212345.0,"pad":"')
            peak = await _stream_huge(w, service.pid, 50 * MiB)
            w.write(b'"}\n' + _key(2002))
            err = await _line(r)
            assert err["error"] == "line_too_long" and err["seq"] is None, err
            assert await _line(r) == {"ack": 2002}  # the connection survived the huge line
            growth = peak - base
            assert growth < 5 * MiB, f"RSS grew by {growth / MiB:.1f} MiB"
            w.close()

            # the same from a peer that never authenticated: cut off, nothing kept
            r2, w2 = await asyncio.open_connection("127.0.0.1", service.port)
            base = rss_bytes(service.pid)
            peak = await _stream_huge(w2, service.pid, 50 * MiB)
            rest = b""
            with contextlib.suppress(ConnectionResetError):  # a reset also means: cut off
                rest = await asyncio.wait_for(r2.read(), 10)
            assert rest == b"" or orjson.loads(rest.splitlines()[0])["error"] == "hello"
            assert peak - base < 5 * MiB
        finally:
            assert await service.terminate() == 0
        assert event_rows(db) == 2001  # 2000 warm-up events + seq 2002; the huge line: nothing

    asyncio.run(main())


def test_unauthenticated_peers_never_get_a_row_stored(tmp_path: Path) -> None:
    token_file, token = make_token(tmp_path)
    db = tmp_path / "data"
    events = b"".join(_key(s) for s in range(1, 200))

    async def attempt(port: int, first: bytes) -> dict[str, Any]:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(first + events)
        try:
            reply = await _line(r)
        finally:
            w.close()
        return reply

    async def main() -> None:
        service = await start_service(db, token_file, 0, "--auth-timeout", "0.5")
        try:
            port = service.port
            wrong = await attempt(port, _hello("A" * 43))
            missing = await attempt(
                port,
                orjson.dumps({"kind": "hello", "proto": 1, "host_id": "h", "session_id": "s"})
                + b"\n",
            )
            no_hello = await attempt(port, b"")
            r, _w = await asyncio.open_connection("127.0.0.1", port)
            silent = await _line(r)  # says nothing at all
            truncated = await attempt(port, _hello(token)[:-5])  # hello never completed
        finally:
            assert await service.terminate() == 0
        assert wrong["error"] == "auth" and wrong["fatal"] is True
        assert missing["error"] == "auth"
        assert no_hello["error"] == "hello"
        assert silent["error"] == "auth_timeout"
        assert truncated["error"] == "hello"
        assert event_rows(db) == 0

    asyncio.run(main())
