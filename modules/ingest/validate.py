"""Pure validation of ingest lines (docs/INGEST.md §3, §4, §7): bytes in, RawEvent or error out.

No I/O, no clock, no state: :func:`parse_event` turns one line into a :class:`bus.messages.RawEvent`
or raises :class:`IngestError` — and nothing else, whatever the bytes (a Hypothesis test holds it to
that).  :func:`parse_hello` does the same for the first line of a connection.  The server
(``modules.data_capture``) adds the stateful rules: sequence order, duplicates, limits.

Check order for an event (only the first problem is reported): UTF-8/JSON object → ``kind`` →
``seq`` → extra fields (``privacy`` before ``unknown_field``) → missing fields → types → ranges.
Messages name the field but never echo a refused field's value (it may be content).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from bus.messages import RawEvent

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS = (1,)
MAX_SEQ = 2**53 - 1
TS_MIN = 1_000_000_000.0
TS_MAX = 4_102_444_800.0
HELLO_MAX_BYTES = 4096

CATEGORIES = frozenset(
    (
        "code",
        "terminal",
        "docs",
        "browser",
        "communication",
        "media",
        "design",
        "office",
        "games",
        "other",
    )
)
PRIVACY_MARKERS = (
    "title",
    "url",
    "uri",
    "text",
    "key",
    "char",
    "code",
    "screen",
    "path",
    "file",
    "clip",
    "content",
    "name",
    "query",
    "body",
    "input",
    "word",
    "cmd",
    "domain",
    "host",
    "mail",
)
_APP_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_IDENT = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class IngestError(ValueError):
    """One refused line: ``code`` (docs/INGEST.md §7), the event's ``seq`` if known, the field at
    fault if one, and a message that says what was wrong and what to do."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        seq: int | None = None,
        field: str | None = None,
        fatal: bool = False,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.seq = seq
        self.field = field
        self.fatal = fatal

    def to_line(self) -> bytes:
        """The error line sent to the host (with the trailing newline)."""
        out: dict[str, Any] = {"error": self.code, "seq": self.seq}
        if self.field is not None:
            out["field"] = self.field
        out["message"] = self.message
        if self.fatal:
            out["fatal"] = True
        return orjson.dumps(out) + b"\n"


@dataclass(frozen=True, slots=True)
class Hello:
    token: str
    host_id: str
    session_id: str
    proto: int
    client: str = ""


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    kind: str  # "bool" | "number" | "int" | "category" | "app_id"
    lo: float = 0.0
    hi: float = 0.0
    unit: str = ""


_KINDS: dict[str, tuple[_Field, ...]] = {
    "key": (_Field("correction", "bool"),),
    "mouse": (
        _Field("speed", "number", 0.0, 100_000.0, "pixels per second"),
        _Field("clicks", "int", 0, 10_000, "clicks"),
        _Field("span_ms", "int", 1, 3_600_000, "milliseconds"),
    ),
    "focus": (_Field("category", "category"), _Field("app_id", "app_id")),
    "idle": (_Field("duration_s", "number", 0.0, 86_400.0, "seconds"),),
    "scroll": (
        _Field("ticks", "int", 1, 100_000, "scroll steps"),
        _Field("span_ms", "int", 1, 3_600_000, "milliseconds"),
    ),
}
KINDS = tuple(_KINDS)
_ALLOWED = {k: frozenset(("kind", "seq", "ts", *(f.name for f in fs))) for k, fs in _KINDS.items()}


def is_privacy_field(name: str) -> bool:
    lowered = name.lower()
    return any(marker in lowered for marker in PRIVACY_MARKERS)


def _safe_name(name: str) -> str:
    """A field name for a message: bounded and printable (the name itself is the host's text)."""
    shown = name if len(name) <= 40 else name[:40] + "…"
    return repr(shown)


