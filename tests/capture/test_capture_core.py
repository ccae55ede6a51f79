"""The pure parts of the capture agent, on an injected clock: the summariser (INGEST events),
categories and app ids, durations and the status line, the session checks, the user unit."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pytest

from modules.ingest.validate import CATEGORIES, parse_event
from skelly.capture import categories, control, environment, service
from skelly.capture.summariser import Summariser

T0 = 1_764_000_000.0


def _valid(events: list[dict[str, object]]) -> None:
    """Every event passes the Pi's own validator (docs/INGEST.md §4)."""
    import orjson

    for seq, e in enumerate(events, 1):
        parse_event(orjson.dumps({**e, "seq": seq}), "h", "s")


def test_keys_are_timing_and_correction_only() -> None:
    s = Summariser()
    s.key(T0, False)
    s.key(T0 + 0.2, True)
    out = s.tick(T0 + 0.3)
    assert out == [
        {"kind": "key", "ts": T0, "correction": False},
        {"kind": "key", "ts": T0 + 0.2, "correction": True},
    ]
    _valid(out)
    assert s.tick(T0 + 0.4) == []


def test_mouse_speed_clicks_and_scroll_per_span() -> None:
    s = Summariser(interval_s=1.0)
    s.move(T0, 0, 0)
    s.move(T0 + 0.25, 300, 400)  # 500 px
    s.click(T0 + 0.3)
    s.click(T0 + 0.4)
    s.scroll(T0 + 0.5, 0, -1)
    s.scroll(T0 + 0.6, 0, 3)  # a smooth delta of 3 notches
    assert s.tick(T0 + 0.9) == []  # the span is not a second old yet
    out = s.tick(T0 + 1.0)
    assert out == [
        {"kind": "mouse", "ts": T0 + 1.0, "speed": 500.0, "clicks": 2, "span_ms": 1000},
        {"kind": "scroll", "ts": T0 + 1.0, "ticks": 4, "span_ms": 1000},
    ]
    _valid(out)
    assert s.tick(T0 + 5.0) == []  # nothing while the pointer rests


def test_idle_span_is_sent_when_input_resumes() -> None:
    s = Summariser(idle_threshold_s=30.0)
    s.key(T0, False)
    s.key(T0 + 29.0, False)  # a short pause is no idle span
    s.move(T0 + 29.0 + 45.5, 1, 1)
    out = s.tick(T0 + 80)
    assert out[2] == {"kind": "idle", "ts": T0 + 74.5, "duration_s": 45.5}
    assert [e["kind"] for e in out] == ["key", "key", "idle"]
    _valid(out)


def test_focus_only_on_change_and_pause_drops_everything() -> None:
    s = Summariser()
    s.focus(T0, "code", "a" * 16)
    s.focus(T0 + 1, "code", "a" * 16)
    s.focus(T0 + 2, "browser", "b" * 16)
    assert [e["category"] for e in s.tick(T0 + 2)] == ["code", "browser"]
    s.pause(T0 + 3, T0 + 60)
    s.key(T0 + 4, False)
    s.move(T0 + 5, 10, 10)
    s.click(T0 + 5)
    s.scroll(T0 + 5, 0, 1)
    s.focus(T0 + 6, "games", "c" * 16)
    assert s.tick(T0 + 10) == []
    assert s.dropped == 4  # key, move, click, scroll (a focus change is not an input)
    assert s.paused(T0 + 59)
    # the pause runs out: capturing again, no idle span for the pause, focus sent again
    s.key(T0 + 61, False)
    s.focus(T0 + 61, "browser", "b" * 16)
    assert [e["kind"] for e in s.tick(T0 + 61.5)] == ["key", "focus"]
    assert s.resumes == 1
    s.pause(T0 + 70, math.inf)
    assert s.paused(T0 + 10**6)
    s.resume()
    assert not s.paused(T0 + 10**6) and s.resumes == 2


def test_categories_defaults_overrides_and_other() -> None:
    c = categories.Categoriser(b"k" * 32, {"org.gnome.evince": "office"})
    assert c.category(("Code", "code")) == "code"
    assert c.category(("Gnome-terminal", "gnome-terminal-server")) == "terminal"
    assert c.category(("firefox", "Navigator")) == "browser"
    assert c.category(("com.tinyspeck.slackmacgap",)) == "communication"
    assert c.category(("Thunderbird",)) == "communication"
    assert c.category(("org.gnome.Evince",)) == "office"  # overridden (default: docs)
    assert c.category(("Evince",)) == "docs"
    assert c.category(("some-unknown-app",)) == "other"
    assert set(categories.DEFAULTS.values()) <= CATEGORIES


