"""DataCapture protocol over real TCP / Unix / TLS sockets, with a test-double sink whose commit
can be held open (so "ack only after commit" is checked by ordering, not by sleeping)."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import stat
import subprocess
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from bus import Bus, Delivery, ModuleId, ModuleRegistry
from bus.messages import LinkStatus, RawEvent
from modules.data_capture import DataCapture, IngestConfig, _Connection
from tests.slowness import allow

Run = Callable[[Coroutine[Any, Any, Any]], Any]
TOKEN = "unit-test-token-abcdefghijklmnopqrstuvwxyz012"
TS = 1_764_212_345.0
HELLO = {"kind": "hello", "proto": 1, "token": TOKEN, "host_id": "h1", "session_id": "s"}


class MemorySink:
    """EventSink double: dedupes like the store; ``gate`` (when cleared) holds commits open."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, int], RawEvent] = {}
        self.batches: list[int] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.entered = asyncio.Event()
        self.fail: Exception | None = None

    async def commit(self, events: Sequence[RawEvent]) -> int:
        self.entered.set()
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        self.batches.append(len(events))
        new = 0
        for ev in events:
            key = (ev.host_id, ev.session_id, ev.seq)
            if key not in self.rows:
                self.rows[key] = ev
                new += 1
        return new

    async def resume_point(self, host_id: str, session_id: str) -> int:
        return max((k[2] for k in self.rows if k[:2] == (host_id, session_id)), default=0)

    def seqs(self, session: str = "s1") -> list[int]:
        return sorted(k[2] for k in self.rows if k[1] == session)


