"""The ``scroll`` event kind (docs/INGEST.md §4.7): validated and privacy-checked like the other
kinds, on the full check, on the one-pass fast path and through the real TCP server."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.messages import RawEvent
from modules.ingest.validate import FAST_KINDS, IngestError, parse_event, validate_event
from tests.unit.test_ingest_server import MemorySink, Peer, Run, serve, shutdown

TS = 1_764_212_345.25


def scroll(**over: Any) -> dict[str, Any]:
    return {"kind": "scroll", "seq": 21, "ts": TS, "ticks": 3, "span_ms": 1000, **over}


def test_scroll_parses_into_a_raw_event_on_both_paths() -> None:
    ev = parse_event(orjson.dumps(scroll()), "h", "s")
    assert ev == RawEvent("h", "s", 21, "scroll", TS, (("ticks", 3), ("span_ms", 1000)))
    assert FAST_KINDS["scroll"](scroll(), "h", "s") == ev


@pytest.mark.parametrize(
    ("over", "code", "field"),
    [
        ({"ticks": 0}, "range", "ticks"),
        ({"ticks": 100_001}, "range", "ticks"),
        ({"ticks": 2.5}, "type", "ticks"),
        ({"ticks": True}, "type", "ticks"),
        ({"span_ms": 0}, "range", "span_ms"),
        ({"span_ms": "1000"}, "type", "span_ms"),
        ({"url": "https://example.org/secret"}, "privacy", "url"),
        ({"window_title": "Inbox"}, "privacy", "window_title"),
        ({"direction": "down"}, "unknown_field", "direction"),
        ({"dy": 120}, "unknown_field", "dy"),
    ],
)
def test_scroll_refusals(over: dict[str, Any], code: str, field: str) -> None:
    obj = scroll(**over)
    with pytest.raises(IngestError) as info:
        parse_event(orjson.dumps(obj))
    assert (info.value.code, info.value.field, info.value.seq) == (code, field, 21)
    assert FAST_KINDS["scroll"](obj, "h", "s") is None
    for value in over.values():
        if isinstance(value, str):
            assert value not in info.value.message


def test_a_missing_field_is_named() -> None:
    obj = scroll()
    del obj["ticks"]
    with pytest.raises(IngestError) as info:
        validate_event(obj)
    assert (info.value.code, info.value.field) == ("missing", "ticks")


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["seq", "ts", "ticks", "span_ms", "title", "x"]),
        st.none()
        | st.booleans()
        | st.integers(-5, 200_000)
        | st.floats(allow_nan=False)
        | st.text(max_size=4),
        max_size=5,
    )
)
def test_fast_path_agrees_with_the_full_check(fields: dict[str, Any]) -> None:
    obj = {"kind": "scroll", **fields}
    fast = FAST_KINDS["scroll"](obj, "h", "s")
    try:
        slow: RawEvent | None = validate_event(obj, "h", "s")
    except IngestError:
        slow = None
    assert fast is None or fast == slow


def test_the_server_stores_scroll_events(run: Run) -> None:
    async def main() -> None:
        sink = MemorySink()
        capture, bus = await serve(sink)
        peer = await Peer.tcp(capture.port)
        await peer.hello()
        peer.send(scroll(seq=1))
        peer.send(scroll(seq=2, ticks=7, span_ms=500, title="x"))
        err = await peer.line()
        assert (err["error"], err["seq"], err["field"]) == ("privacy", 2, "title")
        peer.send(scroll(seq=3, ticks=7, span_ms=500))
        while (await peer.line()).get("ack", 0) < 3:
            pass
        assert sink.seqs() == [1, 3]
        stored = sink.rows[("h1", "s1", 3)]
        assert (stored.kind, stored.get("ticks"), stored.get("span_ms")) == ("scroll", 7, 500)
        peer.close()
        await shutdown(capture, bus)

    run(main())
