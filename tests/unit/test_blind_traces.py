"""The blind trace family (bench/traces/blind.py): wire format, truth, hosts, calibration."""

from __future__ import annotations

import itertools
import json
import math
import statistics
from pathlib import Path
from typing import Any

import pytest

from bench.traces import blind
from modules.ingest.validate import parse_event

INPUT_KINDS = ("key", "mouse", "scroll")


def _events(trace: blind.Trace) -> list[dict[str, Any]]:
    return [json.loads(line) for line in trace.lines()]


def _in(events: list[dict[str, Any]], span: blind.Span, kind: str | None = None) -> list[Any]:
    return [
        e
        for e in events
        if span.start <= e["ts"] < span.end and (kind is None or e["kind"] == kind)
    ]


def _span(trace: blind.Trace, state: str, activity: str | None = None) -> blind.Span:
    return next(
        s for s in trace.truth if s.state == state and (activity is None or s.activity == activity)
    )


def _minutes(span: blind.Span) -> float:
    return (span.end - span.start) / 60.0


@pytest.fixture(scope="module")
def b090() -> dict[str, blind.Trace]:
    """Every script for b090, seed 1, through family() (the rotation's host)."""
    return {t.name: t for t in blind.family([1], personas=blind.PERSONAS[:1])}


@pytest.fixture(scope="module")
def mixed() -> list[blind.Trace]:
    """Every script once, alternating personas b250 / b170 and all three hosts."""
    out = []
    for i, script in enumerate(blind.SCRIPTS):
        persona = ("b250", "b170")[i % 2]
        out.append(blind.generate(script, persona, 3, host=blind.HOSTS[i % 3]))
    return out


@pytest.fixture(scope="module")
def parsed(
    b090: dict[str, blind.Trace], mixed: list[blind.Trace]
) -> list[tuple[blind.Trace, list[dict[str, Any]]]]:
    return [(t, _events(t)) for t in [*b090.values(), *mixed]]


def test_family_yields_every_script_for_every_persona_and_seed(
    b090: dict[str, blind.Trace],
) -> None:
    assert list(b090) == list(blind.SCRIPTS)
    for trace in b090.values():
        assert (trace.persona, trace.seed) == ("b090", 1)
        assert trace.host == blind.host_for("b090", 1)
    # the rotation lets every persona meet every host across seeds
    for p in blind.PERSONAS:
        assert {blind.host_for(p, seed) for seed in range(3)} == set(blind.HOSTS)
    assert set(blind.PERSONA_BY_NAME) == {"b090", "b130", "b170", "b210", "b250"}


def test_every_line_passes_the_ingest_validator(
    parsed: list[tuple[blind.Trace, list[dict[str, Any]]]],
) -> None:
    hosts = set()
    for trace, events in parsed:
        hosts.add(trace.host)
        lines = trace.lines()
        assert trace.ndjson() == "".join(line + "\n" for line in lines)
        assert lines, trace
        for line in lines:
            ev = parse_event(line.encode())  # raises IngestError on any problem
            assert ev.kind in ("key", "mouse", "focus", "idle", "scroll")
            assert " " not in line  # compact JSON
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        ts = [e["ts"] for e in events]
        assert all(a <= b for a, b in itertools.pairwise(ts)), trace
        assert ts[0] > 1_800_000_000
        kinds = {e["kind"] for e in events}
        assert {"key", "mouse", "focus"} <= kinds, trace
    assert hosts == set(blind.HOSTS)


def test_truth_is_contiguous_and_covers_the_script(
    parsed: list[tuple[blind.Trace, list[dict[str, Any]]]],
) -> None:
    for trace, events in parsed:
        segs = blind.SCRIPTS[trace.name]
        assert len(trace.truth) == len(segs)
        rate = 1.0 + trace.drift_ppm * 1e-6
        for span, seg in zip(trace.truth, segs, strict=True):
            assert span.state in blind.STATES
            assert (span.state, span.activity) == (seg.state, seg.activity)
            assert span.end - span.start == pytest.approx(seg.minutes * 60.0 * rate, abs=1e-3)
        for a, b in zip(trace.truth, trace.truth[1:], strict=False):
            assert a.end == b.start
        # every event inside the truth (a coarse clock's send delay may add a tick or two)
        assert trace.truth[0].start <= events[0]["ts"]
        assert events[-1]["ts"] <= trace.truth[-1].end + 0.05
        # no trace ends in silence
        last_input = max(e["ts"] for e in events if e["kind"] in INPUT_KINDS)
        assert last_input >= trace.truth[-1].end - 3.0, trace


