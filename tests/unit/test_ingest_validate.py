"""The pure validator, framing and token helpers (docs/INGEST.md §3, §4, §7, §8)."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import orjson
import pytest

from bus.messages import RawEvent
from modules.ingest.client import IngestClient
from modules.ingest.framing import LineSplitter
from modules.ingest.token import (
    TokenError,
    load_or_create_token,
    read_token,
    tokens_equal,
    write_token,
)
from modules.ingest.validate import IngestError, parse_event, parse_hello

TS = 1_764_212_345.123


def line(**fields: object) -> bytes:
    return orjson.dumps(fields)


@pytest.mark.parametrize(
    ("event", "attrs"),
    [
        ({"kind": "key", "seq": 17, "ts": TS, "correction": False}, (("correction", False),)),
        (
            {"kind": "mouse", "seq": 18, "ts": TS, "speed": 412.5, "clicks": 1, "span_ms": 1000},
            (("speed", 412.5), ("clicks", 1), ("span_ms", 1000)),
        ),
        (
            {"kind": "focus", "seq": 19, "ts": TS, "category": "code", "app_id": "c0ffee12"},
            (("category", "code"), ("app_id", "c0ffee12")),
        ),
        ({"kind": "idle", "seq": 20, "ts": TS, "duration_s": 42}, (("duration_s", 42.0),)),
    ],
)
def test_every_documented_kind_parses_into_a_raw_event(
    event: dict[str, object], attrs: tuple[tuple[str, object], ...]
) -> None:
    ev = parse_event(orjson.dumps(event), "host", "sess")
    assert ev == RawEvent("host", "sess", event["seq"], event["kind"], TS, attrs)  # type: ignore[arg-type]
    assert [type(v) for _, v in ev.attrs] == [type(v) for _, v in attrs]


def test_the_examples_in_the_doc_are_valid() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "INGEST.md").read_text()
    examples = [
        ln[ln.index("{") :].strip()
        for ln in doc.splitlines()
        if '{"kind":"' in ln and '"seq"' in ln and "title" not in ln
    ]
    assert len(examples) >= 7
    for ex in examples:
        parse_event(ex.encode())


@pytest.mark.parametrize(
    ("fields", "code", "field"),
    [
        ({"kind": "key", "seq": 1, "ts": TS, "correction": False, "char": "a"}, "privacy", "char"),
        ({"kind": "key", "seq": 1, "ts": TS, "correction": False, "Window_Title": "x"}, "privacy",
         "Window_Title"),
        ({"kind": "key", "seq": 1, "ts": TS, "correction": False, "screenshot": ""}, "privacy",
         "screenshot"),
        ({"kind": "idle", "seq": 1, "ts": TS, "duration_s": 1, "path": "/home"}, "privacy", "path"),
        ({"kind": "key", "seq": 1, "ts": TS, "correction": None}, "type", "correction"),
        ({"kind": "key", "seq": 0, "ts": TS, "correction": False}, "seq", "seq"),
        ({"kind": "key", "seq": 2**53, "ts": TS, "correction": False}, "seq", "seq"),
        ({"kind": "key", "seq": True, "ts": TS, "correction": False}, "seq", "seq"),
        ({"kind": "key", "seq": 1, "ts": True, "correction": False}, "type", "ts"),
        ({"kind": "key", "seq": 1, "ts": 5e9, "correction": False}, "range", "ts"),
        ({"kind": "mouse", "seq": 1, "ts": TS, "speed": 1e6, "clicks": 0, "span_ms": 1}, "range",
         "speed"),
        ({"kind": "mouse", "seq": 1, "ts": TS, "speed": 1, "clicks": 0, "span_ms": 0}, "range",
         "span_ms"),
        ({"kind": "focus", "seq": 1, "ts": TS, "category": "code", "app_id": ""}, "range",
         "app_id"),
        ({"kind": "focus", "seq": 1, "ts": TS, "category": "code", "app_id": "a" * 65}, "range",
         "app_id"),
        ({"kind": "focus", "seq": 1, "ts": TS, "category": 3, "app_id": "a"}, "type", "category"),
        ({"kind": "focus", "seq": 1, "ts": TS, "app_id": "a"}, "missing", "category"),
        ({"kind": 7, "seq": 1, "ts": TS}, "kind", "kind"),
    ],
)  # fmt: skip
def test_refusals_name_the_code_the_field_and_the_seq(
    fields: dict[str, object], code: str, field: str
) -> None:
    with pytest.raises(IngestError) as info:
        parse_event(orjson.dumps(fields))
    err = info.value
    assert (err.code, err.field) == (code, field)
    seq = fields.get("seq")
    if code not in ("seq",) and isinstance(seq, int) and not isinstance(seq, bool):
        assert err.seq == seq
    wire = orjson.loads(err.to_line())
    assert wire["error"] == code and wire["message"] == err.message


def test_privacy_error_never_echoes_the_value() -> None:
    secret = "Quarterly layoffs - CONFIDENTIAL.docx"
    with pytest.raises(IngestError) as info:
        parse_event(line(kind="focus", seq=4, ts=TS, category="office", app_id="a", title=secret))
    assert secret not in info.value.to_line().decode()
    assert info.value.code == "privacy"


def test_an_unknown_kind_is_never_echoed() -> None:
    secret = "clipboard: my bank PIN 4711"
    with pytest.raises(IngestError) as info:
        parse_event(line(kind=secret, seq=4, ts=TS))
    wire = info.value.to_line().decode()
    assert info.value.code == "kind" and info.value.field == "kind" and info.value.seq == 4
    assert "clipboard" not in wire and "4711" not in wire
    assert "use one of key, mouse, focus, idle" in wire


def test_not_json_and_not_an_object() -> None:
    for raw in (b"", b"{", b"\xff\xfe", b"NaN", b"[]", b'"key"', b"1e400"):
        with pytest.raises(IngestError) as info:
            parse_event(raw)
        assert info.value.code == "json" and info.value.seq is None


def test_hello() -> None:
    token = "t" * 43
    ok = parse_hello(line(kind="hello", proto=1, token=token, host_id="h", session_id="s.1"))
    assert (ok.token, ok.host_id, ok.session_id, ok.proto) == (token, "h", "s.1", 1)
    with pytest.raises(IngestError) as info:
        parse_hello(b" " * 5000)
    assert info.value.code == "hello" and info.value.fatal


def test_splitter_bounds_memory_for_an_endless_line() -> None:
    s = LineSplitter(100)
    assert s.feed(b"a" * 60) == []
    assert s.feed(b"a" * 60) == [None]  # reported once, as soon as it is known
    for _ in range(1000):
        assert s.feed(b"b" * 4096) == []
        assert s.buffered == 0
    assert s.feed(b"tail\nok\npart") == [b"ok"]
    assert s.feed(b"ial\n") == [b"partial"]


def test_splitter_exact_limit() -> None:
    s = LineSplitter(4)
    assert s.feed(b"1234\n12345\n") == [b"1234", None]
    assert s.feed(b"12") == []
    assert s.feed(b"34\n") == [b"1234"]
    assert s.feed(b"123") == []
    assert s.feed(b"45\n6\n") == [None, b"6"]


def test_token_file_is_private_and_compared_in_constant_time(tmp_path: Path) -> None:
    path = tmp_path / "state" / "ingest.token"
    token, created = load_or_create_token(path)
    assert created and len(token) >= 43
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_token(path) == (token, False)
    assert tokens_equal(token, token) and not tokens_equal(token[:-1], token)
    assert not tokens_equal("", token)
    os.chmod(path, 0o644)
    with pytest.raises(TokenError, match="chmod 600"):
        read_token(path)
    write_token(path, "short")
    with pytest.raises(TokenError, match="valid token"):
        read_token(path)
    with pytest.raises(TokenError, match="skelly token"):
        read_token(tmp_path / "missing")


def test_a_temp_file_left_by_a_crash_does_not_block_creating_the_token(tmp_path: Path) -> None:
    path = tmp_path / "ingest.token"
    stale = tmp_path / f".ingest.token.{os.getpid()}.tmp"  # same pid after a reboot/container
    stale.write_text("half-written")
    token, created = load_or_create_token(path)
    assert created and read_token(path) == token
    assert not stale.exists()


@pytest.mark.parametrize("method", ["send", "send_nowait"])
def test_client_numbers_events_and_refuses_bad_seqs_the_same_way_in_both_send_methods(
    method: str,
) -> None:
    async def main() -> None:
        client = IngestClient("127.0.0.1:9", "t" * 43, host_id="h", session_id="s")

        async def send(event: dict[str, object]) -> int:
            out = getattr(client, method)(event)
            return int(await out) if method == "send" else int(out)

        assert await send({"kind": "key", "ts": 1e9, "correction": False}) == 1
        assert await send({"kind": "key", "seq": 5, "ts": 1e9, "correction": False}) == 5
        assert await send({"kind": "key", "seq": 5, "ts": 1e9, "correction": False}) == 5
        for bad in ("6", True, 0, 2**53, 3):
            with pytest.raises(ValueError, match="seq"):
                await send({"kind": "key", "seq": bad, "ts": 1e9, "correction": False})
        assert list(client.unacked) == [1, 5]  # the replayed seq 5 was not queued twice
        assert orjson.loads(client.unacked[1])["seq"] == 1

    asyncio.run(main())