class Peer:
    """A raw line-level client: what any-language client code would do."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def tcp(cls, port: int, **kw: Any) -> Peer:
        r, w = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20, **kw)
        return cls(r, w)

    def send(self, obj: Any) -> None:
        data = obj if isinstance(obj, bytes) else orjson.dumps(obj)
        self.writer.write(data + b"\n")

    async def line(self, timeout: float = 5.0) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.reader.readline(), timeout)
        assert raw.endswith(b"\n"), f"connection closed instead of a line (got {raw!r})"
        out: dict[str, Any] = orjson.loads(raw)
        return out

    async def closed(self, timeout: float = 5.0) -> bool:
        """True once the server closed (a reset counts: it closed with our unread lines)."""
        try:
            rest = await asyncio.wait_for(self.reader.read(), timeout)
        except ConnectionResetError:
            return True
        return rest == b""

    async def hello(self, session: str = "s1", token: str = TOKEN) -> dict[str, Any]:
        self.send(
            {"kind": "hello", "proto": 1, "token": token, "host_id": "h1", "session_id": session}
        )
        return await self.line()

    def close(self) -> None:
        self.writer.close()


def key(seq: int, correction: bool = False) -> dict[str, Any]:
    return {"kind": "key", "seq": seq, "ts": TS + seq, "correction": correction}


async def serve(sink: MemorySink, **cfg: Any) -> tuple[DataCapture, Bus]:
    bus = Bus(ModuleRegistry())
    config = IngestConfig(**{"port": 0, "max_events_per_s": 0.0, **cfg})
    capture = DataCapture(config, sink=sink, token=TOKEN)
    await capture.start(bus)
    assert capture.detail.startswith("listening"), capture.detail
    return capture, bus


async def shutdown(capture: DataCapture, bus: Bus) -> None:
    await capture.stop()
    await bus.aclose()


def test_welcome_then_ack_only_after_the_commit_returned(run: Run) -> None:
    async def main() -> None:
        sink = MemorySink()
        capture, bus = await serve(sink)
        peer = await Peer.tcp(capture.port)
        welcome = await peer.hello()
        assert welcome["welcome"] is True and welcome["resume_seq"] == 0
        assert welcome["limits"]["max_line_bytes"] == 65536
        sink.gate.clear()
        for seq in range(1, 4):
            peer.send(key(seq))
        await sink.entered.wait()  # the commit is running and held open
        peer.send({"kind": "ping"})
        # the pong overtakes the ack: nothing is acknowledged while the commit has not returned
        assert await peer.line() == {"pong": True, "ack": 0}
        sink.gate.set()
        acks = []
        while not acks or acks[-1] < 3:
            acks.append((await peer.line())["ack"])
        assert acks == sorted(acks) and acks[-1] == 3
        assert sink.seqs() == [1, 2, 3]
        peer.close()
        await shutdown(capture, bus)

    run(main())


@pytest.mark.parametrize(
    ("first_line", "code"),
    [
        (
            {"kind": "hello", "proto": 1, "token": "wrong" * 9, "host_id": "h1", "session_id": "s"},
            "auth",
        ),
        ({k: v for k, v in HELLO.items() if k != "token"}, "auth"),
        ({"kind": "key", "seq": 1, "ts": TS, "correction": False}, "hello"),
        (b"not json at all", "hello"),
        ({**HELLO, "proto": 9}, "version"),
        ({**HELLO, "host_id": "h 1"}, "hello"),
        ({**HELLO, "title": "x"}, "hello"),
    ],
)
def test_bad_hello_gets_one_fatal_error_and_nothing_is_stored(
    run: Run, first_line: Any, code: str
) -> None:
    async def main() -> None:
        sink = MemorySink()
        capture, bus = await serve(sink)
        peer = await Peer.tcp(capture.port)
        peer.send(first_line)
        for seq in range(1, 50):  # events right behind the bad hello must not be looked at
            peer.send(key(seq))
        err = await peer.line()
        assert err["error"] == code and err["fatal"] is True, err
        assert len(err["message"]) > 20
        assert await peer.closed()
        assert sink.rows == {} and sink.batches == []
        assert capture.stats.accepted == 0 and capture.stats.auth_failures == 1
        await shutdown(capture, bus)

    run(main())


def test_silent_client_is_closed_after_the_auth_timeout(run: Run) -> None:
    async def main() -> None:
        sink = MemorySink()
        capture, bus = await serve(sink, auth_timeout_s=0.3)
        peer = await Peer.tcp(capture.port)
        t0 = time.monotonic()
        err = await peer.line()
        elapsed = time.monotonic() - t0
        assert err["error"] == "auth_timeout" and err["fatal"] is True
        assert await peer.closed()
        assert 0.25 <= elapsed < allow(2.0)
        assert sink.rows == {}
        await shutdown(capture, bus)

    run(main())


def test_auth_timeout_cannot_be_configured_above_two_seconds() -> None:
    with pytest.raises(ValueError, match="auth_timeout_s"):
        IngestConfig(auth_timeout_s=5.0)


BAD_EVENTS: list[tuple[bytes, str, int | None, str | None]] = [
    (b'{"kind":"key","seq":5,"ts":', "json", None, None),
    (b"[1,2,3]", "json", None, None),
    (b'{"kind":"keyboard","seq":5,"ts":1764212345.0}', "kind", 5, "kind"),
    (b'{"seq":5,"ts":1764212345.0}', "kind", 5, "kind"),
    (b'{"kind":"key","ts":1764212345.0,"correction":false}', "seq", None, "seq"),
    (b'{"kind":"key","seq":"5","ts":1764212345.0,"correction":false}', "seq", None, "seq"),
    (b'{"kind":"key","seq":5,"ts":1764212345.0,"correction":1}', "type", 5, "correction"),
    (b'{"kind":"key","seq":5,"ts":"now","correction":false}', "type", 5, "ts"),
    (b'{"kind":"key","seq":5,"ts":1764212345.0}', "missing", 5, "correction"),
    (b'{"kind":"key","seq":5,"ts":12.0,"correction":false}', "range", 5, "ts"),
    (
        b'{"kind":"mouse","seq":5,"ts":1764212345.0,"speed":-3,"clicks":1,"span_ms":1000}',
        "range",
        5,
        "speed",
    ),
    (
        b'{"kind":"mouse","seq":5,"ts":1764212345.0,"speed":3,"clicks":1.5,"span_ms":1000}',
        "type",
        5,
        "clicks",
    ),
    (
        b'{"kind":"focus","seq":5,"ts":1764212345.0,"category":"porn","app_id":"x1"}',
        "range",
        5,
        "category",
    ),
    (
        b'{"kind":"focus","seq":5,"ts":1764212345.0,"category":"code","app_id":"Visual Studio"}',
        "range",
        5,
        "app_id",
    ),
    (
        b'{"kind":"focus","seq":5,"ts":1764212345.0,"category":"code","app_id":"a",'
        b'"title":"Bank statement.pdf"}',
        "privacy",
        5,
        "title",
    ),
    (b'{"kind":"key","seq":5,"ts":1764212345.0,"correction":false,"key":"p"}', "privacy", 5, "key"),
    (
        b'{"kind":"key","seq":5,"ts":1764212345.0,"correction":false,"keycode":65}',
        "privacy",
        5,
        "keycode",
    ),
    (
        b'{"kind":"focus","seq":5,"ts":1764212345.0,"category":"browser","app_id":"a",'
        b'"url":"https://example.org/secret"}',
        "privacy",
        5,
        "url",
    ),
    (
        b'{"kind":"idle","seq":5,"ts":1764212345.0,"duration_s":1,"mood":3}',
        "unknown_field",
        5,
        "mood",
    ),
    (b'{"kind":"idle","seq":5,"ts":1764212345.0,"duration_s":90000}', "range", 5, "duration_s"),
]


def test_each_bad_event_gets_one_clear_error_and_the_connection_survives(run: Run) -> None:
    async def main() -> None:
        sink = MemorySink()
        capture, bus = await serve(sink)
        peer = await Peer.tcp(capture.port)
        await peer.hello()
        seq = 0
        for line, code, err_seq, field in BAD_EVENTS:
            peer.send(line)
            err = await peer.line()
            assert err["error"] == code, (line, err)
            assert err["seq"] == err_seq, (line, err)
            assert err.get("field") == field, (line, err)
            assert "fatal" not in err
            if code == "privacy":
                assert b"Bank statement" not in orjson.dumps(err)  # never echo content
                assert "https" not in err["message"]
            seq += 1
            peer.send(key(seq))  # a good event right after is still accepted
            assert await peer.line() == {"ack": seq}
        assert sink.seqs() == list(range(1, seq + 1))
        stored_kinds = {ev.kind for ev in sink.rows.values()}
        assert stored_kinds == {"key"}
        await shutdown(capture, bus)

    run(main())


def test_overlong_line_is_refused_and_the_connection_survives(run: Run) -> None:
    async def main() -> None:
        sink = MemorySink()
        capture, bus = await serve(sink)
        peer = await Peer.tcp(capture.port)
        await peer.hello()
        peer.writer.write(b'{"kind":"key","seq":1,"pad":"' + b"x" * 70_000 + b'"}\n')
        err = await peer.line()
        assert err["error"] == "line_too_long" and err["seq"] is None
        peer.send(key(1))
        assert await peer.line() == {"ack": 1}
        await shutdown(capture, bus)

    run(main())


def test_reconnect_resumes_and_duplicates_are_dropped_and_acknowledged(run: Run) -> None:
    async def main() -> None:
        sink = MemorySink()
        capture, bus = await serve(sink)
        peer = await Peer.tcp(capture.port)
        await peer.hello()
        for seq in range(1, 11):
            peer.send(key(seq))
        while (await peer.line())["ack"] < 10:
            pass
        peer.close()
        again = await Peer.tcp(capture.port)
        welcome = await again.hello()
        assert welcome["resume_seq"] == 10
        for seq in range(5, 11):  # duplicates: dropped silently and acknowledged
            again.send(key(seq))
        assert await again.line() == {"ack": 10}
        again.send(key(11))
        again.send(key(12))
        acks = [(await again.line())["ack"]]
        while acks[-1] < 12:
            acks.append((await again.line())["ack"])
        assert sink.seqs() == list(range(1, 13))
        assert capture.stats.duplicates == 6
        other = await Peer.tcp(capture.port)
        assert (await other.hello(session="s2"))["resume_seq"] == 0  # per session
        await shutdown(capture, bus)

    run(main())


def test_sequence_numbers_must_increase_on_a_connection(run: Run) -> None:
    async def main() -> None:
        sink = MemorySink()
        capture, bus = await serve(sink)
        peer = await Peer.tcp(capture.port)
        await peer.hello()
        peer.send(key(3))
        assert await peer.line() == {"ack": 3}
        peer.send(key(2))
        err = await peer.line()
        assert err["error"] == "seq" and err["seq"] == 2 and "not greater" in err["message"]
        peer.send(key(7))  # gaps are tolerated
        assert await peer.line() == {"ack": 7}
        assert sink.seqs() == [3, 7]
        await shutdown(capture, bus)

    run(main())


def test_connections_beyond_the_limit_are_refused_busy(run: Run) -> None:
    async def main() -> None:
        sink = MemorySink()
        capture, bus = await serve(sink, max_connections=2)
        a = await Peer.tcp(capture.port)
        b = await Peer.tcp(capture.port)
        await a.hello()
        c = await Peer.tcp(capture.port)
        err = await c.line()
        assert err["error"] == "busy" and err["fatal"] is True
        assert await c.closed()
        await b.hello(session="s2")  # the two admitted ones keep working
        await shutdown(capture, bus)

    run(main())


def test_rate_limit_slows_the_sender_down_without_losing_events(run: Run) -> None:
    async def main() -> None:
        sink = MemorySink()
        capture, bus = await serve(sink, max_events_per_s=2000.0, burst_events=200)
        peer = await Peer.tcp(capture.port)
        await peer.hello()
        t0 = time.monotonic()
        peer.writer.write(b"".join(orjson.dumps(key(s)) + b"\n" for s in range(1, 1201)))
        notices = []
        ack = 0
        while ack < 1200:
            msg = await peer.line()
            if "error" in msg:
                notices.append(msg)
            else:
                ack = msg["ack"]
        elapsed = time.monotonic() - t0
        # 1000 events beyond the burst at 2000/s cannot take less than 0.5 s
        assert elapsed >= 0.45, elapsed
        assert [n["error"] for n in notices] == ["rate"]
        assert "fatal" not in notices[0] and notices[0]["seq"] is None
        assert sink.seqs() == list(range(1, 1201))
        assert capture.stats.throttled >= 1
        await shutdown(capture, bus)

    run(main())


def test_flood_while_the_store_is_busy_stops_reading_instead_of_buffering(run: Run) -> None:
    async def main() -> None:
        sink = MemorySink()
        capture, bus = await serve(sink, max_unacked=100)
        peer = await Peer.tcp(capture.port)
        await peer.hello()
        sink.gate.clear()
        total = 60_000
        blob = b"".join(orjson.dumps(key(s)) + b"\n" for s in range(1, total + 1))
        peer.writer.write(blob)
        await sink.entered.wait()
        (conn,) = capture.connections
        for _ in range(500):  # until the server has stopped reading (bounded wait)
            if conn.reading_paused:
                break
            await asyncio.sleep(0.01)
        assert conn.reading_paused
        assert capture.stats.accepted <= 100  # held events bounded by max_unacked
        assert len(conn.backlog) < 5000  # at most one read chunk of lines waits
        assert capture.stats.lines < total // 2  # the rest waits in TCP's flow control
        sink.gate.set()
        ack = 0
        while ack < total:
            ack = (await peer.line(timeout=20))["ack"]
        assert max(sink.batches) <= 100
        assert sink.seqs() == list(range(1, total + 1))
        await shutdown(capture, bus)

    run(main())


def test_a_flood_of_bad_lines_closes_the_connection(run: Run) -> None:
    async def main() -> None:
        sink = MemorySink()
        capture, bus = await serve(sink, max_errors_per_min=5)
        peer = await Peer.tcp(capture.port)
        await peer.hello()
        for _ in range(20):
            peer.send(b"garbage")
        codes = []
        while True:
            msg = await peer.line()
            codes.append(msg["error"])
            if msg.get("fatal"):
                break
        assert codes == ["json"] * 5 + ["too_many_errors"]
        assert await peer.closed()
        await shutdown(capture, bus)

    run(main())


def test_idle_connection_is_closed_and_ping_keeps_it(run: Run) -> None:
    async def main() -> None:
        sink = MemorySink()
        capture, bus = await serve(sink, idle_timeout_s=0.4)
        peer = await Peer.tcp(capture.port)
        await peer.hello()
        for _ in range(3):
            await asyncio.sleep(0.2)
            peer.send({"kind": "ping"})
            assert (await peer.line())["pong"] is True
        err = await peer.line(timeout=3)
        assert err["error"] == "idle_timeout" and err["fatal"] is True
        await shutdown(capture, bus)

    run(main())


def test_a_ping_spends_nothing_of_the_rate_limit(run: Run) -> None:
    """INGEST.md §4.5: pings are not rate-limited.  With a burst of 3 events and (practically)
    no refill, 5 pings and then 3 events all go through without a `rate` notice."""

    async def main() -> None:
        sink = MemorySink()
        capture, bus = await serve(sink, max_events_per_s=0.001, burst_events=3)
        peer = await Peer.tcp(capture.port)
        await peer.hello()
        for _ in range(5):
            peer.send({"kind": "ping"})
            assert await peer.line() == {"pong": True, "ack": 0}
        peer.writer.write(b"".join(orjson.dumps(key(s)) + b"\n" for s in (1, 2, 3)))
        got = await peer.line()
        while got.get("ack", 0) < 3 and "error" not in got:
            got = await peer.line()
        assert got == {"ack": 3}, got  # not {"error": "rate", ...}
        assert capture.stats.throttled == 0
        assert sink.seqs() == [1, 2, 3]
        await shutdown(capture, bus)

    run(main())


def test_a_committed_batch_is_published_as_one_burst(run: Run) -> None:
    """The hot path: each committed batch goes out with one ``bus.publish_many`` -- every event
    its own envelope, in order, sharing the burst's publish timestamp."""

    async def main() -> None:
        sink = MemorySink()
        capture, bus = await serve(sink)
        got: list[Any] = []
        bus.subscribe(got.append, types=RawEvent, mode=Delivery.RELIABLE, maxsize=1000)
        peer = await Peer.tcp(capture.port)
        await peer.hello()
        sink.gate.clear()  # hold the first commit open so the rest queue into one batch
        peer.send(key(1))
        await sink.entered.wait()
        peer.writer.write(b"".join(orjson.dumps(key(s)) + b"\n" for s in range(2, 102)))
        await peer.writer.drain()
        for _ in range(5000):  # until the server has read them all (bounded wait)
            if capture.stats.accepted == 101:
                break
            await asyncio.sleep(0.002)
        assert capture.stats.accepted == 101
        sink.gate.set()
        ack = 0
        while ack < 101:
            ack = (await peer.line())["ack"]
        await bus.join()
        assert sink.batches == [1, 100]
        assert [env.payload.seq for env in got] == list(range(1, 102))
        assert len({env.id for env in got}) == 101
        second = got[1:]
        assert len({env.t_ns for env in second}) == 1  # one burst, one publish timestamp
        assert got[0].t_ns < second[0].t_ns
        await shutdown(capture, bus)

    run(main())