def test_app_ids_are_keyed_stable_and_unlinkable() -> None:
    a = categories.Categoriser(b"a" * 32)
    b = categories.Categoriser(b"b" * 32)
    assert a.app_id("Code") == a.app_id("code")  # stable for one user
    assert a.app_id("Code") != a.app_id("firefox")
    assert a.app_id("Code") != b.app_id("Code")  # another install cannot link them
    assert len(a.app_id("Code")) == 16 and "code" not in a.app_id("Code").lower()


def test_secret_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "capture.secret"
    first = categories.load_secret(path)
    assert len(first) == 32 and path.stat().st_mode & 0o777 == 0o600
    assert categories.load_secret(path) == first


def test_override_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "capture.toml"
    bad.write_text('[categories]\n"slack" = "chat"\n')
    with pytest.raises(categories.CategoryConfigError, match=r"capture.toml.*'slack'.*one of"):
        categories.load_overrides(bad)
    bad.write_text("[categories\n")
    with pytest.raises(categories.CategoryConfigError, match="not valid TOML"):
        categories.load_overrides(bad)
    assert categories.load_overrides(tmp_path / "missing.toml") == {}


@pytest.mark.parametrize(
    ("text", "seconds"), [("30m", 1800), ("1h", 3600), ("90s", 90), ("1h30m", 5400)]
)
def test_durations(text: str, seconds: float) -> None:
    assert control.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "soon", "0m", "1d", "m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        control.parse_duration(text)


def test_status_line() -> None:
    st = {
        "target": "pi:7878",
        "connected": True,
        "problem": "",
        "events_per_min": 42.0,
        "last_ack_age_s": 0.4,
        "unacked": 0,
        "paused_until": T0 + 600,
        "last_change": "paused at 10:00:00",
        "dropped": 7,
    }
    line = control.status_line(st, now=T0)
    assert line.startswith("skelly capture: connected to pi:7878 · 42 events/min · last ack 0.4")
    assert "paused until" in line and "(10 min left), 7 inputs dropped (paused at 10:00:00)" in line
    st.update(connected=False, problem="connection refused", last_ack_age_s=None)
    st.update(paused_until=None, last_change="")
    line = control.status_line(st, now=T0)
    assert "not connected to pi:7878 (connection refused)" in line
    assert "last ack never" in line and line.endswith("capturing")


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"WAYLAND_DISPLAY": "wayland-0"}, "Wayland session (WAYLAND_DISPLAY=wayland-0)"),
        ({"XDG_SESSION_TYPE": "wayland", "DISPLAY": ":0"}, "XDG_SESSION_TYPE=wayland"),
        ({}, "no display: DISPLAY is not set"),
    ],
)
def test_sessions_that_cannot_be_captured(env: dict[str, str], needle: str) -> None:
    with pytest.raises(environment.Unsupported, match=r"\(") as info:
        environment.check(env, platform="linux")
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_user_unit_quotes_arguments(tmp_path: Path) -> None:
    unit = service.systemd_unit(
        ["--to", "pi:7878", "--token-file", "/home/a b/tok%en", "--session", "s"], "pi:7878"
    )
    exec_line = next(ln for ln in unit.splitlines() if ln.startswith("ExecStart="))
    assert exec_line.endswith('capture --to pi:7878 --token-file "/home/a b/tok%%en" --session s')
    path = tmp_path / service.UNIT_NAME
    path.write_text(unit)
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_timed_callbacks_take_what_pynput_passes() -> None:
    """pynput hands a ``*args`` callback extra arguments (``injected``): the timed callbacks
    (SKELLY_CAPTURE_CALLBACK_TIMES) must accept them and still record every call."""
    import threading

    from skelly.capture.taps import Taps

    s = Summariser()
    backspace = object()
    taps = Taps(s, threading.Lock(), lambda: T0, (backspace,))
    taps.record = []
    cb = taps.callbacks()
    cb["on_press"](backspace, False)
    cb["on_press"]("a", True)
    cb["on_move"](1, 2, False)
    cb["on_click"](1, 2, "left", True, False)
    cb["on_scroll"](1, 2, 0, 1, False)
    assert len(taps.record) == 5 and all(ns > 0 for ns in taps.record)
    out = s.tick(T0 + 1)
    assert [e.get("correction") for e in out if e["kind"] == "key"] == [True, False]
    assert [e["kind"] for e in out] == ["key", "key", "mouse", "scroll"]
