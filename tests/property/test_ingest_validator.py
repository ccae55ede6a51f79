"""Fuzzing the ingest validator and framing with Hypothesis: whatever the bytes, the only
exception is the documented IngestError, and valid events survive the round trip."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.messages import RawEvent
from modules.ingest.framing import LineSplitter
from modules.ingest.validate import (
    CATEGORIES,
    FAST_KINDS,
    IngestError,
    parse_event,
    parse_hello,
    validate_event,
)

CODES = {"json", "kind", "seq", "missing", "type", "range", "privacy", "unknown_field"}
FIELD_NAMES = st.sampled_from(
    ["kind", "seq", "ts", "correction", "speed", "clicks", "span_ms", "category", "app_id",
     "duration_s", "title", "url", "key", "x", ""]
)  # fmt: skip
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["key", "mouse", "focus", "idle", "ping", "code"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
NEAR_EVENTS = st.dictionaries(FIELD_NAMES, JSON_VALUES, max_size=7)


def check(raw: bytes) -> None:
    try:
        ev = parse_event(raw, "h", "s")
    except IngestError as err:
        assert err.code in CODES
        assert err.message
        orjson.loads(err.to_line())  # the error line itself is always valid JSON
    else:
        assert isinstance(ev, RawEvent)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes(raw: bytes) -> None:
    check(raw)


@settings(max_examples=400, deadline=None)
@given(NEAR_EVENTS)
def test_objects_close_to_events(obj: dict[str, object]) -> None:
    check(orjson.dumps(obj))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_hello_never_raises_anything_else(raw: bytes) -> None:
    try:
        parse_hello(raw)
    except IngestError as err:
        assert err.fatal and err.code in {"hello", "auth", "version"}


EVENTS = st.one_of(
    st.fixed_dictionaries({"kind": st.just("key"), "correction": st.booleans()}),
    st.fixed_dictionaries(
        {
            "kind": st.just("mouse"),
            "speed": st.floats(0, 100_000),
            "clicks": st.integers(0, 10_000),
            "span_ms": st.integers(1, 3_600_000),
        }
    ),
    st.fixed_dictionaries(
        {
            "kind": st.just("focus"),
            "category": st.sampled_from(sorted(CATEGORIES)),
            "app_id": st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
        }
    ),
    st.fixed_dictionaries({"kind": st.just("idle"), "duration_s": st.floats(0, 86_400)}),
)


@settings(max_examples=200, deadline=None)
@given(EVENTS, st.integers(1, 2**53 - 1), st.floats(1e9, 4.1e9))
def test_valid_events_round_trip(event: dict[str, object], seq: int, ts: float) -> None:
    obj = {**event, "seq": seq, "ts": ts}
    ev = parse_event(orjson.dumps(obj), "h", "s")
    assert (ev.kind, ev.seq, ev.ts) == (obj["kind"], seq, ts)
    assert dict(ev.attrs) == {k: v for k, v in event.items() if k != "kind"}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), max_size=20),
       st.lists(st.integers(1, 50), max_size=30), st.integers(1, 20))  # fmt: skip
def test_splitting_does_not_depend_on_chunking(
    lines: list[bytes], cuts: list[int], limit: int
) -> None:
    data = b"".join(ln + b"\n" for ln in lines)
    expected = [ln if len(ln) <= limit else None for ln in lines]
    splitter = LineSplitter(limit)
    got: list[bytes | None] = []
    pos = 0
    for cut in cuts:
        got += splitter.feed(data[pos : pos + cut])
        pos += cut
        assert splitter.buffered <= limit
    got += splitter.feed(data[pos:])
    assert got == expected


def fast_agrees(obj: dict[str, object]) -> None:
    kind = obj.get("kind")
    check = FAST_KINDS.get(kind) if isinstance(kind, str) else None
    fast = check(obj, "h", "s") if check is not None else None
    try:
        slow: RawEvent | None = validate_event(obj, "h", "s")
    except IngestError:
        slow = None
    assert fast is None or fast == slow, (obj, fast, slow)


@settings(max_examples=400, deadline=None)
@given(NEAR_EVENTS)
def test_fast_path_never_accepts_what_the_full_check_refuses(obj: dict[str, object]) -> None:
    fast_agrees(obj)


@settings(max_examples=200, deadline=None)
@given(EVENTS, st.integers(1, 2**53 - 1), st.floats(1e9, 4.1e9))
def test_fast_path_takes_every_valid_event(event: dict[str, object], seq: int, ts: float) -> None:
    obj = {**event, "seq": seq, "ts": ts}
    check = FAST_KINDS[str(obj["kind"])]
    assert check(obj, "h", "s") == validate_event(obj, "h", "s")