def test_publishes_raw_events_after_commit_and_host_link_status(run: Run) -> None:
    async def main() -> None:
        sink = MemorySink()
        capture, bus = await serve(sink)
        got: list[Any] = []
        bus.subscribe(
            lambda env: got.append(env.payload),
            types=[RawEvent, LinkStatus],
            sources=ModuleId.DATA_CAPTURE,
            mode=Delivery.RELIABLE,
        )
        peer = await Peer.tcp(capture.port)
        await peer.hello()
        peer.send({"kind": "mouse", "seq": 1, "ts": TS, "speed": 412, "clicks": 1, "span_ms": 1000})
        peer.send({"kind": "focus", "seq": 2, "ts": TS, "category": "code", "app_id": "c0ffee12"})
        peer.send({"kind": "idle", "seq": 3, "ts": TS, "duration_s": 42})
        peer.send(key(4, correction=True))
        while (await peer.line())["ack"] < 4:
            pass
        peer.close()
        for _ in range(200):
            if any(isinstance(m, LinkStatus) and not m.up for m in got):
                break
            await asyncio.sleep(0.01)
        links = [m for m in got if isinstance(m, LinkStatus)]
        events = [m for m in got if isinstance(m, RawEvent)]
        assert [(m.link, m.up, m.peer) for m in links] == [
            ("host", True, "h1"),
            ("host", False, "h1"),
        ]
        assert [e.seq for e in events] == [1, 2, 3, 4]
        assert events[0].attrs == (("speed", 412.0), ("clicks", 1), ("span_ms", 1000))
        assert isinstance(events[0].get("speed"), float)
        assert events[1].attrs == (("category", "code"), ("app_id", "c0ffee12"))
        assert events[2].get("duration_s") == 42.0
        assert events[3].get("correction") is True
        assert all(e.host_id == "h1" and e.session_id == "s1" for e in events)
        await shutdown(capture, bus)

    run(main())


