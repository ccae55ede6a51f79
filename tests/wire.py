"""The host → Pi event kinds and their fields exactly as docs/INGEST.md §4 lists them, written
from the doc (not taken from the validator) so the trace generators' tests check both."""

from __future__ import annotations

FIELDS: dict[str, set[str]] = {
    "key": {"kind", "seq", "ts", "correction"},
    "mouse": {"kind", "seq", "ts", "speed", "clicks", "span_ms"},
    "focus": {"kind", "seq", "ts", "category", "app_id"},
    "idle": {"kind", "seq", "ts", "duration_s"},
    "scroll": {"kind", "seq", "ts", "ticks", "span_ms"},
}
"""Event kind → every field it carries (no more, no fewer)."""
INPUT = ("key", "mouse", "focus", "scroll")
"""The kinds that are user input (``idle`` is a report about the lack of it)."""