def test_scripts_have_the_required_shape() -> None:
    day = blind.SCRIPTS["day"]
    assert {s.state for s in day} == set(blind.STATES)
    assert 140 <= sum(s.minutes for s in day) <= 160
    acts = {(s.state, s.activity): s.minutes for s in day}
    assert acts[("FLOW", "thinking")] == 10
    assert acts[("NEUTRAL", "meeting")] == 20
    assert acts[("IDLE", "coffee")] == 8
    assert acts[("FLOW", "reading")] == 12
    assert acts[("FLOW", "design")] == 15
    assert 25 <= acts[("HYPERFOCUS", "hyperfocus")] <= 35
    assert all(3 <= s.minutes <= 4 for s in day if s.state == "TRANSITIONING")
    switchy = blind.SCRIPTS["switchy"]
    assert switchy[0].state == "TRANSITIONING" and 10 <= len(switchy) <= 12
    assert {s.state for s in switchy} == {"TRANSITIONING", "NEUTRAL", "FLOW", "DISTRACTED"}
    assert all(4 <= s.minutes <= 8 for s in switchy)
    assert [(s.state, s.minutes, s.activity) for s in blind.SCRIPTS["thinker"]] == [
        ("NEUTRAL", 3, "neutral"),
        ("FLOW", 25, "thinking"),
        ("NEUTRAL", 3, "neutral"),
    ]


def test_deterministic_per_script_persona_seed() -> None:
    a = blind.generate("flow40", "b130", 7)
    b = blind.generate("flow40", blind.PERSONA_BY_NAME["b130"], 7)
    c = blind.generate("flow40", "b130", 8)
    assert a.ndjson() == b.ndjson() and a.truth == b.truth
    assert a.ndjson() != c.ndjson()


def _plain_intervals(events: list[dict[str, Any]], span: blind.Span) -> list[float]:
    keys = _in(events, span, "key")
    return [
        b["ts"] - a["ts"]
        for a, b in itertools.pairwise(keys)
        if not a["correction"] and not b["correction"] and b["ts"] - a["ts"] < 1.0
    ]


@pytest.mark.parametrize(
    ("persona", "seed", "host"),
    [("b090", 1, "clean"), ("b090", 2, "coarse"), ("b250", 1, "clean"), ("b250", 2, "drift")],
)
def test_persona_calibration_in_flow(persona: str, seed: int, host: str) -> None:
    trace = blind.generate("flow40", persona, seed, host=host)
    intervals = _plain_intervals(_events(trace), _span(trace, "FLOW"))
    assert len(intervals) > 1000
    median_ms = statistics.median(intervals) * 1000.0
    target = blind.PERSONA_BY_NAME[persona].iki_ms
    assert abs(median_ms - target) <= 0.1 * target, (median_ms, target)


def test_personas_differ_in_more_than_speed() -> None:
    ps = blind.PERSONAS
    for attr in ("error_rate", "phrase_words", "trip_every_s", "pointer_p", "work_app"):
        assert len({getattr(p, attr) for p in ps}) >= 3, attr


def test_coarse_host_timestamps_lie_on_its_tick(mixed: list[blind.Trace]) -> None:
    coarse = [t for t in mixed if t.host == "coarse"]
    assert coarse
    for trace in coarse:
        tps = round(1.0 / trace.tick_s)
        assert tps in (64, 100)
        keys = [e["ts"] for e in _events(trace) if e["kind"] == "key"]
        assert keys
        for ts in keys:
            assert abs(ts * tps - round(ts * tps)) < 1e-3, ts


def test_drift_host_truth_is_on_its_own_clock() -> None:
    clean = blind.generate("idle40", "b170", 5, host="clean")
    drift = blind.generate("idle40", "b170", 5, host="drift")
    assert clean.clock_offset_s == 0.0 and clean.drift_ppm == 0.0
    off, ppm = drift.clock_offset_s, drift.drift_ppm
    assert 600.0 <= abs(off) <= 4 * 3600.0 and abs(ppm) <= 500.0
    # the behaviour is the host's input; only the clock differs
    ck = [e["ts"] for e in _events(clean) if e["kind"] == "key"]
    dk = [e["ts"] for e in _events(drift) if e["kind"] == "key"]
    assert len(ck) == len(dk) > 100
    c0, d0 = clean.truth[0].start, drift.truth[0].start
    assert d0 - c0 == pytest.approx(off, abs=1e-6)
    for a, b in zip(ck[::50], dk[::50], strict=True):
        assert b - d0 == pytest.approx((a - c0) * (1.0 + ppm * 1e-6), abs=2e-3)
    for cs, ds in zip(clean.truth, drift.truth, strict=True):
        assert ds.start - d0 == pytest.approx((cs.start - c0) * (1.0 + ppm * 1e-6), abs=1e-6)
    # and every drift event lies inside the drift truth (not the true clock's)
    events = _events(drift)
    assert drift.truth[0].start <= events[0]["ts"] <= events[-1]["ts"] <= drift.truth[-1].end


def test_distracted_switches_far_more_than_flow(b090: dict[str, blind.Trace]) -> None:
    dis = b090["distracted40"]
    flow = b090["flow40"]
    d_rate = len(_in(_events(dis), _span(dis, "DISTRACTED"), "focus")) / 40.0
    f_rate = len(_in(_events(flow), _span(flow, "FLOW"), "focus")) / 40.0
    assert d_rate >= 5.0
    assert d_rate >= 6.0 * max(f_rate, 0.1), (d_rate, f_rate)
    assert f_rate <= 1.0