def test_a_new_connection_of_the_same_session_supersedes_the_old(run: Run) -> None:
    async def main() -> None:
        sink = MemorySink()
        capture, bus = await serve(sink)
        old = await Peer.tcp(capture.port)
        await old.hello()
        new = await Peer.tcp(capture.port)
        await new.hello()
        err = await old.line()
        assert err["error"] == "superseded" and err["fatal"] is True
        new.send(key(1))
        assert await new.line() == {"ack": 1}
        await shutdown(capture, bus)

    run(main())


def test_storage_failure_closes_with_an_error_and_acknowledges_nothing(run: Run) -> None:
    async def main() -> None:
        sink = MemorySink()
        capture, bus = await serve(sink)
        peer = await Peer.tcp(capture.port)
        await peer.hello()
        sink.fail = OSError("disk full")
        peer.send(key(1))
        err = await peer.line()
        assert err["error"] == "storage" and err["fatal"] is True and "disk full" in err["message"]
        assert await peer.closed()
        assert capture.status.value == "Degraded"
        await shutdown(capture, bus)

    run(main())


def test_unix_socket_is_private_and_still_needs_the_token(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "ingest.sock"

    async def main() -> None:
        sink = MemorySink()
        capture, bus = await serve(sink, host="", unix_path=str(path))
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        r, w = await asyncio.open_unix_connection(str(path))
        peer = Peer(r, w)
        assert (await peer.hello(token="nope" * 8))["error"] == "auth"
        r, w = await asyncio.open_unix_connection(str(path))
        peer = Peer(r, w)
        await peer.hello()
        peer.send(key(1))
        assert await peer.line() == {"ack": 1}
        await shutdown(capture, bus)
        assert not path.exists()

    run(main())


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl tool for a cert")
def test_tls_listener(run: Run, tmp_path: Path) -> None:
    cert, keyf = tmp_path / "pi.crt", tmp_path / "pi.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(keyf), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip

    async def main() -> None:
        sink = MemorySink()
        capture, bus = await serve(sink, tls_cert=str(cert), tls_key=str(keyf))
        assert capture.detail.startswith("listening on tls://")
        ctx = ssl.create_default_context(cafile=str(cert))
        peer = await Peer.tcp(capture.port, ssl=ctx, server_hostname="localhost")
        await peer.hello()
        peer.send(key(1))
        assert await peer.line() == {"ack": 1}
        plain = await Peer.tcp(capture.port)  # a plain-text client gets nowhere
        plain.send({"kind": "hello", "proto": 1, "token": TOKEN, "host_id": "x", "session_id": "y"})
        assert await plain.closed()
        assert sink.seqs() == [1]
        await shutdown(capture, bus)

    run(main())


def make_cert(tmp_path: Path) -> tuple[Path, Path]:
    cert, keyf = tmp_path / "pi.crt", tmp_path / "pi.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(keyf), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, keyf


async def settled(cond: Callable[[], bool]) -> None:
    for _ in range(2000):  # until the server got there (bounded wait, not a timing assumption)
        if cond():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the server did not get there")


def test_connections_in_the_tls_handshake_count_toward_max_connections(
    run: Run, tmp_path: Path
) -> None:
    """INGEST.md §3/§8: a connection counts from its TCP accept.  Two peers that connect and
    never start the handshake fill max_connections=2: a third gets `busy`.  Their places are
    freed when the handshake timeout (= auth_timeout_s) ends them."""
    cert, keyf = make_cert(tmp_path)

    async def main() -> None:
        sink = MemorySink()
        capture, bus = await serve(
            sink, tls_cert=str(cert), tls_key=str(keyf), max_connections=2, auth_timeout_s=1.0
        )
        ctx = ssl.create_default_context(cafile=str(cert))
        silent = [await Peer.tcp(capture.port) for _ in range(2)]  # TCP only, no ClientHello
        await settled(lambda: len(capture.handshaking) == 2)
        third = await Peer.tcp(capture.port, ssl=ctx, server_hostname="localhost")
        err = await third.line()
        assert err["error"] == "busy" and err["fatal"] is True
        assert await third.closed()
        assert capture.stats.rejected_busy == 1 and sink.seqs() == []
        # the silent two are ended by the handshake timeout, and their places are free again
        for peer in silent:
            assert await peer.closed()
        await settled(lambda: not capture.handshaking)
        fourth = await Peer.tcp(capture.port, ssl=ctx, server_hostname="localhost")
        assert (await fourth.hello())["welcome"] is True
        fourth.send(key(1))
        assert await fourth.line() == {"ack": 1}
        await shutdown(capture, bus)

    run(main())


def test_the_hello_is_due_auth_timeout_after_the_accept_handshake_included(
    run: Run, tmp_path: Path
) -> None:
    """The TLS handshake spends the hello's time: the auth timer runs from the TCP accept,
    not from the end of the handshake (a slow handshake leaves less time for the hello)."""
    cert, keyf = make_cert(tmp_path)

    async def main() -> None:
        sink = MemorySink()
        capture, bus = await serve(sink, tls_cert=str(cert), tls_key=str(keyf), auth_timeout_s=2.0)
        loop = asyncio.get_running_loop()
        raw = await Peer.tcp(capture.port)
        await settled(lambda: len(capture.handshaking) == 1)
        (conn,) = capture.handshaking
        await asyncio.sleep(0.5)  # a slow client: the handshake starts half a second late
        ctx = ssl.create_default_context(cafile=str(cert))
        await raw.writer.start_tls(ctx, server_hostname="localhost")
        handshake_done = loop.time()
        await settled(lambda: conn.auth_due is not None)  # admitted after its handshake
        # due 2 s after the accept, not 2 s after the handshake ended
        assert conn.auth_due == pytest.approx(conn.accepted_at + 2.0, abs=1e-6)
        assert conn.accepted_at <= handshake_done - 0.5
        err = await raw.line(timeout=10)
        assert err["error"] == "auth_timeout" and err["fatal"] is True
        await shutdown(capture, bus)

    run(main())


def test_without_a_sink_the_module_does_not_listen(run: Run) -> None:
    async def main() -> None:
        bus = Bus(ModuleRegistry())
        capture = DataCapture(IngestConfig(port=0), token=TOKEN)
        await capture.start(bus)
        assert capture.port == 0 and capture.status.value == "Degraded"
        await capture.stop()
        await bus.aclose()

    run(main())


def test_a_token_file_that_cannot_be_created_is_unhealthy_not_a_crash(
    run: Run, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    path = blocker / "ingest.token"  # its parent is a file: mkdir/create fail with an OSError

    async def main() -> None:
        bus = Bus(ModuleRegistry())
        capture = DataCapture(IngestConfig(port=0, token_file=str(path)), sink=MemorySink())
        await capture.start(bus)  # must not raise: a crash here is a restart loop under systemd
        assert capture.status.value == "Unhealthy" and capture.port == 0
        assert str(path) in capture.detail and "not listening" in capture.detail
        await capture.stop()
        await bus.aclose()

    run(main())


def test_a_client_that_half_closes_after_sending_still_gets_everything_stored_and_acked(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    # e.g. `cat hello-and-events.ndjson | nc -N pi 7878`: the host shuts down its sending side
    # right after the last line; what arrived before the FIN must be committed and acknowledged
    # even when the FIN arrives while the commit is still running
    eof_seen = asyncio.Event()
    original = _Connection.eof_received

    def eof_received(self: _Connection) -> bool | None:
        out = original(self)
        eof_seen.set()
        return out

    monkeypatch.setattr(_Connection, "eof_received", eof_received)

    async def main() -> None:
        sink = MemorySink()
        capture, bus = await serve(sink)
        peer = await Peer.tcp(capture.port)
        welcome = await peer.hello()
        assert welcome["welcome"] is True
        sink.gate.clear()
        for seq in range(1, 301):
            peer.send(key(seq))
        peer.writer.write(b'{"kind":"key","seq":301,"ts":')  # a torn last line is not stored
        peer.writer.write_eof()
        await sink.entered.wait()
        await asyncio.wait_for(eof_seen.wait(), 5.0)
        sink.gate.set()
        acks = []
        while True:
            raw = await asyncio.wait_for(peer.reader.readline(), 5.0)
            if not raw:
                break  # the Pi closed after settling everything
            acks.append(orjson.loads(raw)["ack"])
        assert acks and acks[-1] == 300
        assert sink.seqs() == list(range(1, 301))
        await shutdown(capture, bus)

    run(main())


def test_a_connection_lost_before_its_welcome_leaves_no_session_behind(run: Run) -> None:
    class BrokenResume(MemorySink):
        async def resume_point(self, host_id: str, session_id: str) -> int:
            raise OSError("disk I/O error")

    async def main() -> None:
        capture, bus = await serve(BrokenResume())
        for session in ("a", "b", "c"):
            peer = await Peer.tcp(capture.port)
            err = await peer.hello(session=session)
            assert err["error"] == "storage" and err["fatal"] is True
            assert await peer.closed()
        for _ in range(300):  # connection_lost runs once the lingering close is done
            if not capture.connections:
                break
            await asyncio.sleep(0.01)
        assert not capture.connections
        assert capture.sessions == {}  # no per-session entry (and connection object) kept
        await shutdown(capture, bus)

    run(main())
