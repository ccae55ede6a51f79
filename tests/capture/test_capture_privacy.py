"""A key's identity never leaves the listener callback (Hypothesis).

Random key sequences — characters, pynput's special keys, raw virtual-key codes — are fed
through the very callback the agent hands to pynput's keyboard listener (the real X11 back end's
key objects), then through the summariser, the agent's drain and the real IngestClient into a
real spool file, with every log at DEBUG.  Two sequences that differ in *which* keys were pressed
but not in *when* or in which were corrections must give byte-identical events, spool and capture
log (non-interference), and no key's name, repr or a planted word appears anywhere.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modules.ingest.client import IngestClient, Spool, Target
from skelly.capture.agent import CaptureAgent
from skelly.capture.summariser import Summariser
from skelly.capture.taps import Taps

PLANTED = "zqxjkvbw"


@pytest.fixture(scope="module")
def kb(xvfb: str) -> Any:
    """pynput's keyboard module with its real X11 back end (loaded with DISPLAY pointing at
    the test Xvfb for the import only)."""
    with mock.patch.dict(os.environ, {"DISPLAY": xvfb}):
        from pynput import keyboard  # type: ignore[import-untyped,unused-ignore]
    return keyboard


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_764_000_000.0

    def __call__(self) -> float:
        return self.t


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.buf = io.StringIO()
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.buf.write(self.format(record) + "\n")


def _pipeline(kb: Any, keys: list[Any], gaps: list[float]) -> tuple[list[Any], bytes, str, str]:
    """(events, spool bytes, capture log, whole log) for ``keys`` pressed after ``gaps``."""
    root = logging.getLogger()
    handler = _Capture()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            clock = FakeClock()
            summariser = Summariser()
            lock = threading.Lock()
            taps = Taps(summariser, lock, clock, (kb.Key.backspace, kb.Key.delete))
            on_press = taps.callbacks()["on_press"]  # what keyboard.Listener(on_press=...) gets

            async def main() -> list[Any]:
                client = IngestClient(
                    Target(unix_path=str(work / "no-pi.sock")),
                    "token",
                    host_id="h",
                    session_id="s",
                    spool=Spool(work / "spool.ndjson", "h", "s"),
                    backoff=(60.0, 60.0),
                )
                await client.start()
                agent = CaptureAgent(
                    client, summariser, lock, control_path=work / "c.sock", clock=clock
                )
                for i, (key, gap) in enumerate(zip(keys, gaps, strict=True)):
                    clock.t += gap
                    on_press(key)
                    if i % 3 == 0:
                        agent._drain()
                clock.t += 2.0
                agent._drain()
                events = [orjson.loads(line) for line in client.unacked.values()]
                await client.close()  # the unacknowledged events stay in the spool file
                return events

            events = asyncio.run(main())
            spool = (work / "spool.ndjson").read_bytes()
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    text = handler.buf.getvalue()
    capture_log = "".join(ln for ln in text.splitlines(True) if ln.startswith("skelly.capture"))
    return events, spool, capture_log, text


def _is_correction(kb: Any, key: Any) -> bool:
    specials = (kb.Key.backspace, kb.Key.delete)
    return key in specials or any(key == k.value for k in specials)


@st.composite
def key_sequences(draw: st.DrawFn, kb: Any) -> tuple[list[Any], list[Any], list[float]]:
    """Two key sequences with the same correction positions, and the gaps between keys."""
    n = draw(st.integers(1, 40))
    mask = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    gaps = draw(
        st.lists(st.one_of(st.floats(0.001, 2.0), st.floats(30.0, 120.0)), min_size=n, max_size=n)
    )
    plain = st.one_of(
        st.characters(exclude_categories=["Cs"]).map(kb.KeyCode.from_char),
        st.sampled_from(list(kb.Key)),
        st.integers(1, 0x1FFFFFF).map(kb.KeyCode.from_vk),
    ).filter(lambda k: not _is_correction(kb, k))
    corr = st.sampled_from([kb.Key.backspace, kb.Key.delete, kb.Key.backspace.value])
    seqs = []
    for _ in range(2):
        seqs.append([draw(corr) if m else draw(plain) for m in mask])
    return seqs[0], seqs[1], gaps


def _identity_strings(kb: Any, keys: list[Any]) -> Iterator[re.Pattern[str]]:
    for key in keys:
        if isinstance(key, kb.Key):
            yield re.compile(r"\b" + re.escape(key.name) + r"\b", re.IGNORECASE)
            yield re.compile(re.escape(str(key)))
        else:
            yield re.compile(re.escape(repr(key)))
            if key.vk is not None:
                yield re.compile(r"\bvk\b|<" + str(key.vk) + ">")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_key_identity_reaches_events_spool_or_log(kb: Any, data: st.DataObject) -> None:
    keys_a, keys_b, gaps = data.draw(key_sequences(kb))
    planted = [kb.KeyCode.from_char(c) for c in PLANTED]
    keys_a = planted + keys_a
    keys_b = [kb.KeyCode.from_char("a")] * len(PLANTED) + keys_b
    gaps = [0.1] * len(PLANTED) + gaps
    events_a, spool_a, log_a, all_a = _pipeline(kb, keys_a, gaps)
    events_b, spool_b, log_b, _ = _pipeline(kb, keys_b, gaps)

    # non-interference: which keys were pressed changes nothing that leaves the callback
    assert events_a == events_b
    assert spool_a == spool_b
    assert log_a == log_b
    assert "skelly.capture.agent DEBUG queued" in log_a  # the capture log did run at DEBUG

    keys_out = [e for e in events_a if e["kind"] == "key"]
    assert [e["correction"] for e in keys_out] == [_is_correction(kb, k) for k in keys_a]
    assert all(set(e) == {"kind", "ts", "correction", "seq"} for e in keys_out)
    assert {e["kind"] for e in events_a} <= {"key", "idle"}
    outputs = {"events": orjson.dumps(events_a).decode(), "spool": spool_a.decode(), "log": all_a}
    for where, text in outputs.items():
        assert PLANTED not in text, where
        for pattern in _identity_strings(kb, keys_a[len(PLANTED) :]):
            assert not pattern.search(text), (where, pattern.pattern)


def test_x11_keyboard_listener_records_key_presses_only(kb: Any) -> None:
    """The agent's keyboard listener asks the X server's RECORD extension for KeyPress only
    (releases are never used; not recording them halves the per-key work)."""
    from Xlib import X  # type: ignore[import-untyped,unused-ignore]

    from skelly.commands.capture import _press_only

    cls = _press_only(kb.Listener)
    assert issubclass(cls, kb.Listener)
    recorded_by_pynput, recorded_by_agent = kb.Listener._EVENTS, cls._EVENTS
    assert recorded_by_pynput == (X.KeyPress, X.KeyRelease)
    assert recorded_by_agent == (X.KeyPress, X.KeyPress)