def test_transitioning_switches_one_or_two_a_minute(mixed: list[blind.Trace]) -> None:
    switchy = next(t for t in mixed if t.name == "switchy")
    events = _events(switchy)
    spans = [s for s in switchy.truth if s.state == "TRANSITIONING"]
    n = sum(len(_in(events, s, "focus")) for s in spans)
    rate = n / sum(_minutes(s) for s in spans)
    assert 0.8 <= rate <= 2.8, rate


def test_idle_has_almost_no_input(b090: dict[str, blind.Trace], mixed: list[blind.Trace]) -> None:
    for trace in (b090["idle40"], next(t for t in mixed if t.name == "idle40")):
        events = _events(trace)
        span = _span(trace, "IDLE")
        inputs = [e for e in _in(events, span) if e["kind"] in INPUT_KINDS]
        assert len(inputs) <= 0.5 * _minutes(span), len(inputs)
        assert sum(e["kind"] == "key" for e in inputs) <= 3
        # the host reports the long silence as idle spans once input resumes
        idle = [e for e in events if e["kind"] == "idle" and e["ts"] >= span.start]
        assert sum(e["duration_s"] for e in idle) >= 0.7 * (span.end - span.start)


def test_reading_and_design_have_scroll_and_pointer_activity(
    b090: dict[str, blind.Trace], mixed: list[blind.Trace]
) -> None:
    readers = [b090["reader"], next(t for t in mixed if t.name == "reader")]
    for trace in readers:
        events = _events(trace)
        span = _span(trace, "FLOW", "reading")
        acts = [e for e in _in(events, span) if e["kind"] in ("scroll", "key")]
        assert _in(events, span, "scroll")
        assert len(acts) / _minutes(span) >= 5.0
        ts = [e["ts"] for e in acts]
        gaps = [b - a for a, b in itertools.pairwise(ts)]
        assert statistics.median([g for g in gaps if g > 2.0]) == pytest.approx(7.5, abs=2.5)
    designers = [b090["designer"], next(t for t in mixed if t.name == "designer")]
    for trace in designers:
        events = _events(trace)
        span = _span(trace, "FLOW", "design")
        mouse = _in(events, span, "mouse")
        assert len(mouse) / _minutes(span) >= 10.0
        assert sum(e["clicks"] for e in mouse) / _minutes(span) >= 3.0
        keys = _in(events, span, "key")
        assert len(keys) < len(mouse)
        assert len({e["app_id"] for e in _in(events, span, "focus")}) <= 3


def test_hyperfocus_is_denser_and_steadier_than_flow(b090: dict[str, blind.Trace]) -> None:
    hyper = b090["hyperfocus100"]
    flow = b090["flow40"]
    he, fe = _events(hyper), _events(flow)
    hs, fs = _span(hyper, "HYPERFOCUS"), _span(flow, "FLOW")
    h_keys = len(_in(he, hs, "key")) / _minutes(hs)
    f_keys = len(_in(fe, fs, "key")) / _minutes(fs)
    assert h_keys > 1.1 * f_keys
    assert len(_in(he, hs, "focus")) / _minutes(hs) < len(_in(fe, fs, "focus")) / _minutes(fs)


def test_key_events_carry_timing_only(b090: dict[str, blind.Trace]) -> None:
    events = _events(b090["day"])
    assert all(set(e) == {"kind", "seq", "ts", "correction"} for e in events if e["kind"] == "key")
    focus = [e for e in events if e["kind"] == "focus"]
    assert all(len(e["app_id"]) == 16 for e in focus)
    assert len({e["app_id"] for e in focus}) >= 5
    assert {e["category"] for e in focus} >= {"code", "communication"}


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"script": "nope"}, list(blind.SCRIPTS)),
        ({"persona": "b999"}, list(blind.PERSONA_BY_NAME)),
        ({"host": "lumpy"}, list(blind.HOSTS)),
    ],
)
def test_bad_names_raise_valueerror_with_choices(kwargs: dict[str, str], names: list[str]) -> None:
    args: dict[str, Any] = {"script": "flow40", "persona": "b090", "seed": 1, **kwargs}
    with pytest.raises(ValueError) as info:
        blind.generate(**args)
    message = str(info.value)
    assert next(iter(kwargs.values())) in message
    assert all(name in message for name in names)


def test_cli_writes_events_and_truth(tmp_path: Path) -> None:
    out, truth = tmp_path / "t.ndjson", tmp_path / "t.json"
    argv = ["--script", "flow40", "--persona", "b210", "--seed", "4", "--host", "drift"]
    assert blind.main([*argv, "-o", str(out), "--truth", str(truth)]) == 0
    trace = blind.generate("flow40", "b210", 4, host="drift")
    assert out.read_text() == trace.ndjson()
    spans = json.loads(truth.read_text())
    assert [s[2:] for s in spans] == [
        ["NEUTRAL", "neutral"],
        ["FLOW", "flow"],
        ["NEUTRAL", "neutral"],
    ]
    assert all(math.isclose(s[0], t.start) for s, t in zip(spans, trace.truth, strict=True))