def _typename(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def loads_object(line: bytes, *, what: str = "line") -> dict[str, Any]:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise IngestError(
            "json",
            f"{what} is not valid UTF-8 JSON ({exc.msg}); send one JSON object per line",
        ) from None
    if type(obj) is not dict:
        raise IngestError(
            "json", f"{what} is {_typename(obj)}, not a JSON object; send one object per line"
        )
    return obj


def check_seq(obj: dict[str, Any]) -> int:
    """The ``seq`` of a decoded event, or IngestError code ``seq``."""
    seq = obj.get("seq")
    if type(seq) is not int:
        if "seq" not in obj:
            raise IngestError("seq", "event has no seq; number events 1, 2, 3, … per session")
        raise IngestError(
            "seq", f"seq is {_typename(seq)}; it must be an integer from 1 to {MAX_SEQ}"
        )
    if not 1 <= seq <= MAX_SEQ:
        raise IngestError("seq", f"seq {seq} is out of range; it must be from 1 to {MAX_SEQ}")
    return seq


def parse_event(line: bytes, host_id: str = "", session_id: str = "") -> RawEvent:
    """Decode and validate one event line (without its ``\\n``) into a RawEvent."""
    obj = loads_object(line)
    return validate_event(obj, host_id, session_id)


def validate_event(obj: dict[str, Any], host_id: str = "", session_id: str = "") -> RawEvent:
    kind = obj.get("kind")
    if not isinstance(kind, str) or kind not in _KINDS:
        seq_hint = obj.get("seq") if type(obj.get("seq")) is int else None
        if kind is None:
            msg = "event has no kind; use one of " + ", ".join(KINDS)
        elif type(kind) is not str:
            msg = f"kind is {_typename(kind)}; it must be one of " + ", ".join(KINDS)
        else:
            # the value is never echoed: a string from the host could carry content
            msg = f"kind is not a known kind ({len(kind)} characters); use one of " + ", ".join(
                KINDS
            )
        raise IngestError("kind", msg, seq=seq_hint, field="kind")
    fields = _KINDS[kind]
    try:
        seq = check_seq(obj)
    except IngestError as exc:
        raise IngestError("seq", f"{kind} event: {exc.message}", field="seq") from None
    where = f"event seq {seq} ({kind})"
    allowed = _ALLOWED[kind]
    if len(obj) != len(allowed) or not allowed.issuperset(obj):
        extra = [name for name in obj if name not in allowed]
        for name in extra:
            if is_privacy_field(name):
                raise IngestError(
                    "privacy",
                    f"{where}: field {_safe_name(name)} could carry content and is refused; "
                    "the event was not stored. Send timing and categories only "
                    "(docs/INGEST.md §4.6)",
                    seq=seq,
                    field=name,
                )
        if extra:
            raise IngestError(
                "unknown_field",
                f"{where}: field {_safe_name(extra[0])} is not part of a {kind} event; "
                f"allowed fields: {', '.join(sorted(allowed))}",
                seq=seq,
                field=extra[0],
            )
        missing = sorted(allowed.difference(obj))
        raise IngestError(
            "missing",
            f"{where}: required field {missing[0]!r} is missing",
            seq=seq,
            field=missing[0],
        )
    ts = obj["ts"]
    tt = type(ts)
    if tt is not float and tt is not int:
        raise IngestError(
            "type",
            f"{where}: ts is {_typename(ts)}; it must be a number (seconds since the epoch)",
            seq=seq,
            field="ts",
        )
    if not TS_MIN <= ts < TS_MAX:
        raise IngestError(
            "range",
            f"{where}: ts {ts} is out of range; it must be host wall-clock seconds since the "
            f"epoch, from {TS_MIN:.0f} to {TS_MAX:.0f}",
            seq=seq,
            field="ts",
        )
    attrs = tuple((f.name, _check_field(f, obj[f.name], where, seq)) for f in fields)
    return RawEvent(host_id, session_id, seq, kind, float(ts), attrs)


def _check_field(f: _Field, value: Any, where: str, seq: int) -> Any:
    vt = type(value)
    if f.kind == "bool":
        if vt is not bool:
            raise IngestError(
                "type",
                f"{where}: {f.name} is {_typename(value)}; it must be true or false",
                seq=seq,
                field=f.name,
            )
        return value
    if f.kind == "number":
        if vt is not float and vt is not int:
            raise IngestError(
                "type",
                f"{where}: {f.name} is {_typename(value)}; it must be a number ({f.unit})",
                seq=seq,
                field=f.name,
            )
        if not f.lo <= value <= f.hi:
            raise IngestError(
                "range",
                f"{where}: {f.name} {value} is out of range: expected a number from "
                f"{f.lo:g} to {f.hi:g} {f.unit}",
                seq=seq,
                field=f.name,
            )
        return float(value)
    if f.kind == "int":
        if vt is not int:
            raise IngestError(
                "type",
                f"{where}: {f.name} is {_typename(value)}; it must be an integer ({f.unit})",
                seq=seq,
                field=f.name,
            )
        if not f.lo <= value <= f.hi:
            raise IngestError(
                "range",
                f"{where}: {f.name} {value} is out of range: expected an integer from "
                f"{f.lo:g} to {f.hi:g} {f.unit}",
                seq=seq,
                field=f.name,
            )
        return value
    if vt is not str:
        raise IngestError(
            "type",
            f"{where}: {f.name} is {_typename(value)}; it must be a string",
            seq=seq,
            field=f.name,
        )
    if f.kind == "category":
        if value not in CATEGORIES:
            raise IngestError(
                "range",
                f"{where}: category is not one of the fixed list: "
                + ", ".join(sorted(CATEGORIES))
                + " (map the app to a category on the host)",
                seq=seq,
                field=f.name,
            )
        return value
    if _APP_ID.fullmatch(value) is None:
        raise IngestError(
            "range",
            f"{where}: app_id must be 1-64 characters of A-Z a-z 0-9 _ - "
            "(an opaque salted hash made on the host, never the app's name)",
            seq=seq,
            field=f.name,
        )
    return value


# --- fast path: the common, valid event in one pass (None = "let the full check explain") ------


def _fast_key(obj: dict[str, Any], host_id: str, session_id: str) -> RawEvent | None:
    try:
        seq = obj["seq"]
        ts = obj["ts"]
        correction = obj["correction"]
    except KeyError:
        return None
    if (
        type(seq) is int
        and 0 < seq <= MAX_SEQ
        and (type(ts) is float or type(ts) is int)
        and TS_MIN <= ts < TS_MAX
        and type(correction) is bool
        and len(obj) == 4
    ):
        return RawEvent(host_id, session_id, seq, "key", float(ts), (("correction", correction),))
    return None


def _fast_mouse(obj: dict[str, Any], host_id: str, session_id: str) -> RawEvent | None:
    try:
        seq = obj["seq"]
        ts = obj["ts"]
        speed = obj["speed"]
        clicks = obj["clicks"]
        span = obj["span_ms"]
    except KeyError:
        return None
    if (
        type(seq) is int
        and 0 < seq <= MAX_SEQ
        and (type(ts) is float or type(ts) is int)
        and TS_MIN <= ts < TS_MAX
        and (type(speed) is float or type(speed) is int)
        and 0.0 <= speed <= 100_000.0
        and type(clicks) is int
        and 0 <= clicks <= 10_000
        and type(span) is int
        and 1 <= span <= 3_600_000
        and len(obj) == 6
    ):
        attrs = (("speed", float(speed)), ("clicks", clicks), ("span_ms", span))
        return RawEvent(host_id, session_id, seq, "mouse", float(ts), attrs)
    return None


def _fast_focus(obj: dict[str, Any], host_id: str, session_id: str) -> RawEvent | None:
    try:
        seq = obj["seq"]
        ts = obj["ts"]
        category = obj["category"]
        app_id = obj["app_id"]
    except KeyError:
        return None
    if (
        type(seq) is int
        and 0 < seq <= MAX_SEQ
        and (type(ts) is float or type(ts) is int)
        and TS_MIN <= ts < TS_MAX
        and type(category) is str
        and category in CATEGORIES
        and type(app_id) is str
        and _APP_ID.fullmatch(app_id) is not None
        and len(obj) == 5
    ):
        attrs = (("category", category), ("app_id", app_id))
        return RawEvent(host_id, session_id, seq, "focus", float(ts), attrs)
    return None


def _fast_idle(obj: dict[str, Any], host_id: str, session_id: str) -> RawEvent | None:
    try:
        seq = obj["seq"]
        ts = obj["ts"]
        duration = obj["duration_s"]
    except KeyError:
        return None
    if (
        type(seq) is int
        and 0 < seq <= MAX_SEQ
        and (type(ts) is float or type(ts) is int)
        and TS_MIN <= ts < TS_MAX
        and (type(duration) is float or type(duration) is int)
        and 0.0 <= duration <= 86_400.0
        and len(obj) == 4
    ):
        attrs = (("duration_s", float(duration)),)
        return RawEvent(host_id, session_id, seq, "idle", float(ts), attrs)
    return None


def _fast_scroll(obj: dict[str, Any], host_id: str, session_id: str) -> RawEvent | None:
    try:
        seq = obj["seq"]
        ts = obj["ts"]
        ticks = obj["ticks"]
        span = obj["span_ms"]
    except KeyError:
        return None
    if (
        type(seq) is int
        and 0 < seq <= MAX_SEQ
        and (type(ts) is float or type(ts) is int)
        and TS_MIN <= ts < TS_MAX
        and type(ticks) is int
        and 1 <= ticks <= 100_000
        and type(span) is int
        and 1 <= span <= 3_600_000
        and len(obj) == 5
    ):
        attrs = (("ticks", ticks), ("span_ms", span))
        return RawEvent(host_id, session_id, seq, "scroll", float(ts), attrs)
    return None


FAST_KINDS: dict[str, Callable[[dict[str, Any], str, str], RawEvent | None]] = {
    "key": _fast_key,
    "mouse": _fast_mouse,
    "focus": _fast_focus,
    "idle": _fast_idle,
    "scroll": _fast_scroll,
}
"""kind -> one-pass check of a well-formed event; returns None whenever anything is off, and then
:func:`validate_event` (which must agree on every valid event, see the property test) explains."""


_HELLO_FIELDS = frozenset(("kind", "proto", "token", "host_id", "session_id", "client"))
_HELLO_REQUIRED = ("proto", "token", "host_id", "session_id")


def parse_hello(line: bytes) -> Hello:
    """Decode the first line of a connection.  Every problem is fatal (closes the connection)."""

    def fail(code: str, message: str, field: str | None = None) -> IngestError:
        return IngestError(code, message, field=field, fatal=True)

    if len(line) > HELLO_MAX_BYTES:
        raise fail("hello", f"hello line is longer than {HELLO_MAX_BYTES} bytes")
    try:
        obj = loads_object(line, what="hello line")
    except IngestError as exc:
        raise fail("hello", exc.message + ' (the first line must be {"kind":"hello",…})') from None
    if obj.get("kind") != "hello":
        raise fail(
            "hello",
            'the first line must be the hello {"kind":"hello","proto":1,"token":…,'
            '"host_id":…,"session_id":…} (docs/INGEST.md §3)',
            "kind",
        )
    extra = sorted(set(obj) - _HELLO_FIELDS)
    if extra:
        raise fail("hello", f"hello has unknown field {_safe_name(extra[0])}", extra[0])
    token = obj.get("token")
    if type(token) is not str or not 1 <= len(token) <= 256:
        raise fail(
            "auth",
            "hello carries no valid token; copy the token shown by `skelly token` on the Pi",
            "token",
        )
    for name in _HELLO_REQUIRED:
        if name not in obj:
            raise fail("hello", f"hello is missing {name!r}", name)
    proto = obj["proto"]
    if type(proto) is not int:
        raise fail("hello", f"hello proto is {_typename(proto)}; it must be an integer", "proto")
    if proto not in SUPPORTED_VERSIONS:
        raise fail(
            "version",
            f"protocol version {proto} is not supported; this Pi speaks "
            + ", ".join(str(v) for v in SUPPORTED_VERSIONS),
            "proto",
        )
    for name in ("host_id", "session_id"):
        value = obj[name]
        if type(value) is not str or _IDENT.fullmatch(value) is None:
            raise fail("hello", f"hello {name} must be 1-64 characters of A-Z a-z 0-9 _ . -", name)
    client = obj.get("client", "")
    if type(client) is not str or len(client) > 64:
        raise fail("hello", "hello client must be a string of at most 64 characters", "client")
    return Hello(token, obj["host_id"], obj["session_id"], proto, client)
